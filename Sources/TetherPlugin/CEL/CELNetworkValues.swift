#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An IP address as Kubernetes' CEL IP library reads it (`ip('10.0.0.1')`): IPv4 in dotted
/// decimal without leading zeros, or IPv6; no zone (`%eth0`) and no IPv4-mapped IPv6
/// (`::ffff:1.2.3.4`), which kube-apiserver refuses too.
public struct CELAddress: Sendable, Hashable, CustomStringConvertible {
    /// 4 bytes for IPv4, 16 for IPv6.
    public let bytes: [UInt8]

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// The address, or nil with why it is not one.
    static func parse(_ text: String) -> Result<CELAddress, CELLibraryError> {
        guard !text.contains("%") else { return .failure(CELLibraryError("IP address with zone value is not allowed: \(text)")) }
        if let four = Self.pton(text, family: AF_INET, count: 4) { return .success(CELAddress(bytes: four)) }
        guard let six = Self.pton(text, family: AF_INET6, count: 16) else {
            return .failure(CELLibraryError("IP Address \"\(text)\" parse error during conversion from string"))
        }
        if six[0..<10].allSatisfy({ $0 == 0 }), six[10] == 0xff, six[11] == 0xff {
            return .failure(CELLibraryError("IPv4-mapped IPv6 address \"\(text)\" is not allowed"))
        }
        return .success(CELAddress(bytes: six))
    }

