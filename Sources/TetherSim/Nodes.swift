import Foundation
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

/// Which nodes take a new Pod, as the scheduler's filters decide, in its order, each node judged
/// by the first filter that refuses it: not cordoned (`spec.unschedulable`, unless the Pod
/// tolerates `node.kubernetes.io/unschedulable`), every `NoSchedule` and `NoExecute` taint
/// tolerated, the node selector and required node affinity satisfied, room for its CPU and
/// memory requests within the node's allocatable and fewer Pods than `--max-pods` (110, as a
/// kubelet's), then `DoNotSchedule` topology spread constraints, then required Pod affinity and
/// anti-affinity, its own and the placed Pods'. Among
/// the nodes left, those scoring best on preferred node affinity and untolerated
/// `PreferNoSchedule` taints are offered. Shared by the scheduler and the controllers, which
/// place Pods as they make them; Pods count from their placement until they finish or are deleted.
final class NodeAvailability: Sendable {
    let names: [String]
    static let allocatableMilliCPU: Int64 = 4_000
    static let allocatableMemory: Int64 = 16 << 30
    let allocatablePods: Int

    /// What the filters read of a Node object.
    struct NodeFacts: Equatable, Sendable {
        var labels: [String: String]
        var taints: [Taint] = []
        var cordoned = false
        /// Its kubelet stopped (``WorkloadSimulator/kubeletAnnotation``): nothing on it starts, stops or reports.
        var kubeletStopped = false
    }

    private struct State {
        var facts: [String: NodeFacts] = [:]
        var placed: [ObjectKey: (node: String, pod: PodPlacement)] = [:]
        var used: [String: (requests: PodRequests, pods: Int)] = [:]
        /// The placed Pods with required anti-affinity, which every new Pod must respect.
        var guarding: Set<ObjectKey> = []
    }

    private let state: Mutex<State>
    /// Each node's labels as it starts, until its object says otherwise.
    private let initialLabels: [String: [String: String]]

    init(settings: SimulationSettings) {
        let nodes = Nodes(store: nil, settings: settings)
        let names = (1...max(1, settings.nodes)).map(nodes.name)
        self.names = names
        self.allocatablePods = settings.maxPodsPerNode
        var labels: [String: [String: String]] = [:]
        for (index, name) in names.enumerated() { labels[name] = nodes.labels(index + 1) }
        self.initialLabels = labels
        self.state = Mutex(State(facts: labels.mapValues { NodeFacts(labels: $0) }))
    }

    /// Records what a Node object says (its labels, taints and cordon; a deleted node is given
    /// back its defaults); returns whether that changed anything the filters read.
    func update(_ node: String, from object: JSONValue?) -> Bool {
        guard let initial = initialLabels[node] else { return false }
        let facts =
            object.map {
                NodeFacts(
                    labels: $0.labels, taints: Taint.of(node: $0), cordoned: Nodes.isCordoned($0),
                    kubeletStopped: WorkloadSimulator.kubeletStopped(on: $0))
            } ?? NodeFacts(labels: initial)
        return state.withLock { state in
            let changed = state.facts[node] != facts
            state.facts[node] = facts
            return changed
        }
    }

    /// `node` was deleted while its kubelet was stopped: it is gone until the simulator starts
    /// again (and registers it, as a repaired machine's kubelet would).
    func remove(_ node: String) {
        _ = state.withLock { $0.facts.removeValue(forKey: node) }
    }

    /// Whether `node`'s kubelet is stopped, as its object last said.
    func kubeletStopped(_ node: String) -> Bool { state.withLock { $0.facts[node]?.kubeletStopped ?? false } }

    /// The Pods counted on `node`, terminating ones included.
    func pods(on node: String) -> [ObjectKey] {
        state.withLock { state in state.placed.filter { $0.value.node == node }.map(\.key) }
    }

    /// Counts a Pod on its node, or no longer (deleted, finished, not placed); returns whether
    /// that freed room on a node.
    @discardableResult
    func track(_ pod: JSONValue, key: ObjectKey, gone: Bool) -> Bool {
        let phase = pod.string(at: "status", "phase") ?? ""
        let node = gone || phase == "Succeeded" || phase == "Failed" ? nil : pod.string(at: "spec", "nodeName")
        let placement = PodPlacement(of: pod)
        return state.withLock { state in
            let previous = state.placed[key]
            if previous?.node == node, previous?.pod == placement { return false }
            if let previous {
                let used = state.used[previous.node] ?? (PodRequests(), 0)
                let negated = PodRequests(milliCPU: -previous.pod.requests.milliCPU, memory: -previous.pod.requests.memory)
                state.used[previous.node] = (used.requests.adding(negated), used.pods - 1)
                state.placed[key] = nil
                state.guarding.remove(key)
            }
            if let node {
                state.placed[key] = (node, placement)
                if !placement.antiAffinity.isEmpty { state.guarding.insert(key) }
                let used = state.used[node] ?? (PodRequests(), 0)
                state.used[node] = (used.requests.adding(placement.requests), used.pods + 1)
            }
            return previous != nil
        }
    }

