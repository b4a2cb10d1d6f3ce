import Foundation
import Logging
import TetherJSON
import TetherModel
import TetherPlugin
import TetherWire

/// The next I/O a worker performs for one object, decided by ``ApplierState/step(_:_:)``.
enum ReconcileStep: Sendable, Equatable {
    /// Read the object from the member (GET).
    case read(ObjectReference)
    /// Server-side apply.
    case apply(ObjectReference, JSONValue, drifted: Bool)
    /// Delete the object with this UID (a precondition: nothing made since under its name).
    case delete(ObjectReference, uid: String?)
    /// Remove the marks that make the object managed; it stays in the member (orphaning).
    case release(ObjectReference)
    case done
}

/// What the worker's last I/O came to.
enum ReconcileInput: Sendable {
    case start
    /// The object as read (nil: it does not exist).
    case read(JSONValue?)
    case applied(JSONValue)
    case deleted
    case released
    case failed(String)
}

/// Objects, one at a time per object: what each needs, in what order, and what came of it.
extension ApplierState {
    // MARK: Queue

    private func priority(of reference: ObjectReference) -> Int {
        let phase =
            registry.kind(apiVersion: reference.apiVersion, kind: reference.kind)
            .map { registry.plugin(apiVersion: reference.apiVersion, kind: reference.kind).applyPhase(of: $0) } ?? .workloads
        // Applies go in phase order; prunes after them, in reverse (workloads before their namespace).
        return desired[reference] != nil ? phase.rawValue : 5 + (ApplyPhase.workloads.rawValue - phase.rawValue)
    }

    mutating func enqueue(_ reference: ObjectReference) {
        queue.add(reference, priority: priority(of: reference))
        emit(.wakeWorkers)
    }

    /// The next object to work on, if any may start now.
    mutating func takeWork() -> ObjectReference? {
        queue.take()
    }

    /// The worker is done with `reference`.
    mutating func finished(_ reference: ObjectReference) {
        working[reference] = nil
        queue.finish(reference)
        emit(.wakeWorkers)
    }

    // MARK: Reconciling one object

    private func isManaged(_ object: JSONValue) -> Bool {
        object.labels[ManagedMarks.managedBy] == settings.cluster
    }

    /// Takes the outcome of the last step for `reference` and decides the next.
    mutating func step(_ reference: ObjectReference, _ input: ReconcileInput) -> ReconcileStep {
        switch input {
        case .start:
            return start(reference)
        case .failed(let message):
            fail(reference, message)
            return .done
        case .read(let current):
            switch working[reference] {
            case .apply(let want, _): return applyStep(reference, want, current: current)
            case .prune(let recorded, let release): return pruneStep(reference, recorded: recorded, release: release, current: current)
            case nil: return .done
            }
        case .applied(let answer):
            guard case .apply(let want, let drifted) = working[reference] else { return .done }
            emit(.countApply(drifted: drifted))
            if drifted {
                log(
                    .notice, "drift repaired: re-applied an object changed in the member",
                    ["tether.event": "applier.drift_repaired", "tether.object": "\(reference)", "tether.kind": reference.kind])
            } else {
                log(.info, "applied", ["tether.event": "applier.applied", "tether.object": "\(reference)", "tether.kind": reference.kind])
            }
            // A watch event may have brought a newer version while the apply was in flight; keep the newest.
            let newest = Self.newer(live[reference], than: answer)
            if desired[reference] != nil { live[reference] = newest }
            lastApplied[reference] = want
            takeInventory(reference, uid: answer.uid)
            record(reference, live: newest, state: .applied)
            succeeded(reference)
            return .done
        case .deleted, .released:
            let release: Bool = {
                if case .released = input { return true }
                return false
            }()
            if release {
                orphaning.remove(reference)
                log(.info, "orphaned: left in the member, no longer managed", ["tether.event": "applier.orphaned", "tether.object": "\(reference)"])
            } else {
                log(.info, "pruned: no longer desired", ["tether.event": "applier.pruned", "tether.object": "\(reference)"])
            }
            live[reference] = nil
            dropInventory(reference)
            unrecorded.remove(reference)
            forget(reference)
            let pruned = StatusReport.ObjectStatus(object: reference, state: release ? .orphaned : .pruned, health: .unknown)
            unsent[reference] = pruned
            emit(.event(.status(pruned)))
            emit(.ringReporter)
            succeeded(reference)
            return .done
        }
    }

