import Foundation
import TetherJSON
import Yams

/// YAML (and therefore JSON, which YAML contains) decoded into ``JSONValue``: kubeconfigs,
/// manifests.
public enum YAMLDocument {
    public struct DecodingError: Error, CustomStringConvertible {
        public let description: String
    }

    /// The most values a document may hold once read. The YAML parser resolves an alias to the
    /// anchored node it names, so a document of a kilobyte can name the same subtree a billion
    /// times over ("billion laughs"); counting values as they are built stops it after this many,
    /// in bounded time and memory, long before any real kubeconfig or manifest gets near.
    public static let defaultMaximumValues = 200_000

    /// The first document in `text`; an empty document is `null`. Refused when it expands past
    /// `maximumValues` values or nests deeper than `maximumDepth`.
    public static func decode(
        _ text: String, maximumValues: Int = defaultMaximumValues, maximumDepth: Int = 100
    ) throws(DecodingError) -> JSONValue {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch {
            throw DecodingError(description: "not valid YAML: \(error)")
        }
        guard let node else { return .null }
        var budget = Budget(remaining: maximumValues, maximumValues: maximumValues, maximumDepth: maximumDepth)
        return try value(of: node, depth: 1, budget: &budget)
    }

    /// Every document in `text` (`---` between them), each under the same limits; empty ones left out.
    public static func decodeAll(
        _ text: String, maximumValues: Int = defaultMaximumValues, maximumDepth: Int = 100
    ) throws(DecodingError) -> [JSONValue] {
        var documents: [JSONValue] = []
        var budget = Budget(remaining: maximumValues, maximumValues: maximumValues, maximumDepth: maximumDepth)
        do {
            for node in try Yams.compose_all(yaml: text) {
                documents.append(try value(of: node, depth: 1, budget: &budget))
            }
        } catch let error as DecodingError {
            throw error
        } catch {
            throw DecodingError(description: "not valid YAML: \(error)")
        }
        return documents.filter { $0 != .null }
    }

    private struct Budget {
        var remaining: Int
        let maximumValues: Int
        let maximumDepth: Int

        mutating func spend(at depth: Int) throws(DecodingError) {
            remaining -= 1
            guard remaining >= 0 else {
                throw DecodingError(
                    description: "the document expands to more than \(maximumValues) values; YAML anchors and aliases "
                        + "that repeat a subtree are not accepted"
                )
            }
            guard depth <= maximumDepth else { throw DecodingError(description: "the document nests deeper than \(maximumDepth) levels") }
        }
    }

    private static func value(of node: Node, depth: Int, budget: inout Budget) throws(DecodingError) -> JSONValue {
        try budget.spend(at: depth)
        switch node {
        case .scalar(let scalar):
            return scalarValue(scalar)
        case .sequence(let sequence):
            var items: [JSONValue] = []
            for item in sequence { items.append(try value(of: item, depth: depth + 1, budget: &budget)) }
            return .array(items)
        case .mapping(let mapping):
            var members: [String: JSONValue] = [:]
            for (key, item) in mapping {
                guard let name = key.scalar?.string else {
                    throw DecodingError(description: "a mapping key is not a scalar at line \(key.mark?.line ?? 0)")
                }
                members[name] = try value(of: item, depth: depth + 1, budget: &budget)
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