    func fitting(_ requests: PodRequests) -> Result<[String], UnschedulableReason> {
        fitting(PodPlacement(requests: requests))
    }

    /// The best nodes for a Pod, or why none takes it: the scheduler's message, one count per
    /// reason ("0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu. ...").
    func fitting(_ pod: PodPlacement) -> Result<[String], UnschedulableReason> {
        state.withLock { state in
            var open: [String] = []
            var reasons: [String: Int] = [:]
            // A node deleted for good is not one of them, as the scheduler no longer lists it.
            let present = names.filter { state.facts[$0] != nil }
            for node in present {
                let refusals = self.refusals(of: node, for: pod, in: state)
                if refusals.isEmpty { open.append(node) }
                for refusal in refusals { reasons[refusal, default: 0] += 1 }
            }
            guard open.isEmpty else { return .success(best(of: open, for: pod, in: state)) }
            let count = present.count
            let listed = reasons.map { "\($0.value) \($0.key)" }.sorted().joined(separator: ", ")
            return .failure(
                UnschedulableReason(
                    message: "0/\(count) nodes are available: \(listed). "
                        + "preemption: 0/\(count) nodes are available: \(count) Preemption is not helpful for scheduling."))
        }
    }

    /// The nodes a DaemonSet's Pod belongs on, as its controller picks them: the node selector,
    /// node affinity and `NoSchedule`/`NoExecute` taints decide (with the tolerations it adds to
    /// every Pod, so a cordon does not), not room.
    func daemonNodes(for pod: PodPlacement) -> [String] {
        var pod = pod
        pod.tolerations += Toleration.daemonSetDefaults
        return state.withLock { state in
            names.filter { node in
                guard let facts = state.facts[node] else { return false }
                return facts.taints.allSatisfy { !$0.filters || pod.tolerates($0) } && pod.selects(nodeLabels: facts.labels, name: node)
            }
        }
    }

    /// The Pods on `node` that its `NoExecute` taints evict: each with how long it may stay (nil: at once).
    func evicted(from node: String) -> [(key: ObjectKey, after: Int64?)] {
        state.withLock { state in
            let taints = (state.facts[node]?.taints ?? []).filter { $0.effect == "NoExecute" }
            guard !taints.isEmpty else { return [] }
            var evicted: [(key: ObjectKey, after: Int64?)] = []
            for (key, placed) in state.placed where placed.node == node {
                var stay: Int64? = .max
                for taint in taints {
                    let tolerating = placed.pod.tolerations.filter { $0.tolerates(taint) }
                    if tolerating.isEmpty {
                        stay = nil
                        break
                    }
                    // The shortest of the tolerations that set a time; none that does is for ever.
                    if let seconds = tolerating.compactMap(\.seconds).min() { stay = min(stay ?? 0, max(0, seconds)) }
                }
                if stay != .max { evicted.append((key, stay)) }
            }
            return evicted.sorted { $0.key.name < $1.key.name }
        }
    }

    /// Of the Pods waiting (in order), those that would fit if placed one after another now: only
    /// they are worth scheduling again when room opens, so freeing one slot does not send every
    /// waiting Pod back to the scheduler.
    func admissible(_ waiting: [(key: ObjectKey, pod: PodPlacement)]) -> [ObjectKey] {
        state.withLock { state in
            var trial = state
            var admitted: [ObjectKey] = []
            for pod in waiting {
                guard let node = names.first(where: { refusals(of: $0, for: pod.pod, in: trial).isEmpty }) else { continue }
                let used = trial.used[node] ?? (PodRequests(), 0)
                trial.used[node] = (used.requests.adding(pod.pod.requests), used.pods + 1)
                admitted.append(pod.key)
            }
            return admitted
        }
    }

    /// Why `node` cannot take `pod`, in the scheduler's words, from the first filter that refuses
    /// it (as the scheduler stops at it); empty when it can.
    private func refusals(of node: String, for pod: PodPlacement, in state: State) -> [String] {
        guard let facts = state.facts[node] else { return ["node(s) not found"] }
        if facts.cordoned && !pod.tolerates(.unschedulable) { return ["node(s) were unschedulable"] }
        if let untolerated = facts.taints.first(where: { $0.filters && !pod.tolerates($0) }) {
            return ["node(s) had untolerated taint {\(untolerated.key): \(untolerated.value)}"]
        }
        if !pod.selects(nodeLabels: facts.labels, name: node) { return ["node(s) didn't match Pod's node affinity/selector"] }
        let used = state.used[node] ?? (PodRequests(), 0)
        var refusals: [String] = []
        if used.pods + 1 > allocatablePods { refusals.append("Too many pods") }
        let wanted = used.requests.adding(pod.requests)
        if wanted.milliCPU > Self.allocatableMilliCPU { refusals.append("Insufficient cpu") }
        if wanted.memory > Self.allocatableMemory { refusals.append("Insufficient memory") }
        guard refusals.isEmpty else { return refusals }
        if let refusal = spreadRefusal(of: node, for: pod, in: state) { return [refusal] }
        if let refusal = interPodRefusal(of: node, for: pod, in: state) { return [refusal] }
        return []
    }

