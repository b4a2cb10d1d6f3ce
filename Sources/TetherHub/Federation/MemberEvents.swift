import Foundation
import Logging
import Metrics
import TetherJSON
import TetherModel
import TetherStore
import TetherWire

/// Records core v1 Events at the hub when a member's report on a federated object changes
/// (applied, failed, healthy, degraded, ...), so `kubectl describe` of a federated object shows,
/// under Events, what each cluster last said of it.
///
/// kubectl's describers for ReplicaSet, Deployment and Service print fixed fields and never
/// `status.clusters`, but every describer lists the object's Events. One Event per object,
/// cluster and reason is updated in place (`count`, `lastTimestamp`), as Kubernetes' own
/// recorder deduplicates, so their number is bounded by objects × clusters × reasons. They are
/// deleted with the federated object. Writing them never holds up status: they queue here,
/// coalesced per Event, and a full queue drops the newest with a counter.
actor MemberEvents {
    struct Observation: Sendable {
        var object: ObjectReference
        var uid: String
        var cluster: String
        var report: StatusReport.ObjectStatus
    }

    private struct Pending {
        var namespace: String
        var name: String
        var observation: Observation
        var reason: String
        var type: String
        var message: String
        var at: String
    }

    private static let eventType = ResourceType(group: "", resource: "events", namespaced: true)
    static let capacity = 16_384

    private let store: any ResourceStore
    private let logger: Logger
    /// What each (object uid, cluster) last reported, as recorded.
    private var lastSaid: [String: [String: String]] = [:]
    private var pending: [String: Pending] = [:]
    private var order: [String] = []
    private var forgotten: [(namespace: String, uid: String)] = []

    init(store: any ResourceStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    /// Queues an Event if this cluster's report on the object differs from the last one recorded.
    func observe(_ observation: Observation) {
        let report = observation.report
        let said = "\(report.state.rawValue)|\(report.health.rawValue)|\(report.message ?? "")"
        guard lastSaid[observation.uid]?[observation.cluster] != said else { return }
        lastSaid[observation.uid, default: [:]][observation.cluster] = said
        let (reason, type, message) = Self.describe(report, cluster: observation.cluster)
        let namespace = observation.object.namespace ?? "default"
        let name = [observation.object.name, observation.object.kind.lowercased(), observation.cluster, reason.lowercased()]
            .joined(separator: ".")
        let key = "\(namespace)/\(name)"
        if pending[key] == nil {
            guard pending.count < Self.capacity else {
                Counter(label: "tether_hub_events_dropped_total").increment()
                return
            }
            order.append(key)
        }
        pending[key] = Pending(
            namespace: namespace, name: name, observation: observation, reason: reason, type: type, message: message,
            at: kubernetesTimestamp()
        )
    }

    /// The object is gone: its Events go too, and nothing more is recorded for it.
    func forget(namespace: String?, uid: String) {
        lastSaid[uid] = nil
        let namespace = namespace ?? "default"
        for (key, event) in pending where event.observation.uid == uid {
            pending[key] = nil
        }
        order.removeAll { pending[$0] == nil }
        forgotten.append((namespace, uid))
    }

    static func describe(_ report: StatusReport.ObjectStatus, cluster: String) -> (reason: String, type: String, message: String) {
        let detail = report.message.map { $0.isEmpty ? "" : ": \($0)" } ?? ""
        switch report.state {
        case .failed:
            return ("ApplyFailed", "Warning", "cluster \(cluster) could not apply it\(detail)")
        case .pending:
            return ("ApplyPending", "Normal", "cluster \(cluster) has not applied it yet\(detail)")
        case .applied, .pruned, .orphaned:
            let health = report.health.rawValue
            return ("Member\(health)", report.health == .degraded ? "Warning" : "Normal", "cluster \(cluster): \(health)\(detail)")
        }
    }

    /// Writes what is queued; the engine's status writer calls it after its own writes.
    func drain() async {
        while true {
            if !forgotten.isEmpty {
                let gone = forgotten.removeFirst()
                await deleteEvents(namespace: gone.namespace, uid: gone.uid)
                continue
            }
            guard !order.isEmpty else { break }
            let key = order.removeFirst()
            guard let event = pending.removeValue(forKey: key) else { continue }
            await write(event)
        }
    }

    private func write(_ event: Pending) async {
        do {
            try await store.modify(
                Self.eventType, namespace: event.namespace, name: event.name, attempts: 3, createIfMissing: { Self.newEvent(event) },
                change: { existing in
                    let sameObject = existing.string(at: "involvedObject", "uid") == event.observation.uid
                    existing.set(.integer(sameObject ? (existing.integer(at: "count") ?? 1) + 1 : 1), at: ["count"])
                    if !sameObject { existing.set(.string(event.at), at: ["firstTimestamp"]) }
                    existing.set(.string(event.at), at: ["lastTimestamp"])
                    existing.set(.string(event.message), at: ["message"])
                    existing.set(Self.involvedObject(event.observation), at: ["involvedObject"])
                    return true
                }
            )
        } catch {
            logger.warning(
                "cannot record an event",
                metadata: ["tether.event": "federation.event_failed", "tether.object": "\(event.observation.object)", "tether.error": "\(error)"]
            )
        }
    }

    private func deleteEvents(namespace: String, uid: String) async {
        guard let selector = try? FieldSelector(parsing: "involvedObject.uid=\(uid)", allowing: ["involvedObject.uid"]),
            let page = try? await store.list(Self.eventType, options: ListOptions(namespace: namespace, fieldSelector: selector))
        else { return }
        for event in page.objects {
            _ = try? await store.delete(Self.eventType, namespace: namespace, name: event.name ?? "", preconditions: .init(), dryRun: false)
        }
    }

    private static func involvedObject(_ observation: Observation) -> JSONValue {
        var reference: [String: JSONValue] = [
            "apiVersion": .string(observation.object.apiVersion), "kind": .string(observation.object.kind),
            "name": .string(observation.object.name), "uid": .string(observation.uid),
        ]
        if let namespace = observation.object.namespace { reference["namespace"] = .string(namespace) }
        return .object(reference)
    }

    private static func newEvent(_ event: Pending) -> JSONValue {
        [
            "apiVersion": "v1", "kind": "Event",
            "metadata": [
                "name": .string(event.name), "namespace": .string(event.namespace),
                "labels": ["tether.io/cluster": .string(event.observation.cluster)],
            ],
            "involvedObject": involvedObject(event.observation),
            "reason": .string(event.reason), "type": .string(event.type), "message": .string(event.message),
            "source": ["component": "tether-hub"], "reportingComponent": "tether.io/hub",
            "firstTimestamp": .string(event.at), "lastTimestamp": .string(event.at), "count": 1,
        ]
    }
}
