import Foundation
import TetherJSON
import TetherModel

/// What one write does to one stored object, as every backend decides it.
///
/// The rules of ``ResourceStore`` (uid, generation, conflicts, finalizers, no-op writes) live
/// here once; a backend only reads the stored object inside its transaction, asks these
/// functions what to do, and does it.
package enum StoredChange: Sendable {
    /// Nothing to write: the answer is this object as stored.
    case keep(JSONValue)
    /// Write this object with the next resource version, recorded as this kind of change.
    case store(JSONValue, WatchEvent.Kind)
    /// Remove the object; this is its last state.
    case remove(JSONValue)
}

package enum ObjectRules {
    /// The object a create will store, checked before any transaction: scope, name or
    /// `generateName`, with its key.
    package static func prepareCreate(_ object: JSONValue, as type: ResourceType) throws(StoreError) -> (JSONValue, ObjectKey) {
        guard case .object = object else { throw StoreError(.invalid, "the object must be a JSON object") }
        var created = object
        if type.namespaced {
            guard created.namespace?.isEmpty == false else {
                throw StoreError(.invalid, "\(type) is namespaced: metadata.namespace is required")
            }
        } else {
            created.namespace = nil
        }
        if created.name?.isEmpty ?? true {
            guard let prefix = created.metadata["generateName"]?.stringValue, !prefix.isEmpty else {
                throw StoreError(.invalid, "metadata.name or metadata.generateName is required")
            }
            created.name = prefix + randomSuffix()
        }
        let key = try ObjectKey(type: type, namespace: created.namespace, name: created.name ?? "")
        return (created, key)
    }

    /// A create, given what is stored under its key.
    package static func create(_ candidate: JSONValue, key: ObjectKey, existing: JSONValue?, timestamp: String) throws(StoreError) -> StoredChange {
        guard existing == nil else {
            throw StoreError.alreadyExists(key)
        }
        var created = candidate
        // The API names a new object's uid before admitting it (a Job's generated selector
        // holds it); anything else gets one here.
        if created.uid?.isEmpty ?? true { created.uid = UUID().uuidString.lowercased() }
        created.metadata["creationTimestamp"] = .string(timestamp)
        created.metadata["deletionTimestamp"] = nil
        created.metadata["deletionGracePeriodSeconds"] = nil
        created.generation = 1
        return .store(created, .added)
    }

    /// The key of an update or status update.
    package static func replaceKey(_ object: JSONValue, as type: ResourceType) throws(StoreError) -> ObjectKey {
        guard case .object = object else { throw StoreError(.invalid, "the object must be a JSON object") }
        return try ObjectKey(type: type, namespace: type.namespaced ? object.namespace : nil, name: object.name ?? "")
    }

    /// How an update merges: everything but `status`, which is kept; `generation` moves with the spec.
    package static func mergeUpdate(existing: JSONValue, incoming: JSONValue) -> JSONValue {
        var updated = incoming
        updated.metadata["creationTimestamp"] = existing.metadata["creationTimestamp"]
        updated.metadata["deletionTimestamp"] = existing.metadata["deletionTimestamp"]
        updated.metadata["deletionGracePeriodSeconds"] = existing.metadata["deletionGracePeriodSeconds"]
        updated.uid = existing.uid
        updated[member: "status"] = existing["status"]
        let specChanged = updated.specPart != existing.specPart
        updated.generation = (existing.generation ?? 1) + (specChanged ? 1 : 0)
        return updated
    }

    /// How a status update merges: only `status` changes, and the field managers when the
    /// write names them (the API records who wrote the status there; the server's own status
    /// writes carry the stored ones back).
    package static func mergeStatus(existing: JSONValue, incoming: JSONValue) -> JSONValue {
        var updated = existing
        updated[member: "status"] = incoming["status"]
        if let managedFields = incoming.metadata["managedFields"] { updated.metadata["managedFields"] = managedFields }
        return updated
    }

    /// An update or status update: preconditions, no-op detection, finalization.
    package static func replace(
        _ object: JSONValue,
        key: ObjectKey,
        existing: JSONValue?,
        merge: (_ existing: JSONValue, _ incoming: JSONValue) -> JSONValue
    ) throws(StoreError) -> StoredChange {
        guard let existing else { throw StoreError.notFound(key) }
        if let expected = object.resourceVersion, expected != existing.resourceVersion {
            throw StoreError.conflict(
                key,
                "the object has been modified (resourceVersion \(expected) is not the latest, "
                    + "\(existing.resourceVersion ?? 0)); read it again and apply your changes to the latest version")
        }
        if let uid = object.uid, uid != existing.uid {
            throw StoreError.conflict(key, "metadata.uid \(uid) does not match the stored object's \(existing.uid ?? "")")
        }
        var updated = merge(existing, object)
        updated.resourceVersion = existing.resourceVersion
        if !key.type.namespaced { updated.namespace = nil }
        // Its last finalizer removed, a deleted object goes; one in its grace period waits for its final delete.
        if existing.deletionTimestamp != nil, updated.finalizers.isEmpty, !Self.inGracePeriod(existing) { return .remove(updated) }
        // Writing what is already stored changes nothing, not even the resource version.
        guard updated != existing else { return .keep(existing) }
        return .store(updated, .modified)
    }

    /// A delete: preconditions, then a mark (finalizers left), nothing (already marked) or removal.
    package static func delete(
        key: ObjectKey,
        existing: JSONValue?,
        preconditions: DeletePreconditions,
        timestamp: String
    ) throws(StoreError) -> StoredChange {
        guard var existing else { throw StoreError.notFound(key) }
        if let uid = preconditions.uid, uid != existing.uid {
            throw StoreError.conflict(key, "precondition failed: uid \(uid) is not the stored object's \(existing.uid ?? "")")
        }
        if let version = preconditions.resourceVersion, version != existing.resourceVersion {
            throw StoreError.conflict(key, "precondition failed: resourceVersion \(version) is not the latest")
        }
        let missing = preconditions.addingFinalizers.filter { !existing.finalizers.contains($0) }
        if existing.deletionTimestamp == nil, !missing.isEmpty {
            existing.finalizers += missing
        }
        let grace = max(0, preconditions.gracePeriodSeconds ?? 0)
        func markGraceful() {
            let now = kubernetesTimeParts(timestamp)?.seconds ?? Int64(Date().timeIntervalSince1970)
            existing.deletionTimestamp = kubernetesTimestamp(Date(timeIntervalSince1970: TimeInterval(now + grace)))
            existing.metadata["deletionGracePeriodSeconds"] = .integer(grace)
        }
        // As kube-apiserver: a graceful delete is marked with its grace period (finalizers or
        // not), and a later delete may only shorten it; the object goes once its finalizers are
        // gone and its period ended with a delete of zero (its kubelet's final one).
        if Self.inGracePeriod(existing) {
            guard grace < (existing.metadata["deletionGracePeriodSeconds"]?.integerValue ?? 0) else { return .keep(existing) }
            guard grace == 0, existing.finalizers.isEmpty else {
                markGraceful()
                return .store(existing, .modified)
            }
            return .remove(existing)
        }
        guard existing.finalizers.isEmpty else {
            guard existing.deletionTimestamp == nil else { return .keep(existing) }
            if grace > 0 { markGraceful() } else { existing.deletionTimestamp = timestamp }
            return .store(existing, .modified)
        }
        if grace > 0 {
            guard existing.deletionTimestamp == nil else { return .keep(existing) }
            markGraceful()
            return .store(existing, .modified)
        }
        return .remove(existing)
    }

    /// Whether the object was deleted gracefully and waits for its final delete.
    static func inGracePeriod(_ object: JSONValue) -> Bool {
        (object.metadata["deletionGracePeriodSeconds"]?.integerValue ?? 0) > 0
    }

    /// What a delete answers, from the change it made (`written` is the object as stored).
    package static func deleteOutcome(_ change: StoredChange, written: JSONValue) -> DeleteOutcome {
        switch change {
        case .remove: .deleted(written)
        case .keep, .store: .finalizing(written)
        }
    }

    /// The stored body of an object, checked against the store's own limits whoever wrote: the
    /// API checks what clients send, but the server's own writes (status, finalizers) pass only
    /// through here.
    package static func storedBody(_ object: JSONValue, key: ObjectKey, limits: ObjectLimits) throws(StoreError) -> String {
        let body: String
        do {
            body = try object.serializedText()
        } catch {
            throw StoreError(.invalid, "\(key.type) \"\(key.name)\" cannot be encoded: \(error)")
        }
        if let violation = limits.check(object, encodedBytes: body.utf8.count, limit: limits.maximumStoredBytes) {
            switch violation.code {
            case .tooLarge: throw StoreError(.tooLarge, "\(key.type) \"\(key.name)\" cannot be stored: \(violation)")
            case .tooDeep: throw StoreError(.invalid, "\(key.type) \"\(key.name)\" cannot be stored: \(violation)")
            }
        }
        return body
    }

    package static func expired(_ resourceVersion: UInt64, compactedThrough compacted: UInt64) -> StoreError? {
        guard resourceVersion < compacted else { return nil }
        return StoreError(.expired, "too old resource version: \(resourceVersion) (the oldest available is \(compacted + 1)); list again")
    }

    private static func randomSuffix() -> String {
        let alphabet = Array("bcdfghjklmnpqrstvwxz2456789")
        return String((0..<5).map { _ in alphabet.randomElement()! })
    }
}

