import Foundation
import TetherJSON

/// A Kubernetes label selector in its string form, as `kubectl -l` and `?labelSelector=` send it.
///
/// Equality-based (`app=web`, `app==web`, `tier!=cache`) and set-based (`env in (prod,staging)`,
/// `env notin (dev)`, `canary`, `!canary`) requirements, joined by commas; all must hold.
public struct LabelSelector: Sendable, Hashable, CustomStringConvertible {
    public enum Requirement: Sendable, Hashable {
        case equals(String, String)
        case notEquals(String, String)
        case `in`(String, Set<String>)
        case notIn(String, Set<String>)
        case exists(String)
        case doesNotExist(String)
    }

    public let requirements: [Requirement]
    public let description: String

    /// The selector that matches everything.
    public static let everything = LabelSelector(requirements: [], description: "")

    private init(requirements: [Requirement], description: String) {
        self.requirements = requirements
        self.description = description
    }

    public init(parsing text: String) throws(SelectorError) {
        var requirements: [Requirement] = []
        for clause in try Self.splitClauses(text) {
            requirements.append(try Self.requirement(clause, in: text))
        }
        self.init(requirements: requirements, description: text)
    }

    /// A `metav1.LabelSelector` object (`matchLabels`, `matchExpressions`), as a PodDisruptionBudget
    /// or a workload writes it; an empty one matches everything. Nil when an operator is unknown.
    public init?(object: JSONValue) {
        var terms = (object["matchLabels"]?.objectMembers ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.stringValue ?? "")" }
        for expression in object["matchExpressions"]?.arrayElements ?? [] {
            let values = (expression["values"]?.arrayElements ?? []).compactMap(\.stringValue)
            guard let key = expression["key"]?.stringValue,
                let term = Self.term(key: key, operator: expression["operator"]?.stringValue ?? "", values: values)
            else { return nil }
            terms.append(term)
        }
        guard let parsed = try? LabelSelector(parsing: terms.joined(separator: ",")) else { return nil }
        self = parsed
    }

    /// One `matchExpressions` requirement in the selector syntax ``init(parsing:)`` reads.
    public static func term(key: String, operator: String, values: [String]) -> String? {
        let list = values.joined(separator: ",")
        switch `operator`.lowercased() {
        case "in", "=", "==": return "\(key) in (\(list))"
        case "notin", "!=": return "\(key) notin (\(list))"
        case "exists": return key
        case "doesnotexist": return "!\(key)"
        default: return nil
        }
    }

    public func matches(_ labels: [String: String]) -> Bool {
        requirements.allSatisfy { requirement in
            switch requirement {
            case .equals(let key, let value): labels[key] == value
            case .notEquals(let key, let value): labels[key] != value
            case .in(let key, let values): labels[key].map(values.contains) ?? false
            case .notIn(let key, let values): !(labels[key].map(values.contains) ?? false)
            case .exists(let key): labels[key] != nil
            case .doesNotExist(let key): labels[key] == nil
            }
        }
    }

    /// Splits on commas outside parentheses.
    private static func splitClauses(_ text: String) throws(SelectorError) -> [String] {
        var clauses: [String] = []
        var current = ""
        var depth = 0
        for character in text {
            switch character {
            case "(":
                depth += 1
            case ")":
                depth -= 1
                guard depth >= 0 else { throw SelectorError(selector: text, problem: "unbalanced ')'") }
            case "," where depth == 0:
                clauses.append(current)
                current = ""
                continue
            default:
                break
            }
            current.append(character)
        }
        guard depth == 0 else { throw SelectorError(selector: text, problem: "unbalanced '('") }
        clauses.append(current)
        let trimmed = clauses.map { $0.trimmingSpaces }
        if trimmed == [""] { return [] }
        guard !trimmed.contains("") else { throw SelectorError(selector: text, problem: "empty requirement") }
        return trimmed
    }

