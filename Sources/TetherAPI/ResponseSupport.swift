import Foundation
import HTTPTypes
import Hummingbird
import Synchronization
import TetherStore

/// The opaque `continue` token of a paged list: where the next page starts.
struct ContinueToken: Codable {
    var namespace: String
    var name: String

    init(_ position: ListPosition) {
        namespace = position.namespace
        name = position.name
    }

    init(decoding token: String) throws {
        guard let data = Data(base64Encoded: token), let decoded = try? JSONDecoder().decode(ContinueToken.self, from: data) else {
            throw APIError.badRequest("the continue token is not valid; list again from the start")
        }
        self = decoded
    }

    var position: ListPosition { ListPosition(namespace: namespace, name: name) }

    func encoded() throws -> String { try JSONEncoder().encode(self).base64EncodedString() }
}

/// A flag set once, read from any task: a watch's client fell behind, a server got its port.
final class OnceFlag: Sendable {
    private let marked = Mutex(false)
    func mark() { marked.withLock { $0 = true } }
    var isMarked: Bool { marked.withLock { $0 } }
    /// Marks it; true only for the first caller.
    func markFirst() -> Bool {
        marked.withLock { marked in
            defer { marked = true }
            return !marked
        }
    }
}

/// What a request was warned of, sent back as `Warning: 299 - "..."` headers (kubectl prints them).
final class ResponseWarnings: Sendable {
    private let messages = Mutex<[String]>([])

    func add(_ new: [String]) {
        messages.withLock { $0.append(contentsOf: new) }
    }

    /// `response` with a `Warning` header per warning.
    func attached(to response: Response) -> Response {
        guard let name = HTTPField.Name("Warning") else { return response }
        var response = response
        for message in messages.withLock({ $0 }) {
            let escaped = message.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            response.headers.append(HTTPField(name: name, value: "299 - \"\(escaped)\""))
        }
        return response
    }
}
