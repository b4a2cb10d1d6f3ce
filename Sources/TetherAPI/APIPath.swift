/// What a request path names, in the Kubernetes URL scheme.
///
/// ```
/// /api/v1/[namespaces/NS/]RESOURCE[/NAME[/SUBRESOURCE]]
/// /apis/GROUP/VERSION/[namespaces/NS/]RESOURCE[/NAME[/SUBRESOURCE]]
/// ```
/// `/api/v1/namespaces/NS` is the namespace object itself, not a scope.
enum APIPath: Equatable {
    case version
    case health(String)
    case coreVersions
    case groupList
    case group(String)
    /// `/api/v1` or `/apis/GROUP/VERSION`: the resource list of one group version.
    case resourceList(group: String, version: String)
    case resource(ResourcePath)
    case openAPIv2
    /// Prometheus metrics of the serving process, when it exposes any.
    case metrics
    case openAPIv3(String)

    struct ResourcePath: Equatable {
        var group: String
        var version: String
        var namespace: String?
        var plural: String
        var name: String?
        var subresource: String?
    }

    init?(_ path: String) {
        let parts = path.split(separator: "/").map(String.init)
        switch parts.first {
        case "version" where parts.count == 1: self = .version
        case "healthz", "readyz", "livez": self = .health(parts[0])
        case "metrics" where parts.count == 1: self = .metrics
        case "openapi" where parts.count == 2 && parts[1] == "v2": self = .openAPIv2
        case "openapi" where parts.count >= 2 && parts[1] == "v3": self = .openAPIv3(parts.dropFirst(2).joined(separator: "/"))
        case "api":
            if parts.count == 1 {
                self = .coreVersions
                return
            }
            guard parts[1] == "v1" else { return nil }
            if parts.count == 2 {
                self = .resourceList(group: "", version: "v1")
                return
            }
            guard let resource = Self.resource(group: "", version: "v1", rest: Array(parts.dropFirst(2))) else { return nil }
            self = .resource(resource)
        case "apis":
            switch parts.count {
            case 1: self = .groupList
            case 2: self = .group(parts[1])
            case 3: self = .resourceList(group: parts[1], version: parts[2])
            default:
                guard let resource = Self.resource(group: parts[1], version: parts[2], rest: Array(parts.dropFirst(3))) else {
                    return nil
                }
                self = .resource(resource)
            }
        default:
            return nil
        }
    }

    private static func resource(group: String, version: String, rest: [String]) -> ResourcePath? {
        var rest = rest
        var namespace: String?
        // namespaces/NS/RESOURCE... scopes the request; namespaces/NS[/status] is the Namespace itself.
        let namespaceSubresource = rest.count == 3 && rest[0] == "namespaces" && ["status", "finalize"].contains(rest[2])
        if rest.count >= 3, rest[0] == "namespaces", !namespaceSubresource {
            namespace = rest[1]
            rest.removeFirst(2)
        }
        guard (1...3).contains(rest.count) else { return nil }
        return ResourcePath(
            group: group,
            version: version,
            namespace: namespace,
            plural: rest[0],
            name: rest.count > 1 ? rest[1] : nil,
            subresource: rest.count > 2 ? rest[2] : nil
        )
    }
}
