/// A `host:port` address as written on command lines and in `agent.json`: `127.0.0.1:7443`,
/// `hub.example.com:7443`, `[::1]:7443`, or `:0` (loopback, any free port).
public struct HostAndPort: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `text`; an empty host means `defaultHost`.
    public init(parsing text: String, defaultHost: String = "127.0.0.1") throws(AddressError) {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw AddressError(text: text, problem: "an IPv6 address must be written [address]:port")
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                throw AddressError(text: text, problem: "expected host:port")
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            guard !host.contains(":") else {
                throw AddressError(text: text, problem: "an IPv6 address must be written [address]:port")
            }
        }
        guard let port = Int(portText), (0...65535).contains(port) else {
            throw AddressError(text: text, problem: "the port must be a number from 0 to 65535")
        }
        self.host = host.isEmpty ? defaultHost : String(host)
        self.port = port
    }

    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    public struct AddressError: Error, Sendable, Hashable, CustomStringConvertible {
        public var text: String
        public var problem: String
        public var description: String { "'\(text)' is not a valid address: \(problem)" }
    }
}
