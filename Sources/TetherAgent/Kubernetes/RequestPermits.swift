import NIOConcurrencyHelpers

/// At most `limit` holders at once; the rest wait in arrival order. A waiter whose task is
/// cancelled leaves the queue at once (and its body does not run).
final class RequestPermits: Sendable {
    private struct State {
        var available: Int
        var waiters: [Int: CheckedContinuation<Bool, Never>] = [:]
        var order: [Int] = []
        var next = 0
        /// Waits numbered but not yet queued or granted, and those of them already cancelled.
        var arriving: Set<Int> = []
        var cancelledEarly: Set<Int> = []
    }

    private let state: NIOLockedValueBox<State>

    init(_ limit: Int) { state = NIOLockedValueBox(State(available: max(1, limit))) }

    /// Runs `body` holding a permit; a task cancelled while waiting gets `onCancel` instead.
    func withPermit<T: Sendable>(onCancel: @autoclosure () -> T, _ body: @Sendable () async -> T) async -> T {
        guard await acquire() else { return onCancel() }
        defer { release() }
        return await body()
    }

    private func acquire() async -> Bool {
        let id = state.withLockedValue { state in
            defer { state.next += 1 }
            state.arriving.insert(state.next)
            return state.next
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let answer: Bool? = state.withLockedValue { state in
                    state.arriving.remove(id)
                    if state.cancelledEarly.remove(id) != nil { return false }
                    if state.available > 0 {
                        state.available -= 1
                        return true
                    }
                    state.waiters[id] = continuation
                    state.order.append(id)
                    return nil
                }
                if let answer { continuation.resume(returning: answer) }
            }
        } onCancel: {
            let waiter = state.withLockedValue { state -> CheckedContinuation<Bool, Never>? in
                guard let waiter = state.waiters.removeValue(forKey: id) else {
                    if state.arriving.contains(id) { state.cancelledEarly.insert(id) }
                    return nil
                }
                state.order.removeAll { $0 == id }
                return waiter
            }
            waiter?.resume(returning: false)
        }
    }

    private func release() {
        let next = state.withLockedValue { state -> CheckedContinuation<Bool, Never>? in
            while !state.order.isEmpty {
                let id = state.order.removeFirst()
                if let waiter = state.waiters.removeValue(forKey: id) { return waiter }
            }
            state.available += 1
            return nil
        }
        next?.resume(returning: true)
    }
}
