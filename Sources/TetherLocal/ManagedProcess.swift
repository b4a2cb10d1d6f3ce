import Foundation
import Synchronization

/// One line a Tether process logged with `--log-format json`, with its fields as strings.
public struct LogLine: Sendable, CustomStringConvertible {
    public let raw: String
    public let fields: [String: String]

    init(raw: String) {
        self.raw = raw
        if let object = try? JSONSerialization.jsonObject(with: Data(raw.utf8)) as? [String: Any] {
            self.fields = object.mapValues { "\($0)" }
        } else {
            self.fields = [:]
        }
    }

    public subscript(field: String) -> String? { fields[field] }

    /// The `tether.event` field: what happened, as a stable name such as `session.established`.
    public var event: String? { fields["tether.event"] }

    public var description: String { raw }
}

/// A process that could not be found or started as asked.
public struct ProcessWaitError: Error, CustomStringConvertible {
    public var description: String
}

/// A child process whose output is read line by line, so callers can wait for what it logs.
///
/// Waiting is event-driven: each line read is offered to the pending waiters, and a waiter
/// that is still unanswered at its deadline fails with the process's recent output.
public final class ManagedProcess: Sendable {
    public let name: String
    private let process: Process
    private let state = Mutex(State())
    private let output = Inbox<LogLine>()
    private let echo: (@Sendable (String, LogLine) -> Void)?
    /// Held open so programs that stop at end of input (`openssl s_client`) keep running until stopped.
    private let standardInput: Pipe?

    private struct State {
        var partial: [String: Data] = [:]
        var exitStatus: Int32?
        var exitWaiters: [@Sendable (Int32) -> Void] = []
    }

    /// The read ends of the child's stdout and stderr, drained once more when it exits.
    private let outputPipes = Mutex<[(stream: String, pipe: Pipe)]>([])

    /// - Parameter echo: called with the process name and every line it prints (to show a demo's logs).
    public init(
        name: String,
        executable: URL,
        arguments: [String],
        environment: [String: String]? = nil,
        keepStandardInputOpen: Bool = false,
        echo: (@Sendable (String, LogLine) -> Void)? = nil
    ) {
        self.name = name
        self.echo = echo
        self.standardInput = keepStandardInputOpen ? Pipe() : nil
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let environment { process.environment = environment }
        self.process = process
    }

    public func start() throws {
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = standardInput ?? FileHandle.nullDevice
        outputPipes.withLock { $0 = [("stdout", stdout), ("stderr", stderr)] }
        for (stream, pipe) in [("stdout", stdout), ("stderr", stderr)] {
            pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
                let data = handle.availableData
                if data.isEmpty { handle.readabilityHandler = nil }
                self?.received(data, from: stream)
            }
        }
        process.terminationHandler = { [weak self] process in
            self?.terminated(status: process.terminationStatus)
        }
        try process.run()
    }

    public var processIdentifier: Int32 { process.processIdentifier }

    /// Everything logged so far.
    public var lines: [LogLine] { output.items }

    public var exitStatus: Int32? { state.withLock { $0.exitStatus } }

    /// The first line (already logged or still to come) that satisfies `predicate`.
    @discardableResult
    public func waitForLine(
        within timeout: Duration,
        _ what: String,
        where predicate: @escaping @Sendable (LogLine) -> Bool
    ) async throws -> LogLine {
        do {
            return try await output.waitFor(what, within: timeout, where: predicate)
        } catch {
            throw DeadlineExceeded(description: "\(name): \(error); last output:\n\(tail())")
        }
    }

    /// Waits for the `tether.event` named `event`, optionally also matching `predicate`.
    @discardableResult
    public func waitForEvent(
        _ event: String,
        within timeout: Duration,
        where predicate: @escaping @Sendable (LogLine) -> Bool = { _ in true }
    ) async throws -> LogLine {
        try await waitForLine(within: timeout, "event \(event)") { $0.event == event && predicate($0) }
    }

    /// Sends `signal` (SIGTERM, SIGINT, SIGKILL, ...) if the process still runs.
    public func send(_ signal: Int32) {
        guard process.isRunning else { return }
        kill(process.processIdentifier, signal)
    }

    /// Waits for the process to exit, up to `timeout`; nil if it is still running then.
    public func waitForExit(within timeout: Duration) async -> Int32? {
        await withCheckedContinuation { (continuation: CheckedContinuation<Int32?, Never>) in
            let box = Mutex<CheckedContinuation<Int32?, Never>?>(continuation)
            let finish: @Sendable (Int32?) -> Void = { status in box.withLock { $0.take() }?.resume(returning: status) }
            let already: Int32? = state.withLock { state in
                if let status = state.exitStatus { return status }
                state.exitWaiters.append { finish($0) }
                return nil
            }
            if let already { finish(already) }
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout.timeInterval) { finish(nil) }
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`. Returns the exit status.
    @discardableResult
    public func stop(grace: Duration = .seconds(5)) async -> Int32? {
        send(SIGTERM)
        if let status = await waitForExit(within: grace) { return status }
        send(SIGKILL)
        return await waitForExit(within: .seconds(5))
    }

    /// The last `count` lines, for failure messages.
    public func tail(_ count: Int = 30) -> String {
        lines.suffix(count).map(\.raw).joined(separator: "\n")
    }

    private func received(_ data: Data, from stream: String) {
        let complete = state.withLock { state in
            var buffer = state.partial[stream, default: Data()]
            buffer.append(data)
            if data.isEmpty, !buffer.isEmpty { buffer.append(UInt8(ascii: "\n")) }
            var complete: [LogLine] = []
            while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                complete.append(LogLine(raw: String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)))
                buffer.removeSubrange(buffer.startIndex...newline)
            }
            state.partial[stream] = buffer
            return complete
        }
        for line in complete {
            output.append(line)
            echo?(name, line)
        }
    }

    /// Reads what the process wrote before it exited, then publishes the exit: a caller that saw
    /// the exit never misses a line printed before it.
    ///
    /// End of file is not waited for: a sibling spawned at the same moment can inherit the pipe's
    /// write end and hold it open long after this process is gone. Reading without blocking takes
    /// what is already in the pipe, which is everything this process wrote.
    private func terminated(status: Int32) {
        for (stream, pipe) in outputPipes.withLock({ $0 }) {
            let handle = pipe.fileHandleForReading
            handle.readabilityHandler = nil
            let descriptor = handle.fileDescriptor
            _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
            var chunk = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                guard count > 0 else { break }
                received(Data(chunk[0..<count]), from: stream)
            }
            received(Data(), from: stream)
        }
        let waiters = state.withLock { state in
            state.exitStatus = status
            defer { state.exitWaiters = [] }
            return state.exitWaiters
        }
        output.finish("\(name) exited with status \(status)")
        for waiter in waiters { waiter(status) }
    }
}

extension Duration {
    var timeInterval: TimeInterval {
        TimeInterval(components.seconds) + TimeInterval(components.attoseconds) / 1e18
    }
}
