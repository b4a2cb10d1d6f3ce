import Foundation
import TetherModel
import TetherPlugin

/// Where a federated object goes and what each cluster's copy looks like: PropagationPolicy,
/// OverridePolicy and the federation-v1 annotations, applied in that order to one object.
///
/// PropagationPolicy (`core.tether.io/v1alpha1`, namespaced; it governs objects in its own
/// namespace; the first by name whose selectors match wins):
///
/// ```yaml
/// spec:
///   resourceSelectors: [{apiVersion: apps/v1, kind: ReplicaSet, name: frontend, labelSelector: {matchLabels: {...}}}]
///   placement: {clusterNames: [a, b], clusterSelector: {matchLabels: {region: eu}}, excludeClusters: [c]}
///   replicaScheduling: {type: Divided, weights: {a: 2, b: 1}, minReplicas: {a: 1}, maxReplicas: {b: 100}}
/// ```
///
/// OverridePolicy (every matching one applies, in name order):
///
/// ```yaml
/// spec:
///   resourceSelectors: [...]
///   overrides:
///   - clusterNames: [a]            # or clusterSelector; neither means every cluster
///     image: nginx:1.28            # every container of the pod template
///     replicas: 5
///     labels: {k: v}
///     annotations: {k: v}
///     jsonPatch: [{op: replace, path: /spec/template/spec/containers/0/image, value: x}]
/// ```
struct Placement {
    static let clusterSelectorAnnotation = "federation.alpha.kubernetes.io/cluster-selector"
    static let replicaPreferencesAnnotation = "federation.kubernetes.io/replica-set-preferences"

    /// Cluster name → its `Cluster` object (for labels).
    var clusters: [String: JSONValue]
    var propagationPolicies: [JSONValue]
    var overridePolicies: [JSONValue]

    /// Each target cluster's copy of `object`, before the plugin prepares it.
    func copies(of object: JSONValue, plugin: any ResourcePlugin) -> [String: JSONValue] {
        let policy = propagationPolicies.sorted { ($0.name ?? "") < ($1.name ?? "") }.first { Self.selects($0, object) }
        let targets = targetClusters(for: object, policy: policy)
        guard !targets.isEmpty else { return [:] }
        var copies: [String: JSONValue] = [:]
        let scheduling = policy?.value(at: "spec", "replicaScheduling")
        if let total = plugin.replicas(of: object), scheduling?["type"]?.stringValue != "Duplicated" {
            var weights = (scheduling?["weights"]?.objectMembers ?? [:]).compactMapValues(\.integerValue)
            var bounds: [String: ReplicaDivision.Bounds] = [:]
            for name in targets {
                bounds[name] = ReplicaDivision.Bounds(
                    minimum: scheduling?.value(at: "minReplicas", name)?.integerValue ?? 0,
                    maximum: scheduling?.value(at: "maxReplicas", name)?.integerValue
                )
            }
            if policy == nil, let preferences = Self.replicaPreferences(object) {
                for name in targets {
                    let entry = preferences[name] ?? preferences["*"]
                    weights[name] = entry?["weight"]?.integerValue ?? weights[name]
                    bounds[name] = ReplicaDivision.Bounds(
                        minimum: entry?["minReplicas"]?.integerValue ?? 0,
                        maximum: entry?["maxReplicas"]?.integerValue
                    )
                }
            }
            let shares = ReplicaDivision.divide(total, among: targets, weights: weights, bounds: bounds)
            for name in targets { copies[name] = plugin.setting(replicas: shares[name] ?? 0, on: object) }
        } else {
            for name in targets { copies[name] = object }
        }
        for (name, copy) in copies { copies[name] = overridden(copy, for: name) }
        return copies
    }

    func targetClusters(for object: JSONValue, policy: JSONValue?) -> [String] {
        var names = clusters.keys.sorted()
        if let placement = policy?.value(at: "spec", "placement") {
            if let wanted = placement["clusterNames"]?.arrayElements.compactMap(\.stringValue), !wanted.isEmpty {
                names = names.filter(wanted.contains)
            }
            if let selector = placement["clusterSelector"].flatMap(Self.labelSelector) {
                names = names.filter { selector.matches(clusters[$0]?.labels ?? [:]) }
            }
            let excluded = placement["excludeClusters"]?.arrayElements.compactMap(\.stringValue) ?? []
            names = names.filter { !excluded.contains($0) }
        }
        if let selector = Self.annotationClusterSelector(object) {
            names = names.filter { selector.matches(clusters[$0]?.labels ?? [:]) }
        }
        return names
    }

