import Foundation
import Logging
import TetherJSON
import TetherModel
import TetherPlugin
import TetherWire

/// A timer the applier's state asks for; each names what it was set for, so one that fires
/// after its reason has passed is ignored.
enum ApplierTimer: Hashable, Sendable {
    /// An object that failed waited out its backoff (`attempt`: its failures then).
    case retry(ObjectReference, attempt: Int)
    /// Inventory changes a while ago: write them.
    case persistInventory
    /// Every desired object is checked again.
    case periodicResync
}

/// What the applier's shell does for its state.
enum ApplierAction: Sendable {
    case persistDesired(PersistedDesiredState)
    case persistInventory([ObjectReference: String])
    case removeDesiredFile
    case schedule(ApplierTimer, after: Duration)
    /// Objects are waiting for a worker.
    case wakeWorkers
    /// Statuses or an ack wait to be sent.
    case ringReporter
    /// End the session so that the hub resends from the held revision.
    case resync(reason: String)
    /// Keep the member's objects of these kinds (`apiVersion/kind`) watched.
    case watch(Set<String>)
    case event(ApplierEvent)
    case log(Logger.Level, String, metadata: [String: String])
    case countApply(drifted: Bool)
    case countFailure(kind: String)
}

/// Every decision of the agent's applier, as a value: desired state accepted or refused
/// (``Fencing``), what each object needs (apply, leave, prune, release) and in what order,
/// when a failure is retried, what is reported. ``Applier`` feeds it what the session and the
/// member say, performs its actions and the I/O of each ``ReconcileStep``.
struct ApplierState: Sendable {
    struct Settings: Sendable {
        var cluster: String
        var origin: String
        var retryBackoff: Backoff
        var resyncInterval: Duration
        var fencing: Fencing
        var allowList: AllowList
    }

    let settings: Settings
    /// The agent's plugins, with the interpreter customizations of the desired state in front.
    private(set) var registry: KindRegistry
    let baseRegistry: KindRegistry
    /// The customizations of the desired state, compiled, by name (reused while unchanged).
    var interpreters: [String: InterpreterCustomization] = [:]
    let interpreterFailures: InterpreterFailures
    /// Out-of-process plugins (`--plugin-dir`), in front of their kinds under any customization.
    let external: [ExternalPluginProcess]

    // Desired state.
    var revision: UInt64?
    var desired: [ObjectReference: JSONValue] = [:]
    /// The workloads a HorizontalPodAutoscaler of the desired set scales: the member's
    /// autoscaler owns their replicas, which the applier keeps as it finds them.
    var autoscaled: Set<ObjectReference> = []
    /// The hub state trusted for desired state, and what the agent holds back from now.
    var baseline = FencingBaseline()
    var hold: Ack.Hold?
    /// Objects the agent created or adopted, by UID: it prunes these and nothing else.
    var inventory: [ObjectReference: String] = [:]
    var inventoryScheduled = false
    /// What the inventory file holds now.
    var persistedInventory: Set<ObjectReference> = []
    /// Objects the agent may have made that no written inventory records: the inventory is
    /// written a second after a change, so a crash in between would leave an object made
    /// but never pruned. Kept in the desired-state file, which is written before any object of
    /// a set is applied; an object here is pruned only if the member's copy carries both the
    /// agent's label and its hub's origin.
    var unrecorded: Set<ObjectReference> = []
    /// A snapshot being assembled: its revision, chunk count, the next chunk expected, and the objects so far.
    var snapshotChunks: (revision: UInt64, count: Int, next: Int, objects: [JSONValue])?

    // Member state.
    var live: [ObjectReference: JSONValue] = [:]
    /// What was last applied (or found already in place) per object, to tell drift from an update.
    var lastApplied: [ObjectReference: JSONValue] = [:]
    /// Objects leaving the set that stay in the member: released (marks removed), not deleted.
    var orphaning: Set<ObjectReference> = []
    /// Kinds of the member being watched (`apiVersion/kind`).
    var watching: Set<String> = []

    // Work.
    var queue = ApplyQueue(priorities: 10)
    var failures: [ObjectReference: Int] = [:]
    var retryPending: [ObjectReference: Int] = [:]
    /// What each object being worked on is being worked on for.
    var working: [ObjectReference: Purpose] = [:]

    enum Purpose: Sendable {
        case apply(JSONValue, drifted: Bool)
        /// `recordedUID` nil: an unrecorded object (``unrecorded``), the agent's only if it carries
        /// both of the agent's marks.
        case prune(recordedUID: String?, release: Bool)
    }

