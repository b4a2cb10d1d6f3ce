import Foundation
import Synchronization
import TetherJSON
import TetherModel
import TetherStore

/// The simulated scheduler and the node-driven controllers: placing Pods by
/// ``NodeAvailability``'s filters, leaving the ones no node takes Pending with the scheduler's
/// message, retrying them when room opens, and acting on a node's change (DaemonSets, `NoExecute`
/// evictions).
extension WorkloadSimulator {
    /// A node's labels, taints, cordon or kubelet changed (or it went, taking its Pods with it):
    /// Pods left unscheduled try again, DaemonSets pick their nodes again, the Pods on a node whose kubelet stopped or came
    /// back are looked at again, and the Pods its `NoExecute` taints do not tolerate are
    /// evicted, at once or when their `tolerationSeconds` run out. Returns when the next one is due.
    func nodeChanged(name: String, object: JSONValue?) async -> Duration? {
        let wasStopped = nodes.kubeletStopped(name)
        if object == nil {
            if wasStopped { return await nodeGone(name) }
            await registerAgain(name)
        }
        if nodes.update(name, from: object) {
            scheduleWaitingPods(all: true)
            let daemonSets = PodController.ownerTypes["DaemonSet"]!
            for daemonSet in (try? await store.list(daemonSets, options: ListOptions()).objects) ?? [] {
                queue.add(key(daemonSets, daemonSet))
            }
        }
        if nodes.kubeletStopped(name) != wasStopped { await kubeletChanged(on: name, stopped: !wasStopped) }
        let now = ContinuousClock.now
        var next: Duration?
        let due = evictionClocks.withLock { clocks in
            var started: [ObjectKey: ContinuousClock.Instant] = [:]
            var due: [ObjectKey] = []
            for (pod, after) in nodes.evicted(from: name) {
                let since = clocks[name]?[pod] ?? now
                started[pod] = since
                let deadline = since.advanced(by: .seconds(after ?? 0))
                if deadline <= now {
                    due.append(pod)
                } else {
                    next = min(next ?? deadline - now, deadline - now)
                }
            }
            clocks[name] = started.isEmpty ? nil : started
            return due
        }
        for pod in due {
            guard let object = try? await store.get(pod.type, namespace: pod.namespace, name: pod.name), object.deletionTimestamp == nil else {
                continue
            }
            await events.record(
                .normal, "TaintManagerEviction", "Marking for deletion Pod \(pod.namespace ?? "default")/\(pod.name)", about: object,
                source: EventRecorder.Source(component: "taint-eviction-controller"))
            await pods.delete(object)
        }
        return next
    }

    /// Room opened on some node: the Pods no node could take are scheduled again. A node opening
    /// (rare) sends all of them, so each says why it still waits; a Pod going (frequent) only
    /// those that would now fit, so a thousand waiting Pods are not rescheduled per freed slot.
    func scheduleWaitingPods(all: Bool = false) {
        let admitted = unscheduled.withLock { unscheduled in
            // Highest priority first, as the scheduler's queue orders them.
            let waiting = unscheduled.map { (key: $0.key, pod: $0.value) }.sorted {
                ($0.pod.priority, "\($1.key.namespace ?? "")/\($1.key.name)") > ($1.pod.priority, "\($0.key.namespace ?? "")/\($0.key.name)")
            }
            let admitted = all ? waiting.map(\.key) : nodes.admissible(waiting)
            for key in admitted { unscheduled.removeValue(forKey: key) }
            return admitted
        }
        for key in admitted { queue.add(key) }
    }

