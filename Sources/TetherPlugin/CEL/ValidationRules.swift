import TetherJSON

/// One `x-kubernetes-validations` entry of a CustomResourceDefinition schema node.
public struct ValidationRule: Sendable {
    public let rule: String
    /// Nil when the rule is outside the CEL Tether evaluates (``unevaluatedReason`` says why):
    /// such a rule is not enforced, and the definition's writer is warned.
    public let expression: CELExpression?
    public let unevaluatedReason: String?
    public let message: String?
    public let messageExpression: CELExpression?
    /// Where a failure is reported, relative to the node (`.spec.replicas`).
    public let fieldPath: String?
    /// `FieldValueInvalid` (the default), `FieldValueForbidden`, `FieldValueRequired` or `FieldValueDuplicate`.
    public let reason: String?

    /// A transition rule reads `oldSelf`: evaluated on updates only, where the value existed
    /// before, against the stored value, as kube-apiserver does.
    public var isTransition: Bool { expression?.mentions("oldSelf") ?? false }

    init(parsing node: JSONValue, path: String) throws(ValidationProblem) {
        guard case .string(let rule)? = node["rule"], !rule.isEmpty else { throw ValidationProblem(field: "\(path).rule", "Required value") }
        self.rule = rule
        do {
            expression = try CELExpression(parsing: rule)
            unevaluatedReason = nil
        } catch {
            expression = nil
            unevaluatedReason = error.description
        }
        message = node["message"]?.stringValue
        messageExpression = node["messageExpression"]?.stringValue.flatMap { try? CELExpression(parsing: $0) }
        fieldPath = node["fieldPath"]?.stringValue
        reason = node["reason"]?.stringValue
        let reasons: Set<String> = ["FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"]
        if let reason, !reasons.contains(reason) {
            throw ValidationProblem(
                field: "\(path).reason",
                "Unsupported value: \"\(reason)\": supported values: \(reasons.sorted().map { "\"\($0)\"" }.joined(separator: ", "))")
        }
    }

    /// The problem `value` (at `path`) has under this rule, if any.
    /// `schema` is the node's: it types `format: duration` and `date-time` strings as kube-apiserver does.
    func problem(with value: JSONValue, old: JSONValue?, at path: String, type: String?, schema: StructuralSchema? = nil) -> ValidationProblem? {
        guard let expression else { return nil }
        var bindings: [String: CELValue] = ["self": CELValue(value, schema: schema)]
        if isTransition {
            guard let old else { return nil }
            bindings["oldSelf"] = CELValue(old, schema: schema)
        }
        var evaluator = CELEvaluator()
        let reported = fieldPath.map { path + (path.isEmpty ? String($0.drop { $0 == "." }) : $0) } ?? path
        let shown = reported.isEmpty ? "<root>" : reported
        let kind = type ?? value.kindName
        do {
            guard case .bool(let passed) = try evaluator.value(of: expression, in: bindings) else {
                return ValidationProblem(field: shown, "Invalid value: \"\(kind)\": the rule does not give a bool: \(rule)")
            }
            if passed { return nil }
        } catch {
            return ValidationProblem(field: shown, "Invalid value: \"\(kind)\": \(error.description) evaluating rule: \(rule)")
        }
        var text = message ?? "failed rule: \(rule)"
        if let messageExpression, case .string(let computed)? = try? evaluator.value(of: messageExpression, in: bindings),
            !computed.isEmpty
        {
            text = computed
        }
        switch reason {
        case "FieldValueForbidden": return ValidationProblem(field: shown, "Forbidden: \(text)")
        case "FieldValueRequired": return ValidationProblem(field: shown, "Required value: \(text)")
        case "FieldValueDuplicate": return ValidationProblem(field: shown, "Duplicate value: \(text)")
        default: return ValidationProblem(field: shown, "Invalid value: \"\(kind)\": \(text)")
        }
    }
}

extension StructuralSchema {
    /// Checks `value` against the validation rules of this node and the nodes under it, as
    /// kube-apiserver does after defaulting: a rule applies where its node's value is present.
    /// Without `old` (a create, or the object alone) the rules that do not read `oldSelf`; with
    /// it (an update), the transition rules, each where the old object had a value at the same
    /// place: an object's members and a map's entries are matched by name, list elements are
    /// not matched (as for Kubernetes' atomic lists).
    public func checkRules(_ value: JSONValue, old: JSONValue? = nil, path: String = "", into problems: inout [ValidationProblem]) {
        if case .null = value { return }
        for rule in validationRules where rule.isTransition == (old != nil) {
            if let problem = rule.problem(with: value, old: old, at: path, type: type, schema: self) { problems.append(problem) }
        }
        for child in children(of: value, path: path) {
            var previous: JSONValue?
            if case .object(let members)? = old, let name = child.name { previous = members[name] }
            guard old == nil || previous != nil else { continue }
            child.schema.checkRules(child.value, old: previous, path: child.path, into: &problems)
        }
    }

    /// The rules of this node and those under it that Tether does not evaluate, with where they
    /// are and why: written back as warnings when the definition is written.
    public func unevaluatedRules(path: String = "") -> [String] {
        var found = validationRules.compactMap { rule -> String? in
            let place = path.isEmpty ? "<root>" : path
            guard let reason = rule.unevaluatedReason else { return nil }
            return "\(place): the rule \"\(rule.rule)\" is not enforced: \(reason)"
        }
        for (name, schema) in properties.sorted(by: { $0.key < $1.key }) {
            found += schema.unevaluatedRules(path: path.isEmpty ? name : "\(path).\(name)")
        }
        if let items { found += items.unevaluatedRules(path: "\(path)[*]") }
        if let additionalProperties { found += additionalProperties.unevaluatedRules(path: "\(path)[*]") }
        return found
    }
}
