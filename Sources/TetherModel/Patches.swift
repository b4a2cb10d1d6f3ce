import Foundation
import TetherJSON

/// The three patch formats of the Kubernetes API, applied to unstructured objects.
extension JSONValue {
    /// JSON merge patch (RFC 7386): objects merge recursively, `null` removes, anything else replaces.
    public func mergePatched(with patch: JSONValue) -> JSONValue {
        guard case .object(let changes) = patch else { return patch }
        var result: [String: JSONValue]
        if case .object(let members) = self { result = members } else { result = [:] }
        for (key, change) in changes {
            if case .null = change {
                result[key] = nil
            } else {
                result[key] = (result[key] ?? .null).mergePatched(with: change)
            }
        }
        return .object(result)
    }

    /// An approximation of Kubernetes' strategic merge patch, for unstructured objects.
    ///
    /// As merge patch, except: lists of objects that all carry a `name` (containers, ports,
    /// volumes, env) merge element by element by that name instead of being replaced, and the
    /// directives kubectl sends (`$setElementOrder/...`, `$retainKeys`, `$deleteFromPrimitiveList/...`,
    /// `$patch: delete` on a list element, `$patch: replace` on an object) are honoured or dropped.
    /// `mergeKey` names the merge key of the list at a path of field names (`spec.template.spec.containers.ports`
    /// gives `containerPort`), from the kind's schema; a list it knows no key for merges by `name`
    /// when every element has one.
    public func strategicMergePatched(with patch: JSONValue, mergeKey: (_ path: [String]) -> String? = { _ in nil }) -> JSONValue {
        strategicMerge(patch, at: [], mergeKey: mergeKey)
    }

    private func strategicMerge(_ patch: JSONValue, at path: [String], mergeKey: (_ path: [String]) -> String?) -> JSONValue {
        guard case .object(var changes) = patch else { return patch }
        if changes["$patch"]?.stringValue == "replace" {
            changes["$patch"] = nil
            return JSONValue.object(changes).removingDirectives
        }
        var result: [String: JSONValue]
        if case .object(let members) = self { result = members } else { result = [:] }
        for (key, change) in changes {
            if key.hasPrefix("$deleteFromPrimitiveList/") {
                let field = String(key.dropFirst("$deleteFromPrimitiveList/".count))
                if case .array(let items)? = result[field], case .array(let removed) = change {
                    result[field] = .array(items.filter { !removed.contains($0) })
                }
                continue
            }
            if key.hasPrefix("$") { continue }
            let here = path + [key]
            switch (result[key], change) {
            case (_, .null):
                result[key] = nil
            case (.array(let current)?, .array(let incoming)):
                if let listKey = mergeKey(here) ?? (Self.isNamedList(incoming) ? "name" : nil),
                    incoming.allSatisfy({ $0[listKey] != nil && $0[listKey] != .null })
                {
                    result[key] = .array(Self.mergeKeyedLists(current, incoming, key: listKey, at: here, mergeKey: mergeKey))
                } else {
                    result[key] = change.removingDirectives
                }
            case (.some(let current), .object):
                result[key] = current.strategicMerge(change, at: here, mergeKey: mergeKey)
            default:
                result[key] = change.removingDirectives
            }
        }
        return .object(result)
    }

    /// JSON patch (RFC 6902): `add`, `remove`, `replace`, `move`, `copy`, `test`.
    /// Kubernetes' cap on the operations of one JSON patch.
    public static let maximumJSONPatchOperations = 10_000

    /// Applies an RFC 6902 patch. With `limits`, no operation may place a value deeper than
    /// the object limit, and `copy` operations together may copy no more than the object limit
    /// of bytes: a few hundred copies of a growing subtree would otherwise build gigabytes from a
    /// request of kilobytes before any check of the result could run.
    public func applyingJSONPatch(_ patch: JSONValue, limits: ObjectLimits? = nil) throws(PatchError) -> JSONValue {
        guard case .array(let operations) = patch else { throw PatchError("a JSON patch must be an array of operations") }
        guard operations.count <= Self.maximumJSONPatchOperations else {
            throw PatchError("the patch has \(operations.count) operations; at most \(Self.maximumJSONPatchOperations) are allowed")
        }
        var document = self
        var copied = 0
        func checkPlacement(_ value: JSONValue, at pointer: JSONPointer) throws(PatchError) {
            guard let limits else { return }
            if pointer.tokens.count + value.nestingDepth(stoppingAfter: limits.maximumDepth) > limits.maximumDepth {
                throw PatchError(
                    .tooDeep, "the patch would nest the object deeper than \(limits.maximumDepth) levels (at \(pointer.text.prefix(200)))")
            }
        }
        for (index, operation) in operations.enumerated() {
            guard let op = operation["op"]?.stringValue, let path = operation["path"]?.stringValue else {
                throw PatchError("operation \(index) needs \"op\" and \"path\"")
            }
            let pointer = try JSONPointer(path)
            switch op {
            case "add":
                guard let value = operation["value"] else { throw PatchError("operation \(index) (add) needs \"value\"") }
                try checkPlacement(value, at: pointer)
                try document.insert(value, at: pointer)
            case "remove":
                _ = try document.remove(at: pointer)
            case "replace":
                guard let value = operation["value"] else { throw PatchError("operation \(index) (replace) needs \"value\"") }
                try checkPlacement(value, at: pointer)
                _ = try document.remove(at: pointer)
                try document.insert(value, at: pointer)
            case "move", "copy":
                guard let from = operation["from"]?.stringValue else { throw PatchError("operation \(index) (\(op)) needs \"from\"") }
                let source = try JSONPointer(from)
                let value = op == "move" ? try document.remove(at: source) : try document.value(at: source)
                if op == "copy", let limits {
                    copied += value.encodedSize(stoppingAfter: limits.maximumBytes - copied)
                    guard copied <= limits.maximumBytes else {
                        throw PatchError(.tooLarge, "the patch copies more than \(limits.maximumBytes) bytes; the object would be too large")
                    }
                }
                try checkPlacement(value, at: pointer)
                try document.insert(value, at: pointer)
            case "test":
                guard try document.value(at: pointer) == operation["value"] else {
                    throw PatchError("test failed at \(path)")
                }
            default:
                throw PatchError("operation \(index) has unknown op \"\(op)\"")
            }
        }
        return document
    }

