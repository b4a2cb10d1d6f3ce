import Foundation
import TetherModel

/// What the hub may reach of the member through this agent (`--tunnel`, `--tunnel-read-kind`):
/// the agent's allow-list bounds every request, reads may also reach a few kinds the agent never
/// writes (pods, their metrics and events, to see what became of what it applied), and writes
/// only when the operator allows them.
public struct TunnelPolicy: Sendable, Hashable {
    public enum Mode: String, Sendable, CaseIterable {
        /// Every request is refused.
        case off
        /// get, list and watch.
        case read
        /// Also create, update, patch and delete, of allowed kinds in allowed namespaces.
        case write
    }

    public var mode: Mode
    public var allowList: AllowList
    /// `group/Kind` readable through the tunnel besides the allow-list's kinds.
    public var readKinds: Set<String>

    public static let defaultReadKinds: Set<String> = ["/Pod", "/Event", "events.k8s.io/Event", "metrics.k8s.io/PodMetrics"]

    public init(mode: Mode = .read, allowList: AllowList, readKinds: Set<String> = defaultReadKinds) {
        self.mode = mode
        self.allowList = allowList
        self.readKinds = readKinds
    }

    /// A resource as the member's discovery names it.
    public struct Resource: Sendable, Hashable {
        public var kind: String
        public var namespaced: Bool

        public init(kind: String, namespaced: Bool) {
            self.kind = kind
            self.namespaced = namespaced
        }
    }

    /// Where a request path points.
    enum Target: Equatable {
        /// Discovery, version, OpenAPI, health: readable by anyone the hub let through.
        case serverInformation
        case resource(group: String, version: String, plural: String, namespace: String?, name: String?, subresource: String?)
        case outside
    }

    static func target(of pathAndQuery: String) -> Target {
        let path = pathAndQuery.split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
        let segments = path.split(separator: "/").map { String($0).removingPercentEncoding ?? String($0) }
        guard let first = segments.first else { return .serverInformation }
        var rest: ArraySlice<String>
        let group: String
        let version: String
        switch first {
        case "version", "openapi", "healthz", "livez", "readyz":
            return .serverInformation
        case "api":
            guard segments.count > 2 else { return .serverInformation }
            (group, version, rest) = ("", segments[1], segments[2...])
        case "apis":
            guard segments.count > 3 else { return .serverInformation }
            (group, version, rest) = (segments[1], segments[2], segments[3...])
        default:
            return .outside
        }
        var namespace: String?
        if rest.first == "namespaces", rest.count >= 3 {
            namespace = rest[rest.startIndex + 1]
            rest = rest.dropFirst(2)
        }
        guard let plural = rest.first else { return .outside }
        let name = rest.count > 1 ? rest[rest.startIndex + 1] : nil
        let subresource = rest.count > 2 ? rest[(rest.startIndex + 2)...].joined(separator: "/") : nil
        if group.isEmpty, plural == "namespaces", namespace == nil { namespace = name }
        return .resource(group: group, version: version, plural: plural, namespace: namespace, name: name, subresource: subresource)
    }

    /// Why `method` on `pathAndQuery` is refused, or nil. `resolve` finds a resource by group and plural.
    public func refusal(method: String, pathAndQuery: String, resolve: (_ group: String, _ plural: String) -> Resource?) -> String? {
        let isRead = method == "GET" || method == "HEAD"
        switch mode {
        case .off:
            return "this agent does not serve the tunnel (started with --tunnel off)"
        case .read where !isRead:
            return "this agent serves the tunnel read-only; \(method) needs the agent started with --tunnel write"
        case .read, .write:
            break
        }
        switch Self.target(of: pathAndQuery) {
        case .outside:
            return "the tunnel reaches the member's API (/api, /apis, /version, /openapi), not \(pathAndQuery)"
        case .serverInformation:
            return isRead ? nil : "\(method) is not allowed on \(pathAndQuery)"
        case .resource(let group, _, let plural, let namespace, _, _):
            guard let resource = resolve(group, plural) else {
                return "the member serves no resource \(plural) in group \"\(group)\", so this agent's allow-list cannot admit it"
            }
            let key = "\(group)/\(resource.kind)"
            let readable = allowList.kinds.union(readKinds)
            guard (isRead ? readable : allowList.kinds).contains(key) else {
                return "kind \(key) is not in this agent's allow-list"
                    + (isRead ? " or its --tunnel-read-kind list" : "")
                    + " (allowed: \((isRead ? readable : allowList.kinds).sorted().joined(separator: ", ")))"
            }
            if let namespace {
                if allowList.deniedNamespaces.contains(namespace) {
                    return "namespace \(namespace) is denied by this agent's allow-list (--deny-namespace)"
                }
                if let allowed = allowList.namespaces, !allowed.contains(namespace) {
                    return "namespace \(namespace) is not in this agent's allow-list (--allow-namespace)"
                }
            } else if resource.namespaced, allowList.namespaces != nil || !allowList.deniedNamespaces.isEmpty {
                return "this agent's allow-list does not reach every namespace; name one (kubectl -n NAMESPACE) instead of all"
            }
            return nil
        }
    }
}
