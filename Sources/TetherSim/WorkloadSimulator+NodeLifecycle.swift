import Foundation
import Logging
import TetherJSON
import TetherModel
import TetherStore

/// A node whose kubelet stops, as an operator simulates it
/// (`kubectl annotate node NAME sim.tether.io/kubelet=stopped`, and `sim.tether.io/kubelet-` to
/// bring it back), and what the node lifecycle controller does about it: the node's `Ready`
/// condition turns `Unknown` ("Kubelet stopped posting node status.", so `kubectl get nodes`
/// shows `NotReady`), it is tainted `node.kubernetes.io/unreachable` (`NoSchedule` and
/// `NoExecute`), and its Pods are marked not ready, so Services stop sending them traffic and
/// their workloads count them unavailable. The `NoExecute` taint evicts them once their
/// toleration runs out (300 s by default); with no kubelet to confirm, an evicted Pod stays
/// `Terminating` while its controller makes a replacement elsewhere. When the kubelet is back
/// the taints go, the node is `Ready`, the Pods still on it are ready again and the terminating
/// ones finish.
extension WorkloadSimulator {
    static let kubeletAnnotation = "sim.tether.io/kubelet"
    static let unreachableTaint = "node.kubernetes.io/unreachable"

    static func kubeletStopped(on node: JSONValue) -> Bool { node.annotations[kubeletAnnotation] == "stopped" }

    /// The node pressures an operator simulates (`sim.tether.io/pressure: memory,disk,pid`).
    static let pressureAnnotation = "sim.tether.io/pressure"

    /// A node condition the kubelet reports, with its words for either state.
    struct NodeCondition {
        var type: String
        /// The pressure that turns it True; nil for `Ready`.
        var pressure: String?
        var healthy: (reason: String, message: String)
        var unhealthy: (reason: String, message: String)
        /// The taint the node lifecycle controller sets while it is True (`TaintNodesByCondition`).
        var taint: String? { pressure.map { "node.kubernetes.io/\($0)-pressure" } }
    }

