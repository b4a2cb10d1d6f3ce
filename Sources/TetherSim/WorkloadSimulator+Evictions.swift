import Foundation
import Synchronization
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore

/// A kubelet's eviction manager, for memory: a node whose Pods' working set (their declared
/// `sim.tether.io/memory-usage`, else their requests) leaves less than 100 MiB of its 16 GiB
/// beyond the system's share is under memory pressure. The kubelet then evicts one Pod at a
/// time until it is relieved, as kube's does: a Pod using more than it requested first, then
/// the lowest priority, then the most used beyond its request; critical Pods never. An
/// evicted Pod is `Failed` (`Evicted`, with the kubelet's message and a `DisruptionTarget`
/// condition), its controller makes another, and the node reports `MemoryPressure` and is
/// tainted `node.kubernetes.io/memory-pressure:NoSchedule` until the pressure has been gone for
/// the transition period (5 minutes, `--eviction-pressure-transition-period`). A pressure an
/// operator declares (`sim.tether.io/pressure`) shows the same condition and taint, and evicts
/// nothing: nothing would relieve it.
extension WorkloadSimulator {
    /// The key that brings the eviction manager to look, queued when Pods or their workloads change.
    static let memoryCheck = ObjectKey(
        type: ResourceType(group: "sim.tether.io", resource: "memory-pressure", namespaced: false), namespace: nil, name: "nodes")
    /// The kubelet's default hard threshold, `memory.available<100Mi`.
    static let evictionThresholdBytes: Int64 = 100 << 20
    /// At or above it a Pod is critical and never evicted (`system-cluster-critical` and up).
    static let criticalPriority: Int64 = 2_000_000_000

    /// Whether the kubelet of `node` reports memory pressure from its Pods' usage.
    func memoryPressured(_ node: String) -> Bool { memoryPressure.withLock { $0[node]?.pressured ?? false } }

    /// At most one look per this, however many Pods change: a look reads every running Pod.
    static let memoryCheckInterval = Duration.seconds(1)

    /// One look of every node's eviction manager; returns when to look again (a relieved node's
    /// pressure ends, or the interval since the last look is not over yet).
    func checkMemoryPressure() async -> Duration? {
        let started = ContinuousClock.now
        let wait = lastMemoryCheck.withLock { last -> Duration? in
            if let last, started - last < Self.memoryCheckInterval { return Self.memoryCheckInterval - (started - last) }
            last = started
            return nil
        }
        if let wait { return wait }
        guard let running = try? await SimulatedMetrics(store: store).runningPods(namespace: nil) else { return nil }
        var lookup = SimulatedMetrics.LoadLookup(store: store)
        var byNode: [String: [MemoryUse]] = [:]
        for pod in running {
            guard let node = pod.string(at: "spec", "nodeName") else { continue }
            byNode[node, default: []].append(MemoryUse(pod: pod, containers: await lookup.usage(of: pod)))
        }
        let now = ContinuousClock.now
        var next: Duration?
        for node in nodes.names {
            let uses = byNode[node] ?? []
            let available = NodeAvailability.allocatableMemory - SimulatedMetrics.systemMemoryBytes - uses.reduce(0) { $0 + $1.used }
            let under = available < Self.evictionThresholdBytes
            let (began, changed, remaining) = memoryPressure.withLock { state -> (Bool, Bool, Duration?) in
                var entry = state[node] ?? NodeMemoryPressure()
                let before = entry.pressured
                var remaining: Duration?
                if under {
                    entry.pressured = true
                    entry.relievedAt = nil
                } else if entry.pressured {
                    let since = entry.relievedAt ?? now
                    entry.relievedAt = since
                    let left = settings.evictionPressureTransition - (now - since)
                    if left <= .zero {
                        entry.pressured = false
                        entry.relievedAt = nil
                    } else {
                        remaining = left
                    }
                }
                state[node] = entry
                return (!before && entry.pressured, before != entry.pressured, remaining)
            }
            if changed { queue.add(ObjectKey(type: Nodes.type, namespace: nil, name: node)) }
            if let remaining { next = min(next ?? remaining, remaining) }
            if began, let object = try? await store.get(Nodes.type, namespace: nil, name: node) {
                await events.record(
                    .warning, "EvictionThresholdMet", "Attempting to reclaim memory", about: object,
                    source: EventRecorder.Source(component: "kubelet", host: node))
            }
            if under, let victim = Self.evictionVictim(among: uses) { await evict(victim, on: node, available: available) }
        }
        return next
    }

