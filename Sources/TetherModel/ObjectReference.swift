/// Names one Kubernetes object: enough to find, delete or report on it.
public struct ObjectReference: Codable, Sendable, Hashable, CustomStringConvertible {
    public var apiVersion: String
    public var kind: String
    /// Nil for cluster-scoped kinds.
    public var namespace: String?
    public var name: String

    public init(apiVersion: String, kind: String, namespace: String? = nil, name: String) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.namespace = namespace
        self.name = name
    }

    /// `apps/v1 ReplicaSet default/web`, the form used in logs and error messages.
    public var description: String {
        if let namespace { return "\(apiVersion) \(kind) \(namespace)/\(name)" }
        return "\(apiVersion) \(kind) \(name)"
    }
}
