import Foundation
import Glibc
import Synchronization
import TetherJSON
import TetherModel
import TetherProcess

/// One plugin program, started once and kept running, spoken to in length-prefixed JSON over
/// its stdin and stdout: each frame is a 4-byte big-endian length and that many bytes of JSON.
///
/// Requests are `{"id": N, "operation": "...", ...}`; answers `{"id": N, "result": ...}` or
/// `{"id": N, "error": "..."}`. The first exchange is the handshake (`operation: "handshake"`,
/// `version: 1`), answered with the plugin's name, version, kinds and operations. A plugin that
/// crashes, answers garbage or misses a call's deadline is killed and started again with backoff;
/// meanwhile every call fails at once (no caller waits on a plugin known to be down), and its
/// kinds get the built-in behaviour.
public final class ExternalPluginProcess: @unchecked Sendable {
    public static let protocolVersion = 1
    /// An answer larger than this is garbage: the plugin is restarted.
    public static let maximumFrameBytes = 16 << 20

    public let manifest: ExternalPluginManifest
    public let directory: String
    private let timeout: Duration
    private let log: @Sendable (_ event: String, _ message: String) -> Void

    private struct Pending {
        let semaphore = DispatchSemaphore(value: 0)
        var answer: Result<JSONValue, ExternalPluginError>?
    }

    private final class PendingBox: @unchecked Sendable {
        var pending = Pending()
    }

    private struct State {
        var process: ChildProcess?
        var input: Int32 = -1
        var generation = 0
        var ready = false
        var pending: [UInt64: PendingBox] = [:]
        var nextID: UInt64 = 1
        var lastError = "not started yet"
        var failures = 0
        var starts = 0
        var stopped = false
        /// Resumed when the running program goes down (``run()`` waits on it).
        var down: CheckedContinuation<Void, Never>?
        /// Callers of ``waitUntilReady(within:)``, resumed by the next good handshake.
        var readyWaiters: [Int: CheckedContinuation<Bool, Never>] = [:]
        var nextWaiter = 0
    }

    private let state = Mutex(State())

    public init(
        manifest: ExternalPluginManifest, directory: String, log: @escaping @Sendable (_ event: String, _ message: String) -> Void = { _, _ in }
    ) {
        self.manifest = manifest
        self.directory = directory
        self.timeout = .milliseconds(manifest.timeoutMilliseconds ?? 1000)
        self.log = log
    }

    /// Why calls fail now, or nil when the plugin is up.
    public var unavailability: String? { state.withLock { $0.ready ? nil : $0.lastError } }
    /// How many times the program was started.
    public var starts: Int { state.withLock { $0.starts } }

    /// Starts the program and keeps it running (restarting with backoff) until ``stop()``.
    public func run() async {
        var delay = Duration.milliseconds(250)
        while !Task.isCancelled, !state.withLock({ $0.stopped }) {
            let generation = launch()
            if let generation, await handshake(generation) {
                delay = .milliseconds(250)
                await waitForExit(generation)
            }
            guard !state.withLock({ $0.stopped }) else { break }
            log("plugin.restarting", "plugin \(manifest.name) is down (\(state.withLock { $0.lastError })); starting it again in \(delay)")
            guard (try? await Task.sleep(for: delay)) != nil else { break }
            delay = min(delay * 2, .seconds(30))
        }
        stop()
    }

    public func stop() {
        let process = state.withLock { state -> ChildProcess? in
            state.stopped = true
            return state.process
        }
        fail(generation: nil, "the plugin host is stopping")
        // SIGKILL: a plugin that ignores SIGTERM must still go.
        process?.send(SIGKILL)
    }

    /// Returns true once the plugin is up (at once if it is), false if `timeout` passes first.
    public func waitUntilReady(within timeout: Duration) async -> Bool {
        let id = state.withLock { state -> Int? in
            guard !state.ready else { return nil }
            state.nextWaiter += 1
            return state.nextWaiter
        }
        guard let id else { return true }
        let timer = Task { [weak self] in
            guard (try? await Task.sleep(for: timeout)) != nil else { return }
            let waiter = self?.state.withLock { $0.readyWaiters.removeValue(forKey: id) }
            waiter?.resume(returning: false)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let readyNow = state.withLock { state -> Bool in
                if state.ready { return true }
                state.readyWaiters[id] = continuation
                return false
            }
            if readyNow { continuation.resume(returning: true) }
        }
    }

