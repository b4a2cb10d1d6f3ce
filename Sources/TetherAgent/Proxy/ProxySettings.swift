import Foundation
import NIOCore
import NIOSSL
import TetherModel
import TetherSecurity

/// An HTTP proxy the agent dials its hub (and its member's API) through, with HTTP CONNECT
/// (docs/agent.md, "Through an HTTP proxy"). Read from `--proxy` or the environment as curl
/// and Go read it: `HTTPS_PROXY`/`https_proxy`, then `ALL_PROXY`/`all_proxy`, and `NO_PROXY`/`no_proxy`.
public struct ProxySettings: Sendable {
    public var host: String
    public var port: Int
    /// An `https://` proxy: the agent speaks TLS to the proxy, and its own TLS to the hub inside.
    public var usesTLS: Bool
    /// `Basic <base64(user:password)>`; never logged.
    var authorization: String?
    /// The roots an `https://` proxy's certificate must chain to (nil: the system's).
    var trustRoots: [NIOSSLCertificate]?
    public var exclusions: NoProxyList
    /// Where the setting came from, for messages: `--proxy`, `HTTPS_PROXY`, ...
    public var source: String

    /// The proxy as shown in logs and on the Cluster: scheme, host and port, never credentials.
    public var displayURL: String {
        "\(usesTLS ? "https" : "http")://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }

    public var hasCredentials: Bool { authorization != nil }

    /// Whether a connection to `host` goes through the proxy: not for `NO_PROXY`'s hosts, nor for
    /// `localhost` and loopback addresses (as Go's `ProxyFromEnvironment` decides).
    public func applies(to host: String, port: Int) -> Bool {
        let lowered = host.lowercased()
        if lowered == "localhost" || lowered.hasSuffix(".localhost") { return false }
        if let address = NoProxyList.addressBytes(lowered), Self.isLoopback(address) { return false }
        return !exclusions.matches(host: lowered, port: port)
    }

    /// The TLS context for an `https://` proxy.
    func proxyTLSContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if let trustRoots { configuration.trustRoots = .certificates(trustRoots) }
        return try NIOSSLContext(configuration: configuration)
    }

    /// The proxy to use, or nil for direct connections.
    ///
    /// - Parameters:
    ///   - flag: `--proxy URL`, or `none` for no proxy whatever the environment says.
    ///   - credentialsFile: a file holding `user:password` (the one way to give credentials
    ///     on the command line's side; a URL with credentials in `--proxy` is refused).
    ///   - caFile: PEM roots for an `https://` proxy.
    ///   - noProxy: `--no-proxy`, replacing `NO_PROXY`.
    public static func resolve(
        flag: String?, credentialsFile: String?, caFile: String?, noProxy: String?, environment: [String: String]
    ) throws(ProxyError) -> ProxySettings? {
        func variable(_ names: String...) -> (String, String)? {
            for name in names { if let value = environment[name], !value.isEmpty { return (name, value) } }
            return nil
        }
        let chosen: (source: String, value: String)
        if let flag {
            if flag == "none" { return nil }
            chosen = ("--proxy", flag)
        } else if let found = variable("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy") {
            chosen = found
        } else {
            guard credentialsFile == nil, caFile == nil else {
                throw ProxyError("--proxy-credentials-file and --proxy-ca need a proxy: give --proxy URL or set HTTPS_PROXY")
            }
            return nil
        }
        var text = chosen.value
        if !text.contains("://") { text = "http://" + text }  // curl's default scheme
        guard let url = URLComponents(string: text), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty else {
            throw ProxyError("\(chosen.source) '\(redacted(chosen.value))' is not a proxy URL such as http://proxy.example.com:3128")
        }
        guard scheme == "http" || scheme == "https" else {
            throw ProxyError("\(chosen.source) uses \(scheme)://; the agent speaks HTTP CONNECT to http:// and https:// proxies only")
        }
        if url.user != nil, chosen.source == "--proxy" {
            throw ProxyError(
                "--proxy must not carry credentials (they would show in the process list); put user:password in --proxy-credentials-file")
        }
        var settings = ProxySettings(
            host: host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port: url.port ?? (scheme == "https" ? 443 : 80),
            usesTLS: scheme == "https", authorization: nil, trustRoots: nil,
            exclusions: NoProxyList(noProxy ?? variable("NO_PROXY", "no_proxy")?.1 ?? ""), source: chosen.source)
        if let credentialsFile {
            let contents: String
            do {
                contents = try String(contentsOfFile: credentialsFile, encoding: .utf8)
            } catch {
                throw ProxyError("cannot read the proxy credentials file \(credentialsFile): \(error.localizedDescription)")
            }
            let line = contents.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex else {
                throw ProxyError("the proxy credentials file \(credentialsFile) must hold one line user:password")
            }
            settings.authorization = basic(String(line[..<colon]), String(line[line.index(after: colon)...]))
        } else if let user = url.user {
            settings.authorization = basic(user.removingPercentEncoding ?? user, (url.password ?? "").removingPercentEncoding ?? "")
        }
        if let caFile {
            guard settings.usesTLS else { throw ProxyError("--proxy-ca is for an https:// proxy; \(settings.displayURL) is plain HTTP") }
            do {
                settings.trustRoots = try NIOSSLCertificate.fromPEMFile(caFile)
            } catch {
                throw ProxyError("cannot read the proxy's CA bundle \(caFile): \(error)")
            }
        }
        return settings
    }

