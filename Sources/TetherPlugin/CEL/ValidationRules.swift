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

    /// A transition rule reads `oldSelf`: kube-apiserver evaluates it on updates only, against
    /// the stored value. Tether does not evaluate transition rules.
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
    func problem(with value: JSONValue, at path: String, type: String?) -> ValidationProblem? {
        guard let expression, !isTransition else { return nil }
        var evaluator = CELEvaluator()
        let where_ = fieldPath.map { path + (path.isEmpty ? String($0.drop { $0 == "." }) : $0) } ?? path
        let shown = where_.isEmpty ? "<root>" : where_
        let kind = type ?? value.kindName
        do {
            guard case .bool(let passed) = try evaluator.evaluate(expression, bindings: ["self": value]) else {
                return ValidationProblem(field: shown, "Invalid value: \"\(kind)\": the rule does not give a bool: \(rule)")
            }
            if passed { return nil }
        } catch {
            return ValidationProblem(field: shown, "Invalid value: \"\(kind)\": \(error.description) evaluating rule: \(rule)")
        }
        var text = message ?? "failed rule: \(rule)"
        if let messageExpression, case .string(let computed)? = try? evaluator.evaluate(messageExpression, bindings: ["self": value]),
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
    /// Checks `value` against every validation rule of this node and the nodes under it, as
    /// kube-apiserver does after defaulting: a rule applies where its node's value is present.
    public func checkRules(_ value: JSONValue, path: String = "", into problems: inout [ValidationProblem]) {
        if case .null = value { return }
        for rule in validationRules {
            if let problem = rule.problem(with: value, at: path, type: type) { problems.append(problem) }
        }
        for child in children(of: value, path: path) { child.schema.checkRules(child.value, path: child.path, into: &problems) }
    }

    /// The rules of this node and those under it that Tether does not evaluate, with where they
    /// are and why: written back as warnings when the definition is written.
    public func unevaluatedRules(path: String = "") -> [String] {
        var found = validationRules.compactMap { rule -> String? in
            let place = path.isEmpty ? "<root>" : path
            if let reason = rule.unevaluatedReason { return "\(place): the rule \"\(rule.rule)\" is not enforced: \(reason)" }
            if rule.isTransition { return "\(place): the transition rule \"\(rule.rule)\" (it reads oldSelf) is not enforced" }
            return nil
        }
        for (name, schema) in properties.sorted(by: { $0.key < $1.key }) {
            found += schema.unevaluatedRules(path: path.isEmpty ? name : "\(path).\(name)")
        }
        if let items { found += items.unevaluatedRules(path: "\(path)[*]") }
        if let additionalProperties { found += additionalProperties.unevaluatedRules(path: "\(path)[*]") }
        return found
    }
}
