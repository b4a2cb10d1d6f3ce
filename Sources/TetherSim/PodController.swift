import Foundation
import Logging
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore

/// The controllers that make Pods in a real cluster: a ReplicaSet keeps `replicas` Pods from its
/// template, a StatefulSet keeps `NAME-0` to `NAME-(replicas-1)`, a DaemonSet one per node, a Job
/// `parallelism` Pods until it is finished. Each Pod names its owner as controller, carries the
/// owner's `sim.tether.io/fail` annotation (so a failing workload's Pods crash-loop), and is
/// deleted when its owner goes. A StatefulSet's or DaemonSet's Pods made from an older template
/// are replaced. Every owner's status is counted from the Pods this returns (``StatusPlan``).
struct PodController: Sendable {
    let store: any ResourceStore
    let settings: SimulationSettings
    let events: EventRecorder
    let nodes: NodeAvailability
    let logger: Logger

    static let pods = ResourceType(group: "", resource: "pods", namespaced: true)
    static let priorityClasses = ResourceType(group: "scheduling.k8s.io", resource: "priorityclasses", namespaced: false)
    static let limitRanges = ResourceType(group: "", resource: "limitranges", namespaced: true)

    /// The kinds whose Pods this controller makes, by the owner reference's kind.
    static let ownerTypes: [String: ResourceType] = [
        "ReplicaSet": ResourceType(group: "apps", resource: "replicasets", namespaced: true),
        "ReplicationController": ResourceType(group: "", resource: "replicationcontrollers", namespaced: true),
        "StatefulSet": ResourceType(group: "apps", resource: "statefulsets", namespaced: true),
        "DaemonSet": ResourceType(group: "apps", resource: "daemonsets", namespaced: true),
        "Job": ResourceType(group: "batch", resource: "jobs", namespaced: true),
    ]

    /// One Pod the owner wants: under a fixed name, or a generated one after `prefix`; on a node when it is pinned to one.
    struct Slot {
        var name: String?
        var node: String?
        var labels: [String: String] = [:]
        var annotations: [String: String] = [:]
        /// An Indexed Job's completion index for the Pod.
        var index: Int?
    }

    /// Brings the Pods of `owner` (of kind `kind`) to what it wants now; returns its Pods as they
    /// are after this step (nil when they could not be listed).
    @discardableResult
    func sync(_ owner: JSONValue, kind: String) async -> [JSONValue]? {
        guard let uid = owner.uid, let name = owner.name, let namespace = owner.namespace, owner.deletionTimestamp == nil,
            let template = owner.value(at: "spec", "template")
        else { return nil }
        let owned: [JSONValue]
        do {
            owned = try await store.list(Self.pods, options: ListOptions(namespace: namespace)).objects.filter {
                WorkloadSimulator.controller(of: $0)?.uid == uid
            }
        } catch {
            logger.debug("cannot list a workload's pods", metadata: ["tether.object": "\(namespace)/\(name)", "tether.error": "\(error)"])
            return nil
        }
        let revision = "\(name)-\(PodTemplateHash.of(template))"
        var current = owned.filter { $0.deletionTimestamp == nil }
        if kind != "Job" {
            // A finished Pod (evicted, say) no longer counts: a ReplicaSet makes another beside
            // it, and a StatefulSet or DaemonSet deletes it to make it again, as their controllers do.
            let ended = current.filter(\.podFinished)
            if kind == "StatefulSet" || kind == "DaemonSet" { for pod in ended { await delete(pod, by: owner) } }
            let endedIDs = Set(ended.compactMap(\.uid))
            current.removeAll { endedIDs.contains($0.uid ?? "") }
        }
        var wanted: [Slot]
        var extra: [JSONValue] = []
        switch kind {
        case "StatefulSet":
            (wanted, extra) = statefulSetStep(owner, pods: current, revision: revision)
        case "DaemonSet":
            (wanted, extra) = daemonSetStep(owner, owned: owned, revision: revision, template: template)
        case "Job":
            (wanted, extra) = Self.jobStep(owner, owned: owned, now: Date())
        default:
            let replicas = Int(max(0, owner.integer(at: "spec", "replicas") ?? 1))
            // As the ReplicaSet controller does: the ones not yet running go first, then the newest.
            let ordered = current.sorted { left, right in
                let (leftRunning, rightRunning) = (left.string(at: "status", "phase") == "Running", right.string(at: "status", "phase") == "Running")
                if leftRunning != rightRunning { return !leftRunning }
                return (left.metadata["creationTimestamp"]?.stringValue ?? "") > (right.metadata["creationTimestamp"]?.stringValue ?? "")
            }
            extra = Array(ordered.prefix(max(0, current.count - replicas)))
            wanted = Array(repeating: Slot(), count: max(0, replicas - current.count))
        }
        for pod in extra { await delete(pod, by: owner) }
        if kind == "StatefulSet" { await deleteClaimsOfScaledDown(owner, pods: extra) }
        let deleted = Set(extra.compactMap(\.uid))
        current.removeAll { deleted.contains($0.uid ?? "") }
        // As kube-apiserver refuses the controllers: nothing new in a namespace gone or being deleted.
        guard !wanted.isEmpty, await acceptsNewContent(namespace) else { return current }
        for slot in wanted {
            if let made = await create(slot, of: owner, kind: kind, template: template) { current.append(made) }
        }
        return current
    }