    private static func basic(_ user: String, _ password: String) -> String {
        "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
    }

    /// A proxy URL for a message, its credentials replaced.
    static func redacted(_ text: String) -> String {
        guard let at = text.lastIndex(of: "@"), let scheme = text.range(of: "://"), scheme.upperBound < at else { return text }
        return String(text[..<scheme.upperBound]) + "***" + String(text[at...])
    }

    /// 127.0.0.0/8 and ::1, from an address's bytes.
    static func isLoopback(_ address: [UInt8]) -> Bool {
        address.count == 4 ? address[0] == 127 : address == Array(repeating: 0, count: 15) + [1]
    }
}

/// `NO_PROXY` as curl and Go read it: comma- or space-separated entries; `*` matches every
/// host; a name matches itself and its subdomains (a leading dot is optional); an IP address or
/// a CIDR block matches the addresses in it; `host:port` only that port.
public struct NoProxyList: Sendable, Hashable {
    enum Entry: Sendable, Hashable {
        case everything
        case domain(String, port: Int?)
        case network([UInt8], prefix: Int, port: Int?)
    }

    let entries: [Entry]

    public init(_ text: String) {
        var entries: [Entry] = []
        for raw in text.split(whereSeparator: { $0 == "," || $0 == " " }) {
            var item = raw.lowercased()
            if item == "*" {
                entries.append(.everything)
                continue
            }
            var port: Int?
            if item.hasPrefix("["), let close = item.firstIndex(of: "]") {
                // [IPv6] or [IPv6]:port
                port = Int(item[item.index(after: close)...].dropFirst())
                item = String(item[item.index(after: item.startIndex)..<close])
            } else if item.filter({ $0 == ":" }).count == 1, let colon = item.firstIndex(of: ":") {
                port = Int(item[item.index(after: colon)...])
                item = String(item[..<colon])
            }
            let parts = item.split(separator: "/", maxSplits: 1)
            if let bytes = Self.addressBytes(String(parts[0])) {
                let prefix = parts.count == 2 ? Int(parts[1]) ?? bytes.count * 8 : bytes.count * 8
                entries.append(.network(bytes, prefix: min(max(prefix, 0), bytes.count * 8), port: port))
            } else {
                while item.hasPrefix(".") || item.hasPrefix("*.") { item.removeFirst(item.hasPrefix("*") ? 2 : 1) }
                if !item.isEmpty { entries.append(.domain(item, port: port)) }
            }
        }
        self.entries = entries
    }

    public var isEmpty: Bool { entries.isEmpty }

    public func matches(host: String, port: Int) -> Bool {
        let address = Self.addressBytes(host)
        return entries.contains { entry in
            switch entry {
            case .everything:
                return true
            case .domain(let domain, let only):
                guard only == nil || only == port else { return false }
                return host == domain || host.hasSuffix("." + domain)
            case .network(let network, let prefix, let only):
                guard only == nil || only == port, let address, address.count == network.count else { return false }
                var bits = prefix
                for index in 0..<network.count where bits > 0 {
                    let mask: UInt8 = bits >= 8 ? 0xFF : ~(0xFF >> UInt8(bits))
                    if address[index] & mask != network[index] & mask { return false }
                    bits -= 8
                }
                return true
            }
        }
    }

    /// The bytes of an IPv4 or IPv6 address written as text, or nil for anything else (not
    /// `inet_pton`: with the standard library linked statically, `in_addr` resolves to another
    /// module's copy of the C header).
    static func addressBytes(_ text: String) -> [UInt8]? { IPAddressBytes.parse(text) }
}

/// A proxy setting that cannot be used, or a proxy that would not open a tunnel; says what to do.
public struct ProxyError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
