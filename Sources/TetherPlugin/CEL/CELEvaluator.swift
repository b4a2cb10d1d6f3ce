import Foundation
import TetherJSON

/// Evaluates a ``CELExpression`` over JSON values, as kube-apiserver evaluates a validation
/// rule: `self` is the value at the rule's node. Integers are 64-bit and overflow is an error;
/// selecting an absent field is an error (`no such key`), which `has()` avoids; `&&` and `||`
/// let a decisive side win over an error on the other, as CEL specifies.
///
/// Every step counts against a budget, so a rule over a large list cannot hold the API.
public struct CELEvaluator {
    public struct EvaluationError: Error, CustomStringConvertible, Sendable {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// Steps one evaluation may take (kube-apiserver bounds a rule's cost the same way).
    public static let stepBudget = 1_000_000
    private var steps = 0

    public init() {}

    public mutating func evaluate(_ expression: CELExpression, bindings: [String: JSONValue]) throws(EvaluationError) -> JSONValue {
        steps += 1
        guard steps <= Self.stepBudget else { throw EvaluationError("the rule took more than \(Self.stepBudget) steps") }
        switch expression {
        case .literal(let value):
            return value
        case .identifier(let name):
            guard let value = bindings[name] else { throw EvaluationError("undeclared reference to '\(name)'") }
            return value
        case .select(let target, let field):
            guard case .object(let members) = try evaluate(target, bindings: bindings) else {
                throw EvaluationError("no such key: \(field) (not an object)")
            }
            guard let value = members[field] else { throw EvaluationError("no such key: \(field)") }
            return value
        case .presence(let target, let field):
            guard case .object(let members) = try evaluate(target, bindings: bindings) else { return .bool(false) }
            return .bool(members[field] != nil && members[field] != .null)
        case .index(let target, let key):
            return try index(try evaluate(target, bindings: bindings), by: try evaluate(key, bindings: bindings))
        case .unary(let symbol, let operand):
            let value = try evaluate(operand, bindings: bindings)
            switch (symbol, value) {
            case ("!", .bool(let flag)): return .bool(!flag)
            case ("-", .integer(let number)):
                guard number != .min else { throw EvaluationError("integer overflow") }
                return .integer(-number)
            case ("-", .double(let number)): return .double(-number)
            default: throw EvaluationError("no such overload: \(symbol)\(value.kindName)")
            }
        case .binary("&&", let left, let right):
            return try logical(left, right, bindings: bindings, decisive: false)
        case .binary("||", let left, let right):
            return try logical(left, right, bindings: bindings, decisive: true)
        case .binary(let symbol, let left, let right):
            return try binary(symbol, try evaluate(left, bindings: bindings), try evaluate(right, bindings: bindings))
        case .conditional(let condition, let then, let otherwise):
            guard case .bool(let flag) = try evaluate(condition, bindings: bindings) else {
                throw EvaluationError("the condition of ?: is not a bool")
            }
            return try evaluate(flag ? then : otherwise, bindings: bindings)
        case .list(let elements):
            var values: [JSONValue] = []
            for element in elements { values.append(try evaluate(element, bindings: bindings)) }
            return .array(values)
        case .map(let entries):
            var members: [String: JSONValue] = [:]
            for entry in entries {
                guard case .string(let key) = try evaluate(entry.key, bindings: bindings) else {
                    throw EvaluationError("map keys must be strings here")
                }
                members[key] = try evaluate(entry.value, bindings: bindings)
            }
            return .object(members)
        case .call(let name, let target, let arguments):
            var values: [JSONValue] = []
            if let target { values.append(try evaluate(target, bindings: bindings)) }
            for argument in arguments { values.append(try evaluate(argument, bindings: bindings)) }
            return try call(name, values)
        case .comprehension(let name, let target, let variable, let arguments):
            return try comprehension(name, over: try evaluate(target, bindings: bindings), variable: variable, arguments, bindings: bindings)
        }
    }

