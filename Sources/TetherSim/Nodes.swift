import Synchronization
import TetherJSON
import TetherModel
import TetherStore

/// Which nodes take new Pods: all but those cordoned (`spec.unschedulable`, as `kubectl cordon`
/// sets it). Shared by the scheduler and the controllers, which place Pods as they make them.
final class NodeAvailability: Sendable {
    let names: [String]
    private let cordoned = Mutex<Set<String>>([])

    init(settings: SimulationSettings) {
        let nodes = Nodes(store: nil, settings: settings)
        self.names = (1...max(1, settings.nodes)).map(nodes.name)
    }

    /// Records a node's state; returns whether it was cordoned and is no longer.
    func set(_ node: String, cordoned isCordoned: Bool) -> Bool {
        cordoned.withLock { cordoned in
            if isCordoned {
                cordoned.insert(node)
                return false
            }
            return cordoned.remove(node) != nil
        }
    }

    var open: [String] {
        cordoned.withLock { cordoned in names.filter { !cordoned.contains($0) } }
    }
}

/// The simulated cluster's Node objects: exactly `settings.nodes` of them, Ready, with capacity.
struct Nodes {
    let store: (any ResourceStore)?
    let settings: SimulationSettings

    static let type = ResourceType(group: "", resource: "nodes", namespaced: false)

    func name(_ index: Int) -> String { "\(settings.clusterName)-node-\(index)" }

    func reconcile() async throws {
        guard let store else { return }
        let existing = try await store.list(Self.type, options: ListOptions()).objects
        let wanted = Set((1...max(1, settings.nodes)).map(name))
        for node in existing where !wanted.contains(node.name ?? "") {
            _ = try await store.delete(Self.type, namespace: nil, name: node.name ?? "", preconditions: .init(), dryRun: false)
        }
        let present = Set(existing.compactMap(\.name))
        for node in wanted.sorted() where !present.contains(node) {
            _ = try await store.create(Self.object(name: node), as: Self.type, dryRun: false)
        }
    }

    /// Whether the node is cordoned (`kubectl cordon` sets `spec.unschedulable`).
    static func isCordoned(_ node: JSONValue) -> Bool {
        node.value(at: "spec", "unschedulable") == .bool(true)
    }

    /// A node's InternalIP, from its number: `NAME-node-3` is 172.18.0.13.
    static func address(of node: String) -> String {
        "172.18.0.\(10 + (node.split(separator: "-").last.flatMap { Int($0) } ?? 0) % 240)"
    }

    static func object(name: String) -> JSONValue {
        let capacity: JSONValue = ["cpu": "4", "memory": "16Gi", "pods": "110"]
        return [
            "apiVersion": "v1", "kind": "Node",
            "metadata": ["name": .string(name), "labels": ["kubernetes.io/hostname": .string(name), "sim.tether.io/simulated": "true"]],
            "spec": [:],
            "status": [
                "capacity": capacity, "allocatable": capacity,
                "addresses": [["type": "InternalIP", "address": .string(address(of: name))], ["type": "Hostname", "address": .string(name)]],
                "conditions": [["type": "Ready", "status": "True", "reason": "KubeletReady", "message": "simulated node (no kubelet runs)"]],
                "nodeInfo": ["kubeletVersion": "v1.32.0-sim", "operatingSystem": "linux", "architecture": "amd64"],
            ],
        ]
    }
}
