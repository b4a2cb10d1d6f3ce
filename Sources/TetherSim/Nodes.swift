import Foundation
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore

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
            _ = try await store.create(object(name: node), as: Self.type, dryRun: false)
        }
        try await registerLeases()
        // A node made by an earlier run lacking a label nodes now start with gets it (an
        // operator's own labels and changes stay).
        for node in existing where wanted.contains(node.name ?? "") {
            let index = node.name?.split(separator: "-").last.flatMap { Int($0) } ?? 1
            let missing = labels(index).filter { node.labels[$0.key] == nil }
            guard !missing.isEmpty else { continue }
            var updated = node
            for (key, value) in missing { updated.set(.string(value), at: ["metadata", "labels", key]) }
            _ = try await store.update(updated, as: Self.type, dryRun: false)
        }
        // A node made by an earlier run with another --max-pods shows this run's.
        for node in try await store.list(Self.type, options: ListOptions()).objects
        where wanted.contains(node.name ?? "") && node.value(at: "status", "capacity") != capacity {
            var updated = node
            updated.set(capacity, at: ["status", "capacity"])
            updated.set(capacity, at: ["status", "allocatable"])
            _ = try await store.updateStatus(updated, as: Self.type, dryRun: false)
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

    /// What each node offers, as ``NodeAvailability`` counts it.
    var capacity: JSONValue { ["cpu": "4", "memory": "16Gi", "pods": .string("\(settings.maxPodsPerNode)")] }

    /// The labels a node starts with, as a kubelet and a cloud provider set them: its hostname,
    /// OS and architecture, and one of three zones, so Pods can be spread by zone.
    func labels(_ index: Int) -> [String: String] {
        [
            "kubernetes.io/hostname": name(index), "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "topology.kubernetes.io/zone": "zone-\(["a", "b", "c"][(index - 1) % 3])", "sim.tether.io/simulated": "true",
        ]
    }

    static let leaseNamespace = "kube-node-lease"
    static let leases = ResourceType(group: "coordination.k8s.io", resource: "leases", namespaced: true)
    static let namespaces = ResourceType(group: "", resource: "namespaces", namespaced: false)

    /// Each node's Lease in `kube-node-lease`, as its kubelet registers one (owned by its Node,
    /// so it goes with it): `kubectl describe node` reads it. Renewed by no one: no kubelet runs.
    func registerLeases() async throws(StoreError) {
        guard let store else { return }
        do throws(StoreError) {
            _ = try await store.create(
                ["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(Self.leaseNamespace)]], as: Self.namespaces, dryRun: false)
        } catch  where error.code == .alreadyExists {
            // Made by an earlier run.
        }
        for node in try await store.list(Self.type, options: ListOptions()).objects {
            guard let name = node.name, let uid = node.uid else { continue }
            let owner: JSONValue = [["apiVersion": "v1", "kind": "Node", "name": .string(name), "uid": .string(uid)]]
            let now = Date().timeIntervalSince1970
            let renewed = JSONValue.string(kubernetesMicroTimestamp(seconds: Int64(now), nanos: Int32((now - now.rounded(.down)) * 1_000_000_000)))
            let lease: JSONValue = [
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": ["name": .string(name), "namespace": .string(Self.leaseNamespace), "ownerReferences": owner],
                "spec": ["holderIdentity": .string(name), "leaseDurationSeconds": 40, "renewTime": renewed],
            ]
            // A Lease left by the Node this one replaces (not yet collected) is taken over, not kept stale.
            try await store.modify(
                Self.leases, namespace: Self.leaseNamespace, name: name, createIfMissing: { lease },
                change: { stored in
                    guard stored.metadata["ownerReferences"] != owner else { return false }
                    stored.metadata["ownerReferences"] = owner
                    stored.set(renewed, at: ["spec", "renewTime"])
                    return true
                })
        }
    }

    func object(name: String) -> JSONValue {
        let index = name.split(separator: "-").last.flatMap { Int($0) } ?? 1
        return [
            "apiVersion": "v1", "kind": "Node",
            "metadata": ["name": .string(name), "labels": .object(labels(index).mapValues(JSONValue.string))],
            "spec": [:],
            "status": [
                "capacity": capacity, "allocatable": capacity,
                "addresses": [["type": "InternalIP", "address": .string(Self.address(of: name))], ["type": "Hostname", "address": .string(name)]],
                // No pressure, and Ready, as a healthy kubelet reports them.
                "conditions": .array(
                    WorkloadSimulator.nodeConditions.map { condition in
                        [
                            "type": .string(condition.type), "status": condition.pressure == nil ? "True" : "False",
                            "reason": .string(condition.healthy.reason), "message": .string(condition.healthy.message),
                            "lastHeartbeatTime": .string(kubernetesTimestamp()), "lastTransitionTime": .string(kubernetesTimestamp()),
                        ]
                    }),
                // No kernel to name and no runtime running anything: said so, not made up.
                "nodeInfo": [
                    "kubeletVersion": "v1.32.0-sim", "operatingSystem": "linux", "architecture": "amd64", "osImage": "Tether simulated node",
                    "containerRuntimeVersion": "none (simulated)",
                ],
            ],
        ]
    }
}
