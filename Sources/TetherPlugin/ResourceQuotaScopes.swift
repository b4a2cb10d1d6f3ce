import TetherJSON
import TetherModel

/// A ResourceQuota's scopes (`spec.scopes`, `spec.scopeSelector`): a scoped quota counts and
/// limits only the Pods every scope term matches, and no other object, as kube-apiserver's
/// quota evaluators do (validation keeps a scoped quota to Pod resources).
extension ResourceQuotaAdmission {
    /// One term: a scope, and how a Pod must stand to it.
    struct ScopeTerm: Equatable {
        var scope: String
        /// `In`, `NotIn` (PriorityClass only), `Exists` or `DoesNotExist`.
        var `operator`: String
        var values: [String]
    }

    static let scopeNames = ["BestEffort", "CrossNamespacePodAffinity", "NotBestEffort", "NotTerminating", "PriorityClass", "Terminating"]

    /// The quota's terms: each of `spec.scopes` (as `Exists`), then `spec.scopeSelector`'s.
    static func scopeTerms(of quota: JSONValue) -> [ScopeTerm] {
        let listed = (quota.value(at: "spec", "scopes")?.arrayElements ?? []).compactMap(\.stringValue).map {
            ScopeTerm(scope: $0, operator: "Exists", values: [])
        }
        let selected = (quota.value(at: "spec", "scopeSelector", "matchExpressions")?.arrayElements ?? []).map { expression in
            ScopeTerm(
                scope: expression["scopeName"]?.stringValue ?? "", operator: expression["operator"]?.stringValue ?? "",
                values: (expression["values"]?.arrayElements ?? []).compactMap(\.stringValue))
        }
        return listed + selected
    }

    /// Whether `quota` counts `object` (of `resource` in `group`) at all.
    public static func scopesMatch(_ quota: JSONValue, _ object: JSONValue, resource: String, group: String) -> Bool {
        let terms = scopeTerms(of: quota)
        guard !terms.isEmpty else { return true }
        guard resource == "pods", group.isEmpty else { return false }
        return terms.allSatisfy { term in
            if term.scope == "PriorityClass" {
                let name = object.string(at: "spec", "priorityClassName") ?? ""
                switch term.operator {
                case "In": return term.values.contains(name)
                case "NotIn": return !term.values.contains(name)
                case "DoesNotExist": return name.isEmpty
                default: return !name.isEmpty
                }
            }
            let holds = podHolds(term.scope, object)
            return term.operator == "DoesNotExist" ? !holds : holds
        }
    }

    private static func podHolds(_ scope: String, _ pod: JSONValue) -> Bool {
        switch scope {
        case "Terminating": pod.value(at: "spec", "activeDeadlineSeconds")?.integerValue.map { $0 >= 0 } ?? false
        case "NotTerminating": !podHolds("Terminating", pod)
        case "BestEffort": isBestEffort(pod)
        case "NotBestEffort": !isBestEffort(pod)
        case "CrossNamespacePodAffinity": hasCrossNamespaceAffinity(pod)
        default: false
        }
    }

    /// No container, init containers included, requests or limits CPU or memory: QoS class `BestEffort`.
    static func isBestEffort(_ pod: JSONValue) -> Bool {
        let containers = ["containers", "initContainers"].flatMap { pod.value(at: "spec", $0)?.arrayElements ?? [] }
        return !containers.contains { container in
            ["requests", "limits"].contains { field in
                let amounts = container.value(at: "resources", field)?.objectMembers ?? [:]
                return amounts["cpu"] != nil || amounts["memory"] != nil
            }
        }
    }

    private static func hasCrossNamespaceAffinity(_ pod: JSONValue) -> Bool {
        let kinds = ["podAffinity", "podAntiAffinity"]
        let terms = kinds.flatMap { kind in
            (pod.value(at: "spec", "affinity", kind, "requiredDuringSchedulingIgnoredDuringExecution")?.arrayElements ?? [])
                + (pod.value(at: "spec", "affinity", kind, "preferredDuringSchedulingIgnoredDuringExecution")?.arrayElements ?? []).compactMap {
                    $0["podAffinityTerm"]
                }
        }
        return terms.contains { !($0["namespaces"]?.arrayElements ?? []).isEmpty || $0["namespaceSelector"] != nil }
    }

    /// What a Pod-scoped quota may limit: Pods and their compute.
    static let podScopedResources: Set<String> = [
        "pods", "count/pods", "cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory", "ephemeral-storage",
        "requests.ephemeral-storage", "limits.ephemeral-storage",
    ]

    /// kube-apiserver's checks of a quota's scopes, as `field: message`.
    public static func scopeProblems(of quota: JSONValue) -> [(field: String, message: String)] {
        var problems: [(field: String, message: String)] = []
        let supported = scopeNames.map { "\"\($0)\"" }.joined(separator: ", ")
        let listed = (quota.value(at: "spec", "scopes")?.arrayElements ?? []).compactMap(\.stringValue)
        for (index, scope) in listed.enumerated() where !scopeNames.contains(scope) {
            problems.append(("spec.scopes[\(index)]", "Unsupported value: \"\(scope)\": supported values: \(supported)"))
        }
        let expressions = quota.value(at: "spec", "scopeSelector", "matchExpressions")?.arrayElements ?? []
        for (index, expression) in expressions.enumerated() {
            let field = "spec.scopeSelector.matchExpressions[\(index)]"
            let scope = expression["scopeName"]?.stringValue ?? ""
            let operation = expression["operator"]?.stringValue ?? ""
            let values = expression["values"]?.arrayElements ?? []
            guard scopeNames.contains(scope) else {
                problems.append(("\(field).scopeName", "Unsupported value: \"\(scope)\": supported values: \(supported)"))
                continue
            }
            switch operation {
            case "In", "NotIn":
                if scope != "PriorityClass" {
                    problems.append(
                        (
                            "\(field).operator",
                            "Invalid value: \"\(operation)\": must be 'Exist' when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity"
                        ))
                } else if values.isEmpty {
                    problems.append(
                        ("\(field).values", "Required value: must be at least one value when `operator` is 'In' or 'NotIn' for scope selector"))
                }
            case "Exists", "DoesNotExist":
                if !values.isEmpty {
                    problems.append(
                        (
                            "\(field).values",
                            "Invalid value: \(values.count) values: must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector"
                        ))
                }
            default:
                problems.append(
                    ("\(field).operator", "Unsupported value: \"\(operation)\": supported values: \"DoesNotExist\", \"Exists\", \"In\", \"NotIn\""))
            }
        }
        let scopes = Set(scopeTerms(of: quota).map(\.scope))
        for (one, other) in [("BestEffort", "NotBestEffort"), ("Terminating", "NotTerminating")] where scopes.contains(one) && scopes.contains(other)
        {
            problems.append(("spec.scopes", "Invalid value: [\"\(one)\",\"\(other)\"]: conflicting scopes"))
        }
        guard !scopes.isEmpty else { return problems }
        let allowed = scopes.contains("BestEffort") ? Set(["pods", "count/pods"]) : podScopedResources
        for name in (quota.value(at: "spec", "hard")?.objectMembers ?? [:]).keys.sorted() where !allowed.contains(name) {
            problems.append(("spec.hard[\(name)]", "Invalid value: \"\(name)\": unsupported scope applied to resource"))
        }
        return problems
    }
}
