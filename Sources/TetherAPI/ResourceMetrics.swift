import Foundation
import Hummingbird
import TetherJSON
import TetherModel
import TetherPlugin

/// `metrics.k8s.io/v1beta1`, as metrics-server serves it: `nodes` and `pods`, get and list only,
/// with label selectors. `kubectl top` reads it, and finds it through discovery.
enum ResourceMetricsAPI {
    static let group = "metrics.k8s.io"
    static let version = "v1beta1"
    static let resources: [(plural: String, kind: String, namespaced: Bool)] = [("nodes", "NodeMetrics", false), ("pods", "PodMetrics", true)]

    static func serves(_ path: APIPath.ResourcePath) -> Bool { path.group == group }
}

extension ResourceHandler {
    func metrics(_ path: APIPath.ResourcePath, from source: any ResourceMetricsSource, context: APIRequestContext) async throws -> Response {
        guard path.version == ResourceMetricsAPI.version, path.subresource == nil,
            let resource = ResourceMetricsAPI.resources.first(where: { $0.plural == path.plural }),
            resource.namespaced || path.namespace == nil
        else {
            throw APIError.notFound("the server could not find the requested resource")
        }
        guard let caller = context.caller else { throw APIError.unauthorized("Unauthorized") }
        let verb: APIVerb = path.name == nil ? .list : .get
        guard caller.role?.allows(verb) == true else {
            throw APIError.forbidden(
                "\(resource.plural).\(ResourceMetricsAPI.group) is forbidden: User \"\(caller.user)\" cannot \(verb.rawValue) resource \"\(resource.plural)\" in API group \"\(ResourceMetricsAPI.group)\""
            )
        }
        guard !context.query.watch else { throw APIError.methodNotAllowed("the metrics API serves no watch; read it again instead") }
        var items = try await resource.namespaced ? source.podMetrics(namespace: path.namespace) : source.nodeMetrics()
        if let name = path.name {
            guard let item = items.first(where: { $0.name == name }) else {
                var error = APIError.notFound("\(resource.plural).\(ResourceMetricsAPI.group) \"\(name)\" not found")
                error.details = ["name": .string(name), "group": .string(ResourceMetricsAPI.group), "kind": .string(resource.plural)]
                throw error
            }
            return Self.json(item)
        }
        if let text = context.query.labelSelector, !text.isEmpty {
            let selector: LabelSelector
            do { selector = try LabelSelector(parsing: text) } catch { throw APIError.badRequest("unable to parse labelSelector: \(error)") }
            items = items.filter { selector.matches($0.labels) }
        }
        return Self.json([
            "kind": .string("\(resource.kind)List"), "apiVersion": .string("\(ResourceMetricsAPI.group)/\(ResourceMetricsAPI.version)"),
            "metadata": [:], "items": .array(items),
        ])
    }
}