    private mutating func start(_ reference: ObjectReference) -> ReconcileStep {
        if let want = desired[reference] {
            working[reference] = .apply(want, drifted: false)
            if let cached = live[reference] { return applyStep(reference, want, current: cached) }
            return .read(reference)
        }
        // Without any desired state (a fresh agent, no hub yet) nothing is pruned: an outage never
        // deletes. Nor while a hold waits for an operator, nor what this agent never made or adopted.
        let recorded = inventory[reference]
        guard revision != nil, !pruneHeld, recorded != nil || unrecorded.contains(reference), settings.allowList.refusal(of: reference) == nil
        else {
            succeeded(reference)
            return .done
        }
        working[reference] = .prune(recordedUID: recorded, release: orphaning.contains(reference))
        if let cached = live[reference] { return pruneStep(reference, recorded: recorded, release: orphaning.contains(reference), current: cached) }
        return .read(reference)
    }

    private mutating func applyStep(_ reference: ObjectReference, _ want: JSONValue, current: JSONValue?) -> ReconcileStep {
        if let existing = current, !isManaged(existing) {
            fail(
                reference,
                "conflict: \(reference) already exists in the member and is not managed by Tether "
                    + "(no \(ManagedMarks.managedBy)=\(settings.cluster) label); it was left untouched. "
                    + "Delete or rename it in the member, or rename the federated object"
            )
            return .done
        }
        // Another desired version may have arrived while the read was in flight.
        guard desired[reference] == want else {
            enqueue(reference)
            return .done
        }
        // The kind's Retain keeps what the member owns in what is written.
        var want = current.map { registry.plugin(for: want).retain(desired: want, observed: $0) } ?? want
        // So do workloads a federated autoscaler scales: each member's autoscaler sets their
        // replicas between its bounds, and writing the hub's share back would undo every scaling.
        if autoscaled.contains(reference), let replicas = current?.value(at: "spec", "replicas") {
            want.set(replicas, at: ["spec", "replicas"])
        }
        // Skipped when the member already holds every desired field, unless a field applied
        // before is no longer desired: only an apply removes it (server-side apply drops what
        // the agent no longer sends), as `rollout resume` drops `spec.paused`.
        let nothingDropped = lastApplied[reference].map { AppliedFields.contained($0, in: want) } ?? true
        if let existing = current, nothingDropped, AppliedFields.contained(want, in: existing) {
            lastApplied[reference] = want
            takeInventory(reference, uid: existing.uid)
            record(reference, live: existing, state: .applied)
            succeeded(reference)
            return .done
        }
        let drifted = current != nil && lastApplied[reference] == want
        working[reference] = .apply(want, drifted: drifted)
        return .apply(reference, want, drifted: drifted)
    }

    private mutating func pruneStep(_ reference: ObjectReference, recorded: String?, release: Bool, current: JSONValue?) -> ReconcileStep {
        guard let existing = current else {
            dropInventory(reference)
            unrecorded.remove(reference)
            forget(reference)
            succeeded(reference)
            return .done
        }
        guard isManaged(existing), recorded != nil || existing.annotations[ManagedMarks.origin] == settings.origin else {
            unrecorded.remove(reference)
            forget(reference)
            succeeded(reference)
            return .done
        }
        guard recorded == nil || existing.uid == recorded else {
            // Deleted and made again by someone else since the agent made it: not the agent's to delete.
            log(
                .warning, "not pruned: the object was replaced behind the agent's back",
                [
                    "tether.event": "applier.prune_refused", "tether.object": "\(reference)", "tether.recorded_uid": recorded ?? "none",
                    "tether.live_uid": existing.uid ?? "none",
                ]
            )
            dropInventory(reference)
            forget(reference)
            succeeded(reference)
            return .done
        }
        return release ? .release(reference) : .delete(reference, uid: existing.uid)
    }

