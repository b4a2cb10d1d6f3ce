import Foundation
import TetherJSON
import TetherModel

/// The DaemonSet controller's step: one Pod on each node the DaemonSet's selector, node affinity
/// and taints admit (with the tolerations it adds), none elsewhere.
extension PodController {
    /// The Pods to make and to delete. A node without a Pod gets one of the current template
    /// once any Pod of the DaemonSet still terminating there is gone. Under `RollingUpdate`
    /// (the default) Pods of an older template are replaced node by node. Without surge (the
    /// default), an unavailable one is deleted at once and an available one only while fewer
    /// than `maxUnavailable` (1 by default; a percentage of the nodes, rounded up) nodes lack an
    /// available Pod, so the rollout waits on each new Pod's readiness. With `maxSurge`, a new
    /// Pod starts beside the old one on up to `maxSurge` nodes at a time (at once where the old
    /// one is unavailable), and the old one goes when the new one is available, so a node keeps
    /// an available Pod throughout. `OnDelete` replaces a Pod only when someone deletes it.
    func daemonSetStep(_ owner: JSONValue, owned: [JSONValue], revision: String, template: JSONValue) -> (make: [Slot], delete: [JSONValue]) {
        let eligible = nodes.daemonNodes(for: PodPlacement(template: template, namespace: owner.namespace ?? "default"))
        let admitted = Set(eligible)
        var byNode: [String: [JSONValue]] = [:]
        var terminating = Set<String>()
        for pod in owned {
            let node = pod.string(at: "spec", "nodeName") ?? ""
            if pod.deletionTimestamp != nil { terminating.insert(node) } else { byNode[node, default: []].append(pod) }
        }
        func current(_ pod: JSONValue) -> Bool { pod.labels["controller-revision-hash"] == revision }
        func slot(_ node: String) -> Slot {
            Slot(node: node, labels: ["controller-revision-hash": revision, "pod-template-generation": "\(owner.generation ?? 1)"])
        }
        let onDelete = owner.string(at: "spec", "updateStrategy", "type") == "OnDelete"
        let surge = onDelete ? 0 : Self.daemonSetMaxSurge(of: owner, nodes: eligible.count)
        var delete: [JSONValue] = []
        var kept: [String: JSONValue] = [:]
        /// Surging nodes: an old Pod kept beside the new one until the new one is available.
        var surging: [String: (old: JSONValue, new: JSONValue)] = [:]
        for (node, pods) in byNode {
            guard admitted.contains(node) else {
                delete += pods
                continue
            }
            // One per node, a current one if there is one; with surge, an old one beside it.
            let keep = pods.first(where: current) ?? pods[0]
            kept[node] = keep
            var extra = pods.filter { $0.uid != keep.uid }
            if surge > 0, current(keep), let old = extra.first(where: { !current($0) }) {
                surging[node] = (old, keep)
                extra.removeAll { $0.uid == old.uid }
            }
            delete += extra
        }
        var make = eligible.filter { kept[$0] == nil && !terminating.contains($0) }.map(slot)
        guard !onDelete else { return (make, delete) }
        guard surge == 0 else {
            let minReady = owner.integer(at: "spec", "minReadySeconds") ?? 0
            for (_, pair) in surging where Self.isAvailable(pair.new, minReadySeconds: minReady) { delete.append(pair.old) }
            var inFlight = surging.values.filter { !Self.isAvailable($0.new, minReadySeconds: minReady) }.count
            for node in eligible {
                guard let pod = kept[node], !current(pod), !terminating.contains(node) else { continue }
                if !Self.isRunningAndReady(pod) {
                    make.append(slot(node))
                } else if inFlight < surge {
                    make.append(slot(node))
                    inFlight += 1
                }
            }
            return (make, delete)
        }
        let budget = Self.daemonSetMaxUnavailable(of: owner, nodes: eligible.count)
        var unavailable = eligible.filter { node in kept[node].map { !Self.isRunningAndReady($0) } ?? true }.count
        let old = eligible.compactMap { kept[$0] }.filter { !current($0) }
        for pod in old where !Self.isRunningAndReady(pod) { delete.append(pod) }
        for pod in old where Self.isRunningAndReady(pod) && unavailable < budget {
            delete.append(pod)
            unavailable += 1
        }
        return (make, delete)
    }

    /// Running and Ready for longer than `minReadySeconds`, as the status counts it available.
    static func isAvailable(_ pod: JSONValue, minReadySeconds: Int64, now: Date = Date()) -> Bool {
        isRunningAndReady(pod) && StatusPlan.untilAvailable(pod, minReadySeconds: minReadySeconds, now: now) < 0
    }

    /// A DaemonSet's `rollingUpdate.maxSurge` against its node count: a percentage rounded up,
    /// as the DaemonSet controller resolves it; 0 when unset.
    static func daemonSetMaxSurge(of daemonSet: JSONValue, nodes: Int) -> Int {
        switch daemonSet.value(at: "spec", "updateStrategy", "rollingUpdate", "maxSurge") {
        case .integer(let count)?: return max(0, Int(count))
        case .string(let text)? where text.hasSuffix("%"):
            let percent = min(100, max(0, Int(text.dropLast()) ?? 0))
            return (nodes * percent + 99) / 100
        default: return 0
        }
    }

    static func isRunningAndReady(_ pod: JSONValue) -> Bool {
        pod.string(at: "status", "phase") == "Running" && EndpointsController.isReady(pod)
    }

    /// A DaemonSet's `rollingUpdate.maxUnavailable` against its node count: a percentage rounded
    /// up, as the DaemonSet controller resolves it; 1 when unset; at least 1.
    static func daemonSetMaxUnavailable(of daemonSet: JSONValue, nodes: Int) -> Int {
        switch daemonSet.value(at: "spec", "updateStrategy", "rollingUpdate", "maxUnavailable") {
        case .integer(let count)?: return max(1, Int(count))
        case .string(let text)? where text.hasSuffix("%"):
            let percent = min(100, max(0, Int(text.dropLast()) ?? 0))
            return max(1, (nodes * percent + 99) / 100)
        default: return 1
        }
    }
}