    // Reports.
    var statuses: [ObjectReference: StatusReport.ObjectStatus] = [:]
    var unsent: [ObjectReference: StatusReport.ObjectStatus] = [:]
    var ackPending: (revision: UInt64, remaining: Set<ObjectReference>, failures: [Ack.ObjectFailure])?
    var ackReady: Ack?

    private(set) var actions: [ApplierAction] = []

    init(
        settings: Settings, registry: KindRegistry, external: [ExternalPluginProcess] = [],
        interpreterFailures: InterpreterFailures = InterpreterFailures()
    ) {
        self.settings = settings
        self.registry = external.isEmpty ? registry : KindRegistry.layered(plugins: registry.plugins, external: external)
        self.baseRegistry = registry
        self.external = external
        self.interpreterFailures = interpreterFailures
    }

    /// The actions decided since they were last taken.
    mutating func takeActions() -> [ApplierAction] {
        defer { actions = [] }
        return actions
    }

    mutating func emit(_ action: ApplierAction) {
        actions.append(action)
    }

    mutating func log(_ level: Logger.Level, _ message: String, _ metadata: [String: String]) {
        emit(.log(level, message, metadata: metadata))
    }

    // MARK: Starting

    /// The state persisted by the last run: resume reconciling it at once, hub or no hub.
    mutating func resume(_ state: PersistedDesiredState?, inventory: [ObjectReference: String]) {
        self.inventory = inventory
        persistedInventory = Set(inventory.keys)
        emit(.schedule(.periodicResync, after: settings.resyncInterval))
        guard let state else { return }
        baseline = state.baseline ?? FencingBaseline(revision: state.revision)
        hold = state.hold
        unrecorded = Set(state.unrecorded ?? []).union(state.objects.compactMap(\.reference)).subtracting(persistedInventory)
        install(revision: state.revision, objects: state.objects, persist: false)
        // What was last desired stands for what was last applied, so a field the hub dropped
        // while the agent was down is still applied away (an extra apply at worst, never a missed one).
        for (reference, object) in desired where lastApplied[reference] == nil { lastApplied[reference] = object }
        for reference in unrecorded where desired[reference] == nil { enqueue(reference) }
        log(
            .info, "resuming from persisted desired state",
            [
                "tether.event": "applier.resumed", "tether.revision": "\(state.revision)", "tether.objects": "\(state.objects.count)",
                "tether.managed": "\(inventory.count)", "tether.held": hold?.reason.rawValue ?? "no",
            ]
        )
    }

    /// A new session: the hub may know nothing of what was reported before, so report it all again.
    mutating func sessionEstablished() {
        unsent = statuses
        if ackPending == nil, let revision { ackReady = Ack(revision: revision, hold: hold) }
        emit(.ringReporter)
    }

    // MARK: Desired state

    /// Whether the agent applies nothing the hub sends (another federation, a rewound store).
    var refusing: Bool {
        hold?.reason == .foreignFederation || hold?.reason == .revisionRegressed
    }

    /// Whether pruning waits for an operator (a new store, or a set that removes too much).
    var pruneHeld: Bool { hold != nil }

    mutating func received(_ message: WireMessage, from welcome: Welcome?) {
        switch message {
        case .snapshot(let snapshot): takeSnapshot(snapshot, from: welcome)
        case .delta(let delta): takeDelta(delta, from: welcome)
        default: break
        }
    }

    private mutating func takeSnapshot(_ chunk: Snapshot, from welcome: Welcome?) {
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
        accept(
            revision: chunk.revision, digest: chunk.digest, objects: assembling.objects, orphans: chunk.orphans ?? [], terms: chunk.terms,
            from: welcome, carried: "snapshot of \(assembling.objects.count)"
        )
    }

    private mutating func takeDelta(_ delta: Delta, from welcome: Welcome?) {
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
        accept(
            revision: delta.toRevision, digest: delta.digest, objects: Array(objects.values), orphans: delta.orphans ?? [], terms: delta.terms,
            from: welcome, carried: "delta of \(delta.upserts.count + delta.deletes.count + (delta.orphans?.count ?? 0))"
        )
    }

    /// Acknowledges `revision` as refused: the hold says why, and nothing of it was applied.
    private mutating func refused(_ revision: UInt64) {
        let ack = Ack(revision: revision, hold: hold)
        ackReady = ack
        emit(.event(.ack(ack)))
        emit(.ringReporter)
    }

