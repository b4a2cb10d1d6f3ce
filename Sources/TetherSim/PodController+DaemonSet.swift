import Foundation
import TetherJSON
import TetherModel

/// The DaemonSet controller's step: one Pod on each node the DaemonSet's selector, node affinity
/// and taints admit (with the tolerations it adds), none elsewhere.
extension PodController {
    /// The Pods to make and to delete. A node without a Pod gets one of the current template
    /// once any Pod of the DaemonSet still terminating there is gone. Under `RollingUpdate`
    /// (the default) Pods of an older template are replaced node by node, as the controller does
    /// without surge: an unavailable one at once, an available one only while fewer than
    /// `maxUnavailable` (1 by default; a percentage of the nodes, rounded up) nodes lack an
    /// available Pod, so the rollout waits on each new Pod's readiness. `OnDelete` replaces a
    /// Pod only when someone deletes it.
    func daemonSetStep(_ owner: JSONValue, owned: [JSONValue], revision: String, template: JSONValue) -> (make: [Slot], delete: [JSONValue]) {
        let eligible = nodes.daemonNodes(for: PodPlacement(template: template, namespace: owner.namespace ?? "default"))
        let admitted = Set(eligible)
        var byNode: [String: [JSONValue]] = [:]
        var terminating = Set<String>()
        for pod in owned {
            let node = pod.string(at: "spec", "nodeName") ?? ""
            if pod.deletionTimestamp != nil { terminating.insert(node) } else { byNode[node, default: []].append(pod) }
        }
        var delete: [JSONValue] = []
        var kept: [String: JSONValue] = [:]
        for (node, pods) in byNode {
            guard admitted.contains(node) else {
                delete += pods
                continue
            }
            // One per node: a current one if there is one.
            let keep = pods.first { $0.labels["controller-revision-hash"] == revision } ?? pods[0]
            kept[node] = keep
            delete += pods.filter { $0.uid != keep.uid }
        }
        let make = eligible.filter { kept[$0] == nil && !terminating.contains($0) }.map { node in
            Slot(node: node, labels: ["controller-revision-hash": revision, "pod-template-generation": "\(owner.generation ?? 1)"])
        }
        guard owner.string(at: "spec", "updateStrategy", "type") != "OnDelete" else { return (make, delete) }
        let budget = Self.daemonSetMaxUnavailable(of: owner, nodes: eligible.count)
        var unavailable = eligible.filter { node in kept[node].map { !Self.isRunningAndReady($0) } ?? true }.count
        let old = eligible.compactMap { kept[$0] }.filter { $0.labels["controller-revision-hash"] != revision }
        for pod in old where !Self.isRunningAndReady(pod) { delete.append(pod) }
        for pod in old where Self.isRunningAndReady(pod) && unavailable < budget {
            delete.append(pod)
            unavailable += 1
        }
        return (make, delete)
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
