import Foundation

/// What a caller may do.
public enum APIRole: String, Codable, Sendable {
    /// Everything.
    case admin
    /// get, list and watch.
    case viewer
}

/// Who may use the API, from `D/access.json`:
///
/// ```json
/// {"users": {"admin": "admin", "alice": "viewer"},
///  "tokens": [{"token": "…", "user": "ci", "role": "viewer"}],
///  "clusters": {"eu-1": {"alice": "admin"}}}
/// ```
///
/// `clusters` grants roles on one member's API through the hub's tunnel
/// (`/clusters/NAME/proxy/`), in place of the user's federation role there.
///
/// Users authenticate with a client certificate from the federation CA for
/// `spiffe://<trust-domain>/user/<name>`, or with a bearer token listed here. Without the file,
/// the `admin` user (whose certificate `tetherctl init` makes) is the only one allowed.
public struct AccessPolicy: Codable, Sendable {
    public struct Token: Codable, Sendable {
        public var token: String
        public var user: String
        public var role: APIRole

        public init(token: String, user: String, role: APIRole) {
            self.token = token
            self.user = user
            self.role = role
        }
    }

    public var users: [String: APIRole]
    public var tokens: [Token]
    /// Per member cluster: users and their role on that member's API through the tunnel.
    public var clusters: [String: [String: APIRole]]?

    public init(users: [String: APIRole] = ["admin": .admin], tokens: [Token] = [], clusters: [String: [String: APIRole]]? = nil) {
        self.users = users
        self.tokens = tokens
        self.clusters = clusters
    }

    /// The policy at `path`; without the file, the `admin` user alone. A file that does not
    /// decode, or lists an empty token, is an error (and a reload keeps the policy in force).
    /// Writes the policy atomically, readable by its owner only (it holds tokens).
    public func save(to path: String) throws(SecurityError) {
        try PEMFiles.writeJSON(self, to: path, mode: PEMFiles.privateKeyMode)
    }

    public static func load(from path: String) throws(SecurityError) -> AccessPolicy {
        guard FileManager.default.fileExists(atPath: path) else { return AccessPolicy() }
        let policy = try PEMFiles.readJSON(AccessPolicy.self, from: path)
        if let empty = policy.tokens.first(where: { $0.token.isEmpty }) {
            throw SecurityError(.unreadableFile, "\(path) lists an empty token for user \(empty.user); every token must be a secret string")
        }
        return policy
    }

    /// The file holds bearer tokens: a warning when others than its owner may read it.
    public static func permissionWarning(at path: String) -> String? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            let mode = (attributes[.posixPermissions] as? NSNumber)?.uint16Value, mode & 0o077 != 0
        else { return nil }
        return "\(path) holds bearer tokens but is readable by others (mode \(String(mode, radix: 8))); chmod 600 it"
    }

    public func role(ofUser user: String) -> APIRole? { users[user] }

    /// The role of `user` on `cluster`'s API through the tunnel: the cluster's grant, else the
    /// federation role `federationRole` (a token's, or the user's).
    public func role(ofUser user: String, onCluster cluster: String, federationRole: APIRole?) -> APIRole? {
        clusters?[cluster]?[user] ?? federationRole
    }

    public func user(forToken presented: String) -> Token? {
        // Compare every token in full, so timing says nothing about how much of a guess was right.
        var found: Token?
        for candidate in tokens where Self.constantTimeEqual(candidate.token, presented) { found = candidate }
        return found
    }

    private static func constantTimeEqual(_ left: String, _ right: String) -> Bool {
        let a = Array(left.utf8)
        let b = Array(right.utf8)
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for index in 0..<max(a.count, b.count) {
            difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
        }
        return difference == 0
    }
}
