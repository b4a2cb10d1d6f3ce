import Logging
import TetherJSON
import TetherModel
import TetherStore

/// What the namespace and definition controllers share when an owner with a cleanup finalizer
/// is deleted: delete everything it holds, wait until the store has nothing left of it, then let
/// the owner go; a failure is logged and retried with backoff.
enum FinalizingCleanup {
    /// Calls `pass` until it returns true (the owner may go). Between passes it waits for the
    /// next change of what remains rather than listing again at once.
    static func run(
        store: any ResourceStore, namespace: String?, logger: Logger, failure: Logger.Message, metadata: Logger.Metadata,
        _ pass: () async throws(StoreError) -> Remaining?
    ) async {
        var attempt = 0
        while !Task.isCancelled {
            do {
                guard let remaining = try await pass() else { return }
                for try await _ in try await store.watch(remaining.type, namespace: namespace, from: remaining.version) { break }
                attempt = 0
            } catch {
                attempt += 1
                logger.warning(failure, metadata: metadata.merging(["tether.error": "\(error)"]) { $1 })
                guard (try? await Task.sleep(for: Backoff(initial: .milliseconds(200), maximum: .seconds(10)).delay(attempt: attempt))) != nil else {
                    return
                }
            }
        }
    }

    /// A kind that still holds objects, and the version its list was read at.
    struct Remaining {
        var type: ResourceType
        var version: UInt64
    }

    /// Deletes every object of `types` (in `namespace`, or everywhere) not already being deleted;
    /// the first type that still held objects, or nil when none did.
    static func deleteObjects(of types: [ResourceType], namespace: String?, in store: any ResourceStore) async throws(StoreError) -> Remaining? {
        var remaining: Remaining?
        for type in types {
            let (objects, version) = try await list(type, namespace: namespace, in: store)
            guard !objects.isEmpty else { continue }
            if remaining == nil { remaining = Remaining(type: type, version: version) }
            for object in objects where object.deletionTimestamp == nil {
                do {
                    _ = try await store.delete(type, namespace: object.namespace, name: object.name ?? "", preconditions: .init(), dryRun: false)
                } catch  where error.code == .notFound {
                    // Deleted by someone else since the list.
                }
            }
        }
        return remaining
    }

    private static func list(_ type: ResourceType, namespace: String?, in store: any ResourceStore) async throws(StoreError) -> ([JSONValue], UInt64)
    {
        do {
            let (objects, version) = try await StoreListWatch(store: store, type: type, namespace: namespace).list()
            return (objects, UInt64(version) ?? 0)
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.storage, "\(error)")
        }
    }

    /// `owner` without `finalizer`; false when it does not hold it.
    static func removing(_ finalizer: String, from owner: inout JSONValue) -> Bool {
        guard owner.finalizers.contains(finalizer) else { return false }
        owner.metadata["finalizers"] = .array(owner.finalizers.filter { $0 != finalizer }.map(JSONValue.string))
        return true
    }
}
