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
