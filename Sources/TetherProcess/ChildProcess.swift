import CTetherSpawn
import Foundation
import Synchronization

/// A program that could not be started.
public struct SpawnError: Error, Sendable, CustomStringConvertible {
    public let description: String

    init(_ description: String) { self.description = description }
}

/// A child process started with `posix_spawn`, in place of Foundation's `Process`.
///
/// Foundation's `Process.run()` on Linux lists `/proc/self/fd` first, copying 256 bytes from
/// each directory entry whatever its length. With a thousand descriptors open (a hub's agent
/// sessions, a test run's servers), the last entry of a full buffer ends near the end of the
/// heap, and the copy reads past it: the process crashed in `memmove` (seen once in CI; found by
/// AddressSanitizer as a heap-buffer-overflow in `findMaximumOpenFromProcSelfFD`). Here the
/// child closes every descriptor above 2 itself (`posix_spawn_file_actions_addclosefrom_np`),
/// and its signals start at their defaults, unblocked.
///
/// One thread per child waits for its exit (blocked in `waitid`, not polling), so a signal sent
/// through ``send(_:)`` never reaches another process that was given the same id after it.
public final class ChildProcess: Sendable {
    public let processIdentifier: pid_t
    public let executable: String
    private let exit = Mutex(ExitState())

    private struct ExitState {
        var status: Int32?
        var handlers: [@Sendable (Int32) -> Void] = []
    }

    /// Starts `executable` (a path; use `/usr/bin/env` to search `PATH`) with `arguments`.
    ///
    /// - Parameters:
    ///   - environment: the child's whole environment; nil passes this process's.
    ///   - directory: where it runs; nil for this process's working directory.
    ///   - standardInput: a descriptor the child reads as its standard input; nil for /dev/null.
    ///     The same for `standardOutput` and `standardError`. The caller keeps its descriptors
    ///     (and closes them when the child has its copies, for end of file to come).
    public init(
        executable: String,
        arguments: [String],
        environment: [String: String]? = nil,
        directory: String? = nil,
        standardInput: Int32? = nil,
        standardOutput: Int32? = nil,
        standardError: Int32? = nil
    ) throws(SpawnError) {
        self.executable = executable
        let argv = CStrings([executable] + arguments)
        let envp = environment.map { CStrings($0.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }) }
        var pid: pid_t = 0
        let status = argv.withPointers { argvPointers in
            withOptionalPointers(envp) { envpPointers in
                withOptionalCString(directory) { directoryPointer in
                    tether_spawn(
                        &pid, executable, argvPointers, envpPointers, directoryPointer,
                        standardInput ?? -1, standardOutput ?? -1, standardError ?? -1)
                }
            }
        }
        guard status == 0 else {
            let reason = String(cString: strerror(status))
            let place = directory.map { " in \($0)" } ?? ""
            throw SpawnError("cannot start \(executable)\(place): \(reason)")
        }
        processIdentifier = pid
        let thread = Thread { [self] in waitForExit() }
        thread.name = "wait-\(pid)"
        thread.start()
    }

    /// The exit status: the code it exited with, or the number of the signal that ended it
    /// (as Foundation's `terminationStatus`). Nil while it runs.
    public var exitStatus: Int32? { exit.withLock { $0.status } }

    public var isRunning: Bool { exitStatus == nil }

    /// Calls `handler` with the exit status once the child has exited (at once if it has).
    public func onExit(_ handler: @escaping @Sendable (Int32) -> Void) {
        let already: Int32? = exit.withLock { state in
            if let status = state.status { return status }
            state.handlers.append(handler)
            return nil
        }
        if let already { handler(already) }
    }

    /// The exit status, once the child has exited.
    public func waitUntilExit() async -> Int32 {
        await withCheckedContinuation { continuation in onExit { continuation.resume(returning: $0) } }
    }

    /// Sends `signal` if the child has not exited: its id is not reaped (and so cannot be
    /// reused) until the exit is recorded under the same lock.
    public func send(_ signal: Int32) {
        exit.withLock { state in
            guard state.status == nil else { return }
            kill(processIdentifier, signal)
        }
    }

    private func waitForExit() {
        var information = siginfo_t()
        // Waits without reaping, so the id stays this child's until `exit` says it has ended.
        while waitid(P_PID, id_t(processIdentifier), &information, WEXITED | WNOWAIT) != 0 {
            guard errno == EINTR else { break }
        }
        var raw: Int32 = 0
        let handlers = exit.withLock { state -> [@Sendable (Int32) -> Void] in
            while waitpid(processIdentifier, &raw, 0) < 0 && errno == EINTR {}
            let status = Self.exitStatus(raw)
            state.status = status
            defer { state.handlers = [] }
            return state.handlers
        }
        let status = Self.exitStatus(raw)
        for handler in handlers { handler(status) }
    }

    /// WIFEXITED/WEXITSTATUS and WTERMSIG, which are C macros Swift does not import.
    private static func exitStatus(_ raw: Int32) -> Int32 {
        let signal = raw & 0x7f
        return signal == 0 ? (raw >> 8) & 0xff : signal
    }
}

/// NUL-terminated copies of `strings` and a NULL-terminated array of pointers to them, for C.
private final class CStrings {
    private let pointers: [UnsafeMutablePointer<CChar>?]

    init(_ strings: [String]) { pointers = strings.map { strdup($0) } + [nil] }

    deinit { for pointer in pointers { free(pointer) } }

    func withPointers<Result>(_ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> Result) -> Result {
        pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

private func withOptionalPointers<Result>(_ strings: CStrings?, _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>?) -> Result) -> Result {
    guard let strings else { return body(nil) }
    return strings.withPointers { body($0) }
}

private func withOptionalCString<Result>(_ string: String?, _ body: (UnsafePointer<CChar>?) -> Result) -> Result {
    guard let string else { return body(nil) }
    return string.withCString { body($0) }
}