    private func overridden(_ object: JSONValue, for cluster: String) -> JSONValue {
        var copy = object
        let policies = overridePolicies.sorted { ($0.name ?? "") < ($1.name ?? "") }.filter { Self.selects($0, object) }
        for policy in policies {
            for rule in policy.value(at: "spec", "overrides")?.arrayElements ?? [] where appliesTo(rule, cluster) {
                if let image = rule["image"]?.stringValue {
                    for list in ["containers", "initContainers"] {
                        guard case .array(let containers)? = copy.value(at: "spec", "template", "spec", list) else { continue }
                        copy.set(.array(containers.map { var container = $0; container[member: "image"] = .string(image); return container }), at: ["spec", "template", "spec", list])
                    }
                }
                if let replicas = rule["replicas"]?.integerValue {
                    copy.set(.integer(replicas), at: ["spec", "replicas"])
                }
                if let labels = rule["labels"]?.objectMembers.compactMapValues(\.stringValue) {
                    copy.labels = copy.labels.merging(labels) { $1 }
                }
                if let annotations = rule["annotations"]?.objectMembers.compactMapValues(\.stringValue) {
                    copy.annotations = copy.annotations.merging(annotations) { $1 }
                }
                if let patch = rule["jsonPatch"], let patched = try? copy.applyingJSONPatch(patch, limits: .default) {
                    copy = patched
                }
            }
        }
        return copy
    }

    private func appliesTo(_ rule: JSONValue, _ cluster: String) -> Bool {
        if let names = rule["clusterNames"]?.arrayElements.compactMap(\.stringValue), !names.contains(cluster) { return false }
        if let selector = rule["clusterSelector"].flatMap(Self.labelSelector), !selector.matches(clusters[cluster]?.labels ?? [:]) {
            return false
        }
        return true
    }

    /// Whether a policy's `resourceSelectors` pick `object` (same namespace; any selector matching).
    static func selects(_ policy: JSONValue, _ object: JSONValue) -> Bool {
        guard policy.namespace == object.namespace || object.namespace == nil else { return false }
        let selectors = policy.value(at: "spec", "resourceSelectors")?.arrayElements ?? []
        return selectors.contains { selector in
            if let apiVersion = selector["apiVersion"]?.stringValue, apiVersion != object.apiVersion { return false }
            if let kind = selector["kind"]?.stringValue, kind != object.kind { return false }
            if let name = selector["name"]?.stringValue, name != object.name { return false }
            if let labels = selector["labelSelector"].flatMap(labelSelector), !labels.matches(object.labels) { return false }
            return true
        }
    }

    /// A Kubernetes `LabelSelector` object (`matchLabels`, `matchExpressions`).
    static func labelSelector(_ value: JSONValue) -> LabelSelector? {
        var terms: [String] = []
        for (key, item) in (value["matchLabels"]?.objectMembers ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard let text = item.stringValue else { return nil }
            terms.append("\(key)=\(text)")
        }
        for expression in value["matchExpressions"]?.arrayElements ?? [] {
            guard let term = requirement(expression) else { return nil }
            terms.append(term)
        }
        return try? LabelSelector(parsing: terms.joined(separator: ","))
    }

    private static func requirement(_ expression: JSONValue) -> String? {
        guard let key = expression["key"]?.stringValue, let op = expression["operator"]?.stringValue else { return nil }
        let values = (expression["values"]?.arrayElements ?? []).compactMap(\.stringValue).joined(separator: ",")
        switch op.lowercased() {
        case "in", "=", "==": return "\(key) in (\(values))"
        case "notin", "!=": return "\(key) notin (\(values))"
        case "exists": return key
        case "doesnotexist": return "!\(key)"
        default: return nil
        }
    }

    /// `federation.alpha.kubernetes.io/cluster-selector`: a JSON list of `{key, operator, values}`.
    static func annotationClusterSelector(_ object: JSONValue) -> LabelSelector? {
        guard let text = object.annotations[clusterSelectorAnnotation],
            let list = try? JSONValue(parsing: text)
        else { return nil }
        let terms = list.arrayElements.compactMap(requirement)
        return try? LabelSelector(parsing: terms.joined(separator: ","))
    }

    /// `federation.kubernetes.io/replica-set-preferences`: `{"clusters": {"name" or "*": {weight, minReplicas, maxReplicas}}}`.
    static func replicaPreferences(_ object: JSONValue) -> [String: JSONValue]? {
        guard let text = object.annotations[replicaPreferencesAnnotation],
            let preferences = try? JSONValue(parsing: text)
        else { return nil }
        return preferences["clusters"]?.objectMembers
    }
}
