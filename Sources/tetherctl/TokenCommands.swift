import ArgumentParser
import Foundation
import TetherSecurity

/// `tetherctl token create|revoke|list`: bearer tokens for the hub's API in DIR/access.json.
struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Manage the bearer tokens of the hub's API (DIR/access.json, written 0600; the hub reloads it).",
        subcommands: [CreateToken.self, RevokeToken.self, ListTokens.self]
    )
}

struct CreateToken: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a random bearer token (256 bits) for USER with ROLE, add it to access.json and print it."
    )

    @Option(name: .long, help: "The federation directory.")
    var dir: String

    @Option(name: .long, help: "The user the token authenticates as.")
    var user: String

    @Option(name: .long, help: "The user's role: admin or viewer.")
    var role: String = "viewer"

    @Option(name: .long, help: "Output format: text or json.")
    var output: OutputFormat = .text

    func validate() throws {
        guard APIRole(rawValue: role) != nil else { throw ValidationError("--role must be admin or viewer, not \(role)") }
        guard !user.isEmpty, user.count <= 253, !user.contains(where: \.isWhitespace) else {
            throw ValidationError("--user must be a name without spaces")
        }
    }

    func run() throws {
        let directory = FederationDirectory(path: dir)
        var policy = try AccessPolicy.load(from: directory.accessPolicyPath)
        var generator = SystemRandomNumberGenerator()
        let token = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        policy.tokens.append(AccessPolicy.Token(token: token, user: user, role: APIRole(rawValue: role) ?? .viewer))
        try policy.save(to: directory.accessPolicyPath)
        switch output {
        case .json: try printJSON(["user": user, "role": role, "token": token])
        case .text: print(token)
        }
    }
}

struct RevokeToken: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Remove tokens from access.json: one by its value, or every token of a user. The hub stops accepting them at once."
    )

    @Option(name: .long, help: "The federation directory.")
    var dir: String

    @Option(name: .long, help: "The token to remove.")
    var token: String?

    @Option(name: .long, help: "Remove every token of this user.")
    var user: String?

    func validate() throws {
        guard (token == nil) != (user == nil) else { throw ValidationError("pass either --token or --user") }
    }

    func run() throws {
        let directory = FederationDirectory(path: dir)
        var policy = try AccessPolicy.load(from: directory.accessPolicyPath)
        let before = policy.tokens.count
        policy.tokens.removeAll { candidate in
            if let token { return candidate.token == token }
            return candidate.user == user
        }
        guard policy.tokens.count < before else {
            throw ValidationError("no such token in \(directory.accessPolicyPath); `tetherctl token list --dir \(dir)` shows them")
        }
        try policy.save(to: directory.accessPolicyPath)
        print("removed \(before - policy.tokens.count) token(s)")
    }
}

struct TokenList: Encodable {
    var users: [String: String]
    var tokens: [[String: String]]
}

struct ListTokens: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the users and roles of access.json (tokens shown by their first 8 characters).")

    @Option(name: .long, help: "The federation directory.")
    var dir: String

    @Option(name: .long, help: "Output format: text or json.")
    var output: OutputFormat = .text

    func run() throws {
        let policy = try AccessPolicy.load(from: FederationDirectory(path: dir).accessPolicyPath)
        let rows = policy.tokens.map { ["user": $0.user, "role": $0.role.rawValue, "token": String($0.token.prefix(8)) + "..."] }
        switch output {
        case .json: try printJSON(TokenList(users: policy.users.mapValues(\.rawValue), tokens: rows))
        case .text:
            for (user, role) in policy.users.sorted(by: { $0.key < $1.key }) { print("user   \(user)\t\(role.rawValue)") }
            for row in rows { print("token  \(row["user"] ?? "")\t\(row["role"] ?? "")\t\(row["token"] ?? "")") }
        }
    }
}
