import TetherJSON
import TetherModel

/// Which part of a stored object a write replaces.
public enum StoredPart: Sendable {
    /// Everything but `status` (a spec or metadata change).
    case object
    /// The status subresource.
    case status
}

extension ResourceStore {
    /// Reads an object, lets `change` edit it, and writes it back, reading it again whenever
    /// another writer got there first (a conflict or a deletion), up to `attempts` times: the one way Tether's
    /// own controllers update what others may write too.
    ///
    /// - Parameters:
    ///   - create: what to create when the object does not exist; without it, a missing object is nil.
    ///   - change: edits the object read; returns false to leave it as it is.
    /// - Returns: the object as stored, or nil when it is missing or `change` declined.
    @discardableResult
    public func modify(
        _ type: ResourceType,
        namespace: String?,
        name: String,
        part: StoredPart = .object,
        attempts: Int = 5,
        createIfMissing create: (() -> JSONValue)? = nil,
        change: (inout JSONValue) -> Bool
    ) async throws(StoreError) -> JSONValue? {
        var lastConflict: StoreError?
        for _ in 0..<max(1, attempts) {
            var object: JSONValue
            do {
                object = try await get(type, namespace: namespace, name: name)
            } catch  where error.code == .notFound {
                guard let create else { return nil }
                do {
                    return try await self.create(create(), as: type, dryRun: false)
                } catch  where error.code == .alreadyExists {
                    lastConflict = error
                    continue
                }
            }
            guard change(&object) else { return nil }
            do {
                switch part {
                case .object: return try await update(object, as: type, dryRun: false)
                case .status: return try await updateStatus(object, as: type, dryRun: false)
                }
            } catch  where error.code == .conflict || error.code == .notFound {
                // Changed or deleted since it was read: read it again (a deleted one is created
                // again when `create` is given, else reported missing).
                lastConflict = error
            }
        }
        throw lastConflict ?? StoreError(.conflict, "\(type) \(name) kept changing under \(attempts) attempts to update it")
    }
}

/// One resource of a store as an ``Informer`` reads it: listed in pages of 500, then watched.
/// A watch that fell behind (`watchOverflow`) or asked for compacted history (`expired`)
/// lists again at once.
public struct StoreListWatch: ListWatchSource {
    public let store: any ResourceStore
    public let type: ResourceType
    public let namespace: String?

    public init(store: any ResourceStore, type: ResourceType, namespace: String? = nil) {
        self.store = store
        self.type = type
        self.namespace = namespace
    }

    public nonisolated(nonsending) func list() async throws -> (objects: [JSONValue], version: String) {
        var objects: [JSONValue] = []
        var position: ListPosition?
        var version: UInt64 = 0
        repeat {
            var options = ListOptions(namespace: namespace)
            options.limit = 500
            options.after = position
            let page = try await store.list(type, options: options)
            objects += page.objects
            position = page.next
            version = page.resourceVersion
        } while position != nil
        return (objects, String(version))
    }

    public nonisolated(nonsending) func watch(from version: String, _ report: (WatchedChange<JSONValue>) async -> Void) async throws {
        do {
            for try await event in try await store.watch(type, namespace: namespace, from: UInt64(version) ?? 0) {
                let seen = String(event.resourceVersion)
                await report(event.kind == .deleted ? .deleted(event.object, version: seen) : .upserted(event.object, version: seen))
            }
        } catch let error as StoreError where error.code == .watchOverflow || error.code == .expired {
            throw ListWatchExpired()
        }
    }
}