    /// Decides what to do with a complete desired state before anything of it is applied
    /// (``Fencing``), then applies it, all of it or without pruning, or refuses it.
    private mutating func accept(
        revision newRevision: UInt64, digest: String?, objects: [JSONValue], orphans: [ObjectReference], terms: DesiredStateTerms?,
        from welcome: Welcome?, carried: String
    ) {
        let incoming = Set(objects.compactMap(\.reference))
        let released = Set(orphans)
        let allowList = settings.allowList
        let leaving = { (reference: ObjectReference) in
            !incoming.contains(reference) && !released.contains(reference) && allowList.refusal(of: reference) == nil
        }
        let removals = Set(inventory.keys.filter(leaving) + unrecorded.filter { inventory[$0] == nil && leaving($0) })
        let decision = settings.fencing.decide(
            baseline: baseline, federation: welcome?.federation, epoch: welcome?.epoch, run: welcome?.run,
            historyThrough: welcome?.historyThrough, revision: newRevision, digest: digest,
            terms: terms, removals: removals, managed: inventory.count, holding: hold
        )
        let wasHeld = pruneHeld
        if decision.hold != hold {
            if let held = decision.hold {
                log(
                    .warning, "holding back from the hub's desired state until an operator confirms",
                    [
                        "tether.event": "applier.held", "tether.reason": held.reason.rawValue, "tether.message": held.message,
                        "tether.token": held.token, "tether.would_remove": "\(held.wouldRemove)", "tether.managed": "\(held.managed)",
                    ]
                )
            } else if let previous = hold {
                log(
                    .notice, "hold lifted; applying the desired state in full",
                    ["tether.event": "applier.hold_lifted", "tether.reason": previous.reason.rawValue])
            }
        }
        hold = decision.hold
        switch decision.action {
        case .refuse:
            refused(newRevision)
        case .apply:
            baseline = decision.baseline
            orphaning.formUnion(orphans)
            install(revision: newRevision, objects: objects, persist: true, carried: carried)
            // Pruning was held and no longer is: what left the set goes now.
            if wasHeld, !pruneHeld {
                for reference in Set(inventory.keys).union(unrecorded) where desired[reference] == nil { enqueue(reference) }
            }
        }
    }

    /// Ends the session so that the hub sends from the held revision again.
    private mutating func resync(_ reason: String) {
        snapshotChunks = nil
        log(.warning, "desired state out of step; reconnecting", ["tether.event": "applier.resync", "tether.reason": reason])
        emit(.resync(reason: reason))
    }

    /// `carried` says what the hub sent for it (nil: read back from the state directory).
    mutating func install(revision newRevision: UInt64, objects: [JSONValue], persist: Bool, carried: String? = nil) {
        var next: [ObjectReference: JSONValue] = [:]
        var malformed: [Ack.ObjectFailure] = []
        var customizations: [String: InterpreterCustomization] = [:]
        for object in objects {
            guard let reference = object.reference else {
                let named = ObjectReference(apiVersion: object.apiVersion ?? "?", kind: object.kind ?? "?", name: object.name ?? "?")
                malformed.append(Ack.ObjectFailure(object: named, message: "the object lacks apiVersion, kind or metadata.name"))
                continue
            }
            // An interpreter customization is for the agent itself: compiled and used, never written to the member.
            if reference.kind == InterpreterCustomization.kind, reference.apiVersion == InterpreterCustomization.apiVersion {
                switch interpreter(object) {
                case .success(let customization):
                    customizations[customization.name] = customization
                    setStatus(StatusReport.ObjectStatus(object: reference, state: .applied, health: .healthy))
                case .failure(let problems):
                    let message = ReportLimits.clipped(
                        "the customization cannot be used: \(problems.problems.map(\.description).joined(separator: "; "))")
                    malformed.append(Ack.ObjectFailure(object: reference, message: message))
                    setStatus(StatusReport.ObjectStatus(object: reference, state: .failed, health: .unknown, message: message))
                }
                continue
            }
            if let refusal = settings.allowList.refusal(of: reference) {
                // Reported, never applied: a hub may only ask for what this member allows.
                malformed.append(Ack.ObjectFailure(object: reference, message: refusal))
                setStatus(StatusReport.ObjectStatus(object: reference, state: .failed, health: .unknown, message: refusal))
                continue
            }
            next[reference] = decorated(object)
        }
        interpret(with: customizations)
        let changed = Set(next.keys.filter { next[$0] != desired[$0] })
        let removed = Set(desired.keys.filter { next[$0] == nil })
        // Anything of the last set or of this one may be made before the inventory records it.
        unrecorded.formUnion(desired.keys)
        unrecorded.formUnion(next.keys)
        unrecorded.subtract(persistedInventory)
        desired = next
        let scaledBefore = autoscaled
        autoscaled = Self.autoscalerTargets(in: next)
        revision = newRevision
        if persist {
            emit(
                .persistDesired(
                    PersistedDesiredState(
                        cluster: settings.cluster, revision: newRevision, objects: objects, baseline: baseline, hold: hold,
                        unrecorded: unrecorded.sorted { $0.description < $1.description }
                    )
                )
            )
        }
        log(
            .info, "desired state accepted",
            [
                "tether.event": "applier.desired", "tether.revision": "\(newRevision)", "tether.objects": "\(next.count)",
                "tether.changed": "\(changed.count)", "tether.removed": "\(removed.count)",
                // What the hub sent for it: a resend of a whole set shows here, not in `changed`.
                "tether.carried": carried ?? "the state directory",
            ]
        )
        // A workload an autoscaler took up or let go is applied again: its replicas change hands.
        let work = changed.union(removed).union(scaledBefore.symmetricDifference(autoscaled).filter { next[$0] != nil })
        ackPending = (newRevision, work, malformed)
        if work.isEmpty { finishAck() }
        for reference in work {
            failures[reference] = nil
            retryPending[reference] = nil
            enqueue(reference)
        }
        emit(.watch(Set(next.keys.map { "\($0.apiVersion)/\($0.kind)" })))
    }

