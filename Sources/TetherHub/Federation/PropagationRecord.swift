import TetherJSON
import TetherModel
import TetherStore
import TetherWire

/// The `core.tether.io/v1alpha1` `Propagation` of one federated object: where it stands in each
/// cluster it is placed on. Every kind has one (a ConfigMap has no status to hold it, and a
/// Namespace's status is its own), and `kubectl get propagations` lists them all.
enum PropagationRecord {
    static let type = ResourceType(group: "core.tether.io", resource: "propagations", namespaced: false)

    /// `<kind>.<namespace>.<name>`, or `<kind>.<name>` for a cluster-scoped object: unique, since
    /// a kind is either namespaced or not and a namespace has no dots. A name past the 253
    /// characters a name may have is cut and ends with a hash of the whole.
    static func name(for reference: ObjectReference) -> String {
        KubernetesNames.derived(([reference.kind.lowercased()] + (reference.namespace.map { [$0] } ?? []) + [reference.name]).joined(separator: "."))
    }

    static func object(for reference: ObjectReference, uid: String?) -> JSONValue {
        var resource: JSONValue = ["apiVersion": .string(reference.apiVersion), "kind": .string(reference.kind), "name": .string(reference.name)]
        if let namespace = reference.namespace { resource[member: "namespace"] = .string(namespace) }
        if let uid { resource[member: "uid"] = .string(uid) }
        var labels: [String: JSONValue] = ["tether.io/kind": .string(reference.kind.lowercased())]
        if let namespace = reference.namespace { labels["tether.io/namespace"] = .string(namespace) }
        return [
            "apiVersion": "core.tether.io/v1alpha1", "kind": "Propagation",
            "metadata": ["name": .string(name(for: reference)), "labels": .object(labels)],
            "spec": ["resource": resource],
        ]
    }

    /// One line per cluster the object is placed on (`pending` until its agent reports), with
    /// the generation of the object that cluster holds, and the counts `kubectl get` prints.
    static func status(reports: [ClusterReport], placedOn: [String], generations: [String: Int64] = [:], generation: Int64?) -> JSONValue {
        let byCluster = Dictionary(reports.map { ($0.cluster, $0) }, uniquingKeysWith: { first, _ in first })
        var lines: [JSONValue] = []
        var applied = 0
        var healthy = 0
        var lastError: String?
        for cluster in placedOn {
            let held = generations[cluster]
            guard let entry = byCluster[cluster] else {
                var line: JSONValue = [
                    "name": .string(cluster), "state": .string(ObjectState.pending.rawValue), "health": .string(HealthState.unknown.rawValue),
                ]
                if let held { line[member: "generation"] = .integer(held) }
                lines.append(line)
                continue
            }
            let report = entry.report
            var line: [String: JSONValue] = [
                "name": .string(cluster), "state": .string(report.state.rawValue), "health": .string(report.health.rawValue),
            ]
            if let message = report.message { line["message"] = .string(message) }
            if !report.summary.isEmpty { line["summary"] = .object(report.summary) }
            if let revision = entry.ackedRevision { line["revision"] = .integer(Int64(revision)) }
            if let held { line["generation"] = .integer(held) }
            lines.append(.object(line))
            if report.state == .applied { applied += 1 }
            if report.health == .healthy { healthy += 1 }
            if report.state == .failed || report.health == .degraded, let message = report.message {
                lastError = "\(cluster): \(message)"
            }
        }
        var status: [String: JSONValue] = [
            "placed": .integer(Int64(placedOn.count)), "applied": .integer(Int64(applied)), "healthy": .integer(Int64(healthy)),
            "clusters": .array(lines),
        ]
        if let generation { status["observedGeneration"] = .integer(generation) }
        if let lastError { status["lastError"] = .string(lastError) }
        return .object(status)
    }

    /// The reports a stored record holds, for the object it names: each cluster's line as its
    /// agent last reported it (lines still `pending`, and lines in a vocabulary this hub does not
    /// know, are no report), with the revision it acknowledged and the generation it holds.
    static func reports(in record: JSONValue) -> StoredReports? {
        guard let resource = record["spec"]?["resource"], let apiVersion = resource["apiVersion"]?.stringValue,
            let kind = resource["kind"]?.stringValue, let name = resource["name"]?.stringValue
        else { return nil }
        let reference = ObjectReference(apiVersion: apiVersion, kind: kind, namespace: resource["namespace"]?.stringValue, name: name)
        var statuses: [String: StatusReport.ObjectStatus] = [:]
        var generations: [String: Int64] = [:]
        var revisions: [String: UInt64] = [:]
        var named: [String] = []
        for line in record["status"]?["clusters"]?.arrayElements ?? [] {
            guard let cluster = line["name"]?.stringValue else { continue }
            named.append(cluster)
            if let held = line["generation"]?.integerValue { generations[cluster] = held }
            if let revision = line["revision"]?.integerValue, revision >= 0 { revisions[cluster] = UInt64(revision) }
            guard let state = line["state"]?.stringValue.flatMap(ObjectState.init(rawValue:)), state != .pending,
                let health = line["health"]?.stringValue.flatMap(HealthState.init(rawValue:))
            else { continue }
            statuses[cluster] = StatusReport.ObjectStatus(
                object: reference, state: state, health: health, message: line["message"]?.stringValue,
                summary: line["summary"]?.objectMembers ?? [:])
        }
        // Lines of a hub that writes generations name one wherever the cluster held any: a line
        // without one is a cluster that holds none yet.
        if !generations.isEmpty {
            for cluster in named where generations[cluster] == nil { generations[cluster] = 0 }
        }
        return StoredReports(
            reference: reference, uid: resource["uid"]?.stringValue, statuses: statuses, generations: generations, revisions: revisions)
    }
}
