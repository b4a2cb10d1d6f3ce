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

extension JSONValue {
    /// How deeply arrays and objects nest in this value (a scalar is 0, `{}` is 1); counting stops
    /// once it passes `bound`, so a hostile value costs no more than `bound` levels of walking.
    public func nestingDepth(stoppingAfter bound: Int = .max) -> Int {
        switch self {
        case .null, .bool, .integer, .double, .string:
            return 0
        case .array(let items):
            guard bound > 0 else { return 1 }
            var deepest = 0
            for item in items {
                deepest = max(deepest, item.nestingDepth(stoppingAfter: bound - 1))
                if deepest >= bound { break }
            }
            return deepest + 1
        case .object(let members):
            guard bound > 0 else { return 1 }
            var deepest = 0
            for item in members.values {
                deepest = max(deepest, item.nestingDepth(stoppingAfter: bound - 1))
                if deepest >= bound { break }
            }
            return deepest + 1
        }
    }

    /// The length of this value's compact JSON encoding, in bytes (strings counted as written,
    /// escapes included); the count stops once it passes `bound`.
    public func encodedSize(stoppingAfter bound: Int = .max) -> Int {
        var total = 0
        accumulateSize(into: &total, bound: bound)
        return total
    }

    private func accumulateSize(into total: inout Int, bound: Int) {
        guard total <= bound else { return }
        switch self {
        case .null: total += 4
        case .bool(let flag): total += flag ? 4 : 5
        case .integer(let number): total += String(number).utf8.count
        case .double(let number): total += String(number).utf8.count
        case .string(let text): total += Self.encodedStringSize(text)
        case .array(let items):
            total += 2 + max(0, items.count - 1)
            for item in items {
                item.accumulateSize(into: &total, bound: bound)
                if total > bound { return }
            }
        case .object(let members):
            total += 2 + max(0, members.count - 1)
            for (key, item) in members {
                total += Self.encodedStringSize(key) + 1
                item.accumulateSize(into: &total, bound: bound)
                if total > bound { return }
            }
        }
    }

    private static func encodedStringSize(_ text: String) -> Int {
        var size = 2
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), 0x08, 0x0C, 0x0A, 0x0D, 0x09: size += 2
            case 0..<0x20: size += 6
            default: size += 1
            }
        }
        return size
    }
}
