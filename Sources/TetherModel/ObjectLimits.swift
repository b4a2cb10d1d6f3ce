import TetherJSON

/// The bounds every stored Kubernetes object keeps, enforced where an object enters (the API's
/// request body and the result of every patch), where it is kept (the store, on every write)
/// and where it travels (the wire carries an object inside a message no deeper than
/// ``maximumDepth`` plus the message's own envelope).
///
/// One value per concern: an object the API accepts can always be stored, read back and
/// carried to every member. `docs/limits.md` lists each bound with its reason.
public struct ObjectLimits: Sendable, Hashable {
    /// Largest object a client may write, in bytes of compact JSON (etcd's request limit).
    public var maximumBytes: Int
    /// Largest object the store keeps, in bytes of compact JSON: what a client wrote plus the
    /// status the server adds (a federated object's per-cluster status).
    public var maximumStoredBytes: Int
    /// Deepest nesting of arrays and objects in an object.
    public var maximumDepth: Int

    public init(maximumBytes: Int = 1_572_864, maximumStoredBytes: Int = 3 * 1_048_576, maximumDepth: Int = 48) {
        self.maximumBytes = maximumBytes
        self.maximumStoredBytes = max(maximumStoredBytes, maximumBytes)
        self.maximumDepth = maximumDepth
    }

    public static let `default` = ObjectLimits()

    /// Request bodies may wrap an object in a patch's own structure (a JSON patch operation's
    /// array and object), so they are parsed this much deeper; the object that results is then
    /// held to ``maximumDepth``.
    public static let patchEnvelopeDepth = 2
}

/// An object outside its ``ObjectLimits``.
public struct ObjectLimitViolation: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: Sendable, Hashable {
        case tooLarge
        case tooDeep
    }

    public var code: Code
    public var description: String

    public init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }
}

extension ObjectLimits {
    /// Checks nesting, then size against `bytes` (the caller's encoding, when it has one, so the
    /// object is not encoded twice); `limit` defaults to ``maximumBytes``.
    public func check(_ object: JSONValue, encodedBytes: Int? = nil, limit: Int? = nil) -> ObjectLimitViolation? {
        let depth = object.nestingDepth(stoppingAfter: maximumDepth)
        if depth > maximumDepth {
            return ObjectLimitViolation(.tooDeep, "the object nests arrays and objects deeper than \(maximumDepth) levels")
        }
        let limit = limit ?? maximumBytes
        let size = encodedBytes ?? object.encodedSize(stoppingAfter: limit)
        if size > limit {
            let shown = encodedBytes.map { "\($0) bytes" } ?? "more than \(limit) bytes"
            return ObjectLimitViolation(.tooLarge, "the object is \(shown) of JSON; the limit is \(limit) bytes")
        }
        return nil
    }
}