    /// A running Pod's memory as the eviction manager ranks it.
    struct MemoryUse {
        var pod: JSONValue
        var containers: [SimulatedMetrics.ContainerUsage]
        var used: Int64 { containers.reduce(0) { $0 + $1.memoryBytes } }
        var requested: Int64 {
            (pod.value(at: "spec", "containers")?.arrayElements ?? []).reduce(0) {
                $0 + (ResourceQuantity.whole($1.value(at: "resources", "requests", "memory")?.stringValue) ?? 0)
            }
        }
        var priority: Int64 { pod.integer(at: "spec", "priority") ?? 0 }
    }

    /// kube's ranking under memory pressure: over its request first, then the lowest priority,
    /// then the most used beyond its request; critical Pods are left.
    static func evictionVictim(among uses: [MemoryUse]) -> MemoryUse? {
        uses.filter { $0.priority < criticalPriority && $0.pod.deletionTimestamp == nil }.min { left, right in
            let (leftOver, rightOver) = (left.used > left.requested, right.used > right.requested)
            if leftOver != rightOver { return leftOver }
            if left.priority != right.priority { return left.priority < right.priority }
            return left.used - left.requested > right.used - right.requested
        }
    }

    /// The kubelet's eviction of one Pod: `Failed`, `Evicted`, why, and its containers stopped.
    private func evict(_ victim: MemoryUse, on node: String, available: Int64) async {
        let pod = victim.pod
        let largest = victim.containers.max { $0.memoryBytes < $1.memoryBytes }
        let request =
            (pod.value(at: "spec", "containers")?.arrayElements ?? []).first { $0["name"]?.stringValue == largest?.name }?
            .value(at: "resources", "requests", "memory")?.stringValue ?? "0"
        let message =
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: \(max(available, 0) / 1024)Ki. "
            + "Container \(largest?.name ?? "") was using \((largest?.memoryBytes ?? 0) / 1024)Ki, request is \(request), has larger consumption of memory. "
        let now = kubernetesTimestamp()
        var evicted = pod
        evicted.set("Failed", at: ["status", "phase"])
        evicted.set("Evicted", at: ["status", "reason"])
        evicted.set(.string(message), at: ["status", "message"])
        var conditions = (pod.value(at: "status", "conditions")?.arrayElements ?? []).filter { $0["type"] != "DisruptionTarget" }.map { condition in
            guard ["Ready", "ContainersReady"].contains(condition["type"]?.stringValue ?? "") else { return condition }
            var stopped = condition
            stopped[member: "status"] = "False"
            stopped[member: "reason"] = "PodFailed"
            stopped[member: "lastTransitionTime"] = .string(now)
            return stopped
        }
        conditions.append([
            "type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet", "message": .string(message),
            "lastTransitionTime": .string(now),
        ])
        evicted.set(.array(conditions), at: ["status", "conditions"])
        // Not ready; their last state stays as the kubelet last saw it, so `kubectl get pods`
        // shows the Pod's own reason, `Evicted`.
        let statuses = (pod.value(at: "status", "containerStatuses")?.arrayElements ?? []).map { status in
            var ended = status
            ended[member: "ready"] = false
            ended[member: "started"] = false
            return ended
        }
        evicted.set(.array(statuses), at: ["status", "containerStatuses"])
        guard (try? await store.updateStatus(evicted, as: PodController.pods, dryRun: false)) != nil else { return }
        let kubelet = EventRecorder.Source(component: "kubelet", host: node)
        await events.record(.warning, "Evicted", message, about: pod, source: kubelet)
        for container in victim.containers {
            await events.record(
                .normal, "Killing", "Stopping container \(container.name)", about: pod, fieldPath: "spec.containers{\(container.name)}",
                source: kubelet)
        }
    }
}

/// A node's memory pressure as its kubelet reports it: since when it has been relieved, while
/// the transition period holds the condition.
struct NodeMemoryPressure {
    var pressured = false
    var relievedAt: ContinuousClock.Instant?
}
