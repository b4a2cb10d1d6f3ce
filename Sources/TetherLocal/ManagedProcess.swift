import Foundation
import Synchronization
import TetherProcess

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
    private let executable: URL
    private let arguments: [String]
    private let environment: [String: String]?
    private let process = Mutex<ChildProcess?>(nil)
    private let state = Mutex(State())
    private let output = Inbox<LogLine>()
    private let echo: (@Sendable (String, LogLine) -> Void)?
    /// Held open so programs that stop at end of input (`openssl s_client`) keep running until stopped.
    private let standardInput: Pipe?

    private struct State {
        var partial: [String: Data] = [:]
        var exitStatus: Int32?
        var exitWaiters: [@Sendable (Int32) -> Void] = []
        /// Output streams not yet at end of file.
        var openStreams = 2
        /// The exit status, held back until both streams have ended so no line is missed.
        var terminationStatus: Int32?
    }

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
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
    }

    /// Starts the process. Its stdout and stderr are pipes created close-on-exec, so a sibling
    /// spawned at the same moment never inherits their write ends, and end of file arrives when
    /// the process exits. One thread per stream reads them with blocking reads: no dispatch
    /// source watches a descriptor that could be closed under it.
    public func start() throws {
        let stdout = try Self.closeOnExecPipe()
        let stderr = try Self.closeOnExecPipe()
        let child: ChildProcess
        do {
            child = try ChildProcess(
                executable: executable.path, arguments: arguments, environment: environment,
                standardInput: standardInput?.fileHandleForReading.fileDescriptor, standardOutput: stdout.write, standardError: stderr.write)
        } catch {
            for descriptor in [stdout.read, stdout.write, stderr.read, stderr.write] { close(descriptor) }
            throw ProcessWaitError(description: "\(name): \(error)")
        }
        process.withLock { $0 = child }
        // The child reads its own copy: the parent's read end would keep the pipe open past its exit.
        try? standardInput?.fileHandleForReading.close()
        child.onExit { [weak self] status in self?.terminated(status: status) }
        // The child has its own copies; the parent's write ends must go for end of file to come.
        close(stdout.write)
        close(stderr.write)
        for (stream, descriptor) in [("stdout", stdout.read), ("stderr", stderr.read)] {
            let thread = Thread { [weak self] in
                var chunk = [UInt8](repeating: 0, count: 65_536)
                while true {
                    let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                    if count > 0 {
                        self?.received(Data(chunk[0..<count]), from: stream)
                    } else if count < 0, errno == EINTR {
                        continue
                    } else {
                        break
                    }
                }
                close(descriptor)
                self?.streamEnded(stream)
            }
            thread.name = "\(name)-\(stream)"
            thread.start()
        }
    }

    private static func closeOnExecPipe() throws -> (read: Int32, write: Int32) {
        // pipe2(O_CLOEXEC) is not visible from Swift here; a spawn between these two calls could
        // inherit the pipe, which only delays end of file (see `terminated`), never loses output.
        var descriptors: [Int32] = [0, 0]
        guard pipe(&descriptors) == 0 else {
            throw ProcessWaitError(description: "cannot create a pipe: \(String(cString: strerror(errno)))")
        }
        for descriptor in descriptors { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        return (descriptors[0], descriptors[1])
    }

    /// The child's process id; 0 before ``start()``.
    public var processIdentifier: Int32 { process.withLock { $0?.processIdentifier ?? 0 } }

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

    /// How many lines the process has logged so far: a mark for ``waitForEvent(_:after:within:where:)``.
    public var mark: Int { output.items.count }

    /// Waits for the `tether.event` named `event` among the lines logged after `mark`.
    @discardableResult
    public func waitForEvent(
        _ event: String,
        after mark: Int,
        within timeout: Duration,
        where predicate: @escaping @Sendable (LogLine) -> Bool = { _ in true }
    ) async throws -> LogLine {
        // The inbox tries each line against the predicate once, in order, so skipping by count is exact.
        let seen = Mutex(0)
        return try await waitForLine(within: timeout, "event \(event) after line \(mark)") { line in
            let index = seen.withLock { count in
                defer { count += 1 }
                return count
            }
            return index >= mark && line.event == event && predicate(line)
        }
    }

    /// Waits for the `occurrence`-th `tether.event` named `event` (counting from the first line logged).
    @discardableResult
    public func waitForEvent(_ event: String, occurrence: Int, within timeout: Duration) async throws -> LogLine {
        // The inbox tries each line against the predicate once, in order, so counting in it is exact.
        let seen = Mutex(0)
        return try await waitForLine(within: timeout, "occurrence \(occurrence) of event \(event)") { line in
            guard line.event == event else { return false }
            return seen.withLock { count in
                count += 1
                return count >= occurrence
            }
        }
    }

    /// Writes `bytes` to the process's standard input (kept open with `keepStandardInputOpen`);
    /// to a program run under `script`, they arrive as typed at a terminal (0x03 is Ctrl-C).
    public func type(_ bytes: [UInt8]) throws {
        guard let standardInput else {
            throw ProcessWaitError(description: "\(name) was started without keepStandardInputOpen")
        }
        try standardInput.fileHandleForWriting.write(contentsOf: bytes)
    }

    /// Sends `signal` (SIGTERM, SIGINT, SIGKILL, ...) if the process still runs.
    public func send(_ signal: Int32) {
        process.withLock { $0 }?.send(signal)
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

    /// A stream reached end of file: its last partial line is published.
    private func streamEnded(_ stream: String) {
        received(Data(), from: stream)
        let status: Int32? = state.withLock { state in
            state.openStreams -= 1
            return state.openStreams == 0 ? state.terminationStatus : nil
        }
        if let status { publishExit(status) }
    }

    /// The exit is published once both streams have ended, so a caller that saw the exit never
    /// misses a line printed before it. A descendant that keeps the streams open does not hold
    /// the exit back for more than two seconds.
    private func terminated(status: Int32) {
        let ready = state.withLock { state in
            state.terminationStatus = status
            return state.openStreams == 0
        }
        if ready {
            publishExit(status)
        } else {
            DispatchQueue.global().asyncAfter(deadline: .now() + 2) { [weak self] in self?.publishExit(status) }
        }
    }

    private func publishExit(_ status: Int32) {
        let waiters: [@Sendable (Int32) -> Void]? = state.withLock { state in
            guard state.exitStatus == nil else { return nil }
            state.exitStatus = status
            defer { state.exitWaiters = [] }
            return state.exitWaiters
        }
        guard let waiters else { return }
        output.finish("\(name) exited with status \(status)")
        for waiter in waiters { waiter(status) }
    }
}

extension Duration {
    var timeInterval: TimeInterval {
        TimeInterval(components.seconds) + TimeInterval(components.attoseconds) / 1e18
    }
}
