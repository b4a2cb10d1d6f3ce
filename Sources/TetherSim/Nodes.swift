import Synchronization
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore

/// What a Pod asks of a node, as the scheduler adds it up: each resource's request (its limit
/// when only that is set, as the API defaults it), summed over the containers, and at least the
/// largest init container's.
struct PodRequests: Hashable, Sendable {
    var milliCPU: Int64 = 0
    var memory: Int64 = 0

    init(milliCPU: Int64 = 0, memory: Int64 = 0) {
        self.milliCPU = milliCPU
        self.memory = memory
    }

    /// The sum, saturating: a request of `9e15` CPUs in two containers fits nowhere, and
    /// must not overflow.
    func adding(_ other: PodRequests) -> PodRequests {
        func sum(_ a: Int64, _ b: Int64) -> Int64 {
            let (total, overflow) = a.addingReportingOverflow(b)
            return overflow ? (b > 0 ? .max : .min) : total
        }
        return PodRequests(milliCPU: sum(milliCPU, other.milliCPU), memory: sum(memory, other.memory))
    }

    init(of pod: JSONValue) {
        func requests(_ container: JSONValue) -> PodRequests {
            func resource(_ name: String) -> String? {
                (container.value(at: "resources", "requests", name) ?? container.value(at: "resources", "limits", name))?.stringValue
            }
            // A negative request (which kube-apiserver refuses) frees nothing here.
            return PodRequests(
                milliCPU: max(0, ResourceQuantity.milli(resource("cpu")) ?? 0), memory: max(0, ResourceQuantity.whole(resource("memory")) ?? 0))
        }
        for container in pod.value(at: "spec", "containers")?.arrayElements ?? [] {
            self = adding(requests(container))
        }
        for container in pod.value(at: "spec", "initContainers")?.arrayElements ?? [] {
            let asked = requests(container)
            milliCPU = max(milliCPU, asked.milliCPU)
            memory = max(memory, asked.memory)
        }
    }
}

/// Which nodes take a new Pod, as the scheduler's filters decide: not cordoned
/// (`spec.unschedulable`, as `kubectl cordon` sets it), with room for its CPU and memory
/// requests within the node's allocatable, and fewer Pods than its `--max-pods` (110, as a kubelet's). Shared by the scheduler and
/// the controllers, which place Pods as they make them; Pods count from their placement until
/// they finish or are deleted.
final class NodeAvailability: Sendable {
    let names: [String]
    static let allocatableMilliCPU: Int64 = 4_000
    static let allocatableMemory: Int64 = 16 << 30
    let allocatablePods: Int

    private struct State {
        var cordoned: Set<String> = []
        var placed: [ObjectKey: (node: String, requests: PodRequests)] = [:]
        var used: [String: (requests: PodRequests, pods: Int)] = [:]
    }

    private let state = Mutex(State())

    init(settings: SimulationSettings) {
        let nodes = Nodes(store: nil, settings: settings)
        self.names = (1...max(1, settings.nodes)).map(nodes.name)
        self.allocatablePods = settings.maxPodsPerNode
    }

    /// Records a node's state; returns whether it was cordoned and is no longer.
    func set(_ node: String, cordoned isCordoned: Bool) -> Bool {
        state.withLock { state in
            if isCordoned {
                state.cordoned.insert(node)
                return false
            }
            return state.cordoned.remove(node) != nil
        }
    }

    /// Counts a Pod on its node, or no longer (deleted, finished, not placed); returns whether
    /// that freed room on a node.
    @discardableResult
    func track(_ pod: JSONValue, key: ObjectKey, gone: Bool) -> Bool {
        let phase = pod.string(at: "status", "phase") ?? ""
        let node = gone || phase == "Succeeded" || phase == "Failed" ? nil : pod.string(at: "spec", "nodeName")
        let requests = PodRequests(of: pod)
        return state.withLock { state in
            let previous = state.placed[key]
            if previous?.node == node, previous?.requests == requests { return false }
            if let previous {
                let used = state.used[previous.node] ?? (PodRequests(), 0)
                let negated = PodRequests(milliCPU: -previous.requests.milliCPU, memory: -previous.requests.memory)
                state.used[previous.node] = (used.requests.adding(negated), used.pods - 1)
                state.placed[key] = nil
            }
            if let node {
                state.placed[key] = (node, requests)
                let used = state.used[node] ?? (PodRequests(), 0)
                state.used[node] = (used.requests.adding(requests), used.pods + 1)
            }
            return previous != nil
        }
    }