    /// In the order a kubelet reports them.
    static let nodeConditions = [
        NodeCondition(
            type: "MemoryPressure", pressure: "memory", healthy: ("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            unhealthy: ("KubeletHasInsufficientMemory", "kubelet has insufficient memory available")),
        NodeCondition(
            type: "DiskPressure", pressure: "disk", healthy: ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            unhealthy: ("KubeletHasDiskPressure", "kubelet has disk pressure")),
        NodeCondition(
            type: "PIDPressure", pressure: "pid", healthy: ("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            unhealthy: ("KubeletHasInsufficientPID", "kubelet has insufficient PID available")),
        NodeCondition(
            type: "Ready", pressure: nil, healthy: ("KubeletReady", "simulated node (no kubelet runs)"),
            unhealthy: ("NodeStatusUnknown", "Kubelet stopped posting node status.")),
    ]

    /// The pressures `node` is annotated with (unknown words are ignored).
    static func pressures(on node: JSONValue) -> Set<String> {
        Set((node.annotations[pressureAnnotation] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
            .intersection(["memory", "disk", "pid"])
    }

    /// The Event a condition's change is recorded as (`NodeHasInsufficientMemory`, `NodeReady`, ...).
    static func nodeEvent(for condition: NodeCondition, status: String) -> String {
        switch (condition.type, status) {
        case ("Ready", "True"): "NodeReady"
        case ("Ready", _): "NodeNotReady"
        case ("MemoryPressure", "True"): "NodeHasInsufficientMemory"
        case ("MemoryPressure", _): "NodeHasSufficientMemory"
        case ("DiskPressure", "True"): "NodeHasDiskPressure"
        case ("DiskPressure", _): "NodeHasNoDiskPressure"
        case ("PIDPressure", "True"): "NodeHasInsufficientPID"
        default: "NodeHasSufficientPID"
        }
    }

    /// The taints the node lifecycle controller keeps on a node: `unreachable` (`NoSchedule` and
    /// `NoExecute`) while its kubelet is stopped, a pressure's `NoSchedule` taint while its
    /// kubelet reports it; the operator's own taints stay.
    static func lifecycleTaints(of node: JSONValue, pressures reported: Set<String>, now: String) -> [JSONValue] {
        let stopped = kubeletStopped(on: node)
        let pressures = stopped ? [] : reported
        let managed = Set([unreachableTaint] + nodeConditions.compactMap(\.taint))
        let existing = node.value(at: "spec", "taints")?.arrayElements ?? []
        var taints = existing.filter { !managed.contains($0["key"]?.stringValue ?? "") }
        func keep(_ key: String, _ effect: String) {
            // A taint already there keeps its time.
            taints.append(
                existing.first { $0["key"]?.stringValue == key && $0["effect"]?.stringValue == effect }
                    ?? ["key": .string(key), "effect": .string(effect), "timeAdded": .string(now)])
        }
        if stopped {
            keep(unreachableTaint, "NoSchedule")
            keep(unreachableTaint, "NoExecute")
        }
        for condition in nodeConditions where condition.pressure.map(pressures.contains) == true { keep(condition.taint!, "NoSchedule") }
        return taints
    }

    /// The node lifecycle controller's and the kubelet's step for `node`: its taints, then its
    /// conditions (`Ready` and the three pressures; all `Unknown` while its kubelet is stopped,
    /// so `kubectl get nodes` shows `NotReady`), brought in line with its annotations, one write
    /// at a time, each changed condition recorded as the kubelet (or, for a lost node, the node
    /// controller) records it. Returns whether it wrote (the write's own event brings the node
    /// back for the next step).
    func followKubelet(of node: JSONValue) async -> Bool {
        let name = node.name ?? ""
        let stopped = Self.kubeletStopped(on: node)
        let now = kubernetesTimestamp()
        // Declared by the operator, or the eviction manager's from the Pods' usage.
        let pressures = Self.pressures(on: node).union(memoryPressured(name) ? ["memory"] : [])
        let taints = Self.lifecycleTaints(of: node, pressures: pressures, now: now)
        let existing = node.value(at: "spec", "taints")?.arrayElements ?? []
        if Set(taints.map { "\($0["key"]?.stringValue ?? "")/\($0["effect"]?.stringValue ?? "")" })
            != Set(existing.map { "\($0["key"]?.stringValue ?? "")/\($0["effect"]?.stringValue ?? "")" })
        {
            var updated = node
            updated.set(taints.isEmpty ? nil : .array(taints), at: ["spec", "taints"])
            do throws(StoreError) {
                _ = try await store.update(updated, as: Nodes.type, dryRun: false)
            } catch {
                logger.debug("node taints not written", metadata: ["tether.node": "\(name)", "tether.error": "\(error)"])
            }
            return true
        }
        let stored = node.value(at: "status", "conditions")?.arrayElements ?? []
        var changed: [(NodeCondition, String)] = []
        let conditions = Self.nodeConditions.map { condition -> JSONValue in
            let previous = stored.first { $0["type"]?.stringValue == condition.type }
            let status = stopped ? "Unknown" : condition.pressure.map { pressures.contains($0) ? "True" : "False" } ?? "True"
            guard previous?["status"]?.stringValue != status else { return previous! }
            if previous != nil { changed.append((condition, status)) }
            let words = stopped ? condition.unhealthy : (status == "True") == (condition.pressure == nil) ? condition.healthy : condition.unhealthy
            return [
                "type": .string(condition.type), "status": .string(status), "reason": .string(words.reason), "message": .string(words.message),
                "lastHeartbeatTime": stopped ? previous?["lastHeartbeatTime"] ?? .string(now) : .string(now), "lastTransitionTime": .string(now),
            ]
        }
        guard conditions != stored else { return false }
        var updated = node
        updated.set(.array(conditions), at: ["status", "conditions"])
        do throws(StoreError) {
            _ = try await store.updateStatus(updated, as: Nodes.type, dryRun: false)
        } catch {
            logger.debug("node status not written", metadata: ["tether.node": "\(name)", "tether.error": "\(error)"])
            return true
        }
        let source = EventRecorder.Source(component: stopped ? "node-controller" : "kubelet", host: stopped ? nil : name)
        for (condition, status) in changed {
            let state = Self.nodeEvent(for: condition, status: status)
            // The node controller says only that the node is not ready; the kubelet names each change.
            guard !stopped || condition.type == "Ready" else { continue }
            await events.record(.normal, state, "Node \(name) status is now: \(state)", about: node, source: source)
        }
        return true
    }

    /// A node's kubelet stopped or came back (its facts now say so): every Pod on it is looked
    /// at again, and each is told, as the node controller tells it, when its node is lost.
    func kubeletChanged(on node: String, stopped: Bool) async {
        for key in nodes.pods(on: node) {
            if stopped, let pod = try? await store.get(key.type, namespace: key.namespace, name: key.name) {
                await events.record(
                    .warning, "NodeNotReady", "Node is not ready", about: pod, source: EventRecorder.Source(component: "node-controller"))
            }
            queue.add(key)
        }
    }

    /// A Pod on a node whose kubelet is stopped: nothing on the node reports, so it makes no
    /// progress and a deletion is never confirmed; the node controller marks it not ready.
    func podOnLostNode(_ pod: JSONValue, key: ObjectKey) async {
        guard pod.deletionTimestamp == nil, var conditions = pod.value(at: "status", "conditions")?.arrayElements,
            let index = conditions.firstIndex(where: { $0["type"] == "Ready" }), conditions[index]["status"] != "False"
        else { return }
        conditions[index][member: "status"] = "False"
        conditions[index][member: "lastTransitionTime"] = .string(kubernetesTimestamp())
        var updated = pod
        updated.set(.array(conditions), at: ["status", "conditions"])
        do throws(StoreError) {
            _ = try await store.updateStatus(updated, as: key.type, dryRun: false)
        } catch {
            logger.debug("pod on a lost node not marked", metadata: ["tether.object": "\(key)", "tether.error": "\(error)"])
        }
    }
    /// A Node object deleted while its kubelet is stopped (what an operator does for a machine
    /// that will not return): the scheduler forgets the node, then the Pod garbage collector
    /// deletes every Pod bound to it at once (grace 0), running or stuck `Terminating`, since no
    /// kubelet will ever confirm them; their controllers make replacements on the nodes left, so a
    /// StatefulSet's Pod of a dead node starts elsewhere. The node comes back when the simulator
    /// starts again, as a repaired machine's kubelet registers it.
    func nodeGone(_ node: String) async -> Duration? {
        nodes.remove(node)
        await collectPods(ofDeletedNode: node)
        scheduleWaitingPods(all: true)
        let daemonSets = PodController.ownerTypes["DaemonSet"]!
        for daemonSet in (try? await store.list(daemonSets, options: ListOptions()).objects) ?? [] {
            queue.add(key(daemonSets, daemonSet))
        }
        return nil
    }

    /// A Node object deleted while its kubelet runs: the kubelet registers it again at once, with
    /// the labels it starts with (an operator's labels, taints and cordon are gone with the
    /// object), and its Pods stay, as the Pod garbage collector waits longer than that.
    func registerAgain(_ node: String) async {
        let nodes = Nodes(store: store, settings: settings)
        do throws(StoreError) {
            _ = try await store.create(nodes.object(name: node), as: Nodes.type, dryRun: false)
            logger.info("node registered again by its kubelet", metadata: ["tether.node": "\(node)"])
        } catch  where error.code == .alreadyExists {
            // Registered meanwhile.
        } catch {
            logger.warning("node not registered again", metadata: ["tether.node": "\(node)", "tether.error": "\(error)"])
            return
        }
        // Its Lease goes with the deleted Node (the garbage collector); the kubelet makes it again.
        do throws(StoreError) {
            try await nodes.registerLeases()
        } catch {
            logger.warning("node lease not registered again", metadata: ["tether.node": "\(node)", "tether.error": "\(error)"])
        }
    }

    private func collectPods(ofDeletedNode node: String) async {
        let bound: [JSONValue]
        do {
            bound = try await store.list(PodController.pods, options: ListOptions()).objects.filter { $0.string(at: "spec", "nodeName") == node }
        } catch {
            logger.debug("pods of a deleted node not listed", metadata: ["tether.node": "\(node)", "tether.error": "\(error)"])
            return
        }
        for pod in bound {
            guard let name = pod.name else { continue }
            do throws(StoreError) {
                _ = try await store.delete(
                    PodController.pods, namespace: pod.namespace, name: name, preconditions: DeletePreconditions(uid: pod.uid, gracePeriodSeconds: 0),
                    dryRun: false)
                logger.debug(
                    "pod of a deleted node collected", metadata: ["tether.node": "\(node)", "tether.object": "\(pod.namespace ?? "")/\(name)"])
            } catch  where error.code == .notFound || error.code == .conflict {
                // Gone already, or made again under the same name.
            } catch {
                logger.debug(
                    "pod of a deleted node not collected", metadata: ["tether.object": "\(pod.namespace ?? "")/\(name)", "tether.error": "\(error)"])
            }
        }
    }
}