    /// `cached` when it is a later version of the object than `answer`, else `answer`.
    static func newer(_ cached: JSONValue?, than answer: JSONValue) -> JSONValue {
        guard let cached, cached.uid == answer.uid, let cachedVersion = cached.resourceVersion,
            let answerVersion = answer.resourceVersion, cachedVersion > answerVersion
        else { return answer }
        return cached
    }

    private mutating func succeeded(_ reference: ObjectReference) {
        if failures.removeValue(forKey: reference) != nil { retryPending[reference] = nil }
        settleAck(reference, failure: nil)
    }

    private mutating func fail(_ reference: ObjectReference, _ message: String) {
        emit(.countFailure(kind: reference.kind))
        let count = (failures[reference] ?? 0) + 1
        failures[reference] = count
        let delay = settings.retryBackoff.delay(attempt: count - 1)
        // The first failure, or a new reason, is a warning; the same failure again is detail.
        let repeated = statuses[reference]?.state == .failed && statuses[reference]?.message == message
        log(
            repeated ? .debug : .warning, "apply failed; retrying later",
            [
                "tether.event": "applier.failed", "tether.object": "\(reference)", "tether.kind": reference.kind, "tether.error": message,
                "tether.failures": "\(count)", "tether.retry_in_s": "\(delay.components.seconds)",
            ]
        )
        if desired[reference] != nil {
            setStatus(StatusReport.ObjectStatus(object: reference, state: .failed, health: .unknown, message: message))
        }
        settleAck(reference, failure: message)
        retryPending[reference] = count
        emit(.schedule(.retry(reference, attempt: count), after: delay))
    }

    // MARK: Timers

    mutating func fired(_ timer: ApplierTimer) {
        switch timer {
        case .retry(let reference, let attempt):
            guard retryPending[reference] == attempt else { return }
            retryPending[reference] = nil
            if desired[reference] != nil || live[reference] != nil { enqueue(reference) }
        case .persistInventory:
            inventoryScheduled = false
            emit(.persistInventory(inventory))
            persistedInventory = Set(inventory.keys)
            unrecorded.subtract(persistedInventory)
        case .periodicResync:
            log(.debug, "periodic resync", ["tether.event": "applier.resync_tick", "tether.objects": "\(desired.count)"])
            for reference in desired.keys where retryPending[reference] == nil { enqueue(reference) }
            emit(.schedule(.periodicResync, after: settings.resyncInterval))
        }
    }

    // MARK: Inventory

    /// Records `uid` as an object the agent made or adopted: the only kind it ever prunes.
    private mutating func takeInventory(_ reference: ObjectReference, uid: String?) {
        guard let uid, inventory[reference] != uid else { return }
        inventory[reference] = uid
        scheduleInventoryWrite()
    }

    private mutating func dropInventory(_ reference: ObjectReference) {
        guard inventory.removeValue(forKey: reference) != nil else { return }
        scheduleInventoryWrite()
    }

    /// Writes the inventory soon: changes within a second share one write. A crash before it is
    /// written only leaves an object unrecorded, which the agent then never prunes: the safe side.
    private mutating func scheduleInventoryWrite() {
        guard !inventoryScheduled else { return }
        inventoryScheduled = true
        emit(.schedule(.persistInventory, after: .seconds(1)))
    }

    /// What must be written before the process ends.
    mutating func stopping() {
        if inventoryScheduled { fired(.persistInventory) }
    }

    // MARK: The member's objects as watched

    /// A full list of one kind's managed objects replaces what the cache held of that kind.
    mutating func listed(kind key: String, items: [JSONValue]) {
        let listed = Set(items.compactMap(\.reference))
        for reference in live.keys where "\(reference.apiVersion)/\(reference.kind)" == key && !listed.contains(reference) {
            live[reference] = nil
            if desired[reference] != nil { enqueue(reference) }
        }
        for item in items { observed(item, deleted: false) }
        for reference in desired.keys where "\(reference.apiVersion)/\(reference.kind)" == key && live[reference] == nil {
            enqueue(reference)
        }
    }

