import Foundation
import TetherJSON
import TetherModel

/// A path into an object as `additionalPrinterColumns` write them: `.spec.replicas`,
/// `.status.conditions[0].status`, `.status.conditions[?(@.type=="Ready")].status`, `.items[*].name`.
public struct ObjectPath: Sendable {
    enum Step: Sendable {
        case field(String)
        case index(Int)
        case every
        case filter(field: String, equals: String)
    }

    let steps: [Step]
    public let text: String

    public init(parsing text: String) throws(ValidationProblem) {
        self.text = text
        var trimmed = Substring(text.trimmingCharacters(in: .whitespaces))
        if trimmed.hasPrefix("{") && trimmed.hasSuffix("}") { trimmed = trimmed.dropFirst().dropLast() }
        guard trimmed.first == "." else {
            throw ValidationProblem(field: "jsonPath", "\"\(text)\": must start with a dot, such as .spec.replicas")
        }
        var steps: [Step] = []
        var rest = trimmed
        while let first = rest.first {
            if first == "." {
                rest = rest.dropFirst()
                let name = rest.prefix { $0 != "." && $0 != "[" }
                guard !name.isEmpty else { throw ValidationProblem(field: "jsonPath", "\"\(text)\": empty field name") }
                steps.append(.field(String(name)))
                rest = rest.dropFirst(name.count)
            } else if first == "[" {
                guard let close = rest.firstIndex(of: "]") else { throw ValidationProblem(field: "jsonPath", "\"\(text)\": unclosed [") }
                let inside = rest[rest.index(after: rest.startIndex)..<close].trimmingCharacters(in: .whitespaces)
                rest = rest[rest.index(after: close)...]
                if inside == "*" {
                    steps.append(.every)
                } else if let index = Int(inside) {
                    steps.append(.index(index))
                } else if inside.hasPrefix("?(@."), inside.hasSuffix(")"), let equals = inside.range(of: "==") {
                    let field = inside[inside.index(inside.startIndex, offsetBy: 4)..<equals.lowerBound].trimmingCharacters(in: .whitespaces)
                    var value = inside[equals.upperBound..<inside.index(before: inside.endIndex)].trimmingCharacters(in: .whitespaces)
                    if value.count >= 2, let quote = value.first, quote == "\"" || quote == "'", value.last == quote {
                        value = String(value.dropFirst().dropLast())
                    }
                    steps.append(.filter(field: field, equals: value))
                } else {
                    throw ValidationProblem(field: "jsonPath", "\"\(text)\": [\(inside)] is not an index, * or ?(@.field==\"value\")")
                }
            } else {
                throw ValidationProblem(field: "jsonPath", "\"\(text)\": unexpected \"\(first)\"")
            }
        }
        self.steps = steps
    }

    /// Every value the path reaches in `object`, in order.
    public func values(in object: JSONValue) -> [JSONValue] {
        var current = [object]
        for step in steps {
            current = current.flatMap { value -> [JSONValue] in
                switch step {
                case .field(let name): return value[name].map { [$0] } ?? []
                case .index(let index):
                    let elements = value.arrayElements
                    let position = index < 0 ? elements.count + index : index
                    return elements.indices.contains(position) ? [elements[position]] : []
                case .every: return value.arrayElements
                case .filter(let field, let expected):
                    return value.arrayElements.filter { element in
                        let actual = element[field]
                        return actual?.stringValue == expected || (actual.flatMap { try? $0.serializedText() } == expected)
                    }
                }
            }
        }
        return current
    }
}