    private static func isNamedList(_ items: [JSONValue]) -> Bool {
        !items.isEmpty && items.allSatisfy { $0["name"]?.stringValue != nil }
    }

    private static func mergeKeyedLists(
        _ current: [JSONValue], _ incoming: [JSONValue], key: String, at path: [String], mergeKey: (_ path: [String]) -> String?
    ) -> [JSONValue] {
        var merged = current
        for change in incoming {
            let index = merged.firstIndex { $0[key] == change[key] }
            if change["$patch"]?.stringValue == "delete" {
                if let index { merged.remove(at: index) }
            } else if let index {
                merged[index] = merged[index].strategicMerge(change, at: path, mergeKey: mergeKey)
            } else {
                merged.append(change.removingDirectives)
            }
        }
        return merged
    }

    private var removingDirectives: JSONValue {
        switch self {
        case .object(let members):
            return .object(members.filter { !$0.key.hasPrefix("$") }.mapValues(\.removingDirectives))
        case .array(let items):
            return .array(items.map(\.removingDirectives))
        default:
            return self
        }
    }
}

/// A patch that cannot be applied; the API answers it with 422.
public struct PatchError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: Sendable, Hashable {
        /// The patch does not apply to the object (a path that is not there, a failed test, ...).
        case invalid
        /// The result would be larger than the object limit.
        case tooLarge
        /// The result would nest deeper than the object limit.
        case tooDeep
    }

    public var code: Code
    public var description: String
    init(_ description: String) {
        self.code = .invalid
        self.description = description
    }
    init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }
}

/// An RFC 6901 pointer: `/spec/template/spec/containers/0/image`.
struct JSONPointer {
    var tokens: [String]

    var text: String { tokens.map { "/" + $0 }.joined() }

    init(_ text: String) throws(PatchError) {
        guard text.isEmpty || text.hasPrefix("/") else { throw PatchError("\"\(text)\" is not a JSON pointer") }
        tokens = text.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map {
            $0.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
        }
    }
}

extension JSONValue {
    fileprivate func value(at pointer: JSONPointer) throws(PatchError) -> JSONValue {
        var current = self
        for token in pointer.tokens {
            switch current {
            case .object(let members):
                guard let next = members[token] else { throw PatchError("no value at /\(pointer.tokens.joined(separator: "/"))") }
                current = next
            case .array(let items):
                guard let index = Int(token), items.indices.contains(index) else {
                    throw PatchError("index \(token) is out of range")
                }
                current = items[index]
            default:
                throw PatchError("cannot descend into a scalar at \(token)")
            }
        }
        return current
    }

    fileprivate mutating func insert(_ value: JSONValue, at pointer: JSONPointer) throws(PatchError) {
        guard let last = pointer.tokens.last else {
            self = value
            return
        }
        try modifyParent(of: pointer) { (parent) throws(PatchError) in
            switch parent {
            case .object(var members):
                members[last] = value
                parent = .object(members)
            case .array(var items):
                if last == "-" {
                    items.append(value)
                } else {
                    guard let index = Int(last), (0...items.count).contains(index) else {
                        throw PatchError("index \(last) is out of range")
                    }
                    items.insert(value, at: index)
                }
                parent = .array(items)
            default:
                throw PatchError("cannot add into a scalar")
            }
        }
    }

    fileprivate mutating func remove(at pointer: JSONPointer) throws(PatchError) -> JSONValue {
        guard let last = pointer.tokens.last else { throw PatchError("cannot remove the whole document") }
        var removed = JSONValue.null
        try modifyParent(of: pointer) { (parent) throws(PatchError) in
            switch parent {
            case .object(var members):
                guard let value = members.removeValue(forKey: last) else { throw PatchError("no value at \(last) to remove") }
                removed = value
                parent = .object(members)
            case .array(var items):
                guard let index = Int(last), items.indices.contains(index) else { throw PatchError("index \(last) is out of range") }
                removed = items.remove(at: index)
                parent = .array(items)
            default:
                throw PatchError("cannot remove from a scalar")
            }
        }
        return removed
    }

    private mutating func modifyParent(
        of pointer: JSONPointer,
        _ body: (inout JSONValue) throws(PatchError) -> Void
    ) throws(PatchError) {
        try modify(Array(pointer.tokens.dropLast())[...], body)
    }

    private mutating func modify(_ path: ArraySlice<String>, _ body: (inout JSONValue) throws(PatchError) -> Void) throws(PatchError) {
        guard let first = path.first else {
            try body(&self)
            return
        }
        switch self {
        case .object(var members):
            guard var child = members[first] else { throw PatchError("no value at \(first)") }
            try child.modify(path.dropFirst(), body)
            members[first] = child
            self = .object(members)
        case .array(var items):
            guard let index = Int(first), items.indices.contains(index) else { throw PatchError("index \(first) is out of range") }
            try items[index].modify(path.dropFirst(), body)
            self = .array(items)
        default:
            throw PatchError("cannot descend into a scalar at \(first)")
        }
    }
}
