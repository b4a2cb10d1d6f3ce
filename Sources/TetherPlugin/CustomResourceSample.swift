import TetherJSON

/// Why no object could be made from a definition's schema, worded for the operator who then
/// gives one (`tetherctl plugin test --sample FILE`).
public struct SampleProblem: Error, Sendable, CustomStringConvertible {
    public var description: String
}

extension CustomResourceDefinition {
    /// An object of the kind, made from its storage version's schema, for checking a plugin or
    /// customization when the operator has none at hand. Each field takes its `default`, else
    /// the first of its `enum`, else the least value its type and bounds allow (a field named
    /// like `replicas` takes 2, so replica operations have something to divide); strings follow
    /// their `format`, and one with a `pattern` takes the first of a few common shapes that
    /// matches. Every declared field is filled down to ``fullDepth`` levels, only required ones
    /// below. The object is then held to the definition's own validation (types, bounds,
    /// patterns, CEL rules) and given its defaults, so what a plugin is checked on is what the
    /// hub would store.
    public func sample(name: String = "sample") throws(SampleProblem) -> JSONValue {
        guard case .object(var body)? = try SampleGenerator.value(for: schema, path: "", field: nil, depth: 0) else {
            throw SampleProblem(description: "the schema of \(self.name) describes no object at its root")
        }
        body["apiVersion"] = .string(apiVersion)
        body["kind"] = .string(kind)
        body["metadata"] = namespaced ? ["name": .string(name), "namespace": "default"] : ["name": .string(name)]
        let object = JSONValue.object(body)
        let plugin = CustomResourcePlugin(definitions: [self])
        let problems = plugin.validate(object)
        guard problems.isEmpty else {
            let listed = problems.prefix(5).map(\.description).joined(separator: "; ")
            throw SampleProblem(
                description:
                    "the object made from the schema of \(self.name) breaks its own rules (\(listed)); give an object of \(kind) with --sample")
        }
        return plugin.normalizeOnWrite(object)
    }

    /// How deep every declared field is filled; below, only the required ones.
    public static let fullDepth = 6
}

enum SampleGenerator {
    /// The root's fields the envelope sets, whatever the schema says of them.
    static let envelope: Set<String> = ["apiVersion", "kind", "metadata"]

    /// Strings tried, in order, against a pattern and the length bounds.
    static let shapes = [
        "sample", "sample-1", "a", "1", "Sample", "example.com", "sample.example.com", "v1", "1.0.0", "1Gi", "100m", "10s", "1m", "0",
        "A", "a1", "https://example.com", "sample@example.com", "192.0.2.1", "* * * * *",
    ]

    /// A value for `schema`; nil when an optional field has no value that would pass (it is left out).
    static func value(for schema: StructuralSchema, path: String, field: String?, depth: Int) throws(SampleProblem) -> JSONValue? {
        if let defaultValue = schema.defaultValue { return defaultValue }
        if let first = schema.enumValues?.first(where: { $0 != .null }) { return first }
        if schema.intOrString { return .integer(integer(for: schema, field: field)) }
        switch schema.type {
        case "object":
            var members: [String: JSONValue] = [:]
            if schema.embeddedResource { members = ["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": "sample"]] }
            let names = depth < CustomResourceDefinition.fullDepth ? Array(schema.properties.keys) : schema.required
            for name in names.sorted() where !(depth == 0 && envelope.contains(name)) {
                guard let child = schema.properties[name] else { continue }
                let childPath = path.isEmpty ? name : "\(path).\(name)"
                if let value = try value(for: child, path: childPath, field: name, depth: depth + 1) {
                    members[name] = value
                } else if schema.required.contains(name) {
                    throw SampleProblem(description: "no value could be made for the required field \(childPath)")
                }
            }
            if let values = schema.additionalProperties, members.isEmpty {
                for index in 0..<(schema.minProperties ?? 0) {
                    members["key\(index)"] = try value(for: values, path: "\(path)[key\(index)]", field: nil, depth: depth + 1)
                }
            }
            return .object(members)
        case "array":
            guard let items = schema.items else { return [] }
            var count = depth < CustomResourceDefinition.fullDepth ? max(schema.minItems ?? 0, 1) : (schema.minItems ?? 0)
            if let maximum = schema.maxItems { count = min(count, maximum) }
            var elements: [JSONValue] = []
            for index in 0..<count {
                guard let element = try value(for: items, path: "\(path)[\(index)]", field: field, depth: depth + 1) else {
                    if index < (schema.minItems ?? 0) { throw SampleProblem(description: "no value could be made for \(path)[\(index)]") }
                    break
                }
                elements.append(element)
            }
            return .array(elements)
        case "string": return string(for: schema, field: field)
        case "integer", "number": return .integer(integer(for: schema, field: field))
        case "boolean": return false
        default: return .object([:])
        }
    }

    static func integer(for schema: StructuralSchema, field: String?) -> Int64 {
        var value: Double = (field?.lowercased().hasSuffix("replicas") ?? false) ? 2 : 1
        if let minimum = schema.minimum { value = max(value, schema.exclusiveMinimum ? minimum.rounded(.down) + 1 : minimum.rounded(.up)) }
        if let maximum = schema.maximum { value = min(value, schema.exclusiveMaximum ? maximum.rounded(.up) - 1 : maximum.rounded(.down)) }
        return Int64(value)
    }

    static func string(for schema: StructuralSchema, field: String?) -> JSONValue? {
        let formatted: [String: String] = [
            "date-time": "2026-01-01T00:00:00Z", "date": "2026-01-01", "duration": "1m", "byte": "c2FtcGxl", "uri": "https://example.com",
            "url": "https://example.com", "email": "sample@example.com", "hostname": "example.com", "ipv4": "192.0.2.1", "ipv6": "2001:db8::1",
            "uuid": "00000000-0000-4000-8000-000000000001", "cidr": "192.0.2.0/24",
        ]
        var candidates = schema.format.flatMap { formatted[$0] }.map { [$0] } ?? []
        candidates += shapes
        for candidate in candidates {
            var text = candidate
            if let minimum = schema.minLength, text.count < minimum { text += String(repeating: "a", count: minimum - text.count) }
            if let maximum = schema.maxLength, text.count > maximum { text = String(text.prefix(maximum)) }
            var problems: [ValidationProblem] = []
            schema.validate(.string(text), path: "", into: &problems)
            if problems.isEmpty { return .string(text) }
        }
        return nil
    }
}