    /// The scheduler's job: a Pod with no node gets one, picked by its name among the nodes it
    /// fits (``NodeAvailability``), its nominated node first. When none does, the Pod stays
    /// Pending, as the scheduler leaves it, and Pods of lower priority are preempted for it when
    /// that makes room.
    func schedule(_ pod: JSONValue, key: ObjectKey) async {
        var hash: UInt32 = 2_166_136_261
        for byte in "\(key.namespace ?? "")/\(key.name)".utf8 {
            hash = (hash ^ UInt32(byte)) &* 16_777_619
        }
        let open: [String]
        var placement = PodPlacement(of: pod)
        var claimsWaitingForNode: [String] = []
        if !VolumeController.claimNames(of: pod).isEmpty {
            switch await volumes.readiness(of: pod) {
            case .blocked(let reason):
                let count = nodes.names.count
                let message =
                    "0/\(count) nodes are available: \(reason). preemption: 0/\(count) nodes are available: \(count) Preemption is not helpful for scheduling."
                await leaveUnscheduled(pod, key: key, message: message)
                return
            case .schedulable(let volumeTerms, let waiting):
                placement.volumeTerms = volumeTerms.map { $0.map(NodeSelectorTerm.init) }
                claimsWaitingForNode = waiting
            }
        }
        // The budgets preemption weighs, read only for a Pod that may preempt.
        let budgets =
            placement.preemptsLowerPriority
            ? ((try? await store.list(DisruptionController.budgets, options: ListOptions()).objects) ?? []).compactMap(
                NodeAvailability.DisruptionBudget.init) : []
        switch nodes.fitting(placement, key: key, budgets: budgets) {
        case .success(let fitting): open = fitting
        case .failure(let reason):
            await leaveUnscheduled(pod, key: key, message: reason.message, nominatedNode: reason.nominatedNode)
            if let preemption = reason.preemption { await preempt(preemption, for: pod) }
            return
        }
        _ = unscheduled.withLock { $0.removeValue(forKey: key) }
        var updated = pod
        let nominated = pod.string(at: "status", "nominatedNodeName")
        let node = nominated.flatMap { open.contains($0) ? $0 : nil } ?? open[Int(hash % UInt32(open.count))]
        if !claimsWaitingForNode.isEmpty {
            // As the scheduler's VolumeBinding: the node is picked, and the Pod is bound to it
            // once its claims are (their binding brings it back, pinned there by its volumes).
            await volumes.select(node, forClaims: claimsWaitingForNode, namespace: key.namespace)
            return
        }
        updated.set(.string(node), at: ["spec", "nodeName"])
        guard let scheduled = try? await store.update(updated, as: key.type, dryRun: false) else { return }
        nodes.track(scheduled, key: key, gone: false)
        await events.record(
            .normal, "Scheduled", "Successfully assigned \(key.namespace ?? "default")/\(key.name) to \(node)", about: scheduled,
            source: EventRecorder.Source(component: "default-scheduler"))
    }

    /// A Pod no node can take: `PodScheduled=False` (`Unschedulable`) and a `FailedScheduling`
    /// Event, each written once per reason, with the scheduler's message, and the node whose
    /// room is kept for it (`status.nominatedNodeName`).
    func leaveUnscheduled(_ pod: JSONValue, key: ObjectKey, message: String, nominatedNode: String? = nil) async {
        unscheduled.withLock { $0[key] = PodPlacement(of: pod) }
        let conditions = pod.value(at: "status", "conditions")?.arrayElements ?? []
        guard
            !conditions.contains(where: { $0["type"] == "PodScheduled" && $0["message"]?.stringValue == message })
                || pod.string(at: "status", "nominatedNodeName") != nominatedNode
        else { return }
        var updated = pod
        updated.set(.string("Pending"), at: ["status", "phase"])
        updated.set(nominatedNode.map(JSONValue.string), at: ["status", "nominatedNodeName"])
        updated.set(
            [
                [
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": .string(message),
                    "lastTransitionTime": .string(kubernetesTimestamp()),
                ]
            ], at: ["status", "conditions"])
        guard (try? await store.updateStatus(updated, as: key.type, dryRun: false)) != nil else { return }
        await events.record(.warning, "FailedScheduling", message, about: pod, source: EventRecorder.Source(component: "default-scheduler"))
    }

    /// Evicts the Pods chosen for a preemption, as kube-scheduler does: each is marked
    /// `DisruptionTarget` (`PreemptionByScheduler`), deleted gracefully, and told why.
    func preempt(_ preemption: NodeAvailability.Preemption, for preemptor: JSONValue) async {
        for victim in preemption.victims {
            guard var object = try? await store.get(victim.type, namespace: victim.namespace, name: victim.name), object.deletionTimestamp == nil
            else { continue }
            var conditions = (object.value(at: "status", "conditions")?.arrayElements ?? []).filter { $0["type"] != "DisruptionTarget" }
            conditions.append([
                "type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
                "message": "default-scheduler: preempting to accommodate a higher priority pod", "lastTransitionTime": .string(kubernetesTimestamp()),
            ])
            object.set(.array(conditions), at: ["status", "conditions"])
            if let marked = try? await store.updateStatus(object, as: victim.type, dryRun: false) { object = marked }
            await pods.delete(object)
            await events.record(
                .normal, "Preempted", "Preempted by pod \(preemptor.uid ?? "") on node \(preemption.node)", about: object,
                source: EventRecorder.Source(component: "default-scheduler"))
        }
    }
}
