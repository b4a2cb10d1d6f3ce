import HTTPTypes
import Hummingbird
import NIOCore
import TetherJSON
import TetherModel
import TetherStore

/// A request that ends in a `metav1.Status` failure: the one place where failures become HTTP
/// statuses. Thrown from any route or middleware; Hummingbird writes it (``response(from:context:)``),
/// and ``APIRequestMiddleware`` turns every other error into one first.
struct APIError: HTTPResponseError, CustomStringConvertible {
    var code: Int
    /// The Kubernetes `reason`: `NotFound`, `Conflict`, `Invalid`, ...
    var reason: String
    var message: String
    var details: JSONValue?
    /// Sent as `Retry-After` (seconds), and in the Status' details, as Kubernetes does for 429.
    var retryAfterSeconds: Int?

    var description: String { message }

    static func badRequest(_ message: String) -> APIError { APIError(code: 400, reason: "BadRequest", message: message) }
    static func unauthorized(_ message: String) -> APIError { APIError(code: 401, reason: "Unauthorized", message: message) }
    static func forbidden(_ message: String) -> APIError { APIError(code: 403, reason: "Forbidden", message: message) }
    /// A route, subresource or object not found. kube-apiserver's always has `details` (empty for
    /// a route): kubectl 1.32's `debug` dereferences them to tell a missing route from a missing pod.
    static func notFound(_ message: String) -> APIError { APIError(code: 404, reason: "NotFound", message: message, details: [:]) }
    static func methodNotAllowed(_ message: String) -> APIError { APIError(code: 405, reason: "MethodNotAllowed", message: message) }
    static func tooLarge(_ message: String) -> APIError { APIError(code: 413, reason: "RequestEntityTooLarge", message: message) }
    static func unsupportedMediaType(_ message: String) -> APIError {
        APIError(code: 415, reason: "UnsupportedMediaType", message: message)
    }
    static func invalid(_ message: String) -> APIError { APIError(code: 422, reason: "Invalid", message: message) }

    /// An object refused for `problems`, each `field: message` (kube's field error text), with
    /// the `details` kube-apiserver sends: kubectl then prints "The Kind "name" is invalid:" and
    /// one line per cause, and clients read each cause's field.
    static func invalid(kind: String, group: String, name: String, problems: [String]) -> APIError {
        let causes: [JSONValue] = problems.map { problem in
            let (field, text) =
                problem.firstRange(of: ": ").map { (String(problem[..<$0.lowerBound]), String(problem[$0.upperBound...])) } ?? ("", problem)
            return ["reason": .string(causeReason(text)), "message": .string(text), "field": .string(field)]
        }
        var details: JSONValue = ["name": .string(name), "kind": .string(kind), "causes": .array(causes)]
        if !group.isEmpty { details[member: "group"] = .string(group) }
        return APIError(
            code: 422, reason: "Invalid", message: "\(kind) \"\(name)\" is invalid: \(problems.joined(separator: "; "))", details: details)
    }

    /// `metav1.CauseType` from the start of a field error's text, as `field.Error` words it.
    private static func causeReason(_ text: String) -> String {
        let reasons: [(String, String)] = [
            ("Required value", "FieldValueRequired"), ("Forbidden", "FieldValueForbidden"), ("Duplicate value", "FieldValueDuplicate"),
            ("Not found", "FieldValueNotFound"), ("Unsupported value", "FieldValueNotSupported"), ("Too long", "FieldValueTooLong"),
            ("Too many", "FieldValueTooMany"), ("Internal error", "InternalError"),
        ]
        return reasons.first { text.hasPrefix($0.0) }?.1 ?? "FieldValueInvalid"
    }
    static func notAcceptable(_ message: String) -> APIError { APIError(code: 406, reason: "NotAcceptable", message: message) }
    static func tooManyRequests(_ message: String) -> APIError {
        var error = APIError(code: 429, reason: "TooManyRequests", message: message, details: ["retryAfterSeconds": 1])
        error.retryAfterSeconds = 1
        return error
    }
    static func timeout(_ message: String) -> APIError { APIError(code: 504, reason: "Timeout", message: message) }

    init(code: Int, reason: String, message: String, details: JSONValue? = nil) {
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
    }

    init(_ error: StoreError) {
        switch error.code {
        case .notFound: self.init(code: 404, reason: "NotFound", message: error.message, details: Self.details(of: error))
        case .alreadyExists: self.init(code: 409, reason: "AlreadyExists", message: error.message, details: Self.details(of: error))
        case .conflict: self.init(code: 409, reason: "Conflict", message: error.message, details: error.subject.map { _ in Self.details(of: error) })
        case .expired: self.init(code: 410, reason: "Expired", message: error.message)
        case .invalid: self.init(code: 422, reason: "Invalid", message: error.message)
        case .tooLarge: self.init(code: 413, reason: "RequestEntityTooLarge", message: error.message)
        case .watchOverflow: self.init(code: 410, reason: "Expired", message: error.message)
        case .storage: self.init(code: 500, reason: "InternalError", message: error.message)
        }
    }

    /// `metav1.StatusDetails` of the object a store error is about: its name, group and resource.
    private static func details(of error: StoreError) -> JSONValue {
        guard let (type, name) = error.subject else { return [:] }
        var details: JSONValue = ["name": .string(name), "kind": .string(type.resource)]
        if !type.group.isEmpty { details[member: "group"] = .string(type.group) }
        return details
    }

    var status: HTTPResponse.Status { HTTPResponse.Status(code: code) }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: ResourceHandler.encode(statusObject)))
        )
        if let retryAfterSeconds { response.headers[.retryAfter] = String(retryAfterSeconds) }
        return response
    }

    /// The `metav1.Status` body.
    var statusObject: JSONValue {
        var body: JSONValue = [
            "kind": "Status", "apiVersion": "v1", "metadata": [:], "status": "Failure",
            "message": .string(message), "reason": .string(reason), "code": .integer(Int64(code)),
        ]
        if let details { body[member: "details"] = details }
        return body
    }
}
