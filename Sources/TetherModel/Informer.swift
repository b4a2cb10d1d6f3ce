/// A change a watch reported, in the words every source shares.
public enum WatchedChange<Object: Sendable>: Sendable {
    case upserted(Object, version: String?)
    case deleted(Object, version: String?)
    /// The watch moved on without a change to report (a bookmark).
    case bookmark(version: String)
}

/// A collection that is listed, then watched from the list's version: the hub's store, a
/// member cluster's API server.
public protocol ListWatchSource: Sendable {
    associatedtype Object: Sendable

    /// Every object, and the version a watch continues from.
    nonisolated(nonsending) func list() async throws -> (objects: [Object], version: String)

    /// Reports each change after `version`, in order, until the watch ends: returns when the
    /// server ends it (its timeout), throws when it breaks, and throws ``ListWatchExpired`` when
    /// `version` is older than the history the server keeps.
    nonisolated(nonsending) func watch(from version: String, _ report: (WatchedChange<Object>) async -> Void) async throws
}

/// The version a watch was asked to continue from is gone from the server's history, or the
/// watcher fell too far behind: list again, at once.
public struct ListWatchExpired: Error, Sendable {
    public init() {}
}

/// Keeps a caller in step with a collection the way client-go's reflector does: list, then watch
/// from the list's version, watch again from the last version seen when a watch ends, and list
/// again when the version expired (at once) or the source failed (after a backoff).
public struct Informer<Source: ListWatchSource>: Sendable {
    public enum Event {
        /// A full list: everything the collection holds now, at `version`. Objects the caller
        /// knew and this list lacks were deleted meanwhile.
        case listed([Source.Object], version: String)
        case changed(WatchedChange<Source.Object>)
        /// Listing or watching failed `failures` times in a row; the next list is in `retryIn`.
        case failed(any Error, failures: Int, retryIn: Duration)
    }

    public let source: Source
    public let backoff: Backoff

    public init(_ source: Source, backoff: Backoff = Backoff(initial: .milliseconds(500), maximum: .seconds(30))) {
        self.source = source
        self.backoff = backoff
    }

    /// Runs until the task is cancelled, handing every event to `handle` in order.
    public nonisolated(nonsending) func run(_ handle: (Event) async -> Void) async {
        var failures = 0
        while !Task.isCancelled {
            do {
                let (objects, listedVersion) = try await source.list()
                await handle(.listed(objects, version: listedVersion))
                failures = 0
                var version = listedVersion
                while !Task.isCancelled {
                    try await source.watch(from: version) { change in
                        switch change {
                        case .upserted(_, let seen), .deleted(_, let seen): version = seen ?? version
                        case .bookmark(let seen): version = seen
                        }
                        await handle(.changed(change))
                    }
                }
            } catch is ListWatchExpired {
                continue
            } catch {
                if Task.isCancelled { return }
                failures += 1
                let delay = backoff.delay(attempt: failures - 1)
                await handle(.failed(error, failures: failures, retryIn: delay))
                do {
                    try await Task.sleep(for: delay)
                } catch {
                    return
                }
            }
        }
    }
}
