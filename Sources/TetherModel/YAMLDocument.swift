import Foundation
import Yams

/// YAML (and therefore JSON, which YAML contains) decoded into ``JSONValue``: kubeconfigs,
/// manifests.
public enum YAMLDocument {
    public struct DecodingError: Error, CustomStringConvertible {
        public let description: String
    }

    /// The first document in `text`; an empty document is `null`.
    public static func decode(_ text: String) throws(DecodingError) -> JSONValue {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch {
            throw DecodingError(description: "not valid YAML: \(error)")
        }
        guard let node else { return .null }
        return try value(of: node)
    }

    private static func value(of node: Node) throws(DecodingError) -> JSONValue {
        switch node {
        case .scalar(let scalar):
            return scalarValue(scalar)
        case .sequence(let sequence):
            var items: [JSONValue] = []
            for item in sequence { items.append(try value(of: item)) }
            return .array(items)
        case .mapping(let mapping):
            var members: [String: JSONValue] = [:]
            for (key, item) in mapping {
                guard let name = key.scalar?.string else {
                    throw DecodingError(description: "a mapping key is not a scalar at line \(key.mark?.line ?? 0)")
                }
                members[name] = try value(of: item)
            }
            return .object(members)
        case .alias:
            throw DecodingError(description: "YAML aliases are not accepted")
        }
    }

    /// Plain scalars resolve as YAML 1.2's core schema does; quoted ones stay strings.
    private static func scalarValue(_ scalar: Node.Scalar) -> JSONValue {
        let text = scalar.string
        guard scalar.style == .plain else { return .string(text) }
        switch text {
        case "null", "Null", "NULL", "~", "": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        default: break
        }
        if let integer = Int64(text) { return .integer(integer) }
        if text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }), let double = Double(text), double.isFinite {
            return .double(double)
        }
        return .string(text)
    }
}
