import TetherJSON

extension CustomResourceDefinitionPlugin {
    /// The validation rules of a definition that Tether does not enforce (outside the CEL it
    /// evaluates, or transition rules), so whoever applies the definition knows.
    public func warnings(on object: JSONValue) -> [String] {
        guard let definition = try? CustomResourceDefinition(parsing: object) else { return [] }
        let versions = [(definition.version, definition.schema)] + definition.otherVersions.map { ($0.name, $0.schema) }
        return versions.flatMap { version, schema in schema.unevaluatedRules().map { "version \(version), \($0)" } }
    }
}
