import Foundation
import Logging
import Metrics
import ServiceLifecycle
import TetherModel
import TetherPlugin
import TetherWire

/// What the applier reports, for tools and tests that watch it in-process.
public enum ApplierEvent: Sendable {
    case status(StatusReport.ObjectStatus)
    case ack(Ack)
}

/// How the applier works.
public struct ApplierSettings: Sendable {
    public var cluster: String
    /// Written as `tether.io/origin` on every object: the hub's identity URI.
    public var origin: String
    /// Where `desired.json` is kept.
    public var stateDirectory: String
    /// Objects reconciled at once.
    public var workers: Int = 4
    /// Every object is checked again this often, on top of what watches report.
    public var resyncInterval: Duration = .seconds(300)
    /// A failing object is retried after this, doubling per failure up to `retryMax`.
    public var retryInitial: Duration = .seconds(1)
    public var retryMax: Duration = .seconds(60)
    /// Objects per `status` message.
    public var statusBatchSize: Int = 500
    /// Desired-state messages from the session not yet taken in; more close the session.
    public var inboundCapacity: Int = 64
    /// What the agent may write; nil allows the kinds its plugins propagate, outside the system namespaces.
    public var allowList: AllowList?
    /// A desired set that would remove more than this share of what the agent manages (and at
    /// least `pruneGuardMinimum` objects) is held until an operator confirms.
    public var maximumPruneFraction: Double = 0.5
    public var pruneGuardMinimum: Int = 5

    public init(cluster: String, origin: String, stateDirectory: String) {
        self.cluster = cluster
        self.origin = origin
        self.stateDirectory = stateDirectory
    }
}

