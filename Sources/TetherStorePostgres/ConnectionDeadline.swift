import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

/// A use of a pooled connection that took longer than the store allows.
struct ConnectionDeadlineExceeded: Error, CustomStringConvertible {
    var timeout: Duration
    var description: String {
        "PostgreSQL did not answer within \(timeout); the connection was closed and the next request opens another"
    }
}

extension PostgresClient {
    /// Runs `body` with a leased connection, but fails with ``ConnectionDeadlineExceeded`` once
    /// `timeout` has passed, closing that connection.
    ///
    /// PostgresNIO 1.33 writes a query to its channel without a promise: when the server closes
    /// the connection in the moment the query is written (a restart, a failover), the query is
    /// never answered and its caller waits forever. Measured here: the test that restarts
    /// PostgreSQL under writes hung in 18 of 28 runs, always on a write caught mid-transaction.
    /// The deadline turns that into an error the caller can retry; the abandoned task ends if
    /// the closed connection fails it.
    func withConnection<T: Sendable>(
        within timeout: Duration, _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        let attempt = DeadlineAttempt<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                attempt.state.withLock { $0.continuation = continuation }
                let work = Task {
                    let result: Result<T, any Error>
                    do {
                        result = .success(
                            try await self.withConnection { connection in
                                attempt.state.withLock { $0.connection = connection }
                                return try await body(connection)
                            })
                    } catch {
                        result = .failure(error)
                    }
                    let (waiting, timer) = attempt.state.withLock { ($0.continuation.take(), $0.timer) }
                    timer?.cancel()
                    waiting?.resume(with: result)
                }
                let timer = MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: .nanoseconds(timeout.nanoseconds)) {
                    let (waiting, connection) = attempt.state.withLock { ($0.continuation.take(), $0.connection) }
                    guard let waiting else { return }
                    waiting.resume(throwing: ConnectionDeadlineExceeded(timeout: timeout))
                    work.cancel()
                    connection?.close().whenComplete { _ in }
                }
                let finished = attempt.state.withLock { attempt in
                    attempt.work = work
                    attempt.timer = timer
                    return attempt.continuation == nil
                }
                if finished { timer.cancel() }
            }
        } onCancel: {
            attempt.state.withLock { $0.work }?.cancel()
        }
    }
}

/// What the work and the timer of one ``PostgresClient/withConnection(within:_:)`` share: the
/// first to take the continuation answers the caller.
private final class DeadlineAttempt<T: Sendable>: Sendable {
    struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var connection: PostgresConnection?
        var work: Task<Void, Never>?
        var timer: Scheduled<Void>?
    }
    let state = Mutex(State())
}

extension Duration {
    fileprivate var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