    mutating func observed(_ object: JSONValue, deleted: Bool) {
        guard let reference = object.reference, isManaged(object) || deleted else { return }
        if deleted {
            live[reference] = nil
            if inventory[reference] == object.uid { dropInventory(reference) }
            if desired[reference] != nil {
                log(
                    .notice, "a managed object was deleted in the member; re-creating",
                    ["tether.event": "applier.recreate", "tether.object": "\(reference)"])
                enqueue(reference)
            }
            return
        }
        if let cached = live[reference], Self.newer(cached, than: object) != object { return }
        live[reference] = object
        guard let want = desired[reference] else {
            // Labelled as the agent's but neither in its inventory nor possibly made by it unrecorded:
            // a look-alike, not the agent's to prune.
            if revision != nil, inventory[reference] != nil || unrecorded.contains(reference) { enqueue(reference) }
            return
        }
        if !AppliedFields.contained(want, in: object) {
            enqueue(reference)
        } else if failures[reference] == nil {
            record(reference, live: object, state: .applied)
        }
    }

    // MARK: Reports

    private mutating func forget(_ reference: ObjectReference) {
        lastApplied[reference] = nil
        statuses[reference] = nil
        unsent[reference] = nil
    }

    mutating func record(_ reference: ObjectReference, live object: JSONValue, state: ObjectState) {
        let plugin = registry.plugin(for: object)
        let health = plugin.health(of: object)
        var summary = plugin.summary(of: object)
        // A report the hub would refuse (and close the session over) carries no summary instead.
        let reflected = JSONValue.object(summary)
        if reflected.nestingDepth(stoppingAfter: ReportLimits.maximumSummaryDepth) > ReportLimits.maximumSummaryDepth
            || reflected.encodedSize(stoppingAfter: ReportLimits.maximumSummaryBytes) > ReportLimits.maximumSummaryBytes
        {
            summary = [:]
        }
        setStatus(
            StatusReport.ObjectStatus(
                object: reference, state: state, health: health.state, message: health.reason.isEmpty ? nil : health.reason, summary: summary
            )
        )
    }

    mutating func setStatus(_ status: StatusReport.ObjectStatus) {
        guard statuses[status.object] != status else { return }
        statuses[status.object] = status
        unsent[status.object] = status
        emit(.event(.status(status)))
        emit(.ringReporter)
    }

    private mutating func settleAck(_ reference: ObjectReference, failure: String?) {
        guard var pending = ackPending, pending.remaining.contains(reference) else { return }
        pending.remaining.remove(reference)
        if let failure { pending.failures.append(Ack.ObjectFailure(object: reference, message: failure)) }
        ackPending = pending
        if pending.remaining.isEmpty { finishAck() }
    }

    mutating func finishAck() {
        guard let pending = ackPending else { return }
        let ack = Ack(revision: pending.revision, failures: pending.failures, hold: hold)
        ackReady = ack
        emit(.event(.ack(ack)))
        ackPending = nil
        log(
            .info, "revision applied",
            ["tether.event": "applier.revision_done", "tether.revision": "\(pending.revision)", "tether.failures": "\(pending.failures.count)"])
        emit(.ringReporter)
    }

    /// Up to `limit` statuses not yet sent; they count as sent until ``returnStatuses(_:)``.
    mutating func takeStatuses(limit: Int) -> [StatusReport.ObjectStatus] {
        let batch = Array(unsent.values.prefix(limit))
        for status in batch where unsent[status.object] == status { unsent[status.object] = nil }
        return batch
    }

    /// Statuses a send could not deliver: kept for the next session, unless newer ones wait already.
    mutating func returnStatuses(_ batch: [StatusReport.ObjectStatus]) {
        for status in batch where unsent[status.object] == nil { unsent[status.object] = status }
    }

    mutating func takeAck() -> Ack? {
        defer { ackReady = nil }
        return ackReady
    }

    mutating func returnAck(_ ack: Ack) {
        if ackReady == nil { ackReady = ack }
    }
}