    /// One call: the plugin's result, or why there is none (down, timed out, an error it reported).
    public func call(_ operation: String, _ fields: [String: JSONValue]) -> Result<JSONValue, ExternalPluginError> {
        let box = PendingBox()
        let registered = state.withLock { state -> (UInt64, Int32, Int)? in
            guard state.ready else { return nil }
            let id = state.nextID
            state.nextID += 1
            state.pending[id] = box
            return (id, state.input, state.generation)
        }
        guard let (id, input, generation) = registered else {
            return .failure(ExternalPluginError("plugin \(manifest.name) is unavailable: \(state.withLock { $0.lastError })"))
        }
        var request = fields
        request["id"] = .integer(Int64(id))
        request["operation"] = .string(operation)
        let deadline =
            DispatchTime.now() + .nanoseconds(Int(timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000))
        guard write(JSONValue.object(request), to: input, until: deadline) else {
            fail(generation: generation, "a request could not be written within \(timeout): the plugin does not read")
            return box.pending.answer ?? .failure(ExternalPluginError("plugin \(manifest.name) does not read its input"))
        }
        if box.pending.semaphore.wait(timeout: deadline) == .timedOut {
            fail(generation: generation, "no answer to \(operation) within \(timeout)")
        }
        return state.withLock { _ in box.pending.answer } ?? .failure(ExternalPluginError("plugin \(manifest.name): no answer"))
    }

    // MARK: The process

    private func launch() -> Int? {
        var command = manifest.command
        let program = command.removeFirst()
        let besideManifest = (directory as NSString).appendingPathComponent(program)
        let executable =
            program.hasPrefix("/") ? program : FileManager.default.isExecutableFile(atPath: besideManifest) ? besideManifest : "/usr/bin/env"
        let toPlugin = Pipe()
        let fromPlugin = Pipe()
        let process: ChildProcess
        do {
            process = try ChildProcess(
                executable: executable, arguments: executable == "/usr/bin/env" ? [program] + command : command, directory: directory,
                standardInput: toPlugin.fileHandleForReading.fileDescriptor, standardOutput: fromPlugin.fileHandleForWriting.fileDescriptor,
                standardError: STDERR_FILENO)
        } catch {
            state.withLock { $0.lastError = "cannot start \(manifest.command.joined(separator: " ")): \(error)" }
            return nil
        }
        // The child has its own copies; the plugin's exit must end the reader's input.
        try? toPlugin.fileHandleForReading.close()
        try? fromPlugin.fileHandleForWriting.close()
        let input = toPlugin.fileHandleForWriting.fileDescriptor
        _ = fcntl(input, F_SETFL, fcntl(input, F_GETFL) | O_NONBLOCK)
        let generation = state.withLock { state -> Int in
            state.generation += 1
            state.process = process
            state.input = input
            state.starts += 1
            return state.generation
        }
        let output = fromPlugin.fileHandleForReading.fileDescriptor
        let thread = Thread { [self] in
            self.readAnswers(from: output, generation: generation)
            _ = toPlugin  // Both pipes live as long as the reader.
            _ = fromPlugin
        }
        thread.name = "plugin-\(manifest.name)"
        thread.start()
        return generation
    }

    private func handshake(_ generation: Int) async -> Bool {
        // The handshake is the one call made before the plugin counts as ready.
        let box = PendingBox()
        let input = state.withLock { state -> Int32 in
            state.pending[0] = box
            return state.input
        }
        let deadline = DispatchTime.now() + .seconds(5)
        let request: JSONValue = ["id": 0, "operation": "handshake", "version": .integer(Int64(Self.protocolVersion))]
        guard write(request, to: input, until: deadline) else {
            fail(generation: generation, "the handshake could not be written")
            return false
        }
        let waited = await withCheckedContinuation { (continuation: CheckedContinuation<DispatchTimeoutResult, Never>) in
            DispatchQueue.global().async { continuation.resume(returning: box.pending.semaphore.wait(timeout: deadline)) }
        }
        guard waited == .success, case .success(let answer)? = state.withLock({ _ in box.pending.answer }) else {
            fail(generation: generation, "no handshake within 5 s")
            return false
        }
        guard answer["version"]?.integerValue == Int64(Self.protocolVersion) else {
            fail(
                generation: generation,
                "the plugin speaks protocol version \(answer["version"].map { "\($0)" } ?? "none"), not \(Self.protocolVersion)")
            return false
        }
        let declared = Set(
            answer["kinds"]?.arrayElements.compactMap { kind -> ExternalPluginManifest.Kind? in
                guard let apiVersion = kind["apiVersion"]?.stringValue, let name = kind["kind"]?.stringValue else { return nil }
                return ExternalPluginManifest.Kind(apiVersion: apiVersion, kind: name)
            } ?? [])
        let missing = Set(manifest.kinds).subtracting(declared)
        guard missing.isEmpty else {
            fail(
                generation: generation,
                "the plugin does not declare \(missing.map { "\($0.apiVersion) \($0.kind)" }.sorted()) that its manifest names")
            return false
        }
        let waiters = state.withLock { state -> [CheckedContinuation<Bool, Never>] in
            guard state.generation == generation else { return [] }
            state.ready = true
            state.failures = 0
            state.lastError = ""
            defer { state.readyWaiters = [:] }
            return Array(state.readyWaiters.values)
        }
        for waiter in waiters { waiter.resume(returning: true) }
        log(
            "plugin.ready",
            "plugin \(manifest.name) is ready (\(answer["name"]?.stringValue ?? manifest.name) \(answer["pluginVersion"]?.stringValue ?? ""))")
        return true
    }