    /// The StatefulSet controller's next step, as Kubernetes takes it: the Pods to make (by
    /// ordinal name) and the Pods to delete.
    ///
    /// - `OrderedReady` (the default) makes the lowest missing ordinal only once every Pod below
    ///   it is Running and available (Ready for longer than `minReadySeconds`), and scales down
    ///   from the highest ordinal, one Pod at a time, while the others are available; `Parallel`
    ///   makes and deletes them all at once.
    /// - A changed template rolls out from the highest ordinal down to `partition`, one Pod at a
    ///   time, each once every Pod is available (a failing StatefulSet's rollout stops, as a real
    ///   one does); `OnDelete` replaces a Pod only when someone deletes it.
    private func statefulSetStep(_ owner: JSONValue, pods: [JSONValue], revision: String) -> (make: [Slot], delete: [JSONValue]) {
        let name = owner.name ?? ""
        let replicas = Int(max(0, owner.integer(at: "spec", "replicas") ?? 1))
        let ordered = owner.string(at: "spec", "podManagementPolicy") != "Parallel"
        let onDelete = owner.string(at: "spec", "updateStrategy", "type") == "OnDelete"
        let partition = Int(max(0, owner.integer(at: "spec", "updateStrategy", "rollingUpdate", "partition") ?? 0))
        var byOrdinal: [Int: JSONValue] = [:]
        var strays: [JSONValue] = []
        for pod in pods {
            if let podName = pod.name, podName.hasPrefix("\(name)-"), let ordinal = Int(podName.dropFirst(name.count + 1)), ordinal >= 0 {
                byOrdinal[ordinal] = pod
            } else {
                strays.append(pod)
            }
        }
        func slot(_ ordinal: Int) -> Slot {
            Slot(
                name: "\(name)-\(ordinal)",
                labels: [
                    "statefulset.kubernetes.io/pod-name": "\(name)-\(ordinal)", "apps.kubernetes.io/pod-index": "\(ordinal)",
                    "controller-revision-hash": revision,
                ])
        }
        // Running and available: Ready for longer than minReadySeconds (its status looks again then).
        let minReady = owner.integer(at: "spec", "minReadySeconds") ?? 0
        let now = Date()
        func healthy(_ ordinal: Int) -> Bool {
            byOrdinal[ordinal].map { Self.isRunningAndReady($0) && StatusPlan.untilAvailable($0, minReadySeconds: minReady, now: now) < 0 } ?? false
        }
        let missing = (0..<replicas).filter { byOrdinal[$0] == nil }
        let condemned = byOrdinal.keys.filter { $0 >= replicas }.sorted(by: >)
        if ordered {
            for ordinal in 0..<replicas {
                if byOrdinal[ordinal] == nil { return ([slot(ordinal)], strays) }
                if !healthy(ordinal) { return ([], strays) }
            }
        } else if !missing.isEmpty {
            return (missing.map(slot), strays + condemned.compactMap { byOrdinal[$0] })
        }
        let allHealthy = (0..<replicas).allSatisfy(healthy)
        if !condemned.isEmpty {
            guard ordered else { return ([], strays + condemned.compactMap { byOrdinal[$0] }) }
            return ([], strays + (allHealthy ? condemned.prefix(1).compactMap { byOrdinal[$0] } : []))
        }
        guard !onDelete, allHealthy else { return ([], strays) }
        let outdated = (partition..<max(partition, replicas)).reversed().first { byOrdinal[$0]?.labels["controller-revision-hash"] != revision }
        return ([], strays + (outdated.flatMap { byOrdinal[$0] }.map { [$0] } ?? []))
    }

