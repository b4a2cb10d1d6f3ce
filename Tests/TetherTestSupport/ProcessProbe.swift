import Foundation
import NIOCore
import NIOPosix

/// What the kernel says of a running process, for tests that bound its footprint.
public enum ProcessProbe {
    /// Resident memory (`VmRSS`), in bytes; nil when the process is gone.
    public static func residentBytes(of pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let digits = line.split(separator: " ").compactMap { Int($0) }
            return digits.first.map { $0 * 1024 }
        }
        return nil
    }

    /// Open descriptors of the process.
    public static func openDescriptors(of pid: Int32) -> Int? {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.count
    }
}

/// Idle TCP connections to a port: a flood that never says a word.
public final class TCPFlood: Sendable {
    private let channels: [any Channel]

    /// Opens up to `count` connections to `host:port` from `source` (nil: any address) and
    /// keeps those the peer accepted. Connections the peer refuses or closes at once are counted
    /// as such, not retried.
    public static func open(count: Int, port: Int, host: String = "127.0.0.1", source: String? = nil) async -> TCPFlood {
        var opened: [any Channel] = []
        for _ in 0..<count {
            var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connectTimeout(.seconds(2))
            if let source, let address = try? SocketAddress(ipAddress: source, port: 0) { bootstrap = bootstrap.bind(to: address) }
            if let channel = try? await bootstrap.connect(host: host, port: port).get() { opened.append(channel) }
        }
        return TCPFlood(channels: opened)
    }

    private init(channels: [any Channel]) {
        self.channels = channels
    }

    /// Connections that are still open (the peer has not closed them).
    public var stillOpen: Int { channels.filter(\.isActive).count }

    public var opened: Int { channels.count }

    public func close() async {
        for channel in channels { try? await channel.close() }
    }
}

/// A TCP listener on loopback that accepts connections and never says a word: a hub that hangs
/// (stopped, or behind a black hole) as a dialling agent meets it.
public final class SilentListener: Sendable {
    private let server: any Channel
    public let port: Int

    public static func start() async throws -> SilentListener {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in channel.eventLoop.makeSucceededVoidFuture() }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return SilentListener(server: server, port: server.localAddress?.port ?? 0)
    }

    private init(server: any Channel, port: Int) {
        self.server = server
        self.port = port
    }

    public func close() async {
        try? await server.close()
    }
}

/// Processes found by their command line, for tests of programs that start others.
public enum ProcessTable {
    public struct Entry: Sendable, CustomStringConvertible {
        public let pid: Int32
        public let commandLine: String
        public var description: String { "\(pid) \(commandLine)" }
    }

    /// Live Tether processes (`tetherctl`, `tether-hub`, ...) whose command line mentions `text`;
    /// zombies (exited, not yet reaped) are not counted.
    public static func matching(_ text: String) throws -> [Entry] {
        try FileManager.default.contentsOfDirectory(atPath: "/proc").compactMap { name -> Entry? in
            guard let pid = Int32(name), pid != getpid(), isAlive(pid),
                let raw = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")
            else { return nil }
            let arguments = raw.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard let program = arguments.first, (program as NSString).lastPathComponent.hasPrefix("tether") else { return nil }
            let commandLine = arguments.joined(separator: " ")
            return commandLine.contains(text) ? Entry(pid: pid, commandLine: commandLine) : nil
        }
    }

    /// Waits until none of `pids` is alive, up to `timeout`. These are not the test's children,
    /// so no exit event reaches it (and pidfd_open is not callable from Swift here): /proc is read
    /// every 20 ms until the deadline.
    public static func waitUntilGone(_ pids: [Int32], within timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            let alive = pids.filter(isAlive)
            if alive.isEmpty { return }
            guard ContinuousClock.now < deadline else {
                throw ProcessTableError(description: "still running after \(timeout): \(alive)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Running, or stopped, but not a zombie.
    public static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let end = stat.lastIndex(of: ")")
        else { return false }
        let state = stat[stat.index(after: end)...].drop { $0 == " " }.first
        return state != "Z" && state != "X"
    }
}

public struct ProcessTableError: Error, CustomStringConvertible {
    public let description: String
}