    private static func requirement(_ clause: String, in text: String) throws(SelectorError) -> Requirement {
        func key(_ raw: Substring) throws(SelectorError) -> String {
            let key = String(raw).trimmingSpaces
            guard LabelSyntax.isValidKey(key) else { throw SelectorError(selector: text, problem: "'\(key)' is not a valid label key") }
            return key
        }
        func value(_ raw: Substring) throws(SelectorError) -> String {
            let value = String(raw).trimmingSpaces
            guard LabelSyntax.isValidValue(value) else {
                throw SelectorError(selector: text, problem: "'\(value)' is not a valid label value")
            }
            return value
        }
        if let range = clause.range(of: "!=") {
            return .notEquals(try key(clause[..<range.lowerBound]), try value(clause[range.upperBound...]))
        }
        if let range = clause.range(of: "==") ?? clause.range(of: "=") {
            return .equals(try key(clause[..<range.lowerBound]), try value(clause[range.upperBound...]))
        }
        for (word, isIn) in [(" notin ", false), (" in ", true)] {
            guard let range = clause.range(of: word) else { continue }
            let list = clause[range.upperBound...].trimmingSpaces
            guard list.hasPrefix("("), list.hasSuffix(")") else {
                throw SelectorError(selector: text, problem: "'\(clause)' needs a parenthesised value list")
            }
            var values = Set<String>()
            for item in list.dropFirst().dropLast().split(separator: ",", omittingEmptySubsequences: false) {
                values.insert(try value(item))
            }
            let name = try key(clause[..<range.lowerBound])
            return isIn ? .in(name, values) : .notIn(name, values)
        }
        if clause.hasPrefix("!") { return .doesNotExist(try key(clause.dropFirst())) }
        return .exists(try key(clause[...]))
    }
}

/// A field selector: `field=value`, `field==value` or `field!=value` clauses over dotted paths.
///
/// `metadata.name` and `metadata.namespace` work on every kind; a kind may allow more
/// (Events allow `involvedObject.name`, ...). A missing field reads as the empty string, as in
/// Kubernetes, so `spec.nodeName=` selects objects without one.
public struct FieldSelector: Sendable, Hashable {
    public struct Requirement: Sendable, Hashable {
        /// The dotted path, e.g. `metadata.name`.
        public var field: String
        public var value: String
        public var negated: Bool
    }

    /// Fields every kind can be selected by.
    public static let universalFields: Set<String> = ["metadata.name", "metadata.namespace"]

    public let requirements: [Requirement]

    /// Parses `text`, accepting the universal fields and `allowed`.
    public init(parsing text: String, allowing allowed: Set<String> = []) throws(SelectorError) {
        var requirements: [Requirement] = []
        let supported = Self.universalFields.union(allowed)
        for clause in text.split(separator: ",").map({ String($0).trimmingSpaces }) where !clause.isEmpty {
            let negated = clause.contains("!=")
            let separator = negated ? "!=" : (clause.contains("==") ? "==" : "=")
            guard let range = clause.range(of: separator) else {
                throw SelectorError(selector: text, problem: "'\(clause)' is not field=value")
            }
            let name = clause[..<range.lowerBound].trimmingSpaces
            guard supported.contains(name) else {
                throw SelectorError(
                    selector: text,
                    problem: "field '\(name)' is not supported for this kind; use one of \(supported.sorted().joined(separator: ", "))"
                )
            }
            requirements.append(Requirement(field: name, value: clause[range.upperBound...].trimmingSpaces, negated: negated))
        }
        self.requirements = requirements
    }

    public func matches(_ object: JSONValue) -> Bool {
        requirements.allSatisfy { requirement in
            let actual = Self.text(of: object.value(at: requirement.field.split(separator: ".").map(String.init)))
            return (actual == requirement.value) != requirement.negated
        }
    }

    private static func text(of value: JSONValue?) -> String {
        switch value {
        case .string(let text): text
        case .integer(let number): String(number)
        case .bool(let flag): String(flag)
        default: ""
        }
    }
}

/// A selector that cannot be parsed; the API answers it with 400.
public struct SelectorError: Error, Sendable, Hashable, CustomStringConvertible {
    public var selector: String
    public var problem: String
    public var description: String { "invalid selector '\(selector)': \(problem)" }
}

/// The syntax of label keys and values (Kubernetes' qualified names).
public enum LabelSyntax {
    /// `[prefix/]name`: a DNS-subdomain prefix and a name of at most 63 characters.
    public static func isValidKey(_ key: String) -> Bool {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let name = parts.last else { return false }
        if parts.count == 2 {
            let prefix = parts[0]
            guard !prefix.isEmpty, prefix.count <= 253,
                prefix.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-" || $0 == ".") })
            else { return false }
        }
        return !name.isEmpty && isValidValue(String(name))
    }

    /// Empty, or at most 63 characters of alphanumerics, `-`, `_` and `.`, starting and ending alphanumeric.
    public static func isValidValue(_ value: String) -> Bool {
        if value.isEmpty { return true }
        guard value.count <= 63, let first = value.first, let last = value.last,
            first.isASCII && (first.isLetter || first.isNumber), last.isASCII && (last.isLetter || last.isNumber)
        else { return false }
        return value.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
    }
}

extension StringProtocol {
    fileprivate var trimmingSpaces: String {
        var slice = Substring(self)
        while slice.first == " " { slice = slice.dropFirst() }
        while slice.last == " " { slice = slice.dropLast() }
        return String(slice)
    }
}