    static let namespaces = ResourceType(group: "", resource: "namespaces", namespaced: false)

    private func acceptsNewContent(_ namespace: String) async -> Bool {
        guard let object = try? await store.get(Self.namespaces, namespace: nil, name: namespace) else { return false }
        return object.deletionTimestamp == nil
    }

    /// Deletes `pod`; `owner` names the controller that wanted it gone, which records so.
    func delete(_ pod: JSONValue, by owner: JSONValue? = nil) async {
        guard let name = pod.name else { return }
        do throws(StoreError) {
            // Gracefully, as the controllers' deletions go through kube-apiserver: the Pod shows
            // Terminating until the simulated kubelet has stopped it.
            let preconditions = DeletePreconditions(uid: pod.uid, gracePeriodSeconds: PodDeletion.gracePeriod(of: pod))
            _ = try await store.delete(Self.pods, namespace: pod.namespace, name: name, preconditions: preconditions, dryRun: false)
            if let owner, let kind = owner.kind {
                let message = kind == "StatefulSet" ? "delete Pod \(name) in StatefulSet \(owner.name ?? "") successful" : "Deleted pod: \(name)"
                await events.record(.normal, "SuccessfulDelete", message, about: owner, source: Self.controllerSource(kind))
            }
        } catch  where error.code == .notFound || error.code == .conflict {
            // Gone already, or made again under the same name.
        } catch {
            logger.debug("simulated pod not deleted", metadata: ["tether.object": "\(pod.namespace ?? "")/\(name)", "tether.error": "\(error)"])
        }
    }

