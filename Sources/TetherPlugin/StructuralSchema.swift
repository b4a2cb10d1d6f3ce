import Foundation
import TetherJSON
import TetherModel

/// A CustomResourceDefinition's `openAPIV3Schema`, as kube-apiserver uses it: every node has a
/// type (or says it takes anything), objects name their fields, and values are checked against
/// types, `required`, `enum`, bounds, lengths and patterns; `default`s fill what a write omits and
/// fields the schema does not name are pruned unless a node preserves unknown fields.
///
/// A class because the schema is recursive and shared by every write of its kind.
public final class StructuralSchema: Sendable {
    public let type: String?
    public let description: String?
    public let properties: [String: StructuralSchema]
    public let items: StructuralSchema?
    /// The value schema of a map (`additionalProperties: {...}`).
    public let additionalProperties: StructuralSchema?
    public let required: [String]
    public let enumValues: [JSONValue]?
    public let minimum: Double?
    public let maximum: Double?
    public let exclusiveMinimum: Bool
    public let exclusiveMaximum: Bool
    public let minLength: Int?
    public let maxLength: Int?
    public let minItems: Int?
    public let maxItems: Int?
    public let minProperties: Int?
    public let maxProperties: Int?
    public let pattern: String?
    /// `format`: what validation rules see a string as (`duration`, `date-time`); nothing else reads it.
    public let format: String?
    private let compiledPattern: NSRegularExpressionBox?
    public let defaultValue: JSONValue?
    public let nullable: Bool
    /// `x-kubernetes-preserve-unknown-fields`: fields not named are kept, not pruned.
    public let preservesUnknownFields: Bool
    /// `x-kubernetes-int-or-string`.
    public let intOrString: Bool
    /// `x-kubernetes-embedded-resource`: the value is an object with its own apiVersion, kind, metadata.
    public let embeddedResource: Bool
    /// `x-kubernetes-validations`: CEL rules over this node's value.
    public let validationRules: [ValidationRule]

    /// Deeper schemas are refused: a schema is data a stranger may send.
    public static let maximumDepth = 64

