import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore

/// A workload simulator in the spirit of KWOK: no container runs; the status a real cluster's
/// controllers would write is written instead, after the ready delay.
///
/// Driven by the store's watches: every change to a simulated kind queues its key, and a single
/// worker reconciles keys one at a time. The only timers are the ones a delay needs (readiness,
/// grace periods, minReadySeconds, a progress deadline), one per object at most. An
/// object annotated `sim.tether.io/fail: "true"` never becomes ready.
public final class WorkloadSimulator: Service, Sendable {
    public static let failAnnotation = "sim.tether.io/fail"

    let store: any ResourceStore
    private let registry: KindRegistry
    let settings: SimulationSettings
    let logger: Logger
    let queue = WorkQueue()
    /// When each object's current generation was first seen, so its progress can be timed; by uid
    /// too, so an object made again under the same name (a StatefulSet's Pod) starts again.
    private let observed = Mutex<[ObjectKey: (uid: String?, generation: Int64, since: ContinuousClock.Instant)]>([:])
    /// When each Pod being deleted gracefully was first seen so, to time its containers' stop.
    private let terminating = Mutex<[ObjectKey: (uid: String, since: ContinuousClock.Instant)]>([:])
    private let addresses: AddressAllocator
    let pods: PodController
    private let endpoints: EndpointsController
    let events: EventRecorder
    let cronJobs: CronJobController
    private let autoscalers: AutoscalerController
    private let disruptions: DisruptionController
    private let quotas: QuotaController
    let volumes: VolumeController
    let nodes: NodeAvailability
    /// Pods the scheduler found no node for, with their requests; scheduled again when room opens.
    let unscheduled = Mutex<[ObjectKey: PodPlacement]>([:])
    /// When each Pod that a node's `NoExecute` taint evicts started counting its toleration, by node.
    let evictionClocks = Mutex<[String: [ObjectKey: ContinuousClock.Instant]]>([:])
    /// Each node's memory pressure from its Pods' usage (``checkMemoryPressure()``).
    let memoryPressure = Mutex<[String: NodeMemoryPressure]>([:])
    let lastMemoryCheck = Mutex<ContinuousClock.Instant?>(nil)

    public init(store: any ResourceStore, registry: KindRegistry, settings: SimulationSettings, logger: Logger) {
        self.store = store
        self.registry = registry
        self.settings = settings
        self.logger = logger
        self.addresses = AddressAllocator(clusterName: settings.clusterName)
        self.events = EventRecorder(store: store, logger: logger)
        self.nodes = NodeAvailability(settings: settings)
        self.pods = PodController(store: store, settings: settings, events: events, nodes: nodes, logger: logger)
        self.endpoints = EndpointsController(store: store, logger: logger)
        self.disruptions = DisruptionController(store: store, logger: logger)
        self.quotas = QuotaController(store: store, logger: logger)
        self.volumes = VolumeController(store: store, events: events, logger: logger)
        self.cronJobs = CronJobController(store: store, registry: registry, events: events, logger: logger)
        self.autoscalers = AutoscalerController(
            store: store, kinds: registry.kinds, events: events, metrics: SimulatedMetrics(store: store), logger: logger)
    }

    static let simulated =
        [
            "replicasets", "deployments", "statefulsets", "daemonsets", "jobs", "cronjobs", "services", "ingresses", "namespaces", "pods", "nodes",
            "poddisruptionbudgets", "horizontalpodautoscalers", "replicationcontrollers", "persistentvolumes", "priorityclasses",
            "limitranges", "storageclasses",
        ] + QuotaController.followed

