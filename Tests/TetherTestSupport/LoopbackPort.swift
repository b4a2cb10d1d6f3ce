import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Ports on 127.0.0.1 for listeners a test or benchmark starts later with a fixed address.
public enum LoopbackPort {
    /// Ports already handed out by this process, so that two tests never get the same one.
    private static let handedOut = Mutex<Set<Int>>([])

    /// A TCP port free at the moment of asking, chosen below the kernel's ephemeral range.
    ///
    /// A port the kernel picked for a bind to port 0 is free only until some other process binds
    /// port 0 or dials out: in a parallel test run that happened between the choice and a standby
    /// hub's bind, and the standby failed with "address already in use". The kernel never hands
    /// out a port below `ip_local_port_range` by itself, so only another explicit choice can
    /// take one of these.
    public static func free() throws -> Int {
        let ephemeralStart = ephemeralRangeStart()
        let candidates = 10_000..<max(10_001, ephemeralStart)
        for _ in 0..<200 {
            let port = Int.random(in: candidates)
            guard handedOut.withLock({ $0.insert(port).inserted }) else { continue }
            if try isFree(port) { return port }
        }
        throw LoopbackPortError(description: "cannot find a free port on 127.0.0.1 in \(candidates) after 200 tries")
    }

    /// A listening socket on a port, for a test that needs the port taken by another program.
    public final class Listener: Sendable {
        private let socket: Int32

        public init(port: Int) throws {
            socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard socket >= 0 else { throw LoopbackPortError(description: "cannot open a socket: errno \(errno)") }
            guard LoopbackPort.bind(socket, port: port), Glibc.listen(socket, 1) == 0 else {
                let failure = errno
                Glibc.close(socket)
                throw LoopbackPortError(description: "cannot listen on 127.0.0.1:\(port): errno \(failure)")
            }
        }

        public func close() { Glibc.close(socket) }
    }

    /// The first port of `/proc/sys/net/ipv4/ip_local_port_range` (32768 when unreadable).
    private static func ephemeralRangeStart() -> Int {
        guard let range = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8),
            let first = range.split(whereSeparator: \.isWhitespace).first.flatMap({ Int($0) })
        else { return 32_768 }
        return first
    }

    private static func isFree(_ port: Int) throws -> Bool {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw LoopbackPortError(description: "cannot open a socket: errno \(errno)") }
        defer { close(socket) }
        return bind(socket, port: port)
    }

    private static func bind(_ socket: Int32, port: Int) -> Bool {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let length = socklen_t(MemoryLayout<sockaddr_in>.size)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(socket, $0, length) == 0 }
        }
    }
}

public struct LoopbackPortError: Error, CustomStringConvertible {
    public var description: String
}