/// The agent's reconcile loop: keeps a member cluster holding the desired set the hub sent.
///
/// Desired state arrives as `snapshot`/`delta` (``offer(_:)``), is persisted, and each changed
/// object is queued. Workers apply in dependency order (the kind's ``ApplyPhase``), prune
/// managed objects that left the set, and refuse to touch an existing object Tether does not
/// manage. One watch per kind over the objects labelled `tether.io/managed-by=<cluster>` keeps a
/// cache of live managed objects: a deleted or edited object is queued again (drift), and health
/// changes become status. A periodic resync queues everything. Status goes out coalesced, in
/// batches, whenever a session is up; an `ack` follows each revision's first pass.
public actor Applier: Service {
    public let settings: ApplierSettings
    private let client: KubernetesClient
    private let registry: KindRegistry
    private let link: HubLink
    private var logger: Logger

    // Desired state.
    private var revision: UInt64?
    private var desired: [ObjectReference: JSONValue] = [:]
    /// The hub state trusted for desired state, and what the agent holds back from now.
    private var baseline = FencingBaseline()
    private var hold: Ack.Hold?
    private let fencing: Fencing
    private let allowList: AllowList
    /// Objects the agent created or adopted, by UID: it prunes these and nothing else.
    private var inventory: [ObjectReference: String] = [:]
    private var inventoryWrite: Task<Void, Never>?
    /// A snapshot being assembled: its revision, chunk count, the next chunk expected, and the objects so far.
    private var snapshotChunks: (revision: UInt64, count: Int, next: Int, objects: [JSONValue])?

    // Member state.
    private var served: [String: ServedResource] = [:]
    private var live: [ObjectReference: JSONValue] = [:]
    /// What was last applied (or found already in place) per object, to tell drift from an update.
    private var lastApplied: [ObjectReference: JSONValue] = [:]
    /// Objects leaving the set that stay in the member: released (marks removed), not deleted.
    private var orphaning: Set<ObjectReference> = []
    private var watched: Set<String> = []
    private var watchTasks: [Task<Void, Never>] = []

    // Work.
    private var queue = ApplyQueue(priorities: 10)
    private var idleWorkers: [CheckedContinuation<ObjectReference?, Never>] = []
    private var failures: [ObjectReference: Int] = [:]
    private var retries: [ObjectReference: Task<Void, Never>] = [:]
    private var stopped = false

    // Reports.
    private var statuses: [ObjectReference: StatusReport.ObjectStatus] = [:]
    private var unsent: [ObjectReference: StatusReport.ObjectStatus] = [:]
    private var ackPending: (revision: UInt64, remaining: Set<ObjectReference>, failures: [Ack.ObjectFailure])?
    private var ackReady: Ack?
    private let doorbell: AsyncStream<Void>.Continuation
    private let doorbellStream: AsyncStream<Void>

    /// A desired-state message with the `welcome` of the session that brought it.
    struct Incoming: Sendable {
        var message: WireMessage
        var welcome: Welcome?
    }

    /// Desired-state messages from the session, in order; bounded by `inboundCapacity`.
    nonisolated let inbound: AsyncStream<Incoming>.Continuation
    private let inboundStream: AsyncStream<Incoming>

    /// Every status change and ack, as they happen; the newest 4096 are kept for a slow reader.
    public nonisolated let events: AsyncStream<ApplierEvent>
    private let eventSink: AsyncStream<ApplierEvent>.Continuation

    private let appliedCounter: Counter
    private let driftCounter: Counter

    public init(settings: ApplierSettings, client: KubernetesClient, registry: KindRegistry, link: HubLink, logger: Logger) {
        self.settings = settings
        self.client = client
        self.registry = registry
        self.link = link
        var logger = logger
        logger[metadataKey: "tether.cluster"] = "\(settings.cluster)"
        self.logger = logger
        (doorbellStream, doorbell) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        (inboundStream, inbound) = AsyncStream.makeStream(of: Incoming.self, bufferingPolicy: .bufferingOldest(settings.inboundCapacity))
        fencing = Fencing(maximumPruneFraction: settings.maximumPruneFraction, pruneGuardMinimum: settings.pruneGuardMinimum)
        allowList = settings.allowList ?? AllowList(
            kinds: Set(registry.kinds.filter { registry.plugin(apiVersion: $0.apiVersion, kind: $0.kind).propagates($0) }.map {
                AllowList.key(apiVersion: $0.apiVersion, kind: $0.kind)
            })
        )
        (events, eventSink) = AsyncStream.makeStream(of: ApplierEvent.self, bufferingPolicy: .bufferingNewest(4096))
        appliedCounter = Counter(label: "tether_agent_applies_total")
        driftCounter = Counter(label: "tether_agent_drift_repairs_total")
    }

    // MARK: Session side

    /// Hands a `snapshot` or `delta` to the applier; false when too many are waiting (the caller
    /// then ends the session, and the hub resends from the last revision on reconnect).
    public nonisolated func offer(_ message: WireMessage, from welcome: Welcome? = nil) -> Bool {
        if case .enqueued = inbound.yield(Incoming(message: message, welcome: welcome)) { return true }
        return false
    }

    /// What the agent holds back from now, if anything (reported in every `ack`).
    public var currentHold: Ack.Hold? { hold }

    /// The revision of the desired set held (persisted), which `hello` announces.
    public var lastRevision: UInt64? { revision }

    /// A new session: the hub may know nothing of what was reported before, so report it all again.
    public func sessionEstablished() {
        unsent = statuses
        if ackPending == nil, let revision { ackReady = Ack(revision: revision, hold: hold) }
        doorbell.yield()
    }

    // MARK: Running

    public func run() async throws {
        try loadPersistedState()
        await withDiscardingTaskGroup { group in
            group.addTask { await self.discoverAndWatch() }
            group.addTask { await self.takeInbound() }
            group.addTask { await self.report() }
            group.addTask { await self.resyncPeriodically() }
            for _ in 0..<max(1, settings.workers) {
                group.addTask { await self.work() }
            }
            // Ends on graceful shutdown, and on cancellation (another service of the group failed).
            await withTaskCancellationHandler {
                await withGracefulShutdownHandler {
                    await self.waitForever()
                } onGracefulShutdown: {
                    Task { await self.stop() }
                }
            } onCancel: {
                Task { await self.stop() }
            }
            // Stopped: end the sleeps (resync, retry backoff) and requests still in flight.
            group.cancelAll()
        }
        logger.info("applier stopped", metadata: ["tether.event": "applier.stopped"])
    }

    private var stopWaiters: [CheckedContinuation<Void, Never>] = []

    private func waitForever() async {
        if stopped { return }
        await withCheckedContinuation { stopWaiters.append($0) }
    }

    /// Ends every loop; used at shutdown.
    public func stop() {
        guard !stopped else { return }
        stopped = true
        for waiter in idleWorkers { waiter.resume(returning: nil) }
        idleWorkers.removeAll()
        for waiter in stopWaiters { waiter.resume() }
        stopWaiters.removeAll()
        for task in watchTasks { task.cancel() }
        for task in retries.values { task.cancel() }
        if inventoryWrite != nil { writeInventory() }
        inbound.finish()
        doorbell.finish()
        eventSink.finish()
    }

    private func loadPersistedState() throws {
        inventory = try Inventory.load(from: settings.stateDirectory, cluster: settings.cluster)
        guard let state = try PersistedDesiredState.load(from: settings.stateDirectory, cluster: settings.cluster) else { return }
        baseline = state.baseline ?? FencingBaseline(revision: state.revision)
        hold = state.hold
        install(revision: state.revision, objects: state.objects, persist: false)
        logger.info(
            "resuming from persisted desired state",
            metadata: [
                "tether.event": "applier.resumed", "tether.revision": "\(state.revision)", "tether.objects": "\(state.objects.count)",
                "tether.managed": "\(inventory.count)", "tether.held": "\(hold?.reason.rawValue ?? "no")",
            ]
        )
    }

    // MARK: Desired state

    private func takeInbound() async {
        for await incoming in inboundStream {
            switch incoming.message {
            case .snapshot(let snapshot): takeSnapshot(snapshot, from: incoming.welcome)
            case .delta(let delta): takeDelta(delta, from: incoming.welcome)
            default: break
            }
        }
    }

    /// Whether the agent applies nothing the hub sends (another federation, a rewound store).
    private var refusing: Bool {
        hold?.reason == .foreignFederation || hold?.reason == .revisionRegressed
    }

    /// Whether pruning waits for an operator (a new store, or a set that removes too much).
    private var pruneHeld: Bool { hold != nil }

    private func takeSnapshot(_ chunk: Snapshot, from welcome: Welcome?) {
        if chunk.chunkIndex == 0 { snapshotChunks = (chunk.revision, chunk.chunkCount, 0, []) }
        guard var assembling = snapshotChunks, assembling.revision == chunk.revision, assembling.count == chunk.chunkCount,
            assembling.next == chunk.chunkIndex
        else {
            resync("snapshot chunk \(chunk.chunkIndex + 1)/\(chunk.chunkCount) of revision \(chunk.revision) arrived out of order")
            return
        }
        assembling.objects += chunk.objects
        assembling.next += 1
        snapshotChunks = assembling
        guard chunk.chunkIndex == chunk.chunkCount - 1 else { return }
        snapshotChunks = nil
        accept(revision: chunk.revision, objects: assembling.objects, orphans: chunk.orphans ?? [], terms: chunk.terms, from: welcome)
    }

    private func takeDelta(_ delta: Delta, from welcome: Welcome?) {
        if refusing, let hold {
            // What was refused cannot be built on: a confirmation needs the whole set again.
            if delta.terms?.confirmedHold == hold.token {
                return resync("the hold was confirmed; asking the hub for the whole desired state")
            }
            refused(delta.toRevision)
            return
        }
        guard delta.fromRevision == revision else {
            resync("delta from revision \(delta.fromRevision) does not follow the held revision \(revision.map(String.init) ?? "none")")
            return
        }
        var objects = desired
        for reference in delta.deletes { objects[reference] = nil }
        for reference in delta.orphans ?? [] { objects[reference] = nil }
        for object in delta.upserts {
            if let reference = object.reference { objects[reference] = object }
        }
        accept(revision: delta.toRevision, objects: Array(objects.values), orphans: delta.orphans ?? [], terms: delta.terms, from: welcome)
    }

    /// Acknowledges `revision` as refused: the hold says why, and nothing of it was applied.
    private func refused(_ revision: UInt64) {
        let ack = Ack(revision: revision, hold: hold)
        ackReady = ack
        eventSink.yield(.ack(ack))
        doorbell.yield()
    }

    /// Decides what to do with a complete desired state before anything of it is applied
    /// (``Fencing``), then applies it, all of it or without pruning, or refuses it.
    private func accept(revision newRevision: UInt64, objects: [JSONValue], orphans: [ObjectReference], terms: DesiredStateTerms?, from welcome: Welcome?) {
        let incoming = Set(objects.compactMap(\.reference))
        let released = Set(orphans)
        let removals = Set(inventory.keys.filter { !incoming.contains($0) && !released.contains($0) && allowList.refusal(of: $0) == nil })
        let decision = fencing.decide(
            baseline: baseline, federation: welcome?.federation, epoch: welcome?.epoch, revision: newRevision, terms: terms,
            removals: removals, managed: inventory.count
        )
        let wasHeld = pruneHeld
        if decision.hold != hold {
            if let held = decision.hold {
                logger.warning(
                    "holding back from the hub's desired state until an operator confirms",
                    metadata: [
                        "tether.event": "applier.held", "tether.reason": "\(held.reason.rawValue)", "tether.message": "\(held.message)",
                        "tether.token": "\(held.token)", "tether.would_remove": "\(held.wouldRemove)", "tether.managed": "\(held.managed)",
                    ]
                )
            } else if let previous = hold {
                logger.notice(
                    "hold lifted; applying the desired state in full",
                    metadata: ["tether.event": "applier.hold_lifted", "tether.reason": "\(previous.reason.rawValue)"]
                )
            }
        }
        hold = decision.hold
        switch decision.action {
        case .refuse:
            refused(newRevision)
        case .apply:
            baseline = decision.baseline
            orphaning.formUnion(orphans)
            install(revision: newRevision, objects: objects, persist: true)
            // Pruning was held and no longer is: what left the set goes now.
            if wasHeld, !pruneHeld {
                for reference in inventory.keys where desired[reference] == nil { enqueue(reference) }
            }
        }
    }

    /// Ends the session so that the hub sends from the held revision again.
    private func resync(_ reason: String) {
        snapshotChunks = nil
        logger.warning("desired state out of step; reconnecting", metadata: ["tether.event": "applier.resync", "tether.reason": "\(reason)"])
        link.close(reason: reason)
    }

    private func install(revision newRevision: UInt64, objects: [JSONValue], persist: Bool) {
        var next: [ObjectReference: JSONValue] = [:]
        var malformed: [Ack.ObjectFailure] = []
        for object in objects {
            guard let reference = object.reference else {
                malformed.append(
                    Ack.ObjectFailure(
                        object: ObjectReference(apiVersion: object.apiVersion ?? "?", kind: object.kind ?? "?", name: object.name ?? "?"),
                        message: "the object lacks apiVersion, kind or metadata.name"
                    )
                )
                continue
            }
            if let refusal = allowList.refusal(of: reference) {
                // Reported, never applied: a hub may only ask for what this member allows.
                malformed.append(Ack.ObjectFailure(object: reference, message: refusal))
                setStatus(StatusReport.ObjectStatus(object: reference, state: .failed, health: .unknown, message: refusal))
                continue
            }
            next[reference] = decorated(object)
        }
        let changed = Set(next.keys.filter { next[$0] != desired[$0] })
        let removed = Set(desired.keys.filter { next[$0] == nil })
        desired = next
        revision = newRevision
        if persist {
            do {
                try PersistedDesiredState(cluster: settings.cluster, revision: newRevision, objects: objects, baseline: baseline, hold: hold)
                    .save(to: settings.stateDirectory)
            } catch {
                logger.error("cannot persist the desired state", metadata: ["tether.event": "applier.persist_failed", "tether.error": "\(error)"])
            }
        }
        logger.info(
            "desired state accepted",
            metadata: [
                "tether.event": "applier.desired", "tether.revision": "\(newRevision)", "tether.objects": "\(next.count)",
                "tether.changed": "\(changed.count)", "tether.removed": "\(removed.count)",
            ]
        )
        let work = changed.union(removed)
        ackPending = (newRevision, work, malformed)
        if work.isEmpty { finishAck() }
        for reference in work {
            failures[reference] = nil
            retries.removeValue(forKey: reference)?.cancel()
            enqueue(reference)
        }
        watchKinds(of: Array(next.keys))
    }

    /// The object as applied: the member's copy from its plugin, marked as Tether's.
    private func decorated(_ object: JSONValue) -> JSONValue {
        var copy = registry.plugin(for: object).prepareForMember(object)
        var labels = copy.labels
        labels[ManagedMarks.managedBy] = settings.cluster
        copy.labels = labels
        var annotations = copy.annotations
        annotations[ManagedMarks.origin] = settings.origin
        copy.annotations = annotations
        return copy
    }

    // MARK: Queue

    private func priority(of reference: ObjectReference) -> Int {
        let phase = registry.kind(apiVersion: reference.apiVersion, kind: reference.kind)
            .map { registry.plugin(apiVersion: reference.apiVersion, kind: reference.kind).applyPhase(of: $0) } ?? .workloads
        // Applies go in phase order; prunes after them, in reverse (workloads before their namespace).
        return desired[reference] != nil ? phase.rawValue : 5 + (ApplyPhase.workloads.rawValue - phase.rawValue)
    }

    private func enqueue(_ reference: ObjectReference) {
        guard !stopped else { return }
        queue.add(reference, priority: priority(of: reference))
        wakeWorkers()
    }

    private func wakeWorkers() {
        while !idleWorkers.isEmpty, let next = queue.take() {
            idleWorkers.removeFirst().resume(returning: next)
        }
    }

    private func nextWork() async -> ObjectReference? {
        if stopped { return nil }
        if let next = queue.take() { return next }
        return await withCheckedContinuation { idleWorkers.append($0) }
    }

    private func work() async {
        while let reference = await nextWork() {
            await reconcile(reference)
            queue.finish(reference)
            wakeWorkers()
        }
    }

    private func resyncPeriodically() async {
        while !stopped {
            do {
                try await Task.sleep(for: settings.resyncInterval)
            } catch {
                return
            }
            logger.debug("periodic resync", metadata: ["tether.event": "applier.resync_tick", "tether.objects": "\(desired.count)"])
            for reference in desired.keys where retries[reference] == nil { enqueue(reference) }
        }
    }

    // MARK: Reconcile

    private func isManaged(_ object: JSONValue) -> Bool {
        object.labels[ManagedMarks.managedBy] == settings.cluster
    }

    private func resource(for reference: ObjectReference) async throws(KubernetesError) -> ServedResource {
        if let resource = served["\(reference.apiVersion)/\(reference.kind)"] { return resource }
        served = try await client.discover()
        guard let resource = served["\(reference.apiVersion)/\(reference.kind)"] else {
            throw KubernetesError(status: 404, reason: "NotFound", message: "the member cluster does not serve \(reference.apiVersion) \(reference.kind)")
        }
        return resource
    }

    private func reconcile(_ reference: ObjectReference) async {
        var metadata: Logger.Metadata = ["tether.object": "\(reference)", "tether.kind": "\(reference.kind)"]
        do {
            let resource = try await resource(for: reference)
            if let want = desired[reference] {
                try await ensureApplied(want, reference, resource, &metadata)
            } else {
                try await prune(reference, resource)
            }
            if failures.removeValue(forKey: reference) != nil { retries.removeValue(forKey: reference)?.cancel() }
            settleAck(reference, failure: nil)
        } catch let error as ApplyRefusal {
            fail(reference, error.message, metadata)
        } catch let error as KubernetesError {
            fail(reference, "\(error)", metadata)
        } catch {
            fail(reference, "\(error)", metadata)
        }
    }

    private struct ApplyRefusal: Error {
        var message: String
    }

    private func ensureApplied(
        _ want: JSONValue,
        _ reference: ObjectReference,
        _ resource: ServedResource,
        _ metadata: inout Logger.Metadata
    ) async throws {
        var current = live[reference]
        if current == nil {
            current = try await client.get(resource, namespace: reference.namespace, name: reference.name)
        }
        if let existing = current, !isManaged(existing) {
            throw ApplyRefusal(
                message: "conflict: \(reference) already exists in the member and is not managed by Tether "
                    + "(no \(ManagedMarks.managedBy)=\(settings.cluster) label); it was left untouched. "
                    + "Delete or rename it in the member, or rename the federated object"
            )
        }
        // Another desired version may have arrived while the read was in flight.
        guard desired[reference] == want else { return enqueue(reference) }
        if let existing = current, AppliedFields.contained(want, in: existing) {
            lastApplied[reference] = want
            takeInventory(reference, uid: existing.uid)
            record(reference, live: existing, state: .applied)
            return
        }
        let drifted = current != nil && lastApplied[reference] == want
        let applied = try await client.apply(want, as: resource, fieldManager: ManagedMarks.fieldManager)
        appliedCounter.increment()
        if drifted {
            driftCounter.increment()
            logger.notice("drift repaired: re-applied an object changed in the member", metadata: metadata.merging(["tether.event": "applier.drift_repaired"]) { $1 })
        } else {
            metadata["tether.event"] = "applier.applied"
            logger.info("applied", metadata: metadata)
        }
        // A watch event may have brought a newer version while the apply was in flight; keep the newest.
        let newest = Self.newer(live[reference], than: applied)
        if desired[reference] != nil { live[reference] = newest }
        lastApplied[reference] = want
        takeInventory(reference, uid: applied.uid)
        record(reference, live: newest, state: .applied)
    }

    /// `cached` when it is a later version of the object than `answer`, else `answer`.
    static func newer(_ cached: JSONValue?, than answer: JSONValue) -> JSONValue {
        guard let cached, cached.uid == answer.uid, let cachedVersion = cached.resourceVersion,
            let answerVersion = answer.resourceVersion, cachedVersion > answerVersion
        else { return answer }
        return cached
    }

    private func prune(_ reference: ObjectReference, _ resource: ServedResource) async throws {
        // Without any desired state (a fresh agent, no hub yet) nothing is pruned: an outage never
        // deletes. Nor while a hold waits for an operator, nor what this agent never made or adopted.
        guard revision != nil, !pruneHeld, let recorded = inventory[reference], allowList.refusal(of: reference) == nil else { return }
        var current = live[reference]
        if current == nil { current = try await client.get(resource, namespace: reference.namespace, name: reference.name) }
        guard let existing = current else {
            dropInventory(reference)
            forget(reference)
            return
        }
        guard isManaged(existing) else {
            forget(reference)
            return
        }
        guard existing.uid == recorded else {
            // Deleted and made again by someone else since the agent made it: not the agent's to delete.
            logger.warning(
                "not pruned: the object was replaced behind the agent's back",
                metadata: [
                    "tether.event": "applier.prune_refused", "tether.object": "\(reference)", "tether.recorded_uid": "\(recorded)",
                    "tether.live_uid": "\(existing.uid ?? "none")",
                ]
            )
            dropInventory(reference)
            forget(reference)
            return
        }
        let release = orphaning.contains(reference)
        if release {
            // Orphaned: the object stays, without the marks that would make any agent manage it.
            let unmark: JSONValue = ["metadata": ["labels": [ManagedMarks.managedBy: .null], "annotations": [ManagedMarks.origin: .null]]]
            _ = try await client.mergePatch(resource, namespace: reference.namespace, name: reference.name, patch: unmark)
            orphaning.remove(reference)
            logger.info("orphaned: left in the member, no longer managed", metadata: ["tether.event": "applier.orphaned", "tether.object": "\(reference)"])
        } else {
            try await client.delete(resource, namespace: reference.namespace, name: reference.name)
            logger.info("pruned: no longer desired", metadata: ["tether.event": "applier.pruned", "tether.object": "\(reference)"])
        }
        live[reference] = nil
        dropInventory(reference)
        forget(reference)
        let pruned = StatusReport.ObjectStatus(object: reference, state: release ? .orphaned : .pruned, health: .unknown)
        unsent[reference] = pruned
        eventSink.yield(.status(pruned))
        doorbell.yield()
    }

    // MARK: Inventory

    /// Records `uid` as an object the agent made or adopted: the only kind it ever prunes.
    private func takeInventory(_ reference: ObjectReference, uid: String?) {
        guard let uid, inventory[reference] != uid else { return }
        inventory[reference] = uid
        scheduleInventoryWrite()
    }

    private func dropInventory(_ reference: ObjectReference) {
        guard inventory.removeValue(forKey: reference) != nil else { return }
        scheduleInventoryWrite()
    }

    /// Writes the inventory soon: changes within a second share one write. A crash before it is
    /// written only leaves an object unrecorded, which the agent then never prunes: the safe side.
    private func scheduleInventoryWrite() {
        guard inventoryWrite == nil else { return }
        inventoryWrite = Task {
            try? await Task.sleep(for: .seconds(1))
            self.writeInventory()
        }
    }

    private func writeInventory() {
        inventoryWrite = nil
        do {
            try Inventory.save(inventory, cluster: settings.cluster, to: settings.stateDirectory)
        } catch {
            logger.error("cannot persist the inventory", metadata: ["tether.event": "applier.persist_failed", "tether.error": "\(error)"])
        }
    }

    /// Test and tooling view: the objects the agent made or adopted, by UID.
    public func managedInventory() -> [ObjectReference: String] { inventory }

    private func forget(_ reference: ObjectReference) {
        lastApplied[reference] = nil
        statuses[reference] = nil
        unsent[reference] = nil
    }

    private func fail(_ reference: ObjectReference, _ message: String, _ metadata: Logger.Metadata) {
        Counter(label: "tether_agent_apply_failures_total", dimensions: [("kind", reference.kind)]).increment()
        let count = (failures[reference] ?? 0) + 1
        failures[reference] = count
        let delay = retryDelay(afterFailures: count)
        // The first failure, or a new reason, is a warning; the same failure again is detail.
        let repeated = statuses[reference]?.state == .failed && statuses[reference]?.message == message
        logger.log(
            level: repeated ? .debug : .warning,
            "apply failed; retrying later",
            metadata: metadata.merging([
                "tether.event": "applier.failed", "tether.error": "\(message)", "tether.failures": "\(count)",
                "tether.retry_in_s": "\(delay.components.seconds)",
            ]) { $1 }
        )
        if desired[reference] != nil {
            setStatus(StatusReport.ObjectStatus(object: reference, state: .failed, health: .unknown, message: message))
        }
        settleAck(reference, failure: message)
        retries[reference]?.cancel()
        retries[reference] = Task { [weak self] in
            do {
                try await Task.sleep(for: delay)
            } catch {
                return
            }
            await self?.retryDue(reference)
        }
    }

    /// The wait after `failures` failures in a row: `retryInitial` doubling, capped at `retryMax`.
    private func retryDelay(afterFailures failures: Int) -> Duration {
        min(settings.retryMax, settings.retryInitial * Double(1 << min(max(failures, 1) - 1, 16)))
    }

    private func retryDue(_ reference: ObjectReference) {
        retries[reference] = nil
        if desired[reference] != nil || live[reference] != nil { enqueue(reference) }
    }

    // MARK: Status

    private func record(_ reference: ObjectReference, live object: JSONValue, state: ObjectState) {
        let plugin = registry.plugin(for: object)
        let health = plugin.health(of: object)
        setStatus(
            StatusReport.ObjectStatus(
                object: reference,
                state: state,
                health: health.state,
                message: health.reason.isEmpty ? nil : health.reason,
                summary: plugin.summary(of: object)
            )
        )
    }

    private func setStatus(_ status: StatusReport.ObjectStatus) {
        guard statuses[status.object] != status else { return }
        statuses[status.object] = status
        unsent[status.object] = status
        eventSink.yield(.status(status))
        doorbell.yield()
    }

    private func settleAck(_ reference: ObjectReference, failure: String?) {
        guard var pending = ackPending, pending.remaining.contains(reference) else { return }
        pending.remaining.remove(reference)
        if let failure { pending.failures.append(Ack.ObjectFailure(object: reference, message: failure)) }
        ackPending = pending
        if pending.remaining.isEmpty { finishAck() }
    }

    private func finishAck() {
        guard let pending = ackPending else { return }
        ackReady = Ack(revision: pending.revision, failures: pending.failures, hold: hold)
        eventSink.yield(.ack(Ack(revision: pending.revision, failures: pending.failures, hold: hold)))
        ackPending = nil
        logger.info(
            "revision applied",
            metadata: ["tether.event": "applier.revision_done", "tether.revision": "\(pending.revision)", "tether.failures": "\(pending.failures.count)"]
        )
        doorbell.yield()
    }

    /// Sends what is unsent whenever something changes and a session is up; what cannot be sent
    /// stays, coalesced per object, until the next session.
    private func report() async {
        for await _ in doorbellStream {
            guard link.isEstablished else { continue }
            while !unsent.isEmpty {
                let batch = Array(unsent.values.prefix(settings.statusBatchSize))
                for status in batch where unsent[status.object] == status { unsent[status.object] = nil }
                guard await link.send(.status(StatusReport(objects: batch))) else {
                    for status in batch where unsent[status.object] == nil { unsent[status.object] = status }
                    break
                }
            }
            if let ack = ackReady {
                ackReady = nil
                if !(await link.send(.ack(ack))) && ackReady == nil { ackReady = ack }
            }
        }
    }

    /// The cluster left the federation: forget the desired state without pruning, so every
    /// object stays in the member as it is, no longer repaired or reported.
    public func forgetAll() {
        desired = [:]
        revision = nil
        lastApplied = [:]
        statuses = [:]
        unsent = [:]
        ackPending = nil
        ackReady = nil
        for task in retries.values { task.cancel() }
        retries = [:]
        failures = [:]
        try? FileManager.default.removeItem(atPath: PersistedDesiredState.path(in: settings.stateDirectory))
        logger.notice("desired state forgotten; objects left in place", metadata: ["tether.event": "applier.forgotten"])
    }

    /// Test and tooling view: the last status of every object.
    public func currentStatuses() -> [ObjectReference: StatusReport.ObjectStatus] { statuses }

    // MARK: Watches

    private func discoverAndWatch() async {
        var attempt = 0
        while !stopped {
            do {
                served = try await client.discover()
                break
            } catch {
                attempt += 1
                logger.warning(
                    "cannot reach the member API for discovery; retrying",
                    metadata: ["tether.event": "applier.discovery_failed", "tether.error": "\(error)"]
                )
                do {
                    try await Task.sleep(for: retryDelay(afterFailures: attempt + 1))
                } catch {
                    return
                }
            }
        }
        // Every propagated kind the member serves is watched, so managed objects left from an
        // earlier desired set are found and pruned too.
        let kinds = registry.kinds.filter { registry.plugin(apiVersion: $0.apiVersion, kind: $0.kind).propagates($0) }
        for kind in kinds {
            if let resource = served["\(kind.apiVersion)/\(kind.kind)"] { startWatch(resource) }
        }
        watchKinds(of: Array(desired.keys))
    }

    private func watchKinds(of references: [ObjectReference]) {
        guard !served.isEmpty else { return }
        for reference in references {
            if let resource = served["\(reference.apiVersion)/\(reference.kind)"] { startWatch(resource) }
        }
    }

    private func startWatch(_ resource: ServedResource) {
        let key = "\(resource.apiVersion)/\(resource.kind)"
        guard !stopped, watched.insert(key).inserted else { return }
        watchTasks.append(Task { await self.watchLoop(resource) })
    }

    private func watchLoop(_ resource: ServedResource) async {
        let selector = "\(ManagedMarks.managedBy)=\(settings.cluster)"
        var failuresInARow = 0
        while !Task.isCancelled, !stopped {
            do {
                let page = try await client.list(resource, labelSelector: selector)
                listed(resource, items: page.items)
                var resourceVersion = page.resourceVersion
                failuresInARow = 0
                var expired = false
                while !expired, !Task.isCancelled {
                    try await client.watch(resource, labelSelector: selector, resourceVersion: resourceVersion) { event in
                        switch event {
                        case .expired: expired = true
                        case .bookmark(let version): resourceVersion = version
                        case .added(let object), .modified(let object):
                            resourceVersion = object.resourceVersion.map(String.init) ?? resourceVersion
                            self.observed(object, deleted: false)
                        case .deleted(let object):
                            resourceVersion = object.resourceVersion.map(String.init) ?? resourceVersion
                            self.observed(object, deleted: true)
                        }
                    }
                }
            } catch {
                failuresInARow += 1
                logger.debug(
                    "watch ended; listing again",
                    metadata: ["tether.event": "applier.watch_failed", "tether.kind": "\(resource.kind)", "tether.error": "\(error)"]
                )
                do {
                    try await Task.sleep(for: retryDelay(afterFailures: failuresInARow + 1))
                } catch {
                    return
                }
            }
        }
    }

    /// A full list of one kind's managed objects replaces what the cache held of that kind.
    private func listed(_ resource: ServedResource, items: [JSONValue]) {
        let listedReferences = Set(items.compactMap(\.reference))
        for reference in live.keys where reference.apiVersion == resource.apiVersion && reference.kind == resource.kind
            && !listedReferences.contains(reference)
        {
            live[reference] = nil
            if desired[reference] != nil { enqueue(reference) }
        }
        for item in items { observed(item, deleted: false) }
        for reference in desired.keys where reference.apiVersion == resource.apiVersion && reference.kind == resource.kind
            && live[reference] == nil
        {
            enqueue(reference)
        }
    }

    private func observed(_ object: JSONValue, deleted: Bool) {
        guard let reference = object.reference, isManaged(object) || deleted else { return }
        if deleted {
            live[reference] = nil
            if inventory[reference] == object.uid { dropInventory(reference) }
            if desired[reference] != nil {
                logger.notice("a managed object was deleted in the member; re-creating", metadata: ["tether.event": "applier.recreate", "tether.object": "\(reference)"])
                enqueue(reference)
            }
            return
        }
        if let cached = live[reference], Self.newer(cached, than: object) != object { return }
        live[reference] = object
        guard let want = desired[reference] else {
            // Labelled as the agent's but not in its inventory: a look-alike, not the agent's to prune.
            if revision != nil, inventory[reference] != nil { enqueue(reference) }
            return
        }
        if !AppliedFields.contained(want, in: object) {
            enqueue(reference)
        } else if failures[reference] == nil {
            record(reference, live: object, state: .applied)
        }
    }
}
