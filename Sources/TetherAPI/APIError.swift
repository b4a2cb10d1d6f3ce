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
    static func notFound(_ message: String) -> APIError { APIError(code: 404, reason: "NotFound", message: message) }
    static func methodNotAllowed(_ message: String) -> APIError { APIError(code: 405, reason: "MethodNotAllowed", message: message) }
    static func tooLarge(_ message: String) -> APIError { APIError(code: 413, reason: "RequestEntityTooLarge", message: message) }
    static func unsupportedMediaType(_ message: String) -> APIError {
        APIError(code: 415, reason: "UnsupportedMediaType", message: message)
    }
    static func invalid(_ message: String) -> APIError { APIError(code: 422, reason: "Invalid", message: message) }
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
        case .notFound: self.init(code: 404, reason: "NotFound", message: error.message)
        case .alreadyExists: self.init(code: 409, reason: "AlreadyExists", message: error.message)
        case .conflict: self.init(code: 409, reason: "Conflict", message: error.message)
        case .expired: self.init(code: 410, reason: "Expired", message: error.message)
        case .invalid: self.init(code: 422, reason: "Invalid", message: error.message)
        case .tooLarge: self.init(code: 413, reason: "RequestEntityTooLarge", message: error.message)
        case .watchOverflow: self.init(code: 410, reason: "Expired", message: error.message)
        case .storage: self.init(code: 500, reason: "InternalError", message: error.message)
        }
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