    public func run() async throws {
        try await Nodes(store: store, settings: settings).reconcile()
        await volumes.ensureDefaultClass()
        // Known before any Pod is scheduled; the Nodes' watch keeps it current.
        for node in try await store.list(Nodes.type, options: ListOptions()).objects {
            _ = nodes.update(node.name ?? "", from: node)
        }
        for pod in try await store.list(PodController.pods, options: ListOptions()).objects {
            nodes.track(pod, key: key(PodController.pods, pod), gone: false)
        }
        await addresses.loadPodAddresses(store: store)
        let types = registry.kinds.filter { Self.simulated.contains($0.plural) }.map {
            ResourceType(group: $0.group, resource: $0.plural, namespaced: $0.namespaced)
        }
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for type in types {
                    group.addTask { await self.follow(type) }
                }
                group.addTask { await self.events.run() }
                // One timer per object, replaced whenever the object is reconciled again, so a
                // rollout's progress deadline (ten minutes by default) leaves no sleeper per step.
                var timers: [ObjectKey: Task<Void, Never>] = [:]
                for await key in self.queue.keys {
                    timers.removeValue(forKey: key)?.cancel()
                    guard let delay = await self.reconcile(key) else { continue }
                    timers[key] = Task { [queue = self.queue] in
                        // The delay itself: the simulated controller's work takes this long.
                        guard (try? await Task.sleep(for: delay)) != nil else { return }
                        queue.add(key)
                    }
                }
                for timer in timers.values { timer.cancel() }
            }
        }
    }

    /// Lists `type`, queues every object, then queues whatever the watch reports; relists if the watch ends.
    private func follow(_ type: ResourceType) async {
        while !Task.isCancelled {
            do {
                let page = try await store.list(type, options: ListOptions())
                for object in page.objects { queue.add(key(type, object)) }
                for try await event in try await store.watch(type, namespace: nil, from: page.resourceVersion) {
                    if type == PodController.pods { await podChanged(event.object, deleted: event.kind == .deleted) }
                    if type == PodController.pods || type == Self.deployments || PodController.ownerTypes.values.contains(type) {
                        queue.add(Self.memoryCheck)
                    }
                    // From the watch, not from a reconcile, so a quota's own status write settles.
                    for quota in quotas.quotas(counting: type, in: event.object.namespace) {
                        queue.add(ObjectKey(type: QuotaController.quotas, namespace: event.object.namespace, name: quota))
                    }
                    queue.add(key(type, event.object))
                }
            } catch {
                logger.debug("simulator watch restarting", metadata: ["tether.kind": "\(type)", "tether.error": "\(error)"])
                // A watch that fell behind relists at once; anything else (a failing store) waits a
                // moment, so a persistent failure is not a busy loop.
                if (error as? StoreError)?.code != .watchOverflow {
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
    }

    /// Every controller that makes Pods (in `namespace`, or everywhere) looks again: what refused
    /// its Pods (a PriorityClass, a quota) changed. Kubernetes' controllers retry on a back-off;
    /// here the retry follows the event that can change the answer.
    private func queuePodOwners(in namespace: String?) async {
        for type in PodController.ownerTypes.values {
            for owner in (try? await store.list(type, options: ListOptions(namespace: namespace)).objects) ?? [] { queue.add(key(type, owner)) }
        }
    }

    func key(_ type: ResourceType, _ object: JSONValue) -> ObjectKey {
        ObjectKey(type: type, namespace: object.namespace, name: object.name ?? "")
    }

    /// Brings one object's status one step closer to what a real cluster would show; returns when to look again.
    private func reconcile(_ key: ObjectKey) async -> Duration? {
        if key.type == PodController.priorityClasses || key.type == PodController.limitRanges {
            // A controller whose Pods were refused (a missing class, a range's bounds) tries again.
            await queuePodOwners(in: key.type == PodController.limitRanges ? key.namespace : nil)
            return nil
        }
        if key.type == VolumeController.classes { return await queueClaims(waitingFor: key.name) }
        if key == Self.memoryCheck { return await checkMemoryPressure() }
        guard let object = try? await store.get(key.type, namespace: key.namespace, name: key.name) else {
            await volumeObjectGone(key)
            _ = observed.withLock { $0.removeValue(forKey: key) }
            if key.type == EndpointsController.services { await endpoints.serviceDeleted(namespace: key.namespace, name: key.name) }
            if key.type == DisruptionController.budgets { disruptions.budgetDeleted(namespace: key.namespace, name: key.name) }
            if key.type == QuotaController.quotas { quotas.quotaDeleted(namespace: key.namespace, name: key.name) }
            if key.type == AutoscalerController.autoscalers { autoscalers.autoscalerDeleted(namespace: key.namespace, name: key.name) }
            queueAutoscalers(of: key)
            if key.type == Nodes.type { _ = await nodeChanged(name: key.name, object: nil) }
            if key.type == PodController.pods { _ = unscheduled.withLock { $0.removeValue(forKey: key) } }
            return nil
        }
        queueAutoscalers(of: key)
        let elapsed = progress(of: key, uid: object.uid, generation: object.generation ?? 1)
        let failing = object.annotations[Self.failAnnotation] == "true"
        var plan = StatusPlan(object: object, elapsed: elapsed, readyAfter: settings.readyAfter, failing: failing)
        switch key.type.resource {
        case "statefulsets":
            // Counted from its Pods, which its controller's step (first) makes or deletes.
            guard let owned = await pods.sync(object, kind: "StatefulSet"), let template = object.value(at: "spec", "template") else {
                return nil
            }
            plan.statefulSet(pods: owned, updateRevision: "\(key.name)-\(PodTemplateHash.of(template))", now: Date())
        case "replicasets":
            // Counted from its Pods, which its controller's step (first) makes or deletes.
            guard let owned = await pods.sync(object, kind: "ReplicaSet") else { return nil }
            plan.replicaSet(pods: owned, now: Date())
            // A ReplicaSet the API just recorded may be its Deployment's newest: look again.
            if let owner = Self.controller(of: object), owner.kind == "Deployment" {
                queue.add(ObjectKey(type: Self.deployments, namespace: key.namespace, name: owner.name))
            }
        case "replicationcontrollers":
            // The ReplicaSet controller's older sibling: the same step and the same counts.
            guard let owned = await pods.sync(object, kind: "ReplicationController") else { return nil }
            plan.replicaSet(pods: owned, now: Date())
        case "persistentvolumes", "persistentvolumeclaims":
            guard let status = await volumeObjectChanged(object, key: key) else { return nil }
            plan.counted(status, lookAgainAfter: nil)
        case "deployments":
            guard let (sets, newest) = await rollOut(object) else { return nil }
            plan.deployment(replicaSets: sets, newest: newest, now: Date())
        case "daemonsets":
            // Counted from its Pods, which its controller's step (first) makes or deletes.
            guard let owned = await pods.sync(object, kind: "DaemonSet"), let template = object.value(at: "spec", "template") else {
                return nil
            }
            let admitted = nodes.daemonNodes(for: PodPlacement(template: template, namespace: key.namespace ?? "default"))
            plan.daemonSet(pods: owned, nodes: admitted, revision: "\(key.name)-\(PodTemplateHash.of(template))", now: Date())
        case "jobs":
            if let expiry = PodController.expiry(of: object), expiry <= Date() {
                await deleteFinished(object, key: key)
                return nil
            }
            // Counted from its Pods, which its controller's step (first) makes or deletes.
            guard let owned = await pods.sync(object, kind: "Job") else { return nil }
            plan.job(pods: owned, now: Date())
            // A CronJob's Job: the CronJob counts it again (active, finished, history).
            if let owner = Self.controller(of: object), owner.kind == "CronJob" {
                queue.add(ObjectKey(type: CronJobController.cronJobs, namespace: key.namespace, name: owner.name))
            }
            var counted = object
            counted[member: "status"] = plan.status
            if let expiry = PodController.expiry(of: counted) {
                let delay = Duration.milliseconds(max(0, Int64(expiry.timeIntervalSinceNow * 1000)) + 100)
                plan.lookAgainAfter = min(plan.lookAgainAfter ?? delay, delay)
            }
        case "namespaces": plan.namespace()
        case "nodes":
            if await followKubelet(of: object) { return nil }
            return await nodeChanged(name: key.name, object: object)
        case "cronjobs":
            guard let counted = await cronJobs.sync(object) else { return nil }
            plan.counted(counted.status, lookAgainAfter: counted.lookAgainAfter)
        case "horizontalpodautoscalers":
            guard let counted = await autoscalers.sync(object) else { return nil }
            plan.counted(counted.status, lookAgainAfter: counted.lookAgainAfter)
        case "resourcequotas":
            guard let counted = await quotas.status(of: object) else { return nil }
            // Room made or limits raised: the controllers whose Pods were refused try again.
            if counted != object["status"] { await queuePodOwners(in: key.namespace) }
            plan.counted(counted, lookAgainAfter: nil)
        case "poddisruptionbudgets":
            let counted = await disruptions.status(of: object)
            plan.counted(counted.status, lookAgainAfter: counted.lookAgainAfter)
        case "pods":
            if let node = object.string(at: "spec", "nodeName"), nodes.kubeletStopped(node) {
                await podOnLostNode(object, key: key)
                return nil
            }
            if object.deletionTimestamp != nil { return await endTerminating(object, key: key) }
            // Finished or evicted: a Pod's end is final.
            if object.podFinished { return nil }
            // The scheduler's job, written first (spec); the update's own event brings the key back.
            guard let node = object.string(at: "spec", "nodeName") else {
                await schedule(object, key: key)
                return nil
            }
            let podIP = await addresses.podIP(for: object)
            plan.pod(hostIP: Nodes.address(of: node), podIP: podIP, now: kubernetesTimestamp(), completes: Self.controller(of: object)?.kind == "Job")
        case "services", "ingresses":
            // The cluster IP is spec, written first; the update's own event brings the key back.
            if key.type.resource == "services", await assignClusterIP(object, key: key) { return nil }
            let wantsAddress = key.type.resource == "ingresses" || object["spec"]?["type"]?.stringValue == "LoadBalancer"
            if wantsAddress, StatusPlan.loadBalancerIP(of: object) == nil {
                plan.loadBalancer(ip: await addresses.loadBalancerIP(store: store))
            }
            if key.type == EndpointsController.services { await endpoints.sync(object) }
        default: return nil
        }
        if plan.status != object["status"] {
            var updated = object
            updated[member: "status"] = plan.status
            do {
                _ = try await store.updateStatus(updated, as: key.type, dryRun: false)
                await recordEvents(of: object, becoming: plan.status)
            } catch {
                // Someone else wrote first: the watch queues the key again with the newer object.
                logger.debug("simulated status not written", metadata: ["tether.object": "\(key)", "tether.error": "\(error)"])
            }
        }
        return plan.lookAgainAfter
    }

    /// The autoscalers whose target is the object at `key` look at it again.
    private func queueAutoscalers(of key: ObjectKey) {
        guard AutoscalerController.scalable.values.contains(key.type) else { return }
        for name in autoscalers.autoscalers(targeting: key) {
            queue.add(ObjectKey(type: AutoscalerController.autoscalers, namespace: key.namespace, name: name))
        }
    }

    /// A Pod changed: the Services and disruption budgets selecting it count again, and its
    /// owner counts its status again and takes its next step (the ordered and rolling ones wait
    /// on their Pods' readiness). One that is gone frees its address; its owner makes another if
    /// it still wants one, as soon as the Pod is being deleted.
    private func podChanged(_ pod: JSONValue, deleted: Bool) async {
        if nodes.track(pod, key: key(PodController.pods, pod), gone: deleted) { scheduleWaitingPods() }
        for budget in disruptions.budgets(selecting: pod) {
            queue.add(ObjectKey(type: DisruptionController.budgets, namespace: pod.namespace, name: budget))
        }
        for service in await endpoints.services(selecting: pod) {
            queue.add(ObjectKey(type: EndpointsController.services, namespace: pod.namespace, name: service))
        }
        if deleted { await addresses.release(pod: pod) }
        await claimsOfPodChanged(pod, deleted: deleted)
        // Every owner counts its status from its Pods; one being deleted no longer counts, and its
        // owner makes another meanwhile.
        if let owner = Self.controller(of: pod), let type = PodController.ownerTypes[owner.kind] {
            queue.add(ObjectKey(type: type, namespace: pod.namespace, name: owner.name))
        }
    }

    /// The kubelet's part of a Pod's graceful deletion: its containers stop (within its grace
    /// period, here at most the ready delay), then it is deleted for good. Returns when to look again.
    private func endTerminating(_ pod: JSONValue, key: ObjectKey) async -> Duration? {
        guard let uid = pod.uid else { return nil }
        let grace = Duration.seconds(pod.metadata["deletionGracePeriodSeconds"]?.integerValue ?? 0)
        let stopping = min(grace, settings.readyAfter)
        let now = ContinuousClock.now
        let since = terminating.withLock { terminating in
            if let seen = terminating[key], seen.uid == uid { return seen.since }
            terminating[key] = (uid, now)
            return now
        }
        let elapsed = now - since
        if elapsed == .zero, let node = pod.string(at: "spec", "nodeName") {
            for container in pod.value(at: "spec", "containers")?.arrayElements ?? [] {
                guard let name = container["name"]?.stringValue else { continue }
                await events.record(
                    .normal, "Killing", "Stopping container \(name)", about: pod, fieldPath: "spec.containers{\(name)}",
                    source: EventRecorder.Source(component: "kubelet", host: node))
            }
        }
        guard elapsed >= stopping else { return stopping - elapsed }
        _ = terminating.withLock { $0.removeValue(forKey: key) }
        do throws(StoreError) {
            _ = try await store.delete(
                key.type, namespace: key.namespace, name: key.name, preconditions: DeletePreconditions(uid: uid, gracePeriodSeconds: 0),
                dryRun: false)
        } catch  where error.code == .notFound || error.code == .conflict {
            // Deleted already, or a new Pod under the same name.
        } catch {
            logger.debug("terminated pod not deleted", metadata: ["tether.object": "\(key)", "tether.error": "\(error)"])
        }
        return nil
    }

    /// The TTL-after-finished controller's deletion of a Job whose time is up; its Pods go with it.
    private func deleteFinished(_ job: JSONValue, key: ObjectKey) async {
        do throws(StoreError) {
            _ = try await store.delete(key.type, namespace: key.namespace, name: key.name, preconditions: .init(uid: job.uid), dryRun: false)
            logger.debug("finished job deleted after its ttl", metadata: ["tether.object": "\(key)"])
        } catch  where error.code == .notFound || error.code == .conflict {
            // Gone already, or made again under the same name.
        } catch {
            logger.debug("finished job not deleted", metadata: ["tether.object": "\(key)", "tether.error": "\(error)"])
        }
    }

    /// How long the object's current generation has been seen (zero the first time).
    private func progress(of key: ObjectKey, uid: String?, generation: Int64) -> Duration {
        let now = ContinuousClock.now
        return observed.withLock { observed in
            if let seen = observed[key], seen.uid == uid, seen.generation == generation { return now - seen.since }
            observed[key] = (uid, generation, now)
            return .zero
        }
    }

    static let deployments = ResourceType(group: "apps", resource: "deployments", namespaced: true)
    static let replicaSets = ResourceType(group: "apps", resource: "replicasets", namespaced: true)

    /// The kind, name and uid of an object's controller (its ownerReference with `controller: true`).
    static func controller(of object: JSONValue) -> (kind: String, name: String, uid: String)? {
        guard let owner = object.metadata["ownerReferences"]?.arrayElements.first(where: { $0["controller"] == .bool(true) }),
            let kind = owner["kind"]?.stringValue, let name = owner["name"]?.stringValue, let uid = owner["uid"]?.stringValue
        else { return nil }
        return (kind, name, uid)
    }

    /// The Deployment controller's step: its ReplicaSets (the API records one per template,
    /// holding no replicas) scaled towards the newest holding `spec.replicas`, as its strategy
    /// allows. `Recreate` scales the old ones to zero and the newest up once their Pods are gone
    /// (terminating ones too);
    /// `RollingUpdate` adds new Pods up to `maxSurge` above the count and removes old ones while
    /// at least the count less `maxUnavailable` stay available (unavailable old ones first), so
    /// each step waits on the Pods' readiness. A paused Deployment is only scaled. Returns the
    /// ReplicaSets as they are after the step, and the newest's name; nil when they could not be listed.
    private func rollOut(_ deployment: JSONValue) async -> (sets: [JSONValue], newest: String?)? {
        guard let uid = deployment.uid, let namespace = deployment.namespace,
            let page = try? await store.list(Self.replicaSets, options: ListOptions(namespace: namespace))
        else { return nil }
        var sets = page.objects.filter { Self.controller(of: $0)?.uid == uid }
        func revision(_ set: JSONValue) -> Int64 { set.annotations["deployment.kubernetes.io/revision"].flatMap { Int64($0) } ?? 0 }
        sets.sort { revision($0) < revision($1) }
        guard let newestIndex = sets.indices.last, deployment.deletionTimestamp == nil else { return (sets, sets.last?.name) }
        let desired = max(0, deployment.integer(at: "spec", "replicas") ?? 1)
        var wanted = sets.map { $0.integer(at: "spec", "replicas") ?? 0 }
        func available(_ index: Int) -> Int64 { sets[index].integer(at: "status", "availableReplicas") ?? 0 }
        let old = sets.indices.dropLast()
        let (maxSurge, maxUnavailable) = StatusPlan.rollingBounds(of: deployment)
        // A change of the count while several ReplicaSets hold Pods (one annotated for another count).
        let rolling = deployment.string(at: "spec", "strategy", "type") != "Recreate"
        let scalingEvent =
            rolling
            && sets.indices.filter { wanted[$0] > 0 }.count > 1
            && sets.indices.contains { index in
                wanted[index] > 0 && sets[index].annotations[StatusPlan.desiredReplicasAnnotation].map { $0 != String(desired) } ?? false
            }
        if scalingEvent {
            wanted = StatusPlan.proportionallyScaled(
                sizes: wanted, maxReplicas: sets.map { $0.annotations[StatusPlan.maxReplicasAnnotation].flatMap { Int64($0) } },
                desired: desired, maxSurge: maxSurge, current: deployment.integer(at: "status", "replicas") ?? wanted.reduce(0, +))
        } else if deployment.value(at: "spec", "paused") == .bool(true) {
            // Paused: the count changes only the newest, and old Pods stay where they are.
            wanted[newestIndex] = max(0, desired - old.reduce(0) { $0 + wanted[$1] })
        } else if deployment.string(at: "spec", "strategy", "type") == "Recreate" {
            for index in old { wanted[index] = 0 }
            // New Pods only once the old ones are gone, terminating ones included (nil: not known).
            let oldOwners = Set(old.compactMap { sets[$0].uid })
            let oldPods: Int? =
                oldOwners.isEmpty
                ? 0
                : (try? await store.list(PodController.pods, options: ListOptions(namespace: namespace)))?.objects.filter {
                    oldOwners.contains(Self.controller(of: $0)?.uid ?? "")
                }.count
            if oldPods == 0 { wanted[newestIndex] = desired }
        } else {
            // Up: new Pods while the total stays within the count plus the surge.
            if wanted[newestIndex] > desired {
                wanted[newestIndex] = desired
            } else {
                let room = desired + maxSurge - wanted.reduce(0, +)
                if room > 0 { wanted[newestIndex] = min(desired, wanted[newestIndex] + room) }
            }
            // Down: old Pods while enough stay available, the unavailable ones first (they count for nothing).
            let minAvailable = desired - maxUnavailable
            let newUnavailable = max(0, wanted[newestIndex] - available(newestIndex))
            var cleanup = max(0, wanted.reduce(0, +) - minAvailable - newUnavailable)
            for index in old where cleanup > 0 {
                let unhealthy = min(cleanup, max(0, wanted[index] - available(index)))
                wanted[index] -= unhealthy
                cleanup -= unhealthy
            }
            let availableNow = sets.indices.reduce(Int64(0)) { $0 + min(available($1), wanted[$1]) }
            var scaleDown = max(0, availableNow - minAvailable)
            for index in old where scaleDown > 0 {
                let removed = min(scaleDown, wanted[index])
                wanted[index] -= removed
                scaleDown -= removed
            }
        }
        // The newest ReplicaSet counts its Pods available after the Deployment's minReadySeconds.
        let minReady = deployment.value(at: "spec", "minReadySeconds") ?? 0
        for index in sets.indices {
            let had = sets[index].integer(at: "spec", "replicas") ?? 0
            let staleMinimum = index == newestIndex && (sets[index].value(at: "spec", "minReadySeconds") ?? 0) != minReady
            // What it is scaled for, as the controller marks it; after a scaling event on every one.
            let staleCount = scalingEvent && sets[index].annotations[StatusPlan.desiredReplicasAnnotation] != String(desired)
            guard had != wanted[index] || staleMinimum || staleCount else { continue }
            var scaled = sets[index]
            scaled.set(.integer(wanted[index]), at: ["spec", "replicas"])
            scaled.set(.string(String(desired)), at: ["metadata", "annotations", StatusPlan.desiredReplicasAnnotation])
            scaled.set(.string(String(desired + maxSurge)), at: ["metadata", "annotations", StatusPlan.maxReplicasAnnotation])
            if index == newestIndex { scaled.set(minReady, at: ["spec", "minReadySeconds"]) }
            // A conflict means the API wrote it meanwhile; its event brings the Deployment back.
            guard let written = try? await store.update(scaled, as: Self.replicaSets, dryRun: false) else { continue }
            sets[index] = written
            guard had != wanted[index] else { continue }
            await events.record(
                .normal, "ScalingReplicaSet",
                "Scaled \(wanted[index] > had ? "up" : "down") replica set \(sets[index].name ?? "") from \(had) to \(wanted[index])",
                about: deployment, source: EventRecorder.Source(component: "deployment-controller"))
        }
        return (sets, sets[newestIndex].name)
    }

    /// The API server's job in a real cluster: a Service gets a cluster IP when it has none.
    /// Returns whether it wrote one.
    private func assignClusterIP(_ service: JSONValue, key: ObjectKey) async -> Bool {
        guard service["spec"]?["clusterIP"]?.stringValue == nil, service["spec"]?["type"]?.stringValue != "ExternalName" else {
            return false
        }
        var updated = service
        var spec = service["spec"] ?? [:]
        let ip = await addresses.clusterIP(store: store)
        spec[member: "clusterIP"] = .string(ip)
        spec[member: "clusterIPs"] = [.string(ip)]
        updated[member: "spec"] = spec
        return (try? await store.update(updated, as: key.type, dryRun: false)) != nil
    }
}