    /// `&&` (`decisive` false) or `||` (true): a side equal to `decisive` decides, even when the
    /// other is an error.
    private mutating func logical(_ left: CELExpression, _ right: CELExpression, bindings: [String: JSONValue], decisive: Bool)
        throws(EvaluationError)
        -> JSONValue
    {
        var firstError: EvaluationError?
        var sides: [Bool] = []
        for side in [left, right] {
            do throws(EvaluationError) {
                guard case .bool(let flag) = try evaluate(side, bindings: bindings) else {
                    throw EvaluationError("no such overload: \(decisive ? "||" : "&&") on a value that is not a bool")
                }
                if flag == decisive { return .bool(decisive) }
                sides.append(flag)
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        if let firstError { throw firstError }
        return .bool(!decisive)
    }

    private func index(_ target: JSONValue, by key: JSONValue) throws(EvaluationError) -> JSONValue {
        switch (target, key) {
        case (.array(let elements), .integer(let position)):
            guard position >= 0, position < elements.count else { throw EvaluationError("index out of range: \(position)") }
            return elements[Int(position)]
        case (.object(let members), .string(let name)):
            guard let value = members[name] else { throw EvaluationError("no such key: \(name)") }
            return value
        default:
            throw EvaluationError("no such overload: \(target.kindName)[\(key.kindName)]")
        }
    }

    private static func number(_ value: JSONValue) -> Double? {
        switch value {
        case .integer(let number): Double(number)
        case .double(let number): number
        default: nil
        }
    }

    /// CEL's equality: numbers compare by value whatever their type; lists and maps deeply.
    static func equal(_ left: JSONValue, _ right: JSONValue) -> Bool {
        switch (left, right) {
        case (.array(let a), .array(let b)): return a.count == b.count && zip(a, b).allSatisfy { equal($0, $1) }
        case (.object(let a), .object(let b)): return a.count == b.count && a.allSatisfy { key, value in b[key].map { equal(value, $0) } ?? false }
        default:
            if let a = number(left), let b = number(right) { return a == b }
            return left == right
        }
    }

    private func binary(_ symbol: String, _ left: JSONValue, _ right: JSONValue) throws(EvaluationError) -> JSONValue {
        func noOverload() -> EvaluationError { EvaluationError("no such overload: \(left.kindName) \(symbol) \(right.kindName)") }
        switch symbol {
        case "==": return .bool(Self.equal(left, right))
        case "!=": return .bool(!Self.equal(left, right))
        case "in":
            switch right {
            case .array(let elements): return .bool(elements.contains { Self.equal($0, left) })
            case .object(let members):
                guard case .string(let key) = left else { throw noOverload() }
                return .bool(members[key] != nil)
            default: throw noOverload()
            }
        case "<", "<=", ">", ">=":
            let order: ComparisonResult
            switch (left, right) {
            case (.string(let a), .string(let b)):
                order =
                    a == b ? .orderedSame : (a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars) ? .orderedAscending : .orderedDescending)
            case (.bool(let a), .bool(let b)): order = a == b ? .orderedSame : (!a ? .orderedAscending : .orderedDescending)
            default:
                guard let a = Self.number(left), let b = Self.number(right) else { throw noOverload() }
                order = a == b ? .orderedSame : (a < b ? .orderedAscending : .orderedDescending)
            }
            switch symbol {
            case "<": return .bool(order == .orderedAscending)
            case "<=": return .bool(order != .orderedDescending)
            case ">": return .bool(order == .orderedDescending)
            default: return .bool(order != .orderedAscending)
            }
        case "+":
            switch (left, right) {
            case (.string(let a), .string(let b)): return .string(a + b)
            case (.array(let a), .array(let b)): return .array(a + b)
            case (.integer(let a), .integer(let b)):
                let (sum, overflow) = a.addingReportingOverflow(b)
                guard !overflow else { throw EvaluationError("integer overflow") }
                return .integer(sum)
            case (.double(let a), .double(let b)): return .double(a + b)
            default: throw noOverload()
            }
        case "-", "*", "/", "%":
            switch (left, right) {
            case (.integer(let a), .integer(let b)):
                let result: (Int64, Bool)
                switch symbol {
                case "-": result = a.subtractingReportingOverflow(b)
                case "*": result = a.multipliedReportingOverflow(by: b)
                default:
                    guard b != 0 else { throw EvaluationError(symbol == "/" ? "division by zero" : "modulus by zero") }
                    result = symbol == "/" ? a.dividedReportingOverflow(by: b) : a.remainderReportingOverflow(dividingBy: b)
                }
                guard !result.1 else { throw EvaluationError("integer overflow") }
                return .integer(result.0)
            case (.double(let a), .double(let b)):
                switch symbol {
                case "-": return .double(a - b)
                case "*": return .double(a * b)
                case "/": return .double(a / b)
                default: throw noOverload()
                }
            default: throw noOverload()
            }
        default:
            throw noOverload()
        }
    }

    private func call(_ name: String, _ values: [JSONValue]) throws(EvaluationError) -> JSONValue {
        func noOverload() -> EvaluationError { EvaluationError("no such overload: \(name)(\(values.map(\.kindName).joined(separator: ", ")))") }
        let first: JSONValue? = values.first
        let second: JSONValue? = values.count > 1 ? .some(values[1]) : .none
        switch (name, first, second) {
        case ("size", .string(let text)?, .none): return .integer(Int64(text.unicodeScalars.count))
        case ("size", .array(let elements)?, .none): return .integer(Int64(elements.count))
        case ("size", .object(let members)?, .none): return .integer(Int64(members.count))
        case ("startsWith", .string(let text)?, .string(let prefix)?): return .bool(text.hasPrefix(prefix))
        case ("endsWith", .string(let text)?, .string(let suffix)?): return .bool(text.hasSuffix(suffix))
        case ("contains", .string(let text)?, .string(let part)?): return .bool(part.isEmpty || text.contains(part))
        case ("matches", .string(let text)?, .string(let pattern)?):
            guard let expression = try? NSRegularExpression(pattern: pattern) else { throw EvaluationError("invalid regular expression: \(pattern)") }
            return .bool(expression.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil)
        case ("lowerAscii", .string(let text)?, .none):
            return .string(String(text.unicodeScalars.map { $0.isASCII ? Character($0).lowercased() : String($0) }.joined()))
        case ("upperAscii", .string(let text)?, .none):
            return .string(String(text.unicodeScalars.map { $0.isASCII ? Character($0).uppercased() : String($0) }.joined()))
        case ("trim", .string(let text)?, .none): return .string(text.trimmingCharacters(in: .whitespacesAndNewlines))
        case ("indexOf", .string(let text)?, .string(let part)?):
            guard let range = text.range(of: part) else { return .integer(-1) }
            return .integer(Int64(text.unicodeScalars.distance(from: text.unicodeScalars.startIndex, to: range.lowerBound)))
        case ("split", .string(let text)?, .string(let separator)?):
            guard !separator.isEmpty else { return .array(text.map { .string(String($0)) }) }
            return .array(text.components(separatedBy: separator).map { .string($0) })
        case ("join", .array(let elements)?, _):
            var separator = ""
            if let given = second {
                guard case .string(let text) = given else { throw noOverload() }
                separator = text
            }
            var parts: [String] = []
            for element in elements {
                guard case .string(let text) = element else { throw noOverload() }
                parts.append(text)
            }
            return .string(parts.joined(separator: separator))
        case ("isSorted", .array(let elements)?, .none):
            for (earlier, later) in zip(elements, elements.dropFirst()) {
                guard case .bool(let after) = try binary(">", earlier, later) else { throw noOverload() }
                if after { return .bool(false) }
            }
            return .bool(true)
        case ("sum", .array(let elements)?, .none):
            var total: JSONValue = elements.first.map { if case .double = $0 { .double(0) } else { .integer(0) } } ?? .integer(0)
            for element in elements { total = try binary("+", total, element) }
            return total
        case ("min", .array(let elements)?, .none), ("max", .array(let elements)?, .none):
            guard var best = elements.first else { throw EvaluationError("\(name) of an empty list") }
            for element in elements.dropFirst() {
                guard case .bool(let better) = try binary(name == "min" ? "<" : ">", element, best) else { throw noOverload() }
                if better { best = element }
            }
            return best
        case ("int", .integer?, .none): return values[0]
        case ("int", .double(let number)?, .none):
            guard number.isFinite, number >= -9.2e18, number <= 9.2e18 else { throw EvaluationError("integer overflow") }
            return .integer(Int64(number))
        case ("int", .string(let text)?, .none):
            guard let number = Int64(text) else { throw EvaluationError("cannot convert \"\(text)\" to an int") }
            return .integer(number)
        case ("double", .integer(let number)?, .none): return .double(Double(number))
        case ("double", .double?, .none): return values[0]
        case ("double", .string(let text)?, .none):
            guard let number = Double(text) else { throw EvaluationError("cannot convert \"\(text)\" to a double") }
            return .double(number)
        case ("string", .string?, .none): return values[0]
        case ("string", .integer(let number)?, .none): return .string(String(number))
        case ("string", .double(let number)?, .none): return .string(String(number))
        case ("string", .bool(let flag)?, .none): return .string(flag ? "true" : "false")
        default: throw noOverload()
        }
    }

    private mutating func comprehension(
        _ name: String, over target: JSONValue, variable: String, _ arguments: [CELExpression], bindings: [String: JSONValue]
    ) throws(EvaluationError) -> JSONValue {
        let elements: [JSONValue]
        switch target {
        case .array(let items): elements = items
        case .object(let members): elements = members.keys.sorted().map { .string($0) }  // a map's macros range over its keys
        default: throw EvaluationError("no such overload: \(target.kindName).\(name)()")
        }
        var scope = bindings
        func test(_ element: JSONValue, _ expression: CELExpression) throws(EvaluationError) -> Bool {
            scope[variable] = element
            guard case .bool(let flag) = try evaluate(expression, bindings: scope) else {
                throw EvaluationError("the predicate of \(name) is not a bool")
            }
            return flag
        }
        switch name {
        case "all":
            // As `&&`: a false element decides even when another is an error.
            var firstError: EvaluationError?
            for element in elements {
                do throws(EvaluationError) {
                    if try !test(element, arguments[0]) { return .bool(false) }
                } catch {
                    if firstError == nil { firstError = error }
                }
            }
            if let firstError { throw firstError }
            return .bool(true)
        case "exists":
            var firstError: EvaluationError?
            for element in elements {
                do throws(EvaluationError) {
                    if try test(element, arguments[0]) { return .bool(true) }
                } catch {
                    if firstError == nil { firstError = error }
                }
            }
            if let firstError { throw firstError }
            return .bool(false)
        case "exists_one":
            var count = 0
            for element in elements where try test(element, arguments[0]) { count += 1 }
            return .bool(count == 1)
        case "filter":
            var kept: [JSONValue] = []
            for element in elements where try test(element, arguments[0]) { kept.append(element) }
            return .array(kept)
        default:  // map, with an optional filter first
            var mapped: [JSONValue] = []
            for element in elements {
                if arguments.count == 2, try !test(element, arguments[0]) { continue }
                scope[variable] = element
                mapped.append(try evaluate(arguments[arguments.count - 1], bindings: scope))
            }
            return .array(mapped)
        }
    }
}