    /// Returns when the program started as `generation` goes down: the reader saw its output
    /// end, or a call failed on it, or the host stopped.
    private func waitForExit(_ generation: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let downAlready = state.withLock { state -> Bool in
                guard state.generation == generation, state.ready, !state.stopped else { return true }
                state.down = continuation
                return false
            }
            if downAlready { continuation.resume() }
        }
    }

    /// Fails every pending call of `generation` (nil: any), marks the plugin down and kills it.
    private func fail(generation: Int?, _ reason: String) {
        let (boxes, process, down) = state.withLock { state -> ([PendingBox], ChildProcess?, CheckedContinuation<Void, Never>?) in
            guard generation == nil || state.generation == generation else { return ([], nil, nil) }
            let down = state.down
            state.down = nil
            let wasReady = state.ready
            state.ready = false
            state.failures += 1
            if wasReady || state.lastError.isEmpty { state.lastError = reason }
            let boxes = Array(state.pending.values)
            for box in boxes where box.pending.answer == nil {
                box.pending.answer = .failure(ExternalPluginError("plugin \(manifest.name): \(reason)"))
            }
            state.pending = [:]
            return (boxes, state.process, down)
        }
        for box in boxes { box.pending.semaphore.signal() }
        down?.resume()
        if let process, process.isRunning {
            log("plugin.failed", "plugin \(manifest.name): \(reason); its kinds get the built-in behaviour until it is back")
            process.send(SIGKILL)
        }
    }

    private func write(_ value: JSONValue, to descriptor: Int32, until deadline: DispatchTime) -> Bool {
        guard let body = try? value.serialized() else { return false }
        var frame = [UInt8]()
        frame.reserveCapacity(body.count + 4)
        let length = UInt32(body.count)
        frame += [UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)]
        frame += body
        var offset = 0
        while offset < frame.count {
            let written = frame.withUnsafeBytes { bytes in Glibc.write(descriptor, bytes.baseAddress! + offset, frame.count - offset) }
            if written > 0 {
                offset += written
                continue
            }
            guard written < 0, errno == EAGAIN || errno == EINTR else { return false }
            let remaining = Int(deadline.uptimeNanoseconds) - Int(DispatchTime.now().uptimeNanoseconds)
            guard remaining > 0 else { return false }
            var poller = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
            _ = poll(&poller, 1, Int32(max(1, remaining / 1_000_000)))
        }
        return true
    }

    private func readAnswers(from descriptor: Int32, generation: Int) {
        func readExactly(_ count: Int) -> [UInt8]? {
            var buffer = [UInt8](repeating: 0, count: count)
            var offset = 0
            while offset < count {
                let got = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress! + offset, count - offset) }
                if got > 0 {
                    offset += got
                } else if got < 0, errno == EINTR {
                    continue
                } else {
                    return nil
                }
            }
            return buffer
        }
        while true {
            guard let header = readExactly(4) else {
                fail(generation: generation, "the plugin exited")
                return
            }
            let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
            guard length <= Self.maximumFrameBytes else {
                fail(generation: generation, "it sent a frame of \(length) bytes (at most \(Self.maximumFrameBytes)): garbage")
                return
            }
            guard let body = readExactly(length) else {
                fail(generation: generation, "the plugin exited mid-answer")
                return
            }
            guard let answer = try? JSONValue(parsing: body), let id = answer["id"]?.integerValue, id >= 0 else {
                fail(generation: generation, "it answered something that is not a JSON object with an id: garbage")
                return
            }
            let box = state.withLock { state -> PendingBox? in
                guard state.generation == generation, let box = state.pending.removeValue(forKey: UInt64(id)) else { return nil }
                if let message = answer["error"]?.stringValue {
                    box.pending.answer = .failure(ExternalPluginError("plugin \(manifest.name): \(message)"))
                } else {
                    box.pending.answer = .success(answer["result"] ?? .null)
                }
                return box
            }
            box?.pending.semaphore.signal()
        }
    }
}

extension ExternalPluginProcess {
    /// The plugins of `directory` (`--plugin-dir`), each reporting to `log`; not started yet.
    public static func hosts(
        in directory: String?, log: @escaping @Sendable (_ event: String, _ message: String) -> Void
    ) throws(ExternalPluginError) -> [ExternalPluginProcess] {
        guard let directory else { return [] }
        return try ExternalPluginManifest.load(from: directory).map {
            ExternalPluginProcess(manifest: $0.manifest, directory: $0.directory, log: log)
        }
    }

    /// Runs every host until the task is cancelled, then stops them.
    public static func runAll(_ hosts: [ExternalPluginProcess]) async {
        await withTaskCancellationHandler {
            await withDiscardingTaskGroup { group in
                for host in hosts { group.addTask { await host.run() } }
            }
        } onCancel: {
            for host in hosts { host.stop() }
        }
    }
}