    /// Parses a node; `path` names it in errors as kube-apiserver does
    /// (`spec.versions[0].schema.openAPIV3Schema.properties[spec].type`).
    public init(parsing node: JSONValue, path: String, depth: Int = 0) throws(ValidationProblem) {
        guard depth < Self.maximumDepth else { throw ValidationProblem(field: path, "nested more than \(Self.maximumDepth) levels deep") }
        guard case .object(let members) = node else { throw ValidationProblem(field: path, "must be an object") }
        for unsupported in ["$ref", "allOf", "anyOf", "oneOf", "not", "dependencies", "patternProperties", "definitions"]
        where members[unsupported] != nil {
            throw ValidationProblem(
                field: "\(path).\(unsupported)",
                "is not supported here; structural schemas describe every field with properties, items and additionalProperties")
        }
        type = members["type"]?.stringValue
        description = members["description"]?.stringValue
        preservesUnknownFields = members["x-kubernetes-preserve-unknown-fields"] == .bool(true)
        intOrString = members["x-kubernetes-int-or-string"] == .bool(true)
        embeddedResource = members["x-kubernetes-embedded-resource"] == .bool(true)
        nullable = members["nullable"] == .bool(true)
        let knownTypes: Set<String> = ["object", "array", "string", "integer", "number", "boolean"]
        if let type {
            guard knownTypes.contains(type) else {
                throw ValidationProblem(
                    field: "\(path).type",
                    "Unsupported value: \"\(type)\": supported values: \(knownTypes.sorted().map { "\"\($0)\"" }.joined(separator: ", "))")
            }
        } else if !intOrString && !preservesUnknownFields {
            throw ValidationProblem(field: "\(path).type", "Required value: must not be empty for specified fields")
        }
        var properties: [String: StructuralSchema] = [:]
        if case .object(let declared)? = members["properties"] {
            guard type == "object" || type == nil else {
                throw ValidationProblem(field: "\(path).properties", "only an object may have properties, not a \(type ?? "")")
            }
            for (name, child) in declared {
                properties[name] = try StructuralSchema(parsing: child, path: "\(path).properties[\(name)]", depth: depth + 1)
            }
        }
        self.properties = properties
        if let child = members["items"] {
            guard type == "array" else { throw ValidationProblem(field: "\(path).items", "only an array may have items") }
            items = try StructuralSchema(parsing: child, path: "\(path).items", depth: depth + 1)
        } else if type == "array" {
            throw ValidationProblem(field: "\(path).items", "Required value: must be specified for an array")
        } else {
            items = nil
        }
        switch members["additionalProperties"] {
        case .object(let value)?:
            guard properties.isEmpty else {
                throw ValidationProblem(
                    field: "\(path).additionalProperties", "Forbidden: additionalProperties and properties are mutual exclusive")
            }
            additionalProperties = try StructuralSchema(parsing: .object(value), path: "\(path).additionalProperties", depth: depth + 1)
        default:
            additionalProperties = nil
        }
        required = members["required"]?.arrayElements.compactMap(\.stringValue) ?? []
        enumValues = members["enum"]?.arrayElements
        minimum = members["minimum"].flatMap(Self.number)
        maximum = members["maximum"].flatMap(Self.number)
        exclusiveMinimum = members["exclusiveMinimum"] == .bool(true)
        exclusiveMaximum = members["exclusiveMaximum"] == .bool(true)
        minLength = members["minLength"]?.integerValue.map(Int.init)
        maxLength = members["maxLength"]?.integerValue.map(Int.init)
        minItems = members["minItems"]?.integerValue.map(Int.init)
        maxItems = members["maxItems"]?.integerValue.map(Int.init)
        minProperties = members["minProperties"]?.integerValue.map(Int.init)
        maxProperties = members["maxProperties"]?.integerValue.map(Int.init)
        pattern = members["pattern"]?.stringValue
        format = members["format"]?.stringValue
        if let pattern {
            do {
                compiledPattern = NSRegularExpressionBox(try NSRegularExpression(pattern: pattern))
            } catch {
                throw ValidationProblem(field: "\(path).pattern", "Invalid value: \"\(pattern)\": not a regular expression")
            }
        } else {
            compiledPattern = nil
        }
        var rules: [ValidationRule] = []
        for (index, rule) in (members["x-kubernetes-validations"]?.arrayElements ?? []).enumerated() {
            rules.append(try ValidationRule(parsing: rule, path: "\(path).x-kubernetes-validations[\(index)]"))
        }
        validationRules = rules
        defaultValue = members["default"]
        if let defaultValue {
            // A default must itself be valid, as kube-apiserver requires.
            var problems: [ValidationProblem] = []
            validate(defaultValue, path: "\(path).default", into: &problems)
            if let first = problems.first { throw first }
        }
    }

    private static func number(_ value: JSONValue) -> Double? {
        switch value {
        case .integer(let number): Double(number)
        case .double(let number): number
        default: nil
        }
    }

    // MARK: Validation

    /// Every problem with `value` against this schema, with field paths under `path`.
    public func validate(_ value: JSONValue, path: String, into problems: inout [ValidationProblem]) {
        func problem(_ message: String) { problems.append(ValidationProblem(field: path.isEmpty ? "<root>" : path, message)) }
        if case .null = value {
            if !nullable && !preservesUnknownFields && type != nil {
                problem("Invalid value: \"null\": \(path) in body must be of type \(type ?? "")")
            }
            return
        }
        if let enumValues, !enumValues.contains(value) {
            let supported = enumValues.map(Self.shown).joined(separator: ", ")
            problem("Unsupported value: \(Self.shown(value)): supported values: \(supported)")
        }
        if intOrString {
            switch value {
            case .string, .integer: return
            case .double(let number) where number.rounded() == number: return
            default:
                problem("Invalid value: \"\(value.kindName)\": \(path) in body must be an integer or a string")
                return
            }
        }
        switch (type, value) {
        case (nil, _):
            return
        case ("string", .string(let text)):
            let length = text.count
            if let minLength, length < minLength { problem("Invalid value: \"\(text)\": \(path) in body should be at least \(minLength) chars long") }
            if let maxLength, length > maxLength { problem("Too long: may not be longer than \(maxLength)") }
            if let compiledPattern, let pattern, !compiledPattern.matches(text) {
                problem("Invalid value: \"\(text)\": \(path) in body should match '\(pattern)'")
            }
        case ("integer", .integer(let number)):
            checkBounds(Double(number), problem)
        case ("integer", .double(let number)) where number.rounded() == number:
            checkBounds(number, problem)
        case ("number", .integer(let number)):
            checkBounds(Double(number), problem)
        case ("number", .double(let number)):
            checkBounds(number, problem)
        case ("boolean", .bool):
            return
        case ("array", .array(let elements)):
            if let minItems, elements.count < minItems {
                problem("Invalid value: \(elements.count): \(path) in body should have at least \(minItems) items")
            }
            if let maxItems, elements.count > maxItems { problem("Too many: \(elements.count): must have at most \(maxItems) items") }
            for child in children(of: value, path: path) { child.schema.validate(child.value, path: child.path, into: &problems) }
        case ("object", .object(let members)):
            if let minProperties, members.count < minProperties {
                problem("Invalid value: \(members.count): \(path) in body should have at least \(minProperties) properties")
            }
            if let maxProperties, members.count > maxProperties { problem("Too many: \(members.count): must have at most \(maxProperties) items") }
            for name in required where members[name] == nil || members[name] == .null {
                problems.append(ValidationProblem(field: path.isEmpty ? name : "\(path).\(name)", "Required value"))
            }
            for child in children(of: value, path: path) { child.schema.validate(child.value, path: child.path, into: &problems) }
        case (let type?, _):
            problem("Invalid value: \"\(value.kindName)\": \(path) in body must be of type \(type)")
        }
    }

    /// Each member of an object or element of an array that a schema describes: the schema,
    /// the value, its path (`spec.ports[0]`) and a member's name (nil for an element), members
    /// in name order.
    func children(of value: JSONValue, path: String) -> [(schema: StructuralSchema, value: JSONValue, path: String, name: String?)] {
        switch value {
        case .object(let members):
            return members.sorted(by: { $0.key < $1.key }).compactMap { name, member in
                guard let schema = properties[name] ?? additionalProperties else { return nil }
                return (schema, member, path.isEmpty ? name : "\(path).\(name)", name)
            }
        case .array(let elements):
            guard let items else { return [] }
            return elements.enumerated().map { (items, $1, "\(path)[\($0)]", nil) }
        default:
            return []
        }
    }

    private static func shown(_ value: JSONValue) -> String { (try? value.serializedText()) ?? value.kindName }

    private func checkBounds(_ number: Double, _ problem: (String) -> Void) {
        func show(_ bound: Double) -> String { bound.rounded() == bound && abs(bound) < 1e15 ? String(Int64(bound)) : String(bound) }
        if let minimum {
            if exclusiveMinimum ? number <= minimum : number < minimum {
                problem("Invalid value: \(show(number)): should be greater than \(exclusiveMinimum ? "" : "or equal to ")\(show(minimum))")
            }
        }
        if let maximum {
            if exclusiveMaximum ? number >= maximum : number > maximum {
                problem("Invalid value: \(show(number)): should be less than \(exclusiveMaximum ? "" : "or equal to ")\(show(maximum))")
            }
        }
    }

    // MARK: Defaulting and pruning

    /// `value` with every `default` filled in where a field is absent, and with the fields the
    /// schema does not name removed (their dotted paths in `pruned`), as kube-apiserver stores
    /// custom objects.
    public func normalized(_ value: JSONValue, path: String = "", pruned: inout [String]) -> JSONValue {
        switch value {
        case .object(var members):
            if type == "object" || type == nil {
                if !properties.isEmpty || (additionalProperties == nil && !preservesUnknownFields && type == "object") {
                    for name in members.keys.sorted() where properties[name] == nil && !(embeddedResource && Self.embeddedFields.contains(name)) {
                        if preservesUnknownFields { continue }
                        members[name] = nil
                        pruned.append(path.isEmpty ? name : "\(path).\(name)")
                    }
                }
                for (name, schema) in properties {
                    let child = path.isEmpty ? name : "\(path).\(name)"
                    if let member = members[name] {
                        members[name] = schema.normalized(member, path: child, pruned: &pruned)
                    } else if let fallback = schema.defaultValue {
                        members[name] = schema.normalized(fallback, path: child, pruned: &pruned)
                    }
                }
                if let additionalProperties {
                    for (name, member) in members {
                        members[name] = additionalProperties.normalized(member, path: path.isEmpty ? name : "\(path).\(name)", pruned: &pruned)
                    }
                }
            }
            return .object(members)
        case .array(let elements):
            guard let items else { return value }
            return .array(elements.enumerated().map { items.normalized($1, path: "\(path)[\($0)]", pruned: &pruned) })
        default:
            return value
        }
    }

    private static let embeddedFields: Set<String> = ["apiVersion", "kind", "metadata"]

    // MARK: Publishing

    /// The shape the API publishes in OpenAPI and checks `fieldValidation` against.
    public var fieldSchema: FieldSchema {
        if preservesUnknownFields && properties.isEmpty { return .free }
        if intOrString { return .intOrString }
        switch type {
        case "string": return .string
        case "integer": return .integer
        case "number": return .number
        case "boolean": return .boolean
        case "array": return .array(items?.fieldSchema ?? .free)
        case "object":
            if let additionalProperties { return .map(additionalProperties.fieldSchema) }
            if preservesUnknownFields { return .free }
            var fields = properties.mapValues(\.fieldSchema)
            if embeddedResource {
                fields["apiVersion"] = .string
                fields["kind"] = .string
                fields["metadata"] = .free
            }
            return .object(fields)
        default: return .free
        }
    }
}

/// `NSRegularExpression` is thread-safe once made but not marked `Sendable`.
private final class NSRegularExpressionBox: @unchecked Sendable {
    let expression: NSRegularExpression

    init(_ expression: NSRegularExpression) { self.expression = expression }

    func matches(_ text: String) -> Bool {
        expression.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }
}
