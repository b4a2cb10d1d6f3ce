import Synchronization
import TetherStore

/// One object the simulator looks after.
struct ObjectKey: Hashable, Sendable, CustomStringConvertible {
    var type: ResourceType
    var namespace: String?
    var name: String

    var description: String { "\(type) \(namespace.map { "\($0)/" } ?? "")\(name)" }
}

/// A keyed, de-duplicating queue: a key waiting to be reconciled is queued once however many
/// events name it, and a key being reconciled can be queued again by the events it causes.
final class WorkQueue: Sendable {
    private let pending = Mutex(Set<ObjectKey>())
    private let stream: AsyncStream<ObjectKey>
    private let continuation: AsyncStream<ObjectKey>.Continuation

    init() {
        (stream, continuation) = AsyncStream.makeStream(of: ObjectKey.self)
    }

    func add(_ key: ObjectKey) {
        let isNew = pending.withLock { $0.insert(key).inserted }
        if isNew { continuation.yield(key) }
    }

    /// Keys in the order they were first queued; a key leaves the pending set as it is handed out.
    var keys: AsyncMapSequence<AsyncStream<ObjectKey>, ObjectKey> {
        stream.map { [self] key in
            _ = self.pending.withLock { $0.remove(key) }
            return key
        }
    }

    func finish() { continuation.finish() }
}
