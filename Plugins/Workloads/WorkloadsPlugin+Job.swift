import TetherJSON
import TetherModel
import TetherPlugin

/// A Job's rules and defaults, as kube-apiserver applies them.
extension WorkloadsPlugin {
    /// kube-apiserver's rules for a Job's `podFailurePolicy`: Pods that are never restarted, and
    /// rules it can act on (a known action; exactly one of `onExitCodes` and `onPodConditions`;
    /// `In` or `NotIn` over at least one exit code, `In` without 0).
    static func podFailurePolicyProblems(_ job: JSONValue) -> [ValidationProblem] {
        guard let policy = job.value(at: "spec", "podFailurePolicy") else { return [] }
        let perIndex = job.value(at: "spec", "backoffLimitPerIndex") != nil
        var problems: [ValidationProblem] = []
        if job.string(at: "spec", "template", "spec", "restartPolicy") != "Never" {
            problems.append(
                ValidationProblem(field: "spec.template.spec.restartPolicy", "only \"Never\" is supported when podFailurePolicy is specified"))
        }
        for (index, rule) in (policy["rules"]?.arrayElements ?? []).enumerated() {
            let path = "spec.podFailurePolicy.rules[\(index)]"
            let action = rule["action"]?.stringValue ?? ""
            if !["FailJob", "FailIndex", "Ignore", "Count"].contains(action) {
                problems.append(ValidationProblem(field: "\(path).action", "must be FailJob, FailIndex, Ignore or Count, not \"\(action)\""))
            }
            if action == "FailIndex", !perIndex {
                problems.append(
                    ValidationProblem(field: "\(path).action", "Invalid value: \"FailIndex\": requires the backoffLimitPerIndex to be set"))
            }
            switch (rule["onExitCodes"], rule["onPodConditions"]) {
            case (let codes?, nil):
                let operation = codes["operator"]?.stringValue ?? ""
                if operation != "In", operation != "NotIn" {
                    problems.append(ValidationProblem(field: "\(path).onExitCodes.operator", "must be In or NotIn, not \"\(operation)\""))
                }
                let values = codes["values"]?.arrayElements.compactMap(\.integerValue) ?? []
                if values.isEmpty {
                    problems.append(ValidationProblem(field: "\(path).onExitCodes.values", "at least one value is required"))
                } else if operation == "In", values.contains(0) {
                    problems.append(ValidationProblem(field: "\(path).onExitCodes.values", "must not be 0 for the In operator"))
                }
            case (nil, _?):
                break
            default:
                problems.append(ValidationProblem(field: path, "specifying one of onExitCodes and onPodConditions is required"))
            }
        }
        return problems
    }

    /// kube-apiserver's rules for a Job limited per index: `backoffLimitPerIndex` only for an
    /// Indexed Job, `maxFailedIndexes` only with it and at most `completions`, neither negative.
    static func perIndexProblems(_ job: JSONValue) -> [ValidationProblem] {
        var problems: [ValidationProblem] = []
        for field in ["backoffLimitPerIndex", "maxFailedIndexes"] {
            if let problem = FieldChecks.nonNegativeInteger(job, "spec", field) { problems.append(problem) }
        }
        let perIndex = job.value(at: "spec", "backoffLimitPerIndex") != nil
        if perIndex, job.string(at: "spec", "completionMode") != "Indexed" {
            problems.append(ValidationProblem(field: "spec.backoffLimitPerIndex", "Forbidden: requires indexed completion mode"))
        }
        if let most = job.integer(at: "spec", "maxFailedIndexes") {
            if !perIndex {
                problems.append(ValidationProblem(field: "spec.backoffLimitPerIndex", "Required value: when maxFailedIndexes is specified"))
            }
            if let completions = job.integer(at: "spec", "completions"), most > completions {
                problems.append(
                    ValidationProblem(field: "spec.maxFailedIndexes", "Invalid value: \(most): must be less than or equal to completions"))
            }
        }
        return problems
    }

    /// A Job spec's defaults; its Pods' `restartPolicy` has none (a Job must say Never or OnFailure).
    static func jobDefaults(_ object: inout JSONValue, at path: [String]) {
        guard object.value(at: path) != nil else { return }
        if object.value(at: path + ["completions"]) == nil, object.value(at: path + ["parallelism"]) == nil {
            KubernetesDefaults.fill(&object, path + ["completions"], .integer(1))
        }
        KubernetesDefaults.fill(&object, path + ["parallelism"], .integer(1))
        // Limited per index, a Job has no overall limit unless it states one.
        let perIndex = object.value(at: path + ["backoffLimitPerIndex"]) != nil
        KubernetesDefaults.fill(&object, path + ["backoffLimit"], .integer(perIndex ? Int64(Int32.max) : 6))
        KubernetesDefaults.fill(&object, path + ["completionMode"], "NonIndexed")
        KubernetesDefaults.fill(&object, path + ["suspend"], .bool(false))
        // A failure policy judges Pods once they have failed, so their replacements wait for that.
        let policy = object.value(at: path + ["podFailurePolicy"]) != nil
        KubernetesDefaults.fill(&object, path + ["podReplacementPolicy"], .string(policy ? "Failed" : "TerminatingOrFailed"))
        let restart = object.value(at: path + ["template", "spec", "restartPolicy"])
        KubernetesDefaults.podTemplate(at: path + ["template"], in: &object)
        if restart == nil { object.set(nil, at: path + ["template", "spec", "restartPolicy"]) }
    }
}
