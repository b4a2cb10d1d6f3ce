import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
import TetherTestSupport

/// Many watch streams on one list, each reading its events as they arrive.
final class WatchFan: Sendable {
    private struct State {
        /// Per watcher, when it first saw each object name.
        var seen: [[String: ContinuousClock.Instant]]
        var waiter: (name: String, continuation: CheckedContinuation<[ContinuousClock.Instant], any Error>)?
    }

    private let state: Mutex<State>
    private let readers: Mutex<[Task<Void, Never>]> = Mutex([])

    private init(count: Int) {
        state = Mutex(State(seen: Array(repeating: [:], count: count)))
    }

    static func open(_ count: Int, api: HubAPIClient, path: String) async throws -> WatchFan {
        let fan = WatchFan(count: count)
        var tasks: [Task<Void, Never>] = []
        for index in 0..<count {
            var request = HTTPClientRequest(url: api.base + path)
            request.method = .GET
            let response = try await api.client.execute(request, timeout: .hours(1))
            guard response.status == .ok else { throw BenchError("watch \(index): \(response.status)") }
            tasks.append(Task { await fan.read(response.body, watcher: index) })
        }
        fan.readers.withLock { $0 = tasks }
        return fan
    }

    private func read(_ body: HTTPClientResponse.Body, watcher: Int) async {
        var pending = ""
        do {
            for try await chunk in body {
                pending += String(buffer: chunk)
                while let newline = pending.firstIndex(of: "\n") {
                    let line = pending[..<newline]
                    pending = String(pending[pending.index(after: newline)...])
                    guard let start = line.range(of: #""name":""#) else { continue }
                    let name = line[start.upperBound...].prefix { $0 != "\"" }
                    note(String(name), watcher: watcher)
                }
            }
        } catch {}
    }

    private func note(_ name: String, watcher: Int) {
        let now = ContinuousClock.now
        let done = state.withLock { state -> (CheckedContinuation<[ContinuousClock.Instant], any Error>, [ContinuousClock.Instant])? in
            if state.seen[watcher][name] == nil { state.seen[watcher][name] = now }
            guard let waiter = state.waiter, waiter.name == name else { return nil }
            let times = state.seen.compactMap { $0[name] }
            guard times.count == state.seen.count else { return nil }
            state.waiter = nil
            return (waiter.continuation, times)
        }
        if let (continuation, times) = done { continuation.resume(returning: times) }
    }

    /// When each watcher saw `name`, once all have.
    func waitAll(for name: String, timeout: Duration) async throws -> [ContinuousClock.Instant] {
        try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLock { state -> [ContinuousClock.Instant]? in
                let times = state.seen.compactMap { $0[name] }
                if times.count == state.seen.count { return times }
                state.waiter = (name, continuation)
                return nil
            }
            if let ready {
                continuation.resume(returning: ready)
                return
            }
            Task {
                try? await Task.sleep(for: timeout)
                let expired = self.state.withLock { state -> CheckedContinuation<[ContinuousClock.Instant], any Error>? in
                    guard state.waiter?.name == name else { return nil }
                    defer { state.waiter = nil }
                    return state.waiter?.continuation
                }
                expired?.resume(throwing: BenchError("not every watcher saw \(name) within \(timeout)"))
            }
        }
    }

    func close() async {
        for task in readers.withLock({ $0 }) { task.cancel() }
    }
}