    private func create(_ slot: Slot, of owner: JSONValue, kind: String, template: JSONValue) async -> JSONValue? {
        guard let ownerName = owner.name, let namespace = owner.namespace, let uid = owner.uid else { return nil }
        var labels = template.value(at: "metadata", "labels")?.objectMembers ?? [:]
        for (key, value) in slot.labels { labels[key] = .string(value) }
        var annotations = template.value(at: "metadata", "annotations")?.objectMembers ?? [:]
        for (key, value) in slot.annotations { annotations[key] = .string(value) }
        if let index = slot.index {
            labels[Self.completionIndexKey] = .string("\(index)")
            annotations[Self.completionIndexKey] = .string("\(index)")
        }
        if let failing = owner.annotations[WorkloadSimulator.failAnnotation] {
            // On an Indexed Job, a list of indexes ("1,3") fails only the Pods of those indexes.
            let indexes = Set(failing.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) })
            if failing == "true" || slot.index.map(indexes.contains) == true { annotations[WorkloadSimulator.failAnnotation] = "true" }
        }
        var metadata: JSONValue = [
            "namespace": .string(namespace), "labels": .object(labels),
            "ownerReferences": [
                [
                    "apiVersion": .string(owner.apiVersion ?? "apps/v1"), "kind": .string(kind), "name": .string(ownerName), "uid": .string(uid),
                    "controller": true, "blockOwnerDeletion": true,
                ]
            ],
        ]
        if !annotations.isEmpty { metadata[member: "annotations"] = .object(annotations) }
        if let name = slot.name {
            metadata[member: "name"] = .string(name)
        } else if let index = slot.index {
            metadata[member: "generateName"] = .string("\(ownerName.prefix(50))-\(index)-")
        } else {
            metadata[member: "generateName"] = .string("\(ownerName.prefix(57))-")
        }
        var pod: JSONValue = ["apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"] ?? [:]]
        KubernetesDefaults.podSpec(at: ["spec"], in: &pod)
        if kind == "DaemonSet" {
            // As the DaemonSet controller: tolerations of the node conditions and of a cordon, so
            // its Pods stay where it put them.
            var tolerations = pod.value(at: "spec", "tolerations")?.arrayElements ?? []
            let present = Set(tolerations.map(Toleration.init))
            tolerations += Toleration.daemonSetDefaults.filter { !present.contains($0) }.map(\.json)
            pod.set(.array(tolerations), at: ["spec", "tolerations"])
        }
        KubernetesDefaults.defaultTolerationSeconds(in: &pod)
        // Scheduled as it is made: one write less per Pod than the scheduler's separate binding.
        // With every node cordoned it is made unscheduled, and the scheduler leaves it Pending.
        if kind == "StatefulSet", let name = slot.name {
            pod.set(.string(name), at: ["spec", "hostname"])
            if let service = owner.string(at: "spec", "serviceName"), !service.isEmpty { pod.set(.string(service), at: ["spec", "subdomain"]) }
            guard await claimsFromTemplates(of: owner, podName: name, pod: &pod) else { return nil }
        }
        // A Pod with claims waits for the scheduler, which binds it where its volumes are.
        var node = slot.node
        if node == nil, VolumeController.claimNames(of: pod).isEmpty, case .success(let fitting) = nodes.fitting(PodPlacement(of: pod)) {
            node = fitting.randomElement()
        }
        if let node { pod.set(.string(node), at: ["spec", "nodeName"]) }
        if let index = slot.index { Self.indexPod(&pod, job: ownerName, index: index) }
        let source = Self.controllerSource(kind)
        // Through kube-apiserver's Priority and ResourceQuota admission, as every controller's Pod goes.
        let refusal: String?
        do {
            (pod, refusal) = try await admitted(pod, namespace: namespace)
        } catch {
            logger.debug("pod admission not read", metadata: ["tether.object": "\(namespace)/\(ownerName)", "tether.error": "\(error)"])
            return nil
        }
        if let refusal {
            let generated = pod.name ?? pod.metadata["generateName"]?.stringValue ?? ""
            await events.record(
                .warning, "FailedCreate", "Error creating: pods \"\(generated)\" is forbidden: \(refusal)", about: owner, source: source)
            return nil
        }
        do throws(StoreError) {
            let created = try await store.create(pod, as: Self.pods, dryRun: false)
            // Counted at once, so the next Pod made in this pass sees the room this one took.
            nodes.track(created, key: ObjectKey(type: Self.pods, namespace: created.namespace, name: created.name ?? ""), gone: false)
            let podName = created.name ?? ""
            let message = kind == "StatefulSet" ? "create Pod \(podName) in StatefulSet \(ownerName) successful" : "Created pod: \(podName)"
            await events.record(.normal, "SuccessfulCreate", message, about: owner, source: source)
            if let node {
                await events.record(
                    .normal, "Scheduled", "Successfully assigned \(namespace)/\(podName) to \(node)", about: created,
                    source: EventRecorder.Source(component: "default-scheduler"))
            }
            return created
        } catch  where error.code == .alreadyExists {
            // A name taken meanwhile (a StatefulSet's Pod being replaced): the deletion's event brings the owner back.
        } catch {
            logger.debug("simulated pod not created", metadata: ["tether.object": "\(namespace)/\(ownerName)", "tether.error": "\(error)"])
            await events.record(.warning, "FailedCreate", "Error creating: \(error.message)", about: owner, source: source)
        }
        return nil
    }

    /// A controller's Pod as admission leaves it (its namespace's default requests and limits,
    /// its priority), or why admission refuses it.
    private func admitted(_ pod: JSONValue, namespace: String) async throws(StoreError) -> (JSONValue, String?) {
        let ranges = try await store.list(Self.limitRanges, options: ListOptions(namespace: namespace)).objects
        let classes = try await store.list(Self.priorityClasses, options: ListOptions()).objects
        let admitted: JSONValue
        do throws(LimitRangeAdmission.Refusal) {
            let limited = try LimitRangeAdmission.admit(pod, limitRanges: ranges)
            do throws(PodPriority.Refusal) {
                admitted = try PodPriority.admit(limited, classes: classes)
            } catch {
                return (pod, error.reason)
            }
        } catch {
            return (pod, error.reason)
        }
        let quotas = try await store.list(QuotaController.quotas, options: ListOptions(namespace: namespace)).objects
        guard !quotas.isEmpty else { return (admitted, nil) }
        let refusal = try await ResourceQuotaAdmission.refusal(of: admitted, resource: "pods", group: "", quotas: quotas) { kind throws(StoreError) in
            try await store.list(
                ResourceType(group: kind.group, resource: kind.resource, namespaced: true), options: ListOptions(namespace: namespace)
            ).objects
        }
        return (admitted, refusal?.reason)
    }

    /// The controller that records the events of a `kind`'s Pods, by the name Kubernetes gives it.
    static func controllerSource(_ kind: String) -> EventRecorder.Source {
        EventRecorder.Source(component: kind == "ReplicationController" ? "replication-controller" : "\(kind.lowercased())-controller")
    }
}