    /// The topology spread filter: placing the Pod on `node` must keep each `DoNotSchedule`
    /// constraint's skew (the Pods it counts in the node's domain, this one included, less the
    /// fewest in any domain) within `maxSkew`. Domains are those of the nodes the Pod's node
    /// selector and affinity admit, as the scheduler's default `nodeAffinityPolicy: Honor`.
    private func spreadRefusal(of node: String, for pod: PodPlacement, in state: State) -> String? {
        for constraint in pod.spread {
            guard let domain = state.facts[node]?.labels[constraint.topologyKey] else {
                return "node(s) didn't match pod topology spread constraints (missing required label)"
            }
            var counts: [String: Int] = [:]
            for name in names {
                guard let facts = state.facts[name], pod.selects(nodeLabels: facts.labels, name: name),
                    let value = facts.labels[constraint.topologyKey]
                else { continue }
                counts[value] = 0
            }
            for placed in state.placed.values where placed.pod.namespace == pod.namespace && constraint.selector.matches(placed.pod.labels) {
                guard let value = state.facts[placed.node]?.labels[constraint.topologyKey], let count = counts[value] else { continue }
                counts[value] = count + 1
            }
            let fewest = counts.values.min() ?? 0
            let own = constraint.selector.matches(pod.labels) ? 1 : 0
            if (counts[domain] ?? 0) + own - fewest > constraint.maxSkew { return "node(s) didn't match pod topology spread constraints" }
        }
        return nil
    }

    /// The inter-Pod affinity filter, in the scheduler's order: the Pod's own affinity, its own
    /// anti-affinity, then the placed Pods' anti-affinity, each over the nodes sharing the node's
    /// value of the term's topology key.
    private func interPodRefusal(of node: String, for pod: PodPlacement, in state: State) -> String? {
        func domain(_ node: String, _ key: String) -> String? { state.facts[node]?.labels[key] }
        if !pod.affinity.isEmpty {
            // The first Pod of a group that selects itself may go anywhere its terms' keys exist.
            let anyMatching = state.placed.values.contains { placed in pod.affinity.contains { $0.selects(placed.pod) } }
            let satisfied = pod.affinity.allSatisfy { term in
                guard let value = domain(node, term.topologyKey) else { return false }
                if !anyMatching && term.selects(pod) { return true }
                return state.placed.values.contains { term.selects($0.pod) && domain($0.node, term.topologyKey) == value }
            }
            if !satisfied { return "node(s) didn't match pod affinity rules" }
        }
        for term in pod.antiAffinity {
            guard let value = domain(node, term.topologyKey) else { continue }
            if state.placed.values.contains(where: { term.selects($0.pod) && domain($0.node, term.topologyKey) == value }) {
                return "node(s) didn't match pod anti-affinity rules"
            }
        }
        for key in state.guarding {
            guard let placed = state.placed[key] else { continue }
            for term in placed.pod.antiAffinity where term.selects(pod) {
                if let value = domain(node, term.topologyKey), domain(placed.node, term.topologyKey) == value {
                    return "node(s) didn't satisfy existing pods anti-affinity rules"
                }
            }
        }
        return nil
    }

    /// Of the nodes that pass the filters, those scoring best: the weights of the preferred node
    /// affinity terms they match, less any `PreferNoSchedule` taint the Pod does not tolerate.
    private func best(of open: [String], for pod: PodPlacement, in state: State) -> [String] {
        guard !pod.preferredTerms.isEmpty || open.contains(where: { state.facts[$0]?.taints.contains { $0.effect == "PreferNoSchedule" } == true })
        else { return open }
        func score(_ node: String) -> (Int, Int64) {
            let facts = state.facts[node] ?? NodeFacts(labels: [:])
            let untolerated = facts.taints.filter { $0.effect == "PreferNoSchedule" && !pod.tolerates($0) }.count
            let preferred = pod.preferredTerms.filter { $0.term.matches(labels: facts.labels, name: node) }.reduce(Int64(0)) { $0 &+ $1.weight }
            return (-untolerated, preferred)
        }
        let scored = open.map { ($0, score($0)) }
        guard let top = scored.map(\.1).max(by: <) else { return open }
        return scored.filter { $0.1 == top }.map(\.0)
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
                "conditions": [
                    [
                        "type": "Ready", "status": "True", "reason": "KubeletReady", "message": "simulated node (no kubelet runs)",
                        "lastHeartbeatTime": .string(kubernetesTimestamp()), "lastTransitionTime": .string(kubernetesTimestamp()),
                    ]
                ],
                "nodeInfo": ["kubeletVersion": "v1.32.0-sim", "operatingSystem": "linux", "architecture": "amd64"],
            ],
        ]
    }
}