    private static func pton(_ text: String, family: Int32, count: Int) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 16)
        let parsed = buffer.withUnsafeMutableBytes { inet_pton(family, text, $0.baseAddress) }
        return parsed == 1 ? Array(buffer.prefix(count)) : nil
    }

    var family: Int64 { bytes.count == 4 ? 4 : 6 }

    /// RFC 5952's form for IPv6 (lower case, the longest run of zeros as `::`), dotted decimal for IPv4.
    public var description: String {
        var output = [CChar](repeating: 0, count: 64)
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        let written = bytes.withUnsafeBytes { source in
            output.withUnsafeMutableBufferPointer { inet_ntop(family, source.baseAddress, $0.baseAddress, 64) }
        }
        guard written != nil else { return "" }
        return String(decoding: output.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    var isUnspecified: Bool { bytes.allSatisfy { $0 == 0 } }
    var isLoopback: Bool { bytes.count == 4 ? bytes[0] == 127 : bytes == [UInt8](repeating: 0, count: 15) + [1] }
    var isMulticast: Bool { bytes.count == 4 ? bytes[0] & 0xf0 == 0xe0 : bytes[0] == 0xff }
    var isLinkLocalMulticast: Bool {
        bytes.count == 4 ? bytes[0] == 224 && bytes[1] == 0 && bytes[2] == 0 : bytes[0] == 0xff && bytes[1] & 0x0f == 0x02
    }
    var isLinkLocalUnicast: Bool { bytes.count == 4 ? bytes[0] == 169 && bytes[1] == 254 : bytes[0] == 0xfe && bytes[1] & 0xc0 == 0x80 }
    /// As Go's `netip.Addr.IsGlobalUnicast`: private ranges count, broadcast does not.
    var isGlobalUnicast: Bool {
        if bytes.count == 4, bytes == [255, 255, 255, 255] { return false }
        return !isUnspecified && !isLoopback && !isMulticast && !isLinkLocalUnicast
    }

    /// The first `prefix` bits kept, the rest zero.
    func masked(to prefix: Int) -> CELAddress {
        CELAddress(
            bytes: bytes.enumerated().map { index, byte in
                let kept = max(0, min(8, prefix - index * 8))
                return kept == 8 ? byte : byte & ~(UInt8(0xff) >> kept)
            })
    }
}

/// An IP prefix as Kubernetes' CEL CIDR library reads it (`cidr('10.0.0.0/8')`): an address
/// (kept as written, `ip()`) and a prefix length within its family.
public struct CELNetwork: Sendable, Hashable, CustomStringConvertible {
    public let address: CELAddress
    public let prefix: Int

    static func parse(_ text: String) -> Result<CELNetwork, CELLibraryError> {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let length = Int(parts[1]), parts[1].allSatisfy(\.isASCII), !parts[1].hasPrefix("+"),
            parts[1] == "0" || !parts[1].hasPrefix("0")
        else { return .failure(CELLibraryError("network address parse error during conversion from string: \(text)")) }
        switch CELAddress.parse(String(parts[0])) {
        case .failure(let error): return .failure(error)
        case .success(let address):
            guard length >= 0, length <= address.bytes.count * 8 else {
                return .failure(CELLibraryError("network address parse error during conversion from string: \(text)"))
            }
            return .success(CELNetwork(address: address, prefix: length))
        }
    }

    func contains(_ other: CELAddress) -> Bool {
        other.bytes.count == address.bytes.count && other.masked(to: prefix) == address.masked(to: prefix)
    }

    public var description: String { "\(address)/\(prefix)" }
}

/// A URL as Kubernetes' CEL URL library reads it (`url('https://example.com:80/path?q=1')`),
/// with Go's `url.ParseRequestURI`: an absolute URI or an absolute path, no control characters,
/// valid percent escapes, a numeric port.
public struct CELURL: Sendable, Hashable {
    /// The text as given.
    public let text: String
    let scheme: String
    /// The authority's host and port as written (`example.com:80`, `[::1]:80`).
    let host: String
    let path: String
    let query: String?

    static func parse(_ text: String) -> Result<CELURL, CELLibraryError> {
        func refused(_ why: String) -> Result<CELURL, CELLibraryError> {
            .failure(CELLibraryError("URL parse error during conversion from string: parse \"\(text)\": \(why)"))
        }
        guard !text.isEmpty else { return refused("empty url") }
        guard !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            return refused("net/url: invalid control character in URL")
        }
        var rest = Substring(text)
        var scheme = ""
        if let colon = rest.firstIndex(of: ":"), let first = rest.first, first.isASCII, first.isLetter,
            rest[..<colon].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) })
        {
            scheme = rest[..<colon].lowercased()
            rest = rest[rest.index(after: colon)...]
        } else if rest.first == ":" {
            return refused("missing protocol scheme")
        }
        var query: String?
        if let mark = rest.firstIndex(of: "?") {
            query = String(rest[rest.index(after: mark)...])
            rest = rest[..<mark]
        }
        guard rest.hasPrefix("/") || !scheme.isEmpty else { return refused("invalid URI for request") }
        var host = ""
        if !scheme.isEmpty, rest.hasPrefix("//") {
            let authority = rest.dropFirst(2).prefix { $0 != "/" }
            rest = rest.dropFirst(2 + authority.count)
            let hostPart = authority.lastIndex(of: "@").map { authority[authority.index(after: $0)...] } ?? authority
            guard Self.validHost(hostPart) else { return refused("invalid character in host name or port") }
            host = String(hostPart)
        }
        guard Self.validEscapes(rest) else { return refused("invalid URL escape") }
        return .success(CELURL(text: text, scheme: scheme, host: host, path: String(rest), query: query))
    }

    private static func validEscapes(_ text: Substring) -> Bool {
        let scalars = Array(text.unicodeScalars)
        var index = 0
        while index < scalars.count {
            if scalars[index] == "%" {
                guard index + 2 < scalars.count, scalars[index + 1].properties.isASCIIHexDigit, scalars[index + 2].properties.isASCIIHexDigit
                else { return false }
                index += 3
            } else {
                index += 1
            }
        }
        return true
    }

    private static func validHost(_ host: Substring) -> Bool {
        var name = host
        var port: Substring = ""
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return false }
            name = host[host.index(after: host.startIndex)..<close]
            let after = host[host.index(after: close)...]
            guard after.isEmpty || after.hasPrefix(":") else { return false }
            port = after.dropFirst()
            guard case .success = CELAddress.parse(String(name)) else { return false }
        } else if let colon = host.lastIndex(of: ":") {
            name = host[..<colon]
            port = host[host.index(after: colon)...]
            guard !name.contains(":") else { return false }
        }
        guard port.allSatisfy({ $0.isASCII && $0.isNumber }) else { return false }
        return host.hasPrefix("[")
            || name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-._~!$&'()*+,;=%".contains($0)) }
    }

    /// The host without its port, and an IPv6 literal without brackets.
    var hostname: String {
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
            return String(host[host.index(after: host.startIndex)..<close])
        }
        return String(host.prefix { $0 != ":" })
    }

    var port: String {
        let afterHost = host.hasPrefix("[") ? host.drop { $0 != "]" }.dropFirst() : host.drop { $0 != ":" }
        return afterHost.hasPrefix(":") ? String(afterHost.dropFirst()) : ""
    }

    /// The query as Go's `url.Query()` decodes it: each key's values in order; pairs that do not decode are left out.
    var queryValues: [String: [String]] {
        var values: [String: [String]] = [:]
        for pair in (query ?? "").split(separator: "&") where !pair.contains(";") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let key = Self.unescape(parts[0]), let value = Self.unescape(parts.count > 1 ? parts[1] : "") else { continue }
            values[key, default: []].append(value)
        }
        return values
    }

    private static func unescape(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        let utf8 = Array(text.utf8)
        var index = 0
        while index < utf8.count {
            switch utf8[index] {
            case UInt8(ascii: "%"):
                guard index + 2 < utf8.count, let byte = UInt8(String(decoding: utf8[(index + 1)...(index + 2)], as: UTF8.self), radix: 16)
                else { return nil }
                bytes.append(byte)
                index += 3
            case UInt8(ascii: "+"):
                bytes.append(UInt8(ascii: " "))
                index += 1
            default:
                bytes.append(utf8[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Why a library function refused its argument (`ip('x')`), as the evaluation's error.
struct CELLibraryError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A semantic version as Kubernetes' CEL semver library reads it (`semver('1.2.3-rc.1')`):
/// strictly `MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`, or, normalized, with a leading `v`, missing
/// parts as 0 and leading zeros dropped. Compared by semver precedence (build metadata ignored).
public struct CELSemver: Sendable, Hashable, Comparable {
    let major: Int64
    let minor: Int64
    let patch: Int64
    let prerelease: [Substring]
    let build: String

    static func parse(_ text: String, normalize: Bool = false) -> CELSemver? {
        var rest = Substring(text)
        if normalize, rest.hasPrefix("v") { rest = rest.dropFirst() }
        var build = ""
        if let plus = rest.firstIndex(of: "+") {
            build = String(rest[rest.index(after: plus)...])
            rest = rest[..<plus]
            guard Self.validIdentifiers(build, numericLeadingZerosAllowed: true) else { return nil }
        }
        var prerelease: [Substring] = []
        if let dash = rest.firstIndex(of: "-") {
            let text = rest[rest.index(after: dash)...]
            guard Self.validIdentifiers(String(text), numericLeadingZerosAllowed: false) else { return nil }
            prerelease = text.split(separator: ".", omittingEmptySubsequences: false)
            rest = rest[..<dash]
        }
        var numbers = rest.split(separator: ".", omittingEmptySubsequences: false)
        if normalize { while numbers.count < 3 { numbers.append("0") } }
        guard numbers.count == 3 else { return nil }
        var parsed: [Int64] = []
        for number in numbers {
            guard !number.isEmpty, number.allSatisfy({ $0.isASCII && $0.isNumber }), normalize || number == "0" || !number.hasPrefix("0"),
                let value = Int64(number)
            else { return nil }
            parsed.append(value)
        }
        return CELSemver(major: parsed[0], minor: parsed[1], patch: parsed[2], prerelease: prerelease, build: build)
    }

    private static func validIdentifiers(_ text: String, numericLeadingZerosAllowed: Bool) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.allSatisfy { part in
            guard !part.isEmpty, part.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else { return false }
            let numeric = part.allSatisfy(\.isNumber)
            return numericLeadingZerosAllowed || !numeric || part == "0" || !part.hasPrefix("0")
        }
    }

    public static func < (left: CELSemver, right: CELSemver) -> Bool {
        if (left.major, left.minor, left.patch) != (right.major, right.minor, right.patch) {
            return (left.major, left.minor, left.patch) < (right.major, right.minor, right.patch)
        }
        // A pre-release precedes its release; identifiers compare numerically when both are numbers.
        switch (left.prerelease.isEmpty, right.prerelease.isEmpty) {
        case (true, _): return false
        case (false, true): return true
        default: break
        }
        for (a, b) in zip(left.prerelease, right.prerelease) where a != b {
            switch (Int64(a), Int64(b)) {
            case (let x?, let y?): return x < y
            case (.some, .none): return true
            case (.none, .some): return false
            default: return a < b
            }
        }
        return left.prerelease.count < right.prerelease.count
    }

    /// Equal by precedence: build metadata does not count.
    public static func == (left: CELSemver, right: CELSemver) -> Bool {
        (left.major, left.minor, left.patch) == (right.major, right.minor, right.patch) && left.prerelease == right.prerelease
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(major)
        hasher.combine(minor)
        hasher.combine(patch)
        hasher.combine(prerelease)
    }

    var description: String {
        "\(major).\(minor).\(patch)" + (prerelease.isEmpty ? "" : "-" + prerelease.joined(separator: ".")) + (build.isEmpty ? "" : "+\(build)")
    }
}
