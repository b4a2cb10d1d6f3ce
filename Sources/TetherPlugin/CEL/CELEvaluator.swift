import Foundation
import TetherJSON

/// Evaluates a ``CELExpression`` over ``CELValue``s (JSON's kinds, durations and timestamps), as
/// kube-apiserver evaluates a validation rule: `self` is the value at the rule's node. Integers are 64-bit and overflow is an error;
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

    /// Evaluates `expression` with each name bound to a JSON value; the result as JSON (a
    /// duration or timestamp as its string).
    public mutating func evaluate(_ expression: CELExpression, bindings: [String: JSONValue]) throws(EvaluationError) -> JSONValue {
        try value(of: expression, in: bindings.mapValues { CELValue($0) }).json
    }

    /// Evaluates `expression` with each name bound to a CEL value (typed by a schema, say).
    public mutating func value(of expression: CELExpression, in bindings: [String: CELValue]) throws(EvaluationError) -> CELValue {
        steps += 1
        guard steps <= Self.stepBudget else { throw EvaluationError("the rule took more than \(Self.stepBudget) steps") }
        switch expression {
        case .literal(let literal):
            return CELValue(literal)
        case .identifier(let name):
            guard let value = bindings[name] else { throw EvaluationError("undeclared reference to '\(name)'") }
            return value
        case .select(let target, let field):
            let object = try value(of: target, in: bindings)
            // Selecting in an optional keeps it optional: none stays none.
            if case .optional(let wrapped) = object {
                guard let wrapped else { return .optional(nil) }
                return .optional(try Self.select(field, in: wrapped))
            }
            return try Self.select(field, in: object)
        case .optionalSelect(let target, let field):
            var object = try value(of: target, in: bindings)
            if case .optional(let wrapped) = object {
                guard let wrapped else { return .optional(nil) }
                object = wrapped
            }
            guard case .object(let members) = object else { throw EvaluationError("no such overload: \(object.kindName).?\(field)") }
            return .optional(members[field].flatMap { $0 == .null ? nil : $0 })
        case .presence(let target, let field):
            guard case .object(let members) = try value(of: target, in: bindings) else { return .bool(false) }
            return .bool(members[field] != nil && members[field] != .null)
        case .index(let target, let key):
            let container = try value(of: target, in: bindings)
            let keyValue = try value(of: key, in: bindings)
            if case .optional(let wrapped) = container {
                guard let wrapped else { return .optional(nil) }
                return .optional(try index(wrapped, by: keyValue))
            }
            return try index(container, by: keyValue)
        case .optionalIndex(let target, let key):
            var container = try value(of: target, in: bindings)
            if case .optional(let wrapped) = container {
                guard let wrapped else { return .optional(nil) }
                container = wrapped
            }
            let keyValue = try value(of: key, in: bindings)
            switch (container, keyValue) {
            case (.array(let elements), .integer(let position)):
                return .optional(position >= 0 && position < elements.count ? elements[Int(position)] : nil)
            case (.object(let members), .string(let name)):
                return .optional(members[name])
            default:
                throw EvaluationError("no such overload: \(container.kindName)[?\(keyValue.kindName)]")
            }
        case .unary(let symbol, let operand):
            let operandValue = try value(of: operand, in: bindings)
            switch (symbol, operandValue) {
            case ("!", .bool(let flag)): return .bool(!flag)
            case ("-", .integer(let number)):
                guard number != .min else { throw EvaluationError("integer overflow") }
                return .integer(-number)
            case ("-", .double(let number)): return .double(-number)
            case ("-", .duration(let nanoseconds)):
                guard nanoseconds != .min else { throw EvaluationError("duration out of range") }
                return .duration(-nanoseconds)
            default: throw EvaluationError("no such overload: \(symbol)\(operandValue.kindName)")
            }
        case .binary("&&", let left, let right):
            return try logical(left, right, bindings: bindings, decisive: false)
        case .binary("||", let left, let right):
            return try logical(left, right, bindings: bindings, decisive: true)
        case .binary(let symbol, let left, let right):
            return try binary(symbol, try value(of: left, in: bindings), try value(of: right, in: bindings))
        case .conditional(let condition, let then, let otherwise):
            guard case .bool(let flag) = try value(of: condition, in: bindings) else {
                throw EvaluationError("the condition of ?: is not a bool")
            }
            return try value(of: flag ? then : otherwise, in: bindings)
        case .list(let elements):
            var values: [CELValue] = []
            for element in elements { values.append(try value(of: element, in: bindings)) }
            return .array(values)
        case .map(let entries):
            var members: [String: CELValue] = [:]
            for entry in entries {
                guard case .string(let key) = try value(of: entry.key, in: bindings) else {
                    throw EvaluationError("map keys must be strings here")
                }
                members[key] = try value(of: entry.value, in: bindings)
            }
            return .object(members)
        case .call(let name, let target, let arguments):
            var values: [CELValue] = []
            if let target { values.append(try value(of: target, in: bindings)) }
            for argument in arguments { values.append(try value(of: argument, in: bindings)) }
            return try call(name, values)
        case .comprehension(let name, let target, let variables, let arguments):
            return try comprehension(name, over: try value(of: target, in: bindings), variables: variables, arguments, bindings: bindings)
        }
    }

    /// `&&` (`decisive` false) or `||` (true): a side equal to `decisive` decides, even when the
    /// other is an error.
    private mutating func logical(_ left: CELExpression, _ right: CELExpression, bindings: [String: CELValue], decisive: Bool)
        throws(EvaluationError)
        -> CELValue
    {
        var firstError: EvaluationError?
        var sides: [Bool] = []
        for side in [left, right] {
            do throws(EvaluationError) {
                guard case .bool(let flag) = try value(of: side, in: bindings) else {
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

    private static func select(_ field: String, in object: CELValue) throws(EvaluationError) -> CELValue {
        guard case .object(let members) = object else { throw EvaluationError("no such key: \(field) (not an object)") }
        guard let value = members[field] else { throw EvaluationError("no such key: \(field)") }
        return value
    }

    private func index(_ target: CELValue, by key: CELValue) throws(EvaluationError) -> CELValue {
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

    private static func number(_ value: CELValue) -> Double? {
        switch value {
        case .integer(let number): Double(number)
        case .double(let number): number
        default: nil
        }
    }

    /// CEL's equality: numbers compare by value whatever their type; lists and maps deeply.
    static func equal(_ left: CELValue, _ right: CELValue) -> Bool {
        switch (left, right) {
        case (.array(let a), .array(let b)): return a.count == b.count && zip(a, b).allSatisfy { equal($0, $1) }
        case (.object(let a), .object(let b)): return a.count == b.count && a.allSatisfy { key, value in b[key].map { equal(value, $0) } ?? false }
        default:
            if let a = number(left), let b = number(right) { return a == b }
            return left == right
        }
    }

    private func binary(_ symbol: String, _ left: CELValue, _ right: CELValue) throws(EvaluationError) -> CELValue {
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
            case (.duration(let a), .duration(let b)): order = a == b ? .orderedSame : (a < b ? .orderedAscending : .orderedDescending)
            case (.timestamp(let a), .timestamp(let b)): order = a == b ? .orderedSame : (a < b ? .orderedAscending : .orderedDescending)
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
            case (.duration(let a), .duration(let b)):
                let (sum, overflow) = a.addingReportingOverflow(b)
                guard !overflow else { throw EvaluationError("duration out of range") }
                return .duration(sum)
            case (.timestamp(let time), .duration(let offset)), (.duration(let offset), .timestamp(let time)):
                return try Self.shifted(time, by: offset)
            default: throw noOverload()
            }
        case "-", "*", "/", "%":
            switch (symbol, left, right) {
            case ("-", .duration(let a), .duration(let b)):
                let (difference, overflow) = a.subtractingReportingOverflow(b)
                guard !overflow else { throw EvaluationError("duration out of range") }
                return .duration(difference)
            case ("-", .timestamp(let time), .duration(let offset)):
                guard offset != .min else { throw EvaluationError("timestamp out of range") }
                return try Self.shifted(time, by: -offset)
            case ("-", .timestamp(let a), .timestamp(let b)):
                // Both within years 1 to 9999, so the seconds' difference fits; its nanoseconds may not.
                let (scaled, overflow) = (a.seconds - b.seconds).multipliedReportingOverflow(by: 1_000_000_000)
                let (nanoseconds, overflowAgain) = scaled.addingReportingOverflow(Int64(a.nanoseconds) - Int64(b.nanoseconds))
                guard !overflow, !overflowAgain else { throw EvaluationError("duration out of range") }
                return .duration(nanoseconds)
            default: break
            }
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

    /// `time` as the wall clock reads it in `zone`: an IANA name (`America/New_York`, `UTC`) or a
    /// fixed offset (`+05:30`, `-08:00`), as CEL's getters take them.
    static func wallClock(_ time: CELTimestamp, in zone: String) throws(EvaluationError) -> CELTimestamp {
        let offset: Int64
        let sign: Int64? = zone.hasPrefix("+") ? 1 : zone.hasPrefix("-") ? -1 : nil
        let parts = zone.dropFirst().split(separator: ":", omittingEmptySubsequences: false)
        if let sign, parts.count == 2, parts.allSatisfy({ $0.count == 2 }), let hours = Int64(parts[0]), let minutes = Int64(parts[1]),
            hours <= 23, minutes <= 59
        {
            offset = sign * (hours * 3600 + minutes * 60)
        } else if sign == nil, let timeZone = TimeZone(identifier: zone) {
            offset = Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(time.seconds))))
        } else {
            throw EvaluationError("invalid time zone: \"\(zone)\"")
        }
        guard let local = CELTimestamp(seconds: time.seconds + offset, nanoseconds: Int64(time.nanoseconds)) else {
            throw EvaluationError("timestamp out of range")
        }
        return local
    }

    /// `time` moved by `offset` nanoseconds, within CEL's years 1 to 9999.
    private static func shifted(_ time: CELTimestamp, by offset: Int64) throws(EvaluationError) -> CELValue {
        guard let moved = CELTimestamp(seconds: time.seconds + offset / 1_000_000_000, nanoseconds: Int64(time.nanoseconds) + offset % 1_000_000_000)
        else { throw EvaluationError("timestamp out of range") }
        return .timestamp(moved)
    }

    private func call(_ name: String, _ values: [CELValue]) throws(EvaluationError) -> CELValue {
        func noOverload() -> EvaluationError { EvaluationError("no such overload: \(name)(\(values.map(\.kindName).joined(separator: ", ")))") }
        let first: CELValue? = values.first
        let second: CELValue? = values.count > 1 ? .some(values[1]) : .none
        if case .timestamp(let time)? = first, case .string(let zone)? = second, name.hasPrefix("get") {
            // A getter in a time zone: the same getter on the wall-clock time there.
            return try call(name, [.timestamp(try Self.wallClock(time, in: zone))])
        }
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
        case ("indexOf", .string(let text)?, .string(let part)?) where values.count == 2:
            guard let range = text.range(of: part) else { return .integer(-1) }
            return .integer(Int64(text.unicodeScalars.distance(from: text.unicodeScalars.startIndex, to: range.lowerBound)))
        case ("split", .string(let text)?, .string(let separator)?) where values.count == 2:
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
            var total: CELValue = elements.first.map { if case .double = $0 { .double(0) } else { .integer(0) } } ?? .integer(0)
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
        case ("string", .duration(let nanoseconds)?, .none): return .string(CELDuration.format(nanoseconds))
        case ("string", .timestamp(let time)?, .none): return .string(time.description)
        case ("duration", .string(let text)?, .none):
            guard let nanoseconds = CELDuration.parse(text) else { throw EvaluationError("invalid duration: \"\(text)\"") }
            return .duration(nanoseconds)
        case ("duration", .duration?, .none), ("timestamp", .timestamp?, .none): return values[0]
        case ("timestamp", .string(let text)?, .none):
            guard let time = CELTimestamp(parsing: text) else { throw EvaluationError("invalid timestamp: \"\(text)\"") }
            return .timestamp(time)
        case ("int", .timestamp(let time)?, .none): return .integer(time.seconds)
        case ("getHours", .duration(let nanoseconds)?, .none): return .integer(nanoseconds / 3_600_000_000_000)
        case ("getMinutes", .duration(let nanoseconds)?, .none): return .integer(nanoseconds / 60_000_000_000)
        case ("getSeconds", .duration(let nanoseconds)?, .none): return .integer(nanoseconds / 1_000_000_000)
        case ("getMilliseconds", .duration(let nanoseconds)?, .none): return .integer(nanoseconds / 1_000_000)
        case ("getFullYear", .timestamp(let time)?, .none): return .integer(time.civil.year)
        case ("getMonth", .timestamp(let time)?, .none): return .integer(time.civil.month - 1)
        case ("getDate", .timestamp(let time)?, .none): return .integer(time.civil.day)
        case ("getDayOfMonth", .timestamp(let time)?, .none): return .integer(time.civil.day - 1)
        case ("getDayOfWeek", .timestamp(let time)?, .none): return .integer(time.civil.weekday)
        case ("getDayOfYear", .timestamp(let time)?, .none): return .integer(time.civil.dayOfYear)
        case ("getHours", .timestamp(let time)?, .none): return .integer(time.civil.hour)
        case ("getMinutes", .timestamp(let time)?, .none): return .integer(time.civil.minute)
        case ("getSeconds", .timestamp(let time)?, .none): return .integer(time.civil.second)
        case ("getMilliseconds", .timestamp(let time)?, .none): return .integer(Int64(time.nanoseconds) / 1_000_000)
        case ("quantity", .string(let text)?, .none):
            guard let nanounits = CELQuantity.parse(text) else { throw EvaluationError("invalid quantity: \"\(text)\"") }
            return .quantity(nanounits)
        case ("isQuantity", .string(let text)?, .none): return .bool(CELQuantity.parse(text) != nil)
        case ("isInteger", .quantity(let nanounits)?, .none):
            return .bool(nanounits % CELQuantity.unit == 0 && Int64(exactly: nanounits / CELQuantity.unit) != nil)
        case ("asInteger", .quantity(let nanounits)?, .none):
            guard nanounits % CELQuantity.unit == 0, let units = Int64(exactly: nanounits / CELQuantity.unit) else {
                throw EvaluationError("cannot convert value to integer")
            }
            return .integer(units)
        case ("asApproximateFloat", .quantity(let nanounits)?, .none): return .double(Double(nanounits) / 1e9)
        case ("sign", .quantity(let nanounits)?, .none): return .integer(nanounits == 0 ? 0 : (nanounits < 0 ? -1 : 1))
        case ("add", .quantity(let a)?, let other?), ("sub", .quantity(let a)?, let other?):
            let b: Int128
            switch other {
            case .quantity(let nanounits): b = nanounits
            case .integer(let units): b = Int128(units) * CELQuantity.unit
            default: throw noOverload()
            }
            let (result, overflow) = name == "add" ? a.addingReportingOverflow(b) : a.subtractingReportingOverflow(b)
            guard !overflow else { throw EvaluationError("quantity out of range") }
            return .quantity(result)
        case ("isGreaterThan", .quantity(let a)?, .quantity(let b)?): return .bool(a > b)
        case ("isLessThan", .quantity(let a)?, .quantity(let b)?): return .bool(a < b)
        case ("compareTo", .quantity(let a)?, .quantity(let b)?): return .integer(a == b ? 0 : (a < b ? -1 : 1))
        default:
            guard let result = try Self.library(name, values) else { throw noOverload() }
            return result
        }
    }
}
