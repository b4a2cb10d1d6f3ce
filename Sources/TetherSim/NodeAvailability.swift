import Synchronization
import TetherJSON
import TetherModel
import TetherPlugin

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
        /// Pods waiting for the room their preemption makes (`status.nominatedNodeName`): the
        /// scheduler keeps it for them against Pods of lower priority, as kube-scheduler does.
        var nominated: [ObjectKey: (node: String, pod: PodPlacement)] = [:]

        mutating func place(_ key: ObjectKey, on node: String, _ pod: PodPlacement) {
            placed[key] = (node, pod)
            if !pod.antiAffinity.isEmpty { guarding.insert(key) }
            let counted = used[node] ?? (PodRequests(), 0)
            used[node] = (counted.requests.adding(pod.requests), counted.pods + 1)
        }

        mutating func unplace(_ key: ObjectKey) {
            guard let previous = placed.removeValue(forKey: key) else { return }
            let counted = used[previous.node] ?? (PodRequests(), 0)
            let negated = PodRequests(milliCPU: -previous.pod.requests.milliCPU, memory: -previous.pod.requests.memory)
            used[previous.node] = (counted.requests.adding(negated), counted.pods - 1)
            guarding.remove(key)
        }
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
        let nominatedNode = pod.string(at: "status", "nominatedNodeName").flatMap { $0.isEmpty ? nil : $0 }
        return state.withLock { state in
            // A nomination holds while the Pod waits; bound or gone, the Pod no longer needs it.
            if node == nil, !gone, let nominatedNode {
                state.nominated[key] = (nominatedNode, placement)
            } else {
                state.nominated[key] = nil
            }
            let previous = state.placed[key]
            if previous?.node == node, previous?.pod == placement { return false }
            state.unplace(key)
            if let node { state.place(key, on: node, placement) }
            return previous != nil
        }
    }

    func fitting(_ requests: PodRequests) -> Result<[String], UnschedulableReason> {
        fitting(PodPlacement(requests: requests))
    }

    /// The best nodes for a Pod, or why none takes it: the scheduler's message, one count per
    /// reason ("0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu. ..."),
    /// and, for a waiting Pod (`key`), the lower-priority Pods to preempt for it (``Preemption``),
    /// whose room is then kept for it.
    func fitting(_ pod: PodPlacement, key: ObjectKey? = nil, budgets: [DisruptionBudget] = []) -> Result<[String], UnschedulableReason> {
        state.withLock { state in
            // Its own nomination keeps no room from it.
            let nominatedNode = key.flatMap { state.nominated[$0]?.node }
            var trial = state
            if let key { trial.nominated[key] = nil }
            var open: [String] = []
            var reasons: [String: Int] = [:]
            var refused: [String: [String]] = [:]
            // A node deleted for good is not one of them, as the scheduler no longer lists it.
            let present = names.filter { trial.facts[$0] != nil }
            for node in present {
                let refusals = self.refusals(of: node, for: pod, in: trial)
                if refusals.isEmpty { open.append(node) }
                refused[node] = refusals
                for refusal in refusals { reasons[refusal, default: 0] += 1 }
            }
            guard open.isEmpty else { return .success(best(of: open, for: pod, in: trial)) }
            let listed = reasons.map { "\($0.value) \($0.key)" }.sorted().joined(separator: ", ")
            let unavailable = "0/\(present.count) nodes are available: \(listed)."
            switch preemption(for: pod, nominatedNode: nominatedNode, refused: refused, budgets: budgets, in: trial) {
            case .success(let preemption):
                if let key { state.nominated[key] = (preemption.node, pod) }
                return .failure(UnschedulableReason(message: unavailable, nominatedNode: preemption.node, preemption: preemption))
            case .failure(let why):
                return .failure(UnschedulableReason(message: "\(unavailable) preemption: \(why.message)", nominatedNode: nominatedNode))
            }
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
                let nomination = trial.nominated.removeValue(forKey: pod.key)
                guard let node = names.first(where: { refusals(of: $0, for: pod.pod, in: trial).isEmpty }) else {
                    trial.nominated[pod.key] = nomination
                    continue
                }
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
        if !pod.volumeTerms.allSatisfy({ $0.contains { $0.matches(labels: facts.labels, name: node) } }) {
            return ["node(s) had volume node affinity conflict"]
        }
        var used = state.used[node] ?? (PodRequests(), 0)
        for reserved in state.nominated.values where reserved.node == node && reserved.pod.priority >= pod.priority {
            used = (used.requests.adding(reserved.pod.requests), used.pods + 1)
        }
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
        /// The node whose room is kept for the Pod (`status.nominatedNodeName`), if any.
        var nominatedNode: String?
        /// The Pods to preempt for it, when that makes room.
        var preemption: Preemption?
    }

    /// Lower-priority Pods whose eviction lets a Pod on `node`.
    struct Preemption: Sendable {
        var node: String
        var victims: [ObjectKey]
    }

    /// A PodDisruptionBudget as preemption weighs it: the Pods it covers and how many of them may go now.
    struct DisruptionBudget: Sendable {
        var namespace: String
        var selector: LabelSelector
        var allowed: Int64

        init?(_ object: JSONValue) {
            // No selector covers no Pod (policy/v1).
            guard let selector = object.value(at: "spec", "selector").flatMap({ LabelSelector(object: $0) }) else { return nil }
            self.namespace = object.namespace ?? "default"
            self.selector = selector
            self.allowed = object.value(at: "status", "disruptionsAllowed")?.integerValue ?? 0
        }

        func covers(_ pod: PodPlacement) -> Bool { pod.namespace == namespace && selector.matches(pod.labels) }
    }

    /// The refusals removing Pods from a node cannot cure (kube-scheduler's
    /// `UnschedulableAndUnresolvable`): preemption skips such nodes.
    private static func resolvable(_ refusal: String) -> Bool {
        refusal == "Too many pods" || refusal.hasPrefix("Insufficient ") || refusal.hasSuffix("anti-affinity rules")
            || refusal == "node(s) didn't match pod topology spread constraints"
    }

    /// kube-scheduler's default preemption: on each node whose refusals Pods' removal can cure,
    /// remove every Pod of lower priority (not already terminating); if the Pod then fits, put
    /// them back one by one, those a PodDisruptionBudget protects first, then the others, each
    /// group most important first, keeping out only those without which it does not fit. Of those
    /// nodes, the one with the fewest victims a budget protects wins, then the one whose most
    /// important victim has the lowest priority, then the lowest sum of priorities, then the fewest
    /// victims.
    private func preemption(
        for pod: PodPlacement, nominatedNode: String?, refused: [String: [String]], budgets: [DisruptionBudget], in state: State
    ) -> Result<Preemption, UnschedulableReason> {
        guard pod.preemptsLowerPriority else { return .failure(UnschedulableReason(message: "not eligible due to preemptionPolicy=Never.")) }
        // Its earlier preemption is still under way: it waits for those Pods to go.
        if let nominatedNode,
            state.placed.values.contains(where: { $0.node == nominatedNode && $0.pod.terminating && $0.pod.priority < pod.priority })
        {
            return .failure(UnschedulableReason(message: "not eligible due to a terminating pod on the nominated node."))
        }
        var notHelpful = 0
        var noVictims = 0
        var best: (rank: (Int, Int32, Int64, Int), preemption: Preemption)?
        for node in names where refused[node] != nil {
            guard refused[node]!.allSatisfy(Self.resolvable) else {
                notHelpful += 1
                continue
            }
            let lower = state.placed.filter { $0.value.node == node && !$0.value.pod.terminating && $0.value.pod.priority < pod.priority }
                .sorted { ($0.value.pod.priority, $1.key.name) > ($1.value.pod.priority, $0.key.name) }
            var trial = state
            for candidate in lower { trial.unplace(candidate.key) }
            guard !lower.isEmpty, refusals(of: node, for: pod, in: trial).isEmpty else {
                noVictims += 1
                continue
            }
            // A Pod is protected when taking it (with the more important ones before it) would
            // leave a budget covering it below zero.
            var allowed = budgets.map(\.allowed)
            var protected: Set<ObjectKey> = []
            for candidate in lower {
                for (index, budget) in budgets.enumerated() where budget.covers(candidate.value.pod) {
                    allowed[index] -= 1
                    if allowed[index] < 0 { protected.insert(candidate.key) }
                }
            }
            var victims: [(key: ObjectKey, priority: Int32)] = []
            for candidate in lower.filter({ protected.contains($0.key) }) + lower.filter({ !protected.contains($0.key) }) {
                trial.place(candidate.key, on: node, candidate.value.pod)
                if !refusals(of: node, for: pod, in: trial).isEmpty {
                    trial.unplace(candidate.key)
                    victims.append((candidate.key, candidate.value.pod.priority))
                }
            }
            let violations = victims.filter { protected.contains($0.key) }.count
            let rank = (
                violations, victims.map(\.priority).max() ?? .min, victims.reduce(Int64(0)) { $0 + Int64($1.priority) - Int64(Int32.min) },
                victims.count
            )
            if best == nil || rank < best!.rank { best = (rank, Preemption(node: node, victims: victims.map(\.key))) }
        }
        if let best { return .success(best.preemption) }
        let listed = [(noVictims, "No preemption victims found for incoming pod"), (notHelpful, "Preemption is not helpful for scheduling")]
            .filter { $0.0 > 0 }.map { "\($0.0) \($0.1)" }.sorted().joined(separator: ", ")
        return .failure(UnschedulableReason(message: "0/\(refused.count) nodes are available: \(listed)."))
    }
}