    /// The nodes a Pod asking `requests` fits on, or why none does: the scheduler's message,
    /// one count per reason ("0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu. ...").
    func fitting(_ requests: PodRequests) -> Result<[String], UnschedulableReason> {
        state.withLock { state in
            var open: [String] = []
            var reasons: [String: Int] = [:]
            for node in names {
                let refusals = self.refusals(of: node, for: requests, in: state)
                if refusals.isEmpty { open.append(node) }
                for refusal in refusals { reasons[refusal, default: 0] += 1 }
            }
            guard open.isEmpty else { return .success(open) }
            let count = names.count
            let listed = reasons.map { "\($0.value) \($0.key)" }.sorted().joined(separator: ", ")
            return .failure(
                UnschedulableReason(
                    message: "0/\(count) nodes are available: \(listed). "
                        + "preemption: 0/\(count) nodes are available: \(count) Preemption is not helpful for scheduling."))
        }
    }

    /// Of the Pods waiting (in order), those that would fit if placed one after another now: only
    /// they are worth scheduling again when room opens, so freeing one slot does not send every
    /// waiting Pod back to the scheduler.
    func admissible(_ waiting: [(key: ObjectKey, requests: PodRequests)]) -> [ObjectKey] {
        state.withLock { state in
            var trial = state
            var admitted: [ObjectKey] = []
            for pod in waiting {
                guard let node = names.first(where: { refusals(of: $0, for: pod.requests, in: trial).isEmpty }) else { continue }
                let used = trial.used[node] ?? (PodRequests(), 0)
                trial.used[node] = (used.requests.adding(pod.requests), used.pods + 1)
                admitted.append(pod.key)
            }
            return admitted
        }
    }

    /// Why `node` cannot take a Pod asking `requests`, in the scheduler's words; empty when it can.
    private func refusals(of node: String, for requests: PodRequests, in state: State) -> [String] {
        let used = state.used[node] ?? (PodRequests(), 0)
        var refusals: [String] = []
        if state.cordoned.contains(node) { refusals.append("node(s) were unschedulable") }
        if used.pods + 1 > allocatablePods { refusals.append("Too many pods") }
        let wanted = used.requests.adding(requests)
        if wanted.milliCPU > Self.allocatableMilliCPU { refusals.append("Insufficient cpu") }
        if wanted.memory > Self.allocatableMemory { refusals.append("Insufficient memory") }
        return refusals
    }

    struct UnschedulableReason: Error {
        var message: String
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
            _ = try await store.create(object(name: node), as: Self.type, dryRun: false)
        }
        // A node made by an earlier run with another --max-pods shows this run's.
        for node in existing where wanted.contains(node.name ?? "") && node.value(at: "status", "capacity") != capacity {
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

    func object(name: String) -> JSONValue {
        [
            "apiVersion": "v1", "kind": "Node",
            "metadata": ["name": .string(name), "labels": ["kubernetes.io/hostname": .string(name), "sim.tether.io/simulated": "true"]],
            "spec": [:],
            "status": [
                "capacity": capacity, "allocatable": capacity,
                "addresses": [["type": "InternalIP", "address": .string(Self.address(of: name))], ["type": "Hostname", "address": .string(name)]],
                "conditions": [["type": "Ready", "status": "True", "reason": "KubeletReady", "message": "simulated node (no kubelet runs)"]],
                "nodeInfo": ["kubeletVersion": "v1.32.0-sim", "operatingSystem": "linux", "architecture": "amd64"],
            ],
        ]
    }
}
