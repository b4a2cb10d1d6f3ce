import Foundation
import Synchronization

/// Things that happen asynchronously, kept in order, with waits that end at a deadline.
///
/// `waitFor` returns the first item (already received or still to come) that matches; it
/// fails with ``DeadlineExceeded`` listing what did arrive if none does in time.
public final class Inbox<Item: Sendable>: Sendable {
    private struct Waiter {
        let predicate: @Sendable (Item) -> Bool
        let continuation: CheckedContinuation<Item, any Error>
    }

    private struct State {
        var items: [Item] = []
        var waiters: [Int: Waiter] = [:]
        var next = 0
        /// Set once no more items can come; waiters that nothing matched fail with it.
        var finished: String?
        /// Waits numbered but not yet registered, and those of them already cancelled.
        var arriving: Set<Int> = []
        var cancelledEarly: Set<Int> = []
    }

    private let state = Mutex(State())

    public init() {}

    public func append(_ item: Item) {
        let ready = state.withLock { state in
            state.items.append(item)
            let matched = state.waiters.filter { $0.value.predicate(item) }
            for id in matched.keys { state.waiters[id] = nil }
            return matched.values.map(\.continuation)
        }
        for continuation in ready { continuation.resume(returning: item) }
    }

    public var items: [Item] { state.withLock { $0.items } }

    /// No more items will come (the source ended): pending and later unmatched waits fail at once.
    public func finish(_ reason: String) {
        let waiters = state.withLock { state in
            state.finished = reason
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.continuation.resume(throwing: DeadlineExceeded(description: reason)) }
    }

    /// A cancelled task's wait ends at once with `CancellationError`.
    @discardableResult
    public func waitFor(
        _ what: String,
        within timeout: Duration,
        where predicate: @escaping @Sendable (Item) -> Bool
    ) async throws -> Item {
        let id = state.withLock { state in
            defer { state.next += 1 }
            state.arriving.insert(state.next)
            return state.next
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let found: Result<Item, any Error>? = state.withLock { state in
                    state.arriving.remove(id)
                    let cancelled = state.cancelledEarly.remove(id) != nil
                    if let item = state.items.first(where: predicate) { return .success(item) }
                    if let finished = state.finished {
                        return .failure(DeadlineExceeded(description: "no \(what): \(finished)"))
                    }
                    if cancelled { return .failure(CancellationError()) }
                    state.waiters[id] = Waiter(predicate: predicate, continuation: continuation)
                    DispatchQueue.global().asyncAfter(deadline: .now() + timeout.timeInterval) { [weak self] in
                        self?.expire(id, what: what, timeout: timeout)
                    }
                    return nil
                }
                if let found { continuation.resume(with: found) }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                guard let waiter = state.waiters.removeValue(forKey: id) else {
                    if state.arriving.contains(id) { state.cancelledEarly.insert(id) }
                    return nil as Waiter?
                }
                return waiter
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    private func expire(_ id: Int, what: String, timeout: Duration) {
        let (waiter, seen) = state.withLock { ($0.waiters.removeValue(forKey: id), $0.items) }
        waiter?.continuation.resume(
            throwing: DeadlineExceeded(description: "no \(what) within \(timeout); got: \(seen.map { "\($0)" })")
        )
    }
}

/// A wait that ended without what it waited for.
public struct DeadlineExceeded: Error, CustomStringConvertible {
    public var description: String

    public init(description: String) {
        self.description = description
    }
}