/// A watch from a past resource version: the history after it, a page at a time, then the live
/// changes that follow (those already replayed skipped by version). Any backend's: `page` reads
/// its history.
package final class HistoryReplay: @unchecked Sendable {
    // Used by one iterator at a time (an AsyncThrowingStream's unfolding closure is never called
    // concurrently), so its state needs no lock.
    private let page: @Sendable (_ after: UInt64) async throws -> [WatchEvent]
    private var last: UInt64
    private var buffered: [WatchEvent] = []
    private var index = 0
    private var replaying = true
    private var live: WatchStream.AsyncIterator

    package init(after version: UInt64, live: WatchStream, page: @escaping @Sendable (_ after: UInt64) async throws -> [WatchEvent]) {
        self.page = page
        self.last = version
        self.live = live.makeAsyncIterator()
    }

    package var stream: WatchStream { WatchStream(unfolding: { try await self.next() }) }

    private func next() async throws -> WatchEvent? {
        while replaying {
            if index < buffered.count {
                let event = buffered[index]
                index += 1
                last = event.resourceVersion
                return event
            }
            buffered = try await page(last)
            index = 0
            if buffered.isEmpty { replaying = false }
        }
        while let event = try await live.next() {
            if event.resourceVersion > last { return event }
        }
        return nil
    }
}