    /// What the HorizontalPodAutoscalers among `objects` scale (their `scaleTargetRef`s).
    static func autoscalerTargets(in objects: [ObjectReference: JSONValue]) -> Set<ObjectReference> {
        var targets: Set<ObjectReference> = []
        for (reference, object) in objects where reference.kind == "HorizontalPodAutoscaler" {
            guard let target = object.value(at: "spec", "scaleTargetRef"), let kind = target["kind"]?.stringValue,
                let name = target["name"]?.stringValue
            else { continue }
            targets.insert(
                ObjectReference(apiVersion: target["apiVersion"]?.stringValue ?? "apps/v1", kind: kind, namespace: reference.namespace, name: name))
        }
        return targets
    }

    /// A customization compiled, or the one compiled before if the object is unchanged.
    private func interpreter(_ object: JSONValue) -> Result<InterpreterCustomization, DefinitionProblems> {
        if let known = interpreters[object.name ?? ""], known.resourceVersion == object.resourceVersion, object.resourceVersion != nil {
            return .success(known)
        }
        do throws(DefinitionProblems) {
            return .success(try InterpreterCustomization(parsing: object))
        } catch {
            return .failure(error)
        }
    }

    /// Puts `customizations` in front of their target kinds' plugins (the first by name per kind).
    private mutating func interpret(with customizations: [String: InterpreterCustomization]) {
        guard customizations.mapValues(\.resourceVersion) != interpreters.mapValues(\.resourceVersion) || customizations.count != interpreters.count
        else { return }
        interpreters = customizations
        let before = registry
        registry = KindRegistry.layered(
            plugins: baseRegistry.plugins, external: external, customizations: Array(customizations.values), failures: interpreterFailures)
        // Objects whose kind is now interpreted otherwise are judged and reported again at once.
        for (reference, object) in live where statuses[reference]?.state == .applied {
            if before.plugin(apiVersion: reference.apiVersion, kind: reference.kind).name
                != registry.plugin(apiVersion: reference.apiVersion, kind: reference.kind).name
            {
                record(reference, live: object, state: .applied)
            }
        }
        log(
            .info, "interpreter customizations in use",
            ["tether.event": "applier.interpreters", "tether.customizations": customizations.keys.sorted().joined(separator: ",")])
    }

    /// The object as applied: the member's copy from its plugin, marked as Tether's.
    private func decorated(_ object: JSONValue) -> JSONValue {
        var copy = registry.plugin(for: object).prepareForMember(object)
        copy.labels[ManagedMarks.managedBy] = settings.cluster
        copy.annotations[ManagedMarks.origin] = settings.origin
        return copy
    }

    /// The cluster left the federation: forget the desired state without pruning, so every
    /// object stays in the member as it is, no longer repaired or reported.
    mutating func forgetAll() {
        desired = [:]
        revision = nil
        lastApplied = [:]
        statuses = [:]
        unsent = [:]
        ackPending = nil
        ackReady = nil
        retryPending = [:]
        failures = [:]
        emit(.removeDesiredFile)
        log(.notice, "desired state forgotten; objects left in place", ["tether.event": "applier.forgotten"])
    }
}
