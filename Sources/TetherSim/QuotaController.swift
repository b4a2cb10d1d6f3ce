import Logging
import Synchronization
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore

/// The resource quota controller of a real cluster: each ResourceQuota's `status.hard` (its
/// spec's) and `status.used`, counted from the namespace's objects
/// (``ResourceQuotaAdmission``), and counted again whenever an object of a kind it counts is
/// created, changed or deleted in its namespace (not polled).
final class QuotaController: Sendable {
    static let quotas = ResourceType(group: "", resource: "resourcequotas", namespaced: true)
    /// The kinds a quota may count that the simulator does not otherwise follow.
    static let followed = ["resourcequotas", "configmaps", "secrets", "persistentvolumeclaims"]

    private let store: any ResourceStore
    private let logger: Logger
    /// Each namespace's quotas and the kinds each counts, so a change queues only the quotas it concerns.
    private let counting = Mutex<[String: [String: Set<ResourceQuotaAdmission.Kind>]]>([:])

    init(store: any ResourceStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    /// The quotas of `namespace` that count objects of `type`.
    func quotas(counting type: ResourceType, in namespace: String?) -> [String] {
        guard let namespace else { return [] }
        let kind = ResourceQuotaAdmission.Kind(resource: type.resource, group: type.group)
        return counting.withLock { ($0[namespace] ?? [:]).filter { $0.value.contains(kind) }.map(\.key).sorted() }
    }

    func quotaDeleted(namespace: String?, name: String) {
        counting.withLock { _ = $0[namespace ?? "default"]?.removeValue(forKey: name) }
    }

    /// The quota's status now: its hard limits and what its namespace uses of each.
    func status(of quota: JSONValue) async -> JSONValue? {
        let namespace = quota.namespace ?? "default"
        let hard = quota.value(at: "spec", "hard") ?? [:]
        let names = Array(hard.objectMembers.keys)
        counting.withLock { $0[namespace, default: [:]][quota.name ?? ""] = ResourceQuotaAdmission.countedKinds(for: names) }
        do {
            let used = try await ResourceQuotaAdmission.used(of: names, in: quota) { kind in
                try await self.store.list(
                    ResourceType(group: kind.group, resource: kind.resource, namespaced: true), options: ListOptions(namespace: namespace)
                ).objects
            }
            var written: [String: JSONValue] = [:]
            for (name, amount) in used { written[name] = .string(ResourceQuotaAdmission.quantity(amount, of: name)) }
            return ["hard": hard, "used": .object(written)]
        } catch {
            logger.debug("quota usage not counted", metadata: ["tether.object": "\(namespace)/\(quota.name ?? "")", "tether.error": "\(error)"])
            return nil
        }
    }
}
