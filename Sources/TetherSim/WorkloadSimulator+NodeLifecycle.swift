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

    /// The node lifecycle controller's step for `node`: its taints, then its `Ready` condition,
    /// brought in line with its kubelet, one write at a time. Returns whether it wrote (the
    /// write's own event brings the node back for the next step).
    func followKubelet(of node: JSONValue) async -> Bool {
        let name = node.name ?? ""
        let stopped = Self.kubeletStopped(on: node)
        let now = kubernetesTimestamp()
        var taints = node.value(at: "spec", "taints")?.arrayElements ?? []
        if taints.contains(where: { $0["key"]?.stringValue == Self.unreachableTaint }) != stopped {
            taints.removeAll { $0["key"]?.stringValue == Self.unreachableTaint }
            if stopped {
                taints.append(["key": .string(Self.unreachableTaint), "effect": "NoSchedule", "timeAdded": .string(now)])
                taints.append(["key": .string(Self.unreachableTaint), "effect": "NoExecute", "timeAdded": .string(now)])
            }
            var updated = node
            updated.set(taints.isEmpty ? nil : .array(taints), at: ["spec", "taints"])
            do throws(StoreError) {
                _ = try await store.update(updated, as: Nodes.type, dryRun: false)
            } catch {
                logger.debug("node taints not written", metadata: ["tether.node": "\(name)", "tether.error": "\(error)"])
            }
            return true
        }
        var conditions = node.value(at: "status", "conditions")?.arrayElements ?? []
        let wanted = stopped ? "Unknown" : "True"
        guard let index = conditions.firstIndex(where: { $0["type"] == "Ready" }), conditions[index]["status"]?.stringValue != wanted else {
            return false
        }
        conditions[index] =
            stopped
            ? [
                "type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status.",
                "lastHeartbeatTime": conditions[index]["lastHeartbeatTime"] ?? .string(now), "lastTransitionTime": .string(now),
            ]
            : [
                "type": "Ready", "status": "True", "reason": "KubeletReady", "message": "simulated node (no kubelet runs)",
                "lastHeartbeatTime": .string(now), "lastTransitionTime": .string(now),
            ]
        var updated = node
        updated.set(.array(conditions), at: ["status", "conditions"])
        do throws(StoreError) {
            _ = try await store.updateStatus(updated, as: Nodes.type, dryRun: false)
        } catch {
            logger.debug("node status not written", metadata: ["tether.node": "\(name)", "tether.error": "\(error)"])
            return true
        }
        let source = EventRecorder.Source(component: stopped ? "node-controller" : "kubelet", host: stopped ? nil : name)
        let state = stopped ? "NodeNotReady" : "NodeReady"
        await events.record(.normal, state, "Node \(name) status is now: \(state)", about: node, source: source)
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
