import TetherJSON
import TetherModel
import TetherSecurity

/// The self reviews kube-apiserver answers without storing anything, from the roles the API
/// already has: `kubectl auth can-i` (SelfSubjectAccessReview), `auth can-i --list`
/// (SelfSubjectRulesReview) and `auth whoami` (SelfSubjectReview).
///
/// An admin may do everything; a viewer may get, list and watch every resource and get every
/// non-resource path; a user without a role, nothing. Any authenticated caller may ask about
/// itself, as in Kubernetes.
enum AccessReviews {
    struct Review: Sendable {
        var group: String
        var version: String
        var kind: String
        var plural: String
        var apiVersion: String { "\(group)/\(version)" }
    }

    static let access = Review(group: "authorization.k8s.io", version: "v1", kind: "SelfSubjectAccessReview", plural: "selfsubjectaccessreviews")
    static let rules = Review(group: "authorization.k8s.io", version: "v1", kind: "SelfSubjectRulesReview", plural: "selfsubjectrulesreviews")
    static let identity = Review(group: "authentication.k8s.io", version: "v1", kind: "SelfSubjectReview", plural: "selfsubjectreviews")
    /// What `kubectl auth whoami` of kubectl 1.27 asks for (v1 came in Kubernetes 1.28); the same review.
    static let identityBeta = Review(group: "authentication.k8s.io", version: "v1beta1", kind: "SelfSubjectReview", plural: "selfsubjectreviews")
    static let all = [access, rules, identity, identityBeta]

    /// The groups the reviews live in, with their versions, for discovery.
    static let groups: [(name: String, versions: [String])] = [("authentication.k8s.io", ["v1", "v1beta1"]), ("authorization.k8s.io", ["v1"])]

    static func review(group: String, version: String, plural: String) -> Review? {
        all.first { $0.group == group && $0.version == version && $0.plural == plural }
    }

    static func reviews(group: String, version: String) -> [Review] {
        all.filter { $0.group == group && $0.version == version }
    }

    /// The answer to a review `body` posted by `caller`: the body with its `status` filled in.
    static func answer(_ review: Review, body: JSONValue, caller: Caller) throws(APIError) -> JSONValue {
        guard case .object = body else { throw APIError.badRequest("the body must be a JSON object") }
        var answer = body
        answer[member: "apiVersion"] = .string(review.apiVersion)
        answer[member: "kind"] = .string(review.kind)
        if answer["metadata"] == nil { answer[member: "metadata"] = ["creationTimestamp": .null] }
        switch review.kind {
        case access.kind: answer[member: "status"] = accessStatus(spec: body["spec"] ?? [:], role: caller.role)
        case rules.kind: answer[member: "status"] = rulesStatus(role: caller.role)
        default: answer[member: "status"] = ["userInfo": userInfo(caller)]
        }
        return answer
    }

    private static func accessStatus(spec: JSONValue, role: APIRole?) -> JSONValue {
        let attributes = spec["resourceAttributes"] ?? spec["nonResourceAttributes"]
        guard let attributes, let verb = attributes["verb"]?.stringValue, !verb.isEmpty else {
            return ["allowed": false, "reason": "the review names no verb (spec.resourceAttributes.verb or spec.nonResourceAttributes.verb)"]
        }
        let allowed: Bool
        switch role {
        case .admin?: allowed = true
        case .viewer?:
            if spec["resourceAttributes"] != nil {
                allowed = APIVerb(rawValue: verb)?.isReadOnly == true
            } else {
                allowed = verb == "get"
            }
        case nil: allowed = false
        }
        let reason = role.map { "the \($0.rawValue) role \(allowed ? "allows" : "does not allow") \(verb)" } ?? "the user has no role in access.json"
        return ["allowed": .bool(allowed), "reason": .string(reason)]
    }

    private static func rulesStatus(role: APIRole?) -> JSONValue {
        let (resourceVerbs, pathVerbs): ([JSONValue], [JSONValue]) =
            switch role {
            case .admin?: (["*"], ["*"])
            case .viewer?: (["get", "list", "watch"], ["get"])
            case nil: ([], [])
            }
        let resourceRules: [JSONValue] = resourceVerbs.isEmpty ? [] : [["verbs": .array(resourceVerbs), "apiGroups": ["*"], "resources": ["*"]]]
        let pathRules: [JSONValue] = pathVerbs.isEmpty ? [] : [["verbs": .array(pathVerbs), "nonResourceURLs": ["*"]]]
        return ["resourceRules": .array(resourceRules), "nonResourceRules": .array(pathRules), "incomplete": false]
    }

    private static func userInfo(_ caller: Caller) -> JSONValue {
        var groups: [JSONValue] = ["system:authenticated"]
        if let role = caller.role { groups.append(.string("tether:\(role.rawValue)")) }
        return ["username": .string(caller.user), "groups": .array(groups), "extra": ["tether.io/authenticated-by": [.string(caller.method)]]]
    }
}
