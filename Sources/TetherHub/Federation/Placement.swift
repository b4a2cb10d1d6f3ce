import TetherJSON
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

    /// Cluster name → its labels.
    var clusters: [String: [String: String]]
    /// In name order: the first that selects an object governs it.
    var propagationPolicies: [PropagationPolicy]
    /// In name order: every one that selects an object applies, in turn.
    var overridePolicies: [OverridePolicy]

    /// Each target cluster's copy of `object`, before the plugin prepares it, among `candidates`
    /// (clusters that take part: joined, not rebalanced away).
    func copies(of object: JSONValue, plugin: any ResourcePlugin, among candidates: Set<String>) -> [String: JSONValue] {
        let policy = propagationPolicies.first { PolicyDecoding.selects($0.spec.resourceSelectors, namespace: $0.namespace, object) }
        let targets = targetClusters(for: object, policy: policy, among: candidates)
        guard !targets.isEmpty else { return [:] }
        var copies: [String: JSONValue] = [:]
        let scheduling = policy?.spec.replicaScheduling
        if let total = plugin.replicas(of: object), scheduling?.type != .duplicated {
            var weights = scheduling?.weights ?? [:]
            var bounds: [String: ReplicaDivision.Bounds] = [:]
            for name in targets {
                bounds[name] = ReplicaDivision.Bounds(minimum: scheduling?.minReplicas?[name] ?? 0, maximum: scheduling?.maxReplicas?[name])
            }
            if policy == nil, let preferences = Self.replicaPreferences(object) {
                for name in targets {
                    let entry = preferences.clusters[name] ?? preferences.clusters["*"]
                    weights[name] = entry?.weight ?? weights[name]
                    bounds[name] = ReplicaDivision.Bounds(minimum: entry?.minReplicas ?? 0, maximum: entry?.maxReplicas)
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

    /// Whether a PropagationPolicy selects `object` (rather than the default: every cluster).
    /// Whether the PropagationPolicy that governs `object` asks for its dependencies to follow it.
    func propagatesDependencies(of object: JSONValue) -> Bool {
        propagationPolicies.first { PolicyDecoding.selects($0.spec.resourceSelectors, namespace: $0.namespace, object) }?.spec.propagateDeps == true
    }

    func selectsExplicitly(_ object: JSONValue) -> Bool {
        propagationPolicies.contains { PolicyDecoding.selects($0.spec.resourceSelectors, namespace: $0.namespace, object) }
    }

    func targetClusters(for object: JSONValue, policy: PropagationPolicy?, among candidates: Set<String>) -> [String] {
        var names = candidates.filter { clusters[$0] != nil }.sorted()
        if let placement = policy?.spec.placement {
            if let wanted = placement.clusterNames, !wanted.isEmpty { names = names.filter(wanted.contains) }
            if let spec = placement.clusterSelector {
                let selector = spec.selector
                names = names.filter { selector?.matches(clusters[$0] ?? [:]) == true }
            }
            let excluded = placement.excludeClusters ?? []
            names = names.filter { !excluded.contains($0) }
        }
        if let selector = Self.annotationClusterSelector(object) {
            names = names.filter { selector.matches(clusters[$0] ?? [:]) }
        }
        return names
    }

    func overridden(_ object: JSONValue, for cluster: String) -> JSONValue {
        var copy = object
        for policy in overridePolicies where PolicyDecoding.selects(policy.spec.resourceSelectors, namespace: policy.namespace, object) {
            for rule in policy.spec.overrides ?? [] where appliesTo(rule, cluster) {
                if let image = rule.image {
                    for list in ["containers", "initContainers"] {
                        guard case .array(let containers)? = copy.value(at: "spec", "template", "spec", list) else { continue }
                        let replaced = containers.map { container in
                            var container = container
                            container[member: "image"] = .string(image)
                            return container
                        }
                        copy.set(.array(replaced), at: ["spec", "template", "spec", list])
                    }
                }
                if let replicas = rule.replicas { copy.set(.integer(replicas), at: ["spec", "replicas"]) }
                if let labels = rule.labels { copy.labels = copy.labels.merging(labels) { $1 } }
                if let annotations = rule.annotations { copy.annotations = copy.annotations.merging(annotations) { $1 } }
                if let patch = rule.jsonPatch, let patched = try? copy.applyingJSONPatch(patch, limits: .default) { copy = patched }
            }
        }
        return copy
    }

    private func appliesTo(_ rule: OverridePolicy.Rule, _ cluster: String) -> Bool {
        if let names = rule.clusterNames, !names.contains(cluster) { return false }
        if let spec = rule.clusterSelector, spec.selector?.matches(clusters[cluster] ?? [:]) != true { return false }
        return true
    }

    /// `federation.alpha.kubernetes.io/cluster-selector`: a JSON list of `{key, operator, values}`.
    static func annotationClusterSelector(_ object: JSONValue) -> LabelSelector? {
        guard let text = object.annotations[clusterSelectorAnnotation],
            let requirements = try? JSONValueDecoder().decode([LabelSelectorSpec.Requirement].self, from: Array(text.utf8))
        else { return nil }
        return try? LabelSelector(parsing: requirements.compactMap(LabelSelectorSpec.term).joined(separator: ","))
    }

    /// `federation.kubernetes.io/replica-set-preferences`: `{"clusters": {"name" or "*": {weight, minReplicas, maxReplicas}}}`.
    struct ReplicaPreferences: Decodable {
        struct Entry: Decodable {
            var weight: Int64?
            var minReplicas: Int64?
            var maxReplicas: Int64?
        }

        var clusters: [String: Entry]
    }

    static func replicaPreferences(_ object: JSONValue) -> ReplicaPreferences? {
        guard let text = object.annotations[replicaPreferencesAnnotation] else { return nil }
        return try? JSONValueDecoder().decode(ReplicaPreferences.self, from: Array(text.utf8))
    }
}
