import Foundation

/// cel-go's `string.format(list)` (the strings extension), as Kubernetes offers it to
/// validation rules: `%s`, `%d`, `%f` and `%e` (with a precision, `%.2f`), `%b`, `%o`, `%x`,
/// `%X` and `%%`, each clause taking the next argument, with cel-go's errors for a clause that
/// does not suit its argument.
enum CELFormat {
    static func format(_ template: String, _ arguments: [CELValue]) throws(CELEvaluator.EvaluationError) -> String {
        var output = ""
        var next = 0
        var characters = template[...]
        while let character = characters.popFirst() {
            guard character == "%" else {
                output.append(character)
                continue
            }
            if characters.first == "%" {
                characters.removeFirst()
                output.append("%")
                continue
            }
            var precision: Int?
            if characters.first == "." {
                characters.removeFirst()
                let digits = characters.prefix { $0.isASCII && $0.isNumber }
                guard !digits.isEmpty, let value = Int(digits), value <= 100 else {
                    throw CELEvaluator.EvaluationError("could not parse formatting clause: invalid precision")
                }
                characters.removeFirst(digits.count)
                precision = value
            }
            guard let verb = characters.popFirst() else {
                throw CELEvaluator.EvaluationError("could not parse formatting clause: unexpected end of string")
            }
            guard next < arguments.count else { throw CELEvaluator.EvaluationError("index \(next) out of range") }
            let argument = arguments[next]
            next += 1
            output += try clause(verb, precision: precision, argument)
        }
        return output
    }

    private static func clause(_ verb: Character, precision: Int?, _ argument: CELValue) throws(CELEvaluator.EvaluationError) -> String {
        switch verb {
        case "s": return try text(of: argument, nested: false)
        case "d":
            guard case .integer(let number) = argument else {
                throw CELEvaluator.EvaluationError(
                    "error during formatting: decimal clause can only be used on integers, was given \(argument.kindName)")
            }
            return String(number)
        case "f", "e":
            let number: Double
            switch argument {
            case .double(let value): number = value
            case .integer(let value): number = Double(value)
            default:
                let name = verb == "f" ? "fixed-point" : "scientific"
                throw CELEvaluator.EvaluationError(
                    "error during formatting: \(name) clause can only be used on doubles, was given \(argument.kindName)")
            }
            if number.isNaN { return "NaN" }
            if number.isInfinite { return number < 0 ? "-Infinity" : "Infinity" }
            return String(format: "%.\(precision ?? 6)\(verb)", number)
        case "b", "o", "x", "X":
            let radix = verb == "b" ? 2 : verb == "o" ? 8 : 16
            switch argument {
            case .integer(let number):
                let digits = String(number.magnitude, radix: radix, uppercase: verb == "X")
                return number < 0 ? "-" + digits : digits
            case .bool(let flag) where verb == "b": return flag ? "1" : "0"
            case .string(let text) where radix == 16:
                return text.utf8.map { String(format: verb == "X" ? "%02X" : "%02x", $0) }.joined()
            default:
                let name = verb == "b" ? "binary" : verb == "o" ? "octal" : "hex"
                throw CELEvaluator.EvaluationError(
                    "error during formatting: only integers\(radix == 16 ? ", byte buffers, and strings" : "") can be formatted as \(name), was given \(argument.kindName)"
                )
            }
        default:
            throw CELEvaluator.EvaluationError("could not parse formatting clause: unrecognized formatting clause \"\(verb)\"")
        }
    }

    /// `%s`: a value as text; inside a list or map, strings are quoted.
    private static func text(of value: CELValue, nested: Bool) throws(CELEvaluator.EvaluationError) -> String {
        switch value {
        case .null: return "null"
        case .bool(let flag): return flag ? "true" : "false"
        case .integer(let number): return String(number)
        case .double(let number):
            if number.isNaN { return "NaN" }
            if number.isInfinite { return number < 0 ? "-Infinity" : "Infinity" }
            return number == number.rounded() && abs(number) < 1e21 ? String(format: "%.0f", number) : String(number)
        case .string(let text):
            return nested ? "\"\(text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\""))\"" : text
        case .array(let items):
            var parts: [String] = []
            for item in items { parts.append(try text(of: item, nested: true)) }
            return "[" + parts.joined(separator: ", ") + "]"
        case .object(let members):
            var parts: [String] = []
            for key in members.keys.sorted() { parts.append("\"\(key)\": " + (try text(of: members[key] ?? .null, nested: true))) }
            return "{" + parts.joined(separator: ", ") + "}"
        case .duration(let nanoseconds): return CELDuration.format(nanoseconds)
        case .timestamp(let time): return time.description
        default:
            throw CELEvaluator.EvaluationError(
                "error during formatting: string clause can only be used on strings, bools, bytes, ints, doubles, maps, lists, types, durations, and timestamps, was given \(value.kindName)"
            )
        }
    }
}
