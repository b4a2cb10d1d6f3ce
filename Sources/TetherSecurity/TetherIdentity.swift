import X509

/// Who a certificate speaks for: a SPIFFE-style URI in its subject alternative names.
///
/// `spiffe://<trust-domain>/hub` for the hub, `spiffe://<trust-domain>/cluster/<name>` for the
/// agent of a member cluster, `spiffe://<trust-domain>/user/<name>` for API clients. The hub
/// binds a session to this identity, never to anything the peer says about itself.
public struct TetherIdentity: Sendable, Hashable, CustomStringConvertible {
    public enum Role: Sendable, Hashable {
        case hub
        case cluster(String)
        case user(String)
    }

    public let trustDomain: String
    public let role: Role

    public init(trustDomain: String, role: Role) throws(SecurityError) {
        try Self.validateTrustDomain(trustDomain)
        switch role {
        case .hub: break
        case .cluster(let name): try Self.validateClusterName(name)
        case .user(let name): try Self.validateUserName(name)
        }
        self.trustDomain = trustDomain
        self.role = role
    }

    public static func hub(trustDomain: String) throws(SecurityError) -> TetherIdentity {
        try TetherIdentity(trustDomain: trustDomain, role: .hub)
    }

    public static func cluster(_ name: String, trustDomain: String) throws(SecurityError) -> TetherIdentity {
        try TetherIdentity(trustDomain: trustDomain, role: .cluster(name))
    }

    public static func user(_ name: String, trustDomain: String) throws(SecurityError) -> TetherIdentity {
        try TetherIdentity(trustDomain: trustDomain, role: .user(name))
    }

    /// Parses `spiffe://<trust-domain>/<role path>`; nil for anything else.
    public init?(uri: String) {
        let scheme = "spiffe://"
        guard uri.hasPrefix(scheme) else { return nil }
        let parts = uri.dropFirst(scheme.count).split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        let role: Role
        switch parts.count {
        case 2 where parts[1] == "hub": role = .hub
        case 3 where parts[1] == "cluster": role = .cluster(parts[2])
        case 3 where parts[1] == "user": role = .user(parts[2])
        default: return nil
        }
        guard let identity = try? TetherIdentity(trustDomain: parts[0], role: role) else { return nil }
        self = identity
    }

    /// The identity a certificate carries: its one `spiffe://` URI SAN.
    public init(certificate: Certificate) throws(SecurityError) {
        let uris: [String]
        do {
            guard let names = try certificate.extensions.subjectAlternativeNames else {
                throw SecurityError(.noIdentity, "certificate '\(certificate.subject)' has no subject alternative names")
            }
            uris = names.compactMap { name in
                if case .uniformResourceIdentifier(let uri) = name, uri.hasPrefix("spiffe://") { return uri }
                return nil
            }
        } catch let error as SecurityError {
            throw error
        } catch {
            throw SecurityError(.noIdentity, "certificate '\(certificate.subject)' has unreadable SANs: \(error)")
        }
        guard uris.count == 1, let identity = TetherIdentity(uri: uris[0]) else {
            throw SecurityError(
                .noIdentity,
                uris.isEmpty
                    ? "certificate '\(certificate.subject)' carries no spiffe:// identity"
                    : "certificate '\(certificate.subject)' carries \(uris.count) spiffe:// URIs (\(uris)); exactly "
                        + "one valid Tether identity is required"
            )
        }
        self = identity
    }

    public var uri: String {
        switch role {
        case .hub: "spiffe://\(trustDomain)/hub"
        case .cluster(let name): "spiffe://\(trustDomain)/cluster/\(name)"
        case .user(let name): "spiffe://\(trustDomain)/user/\(name)"
        }
    }

    public var description: String { uri }

    /// The cluster this identity is the agent of, or nil for the hub and users.
    public var clusterName: String? {
        if case .cluster(let name) = role { return name }
        return nil
    }

    /// Cluster names are DNS-1123 labels, so they fit in object names, labels and URIs alike.
    public static func validateClusterName(_ name: String) throws(SecurityError) {
        let allowed = name.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || byte == UInt8(ascii: "-")
        }
        guard !name.isEmpty, name.utf8.count <= 63, allowed, name.first != "-", name.last != "-" else {
            throw SecurityError(
                .invalidName,
                "cluster name '\(name)' is not a DNS label: use 1-63 lowercase letters, digits and '-', "
                    + "starting and ending with a letter or digit"
            )
        }
    }

    public static func validateUserName(_ name: String) throws(SecurityError) {
        let allowed = name.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "-")
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "@")
        }
        guard !name.isEmpty, name.utf8.count <= 128, allowed else {
            throw SecurityError(.invalidName, "user name '\(name)' must be 1-128 characters of [A-Za-z0-9._@-]")
        }
    }

    public static func validateTrustDomain(_ domain: String) throws(SecurityError) {
        let allowed = domain.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
        }
        guard !domain.isEmpty, domain.utf8.count <= 253, allowed else {
            throw SecurityError(
                .invalidName,
                "trust domain '\(domain)' must be a lowercase DNS-like name (letters, digits, '-' and '.')"
            )
        }
    }
}
