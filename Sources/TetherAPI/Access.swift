import Foundation
import NIOConcurrencyHelpers
import TetherSecurity

/// The Kubernetes verbs the API authorizes.
enum APIVerb: String, Sendable {
    case get, list, watch, create, update, patch, delete, deletecollection

    var isReadOnly: Bool { self == .get || self == .list || self == .watch }
}

extension APIRole {
    func allows(_ verb: APIVerb) -> Bool {
        switch self {
        case .admin: true
        case .viewer: verb.isReadOnly
        }
    }
}

/// The access policy in force: read by every request, replaced when `access.json` changes.
public final class AccessControl: Sendable {
    private let policy: NIOLockedValueBox<AccessPolicy>

    public init(_ policy: AccessPolicy = AccessPolicy()) {
        self.policy = NIOLockedValueBox(policy)
    }

    public var current: AccessPolicy { policy.withLockedValue { $0 } }

    public func replace(with new: AccessPolicy) {
        policy.withLockedValue { $0 = new }
    }
}

/// An authenticated caller.
struct Caller: Sendable {
    var user: String
    var role: APIRole?
    var method: String
}
