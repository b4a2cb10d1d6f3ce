import TetherJSON

extension CustomResourcePlugin {
    /// An update of a custom object: the definition's transition rules, against the stored object.
    public func validateUpdate(_ object: JSONValue, from old: JSONValue) -> [ValidationProblem] {
        guard let schema = schema(for: object) else { return [] }
        var problems: [ValidationProblem] = []
        var pruned: [String] = []
        schema.checkRules(schema.normalized(Self.body(of: object), pruned: &pruned), old: Self.body(of: old), into: &problems)
        return problems
    }
}

extension CustomResourceDefinitionPlugin {
    /// The validation rules of a definition that Tether does not enforce (outside the CEL it
    /// evaluates), so whoever applies the definition knows.
    public func warnings(on object: JSONValue) -> [String] {
        guard let definition = try? CustomResourceDefinition(parsing: object) else { return [] }
        let versions = [(definition.version, definition.schema)] + definition.otherVersions.map { ($0.name, $0.schema) }
        return versions.flatMap { version, schema in schema.unevaluatedRules().map { "version \(version), \($0)" } }
    }
}
