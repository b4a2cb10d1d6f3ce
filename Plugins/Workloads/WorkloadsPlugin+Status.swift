import TetherJSON
import TetherModel
import TetherPlugin

/// How a workload is judged in a member (health, the summary it reports) and summed at the hub
/// (aggregated status and the conditions clients wait on).
extension WorkloadsPlugin {
    public func health(of live: JSONValue) -> Health {
        let conditions = Conditions(live)
        if let failure = conditions["ReplicaFailure"], failure.status == "True" {
            return Health(.degraded, failure.explanation)
        }
        switch live.kind {
        // A CronJob does its work in the Jobs it makes, each with its own health.
        case "CronJob": return .healthy
        case "Deployment": return deploymentHealth(live, conditions)
        case "Job": return jobHealth(live, conditions)
        case "DaemonSet": return daemonSetHealth(live)
        default: return replicatedHealth(live)
        }
    }

    public func summary(of live: JSONValue) -> [String: JSONValue] {
        var summary = StatusSummary.counts(Self.summaryFields(live.kind), of: live)
        if live.kind == "Job" {
            for field in ["startTime", "completionTime"] { summary[field] = live.value(at: "status", field) }
        }
        return summary
    }

    public func aggregateStatus(of object: JSONValue, members: [MemberObjectStatus]) -> JSONValue? {
        var status = StatusSummary.sums(Self.summaryFields(object.kind), of: members)
        let conditions = Self.federatedConditions(of: object, members: members, sums: status)
        if !conditions.isEmpty { status["conditions"] = .array(conditions.map { Self.keepingTransitionTime($0, from: object) }) }
        if object.kind == "Job" {
            // It started when the first member's started, and completed when the last member's did.
            let started = members.compactMap { $0.summary["startTime"]?.stringValue }
            if let first = started.min() { status["startTime"] = .string(first) }
            let complete = conditions.contains { $0["type"] == "Complete" && $0["status"] == "True" }
            if complete, let last = members.compactMap({ $0.summary["completionTime"]?.stringValue }).max() {
                status["completionTime"] = .string(last)
            }
        }
        return .object(status)
    }

    /// The conditions clients wait on (`kubectl wait --for=condition=Available`, `=complete`),
    /// judged over every cluster that reported: a Deployment is Available when the summed
    /// available replicas meet its minimum (`replicas - maxUnavailable`), and Progressing unless a
    /// member is Degraded (`ProgressDeadlineExceeded` when a member's rollout is past its
    /// deadline, else `MemberDegraded`); a Job (run whole in each member) is Complete when every member's is,
    /// Failed when any member's is, and Suspended when every member's is.
    static func federatedConditions(of object: JSONValue, members: [MemberObjectStatus], sums: [String: JSONValue]) -> [JSONValue] {
        guard !members.isEmpty else { return [] }
        let degraded = members.filter { $0.health.state == .degraded }
        let explained = degraded.map { "cluster \($0.cluster): \($0.health.reason)" }.joined(separator: "; ")
        func condition(_ type: String, _ status: Bool, _ reason: String, _ message: String) -> JSONValue {
            ["type": .string(type), "status": status ? "True" : "False", "reason": .string(reason), "message": .string(message)]
        }
        switch object.kind {
        case "Deployment":
            let desired = desiredReplicas(object)
            let recreate = object.string(at: "spec", "strategy", "type") == "Recreate"
            let maxUnavailable =
                recreate ? 0 : scaled(object.value(at: "spec", "strategy", "rollingUpdate", "maxUnavailable") ?? "25%", of: desired)
            let available = sums["availableReplicas"]?.integerValue ?? 0
            let minimum = available >= desired - maxUnavailable
            // A member's rollout past its deadline is the federated one's, so `kubectl rollout status` at the hub fails too.
            let timedOut = degraded.contains { $0.health.reason.hasPrefix(progressDeadlineExceeded) }
            return [
                minimum
                    ? condition("Available", true, "MinimumReplicasAvailable", "Deployment has minimum availability.")
                    : condition("Available", false, "MinimumReplicasUnavailable", "Deployment does not have minimum availability."),
                !degraded.isEmpty
                    ? condition("Progressing", false, timedOut ? progressDeadlineExceeded : "MemberDegraded", explained)
                    : members.allSatisfy({ $0.health.state == .healthy })
                        ? condition("Progressing", true, "NewReplicaSetAvailable", "the Deployment has rolled out in every cluster")
                        : condition("Progressing", true, "ReplicaSetUpdated", "the Deployment is rolling out"),
            ]
        case "Job":
            if !degraded.isEmpty { return [condition("Failed", true, "MemberFailed", explained)] }
            if members.allSatisfy({ $0.health.reason.hasPrefix(jobSuspended) }) {
                return [condition("Suspended", true, "SuspendedInEveryCluster", "the Job is suspended in every cluster")]
            }
            guard members.allSatisfy({ $0.health.state == .healthy }) else { return [] }
            return [condition("Complete", true, "CompletedInEveryCluster", "the Job completed in every cluster")]
        default:
            return []
        }
    }

    /// The Deployment controller's reason for a rollout with no progress within its
    /// `progressDeadlineSeconds`; what `kubectl rollout status` fails on.
    static let progressDeadlineExceeded = "ProgressDeadlineExceeded"
    /// The Job controller's reason while `spec.suspend` holds.
    static let jobSuspended = "JobSuspended"

    /// An int-or-percent of `total`, a percentage rounded down as Kubernetes does for maxUnavailable.
    static func scaled(_ value: JSONValue, of total: Int64) -> Int64 {
        if let number = value.integerValue { return number }
        guard let text = value.stringValue, text.hasSuffix("%"), let percent = Int64(text.dropLast()) else { return 0 }
        return total * percent / 100
    }

    /// A condition whose status did not change keeps the time it last changed.
    static func keepingTransitionTime(_ condition: JSONValue, from object: JSONValue) -> JSONValue {
        var result = condition
        let previous = (object.value(at: "status", "conditions")?.arrayElements ?? []).first { $0["type"] == condition["type"] }
        if let previous, previous["status"] == condition["status"], let time = previous["lastTransitionTime"] {
            result[member: "lastTransitionTime"] = time
        } else {
            result[member: "lastTransitionTime"] = .string(kubernetesTimestamp())
        }
        return result
    }

    private func observedCurrent(_ live: JSONValue) -> Health? {
        let generation = live.generation ?? 0
        let observed = live.integer(at: "status", "observedGeneration") ?? 0
        guard observed < generation else { return nil }
        return Health(.progressing, "waiting for the controller to observe generation \(generation) (seen \(observed))")
    }

    private func deploymentHealth(_ live: JSONValue, _ conditions: Conditions) -> Health {
        if let progressing = conditions["Progressing"], progressing.status == "False" {
            let deadline = progressing.reason == Self.progressDeadlineExceeded
            return Health(.degraded, deadline ? "\(Self.progressDeadlineExceeded): \(progressing.explanation)" : progressing.explanation)
        }
        if let waiting = observedCurrent(live) { return waiting }
        let desired = Self.desiredReplicas(live)
        let status = { (field: String) in live.integer(at: "status", field) ?? 0 }
        if status("updatedReplicas") < desired {
            return Health(.progressing, "\(status("updatedReplicas")) of \(desired) updated replicas")
        }
        if status("replicas") > status("updatedReplicas") {
            return Health(.progressing, "\(status("replicas") - status("updatedReplicas")) old replicas are pending termination")
        }
        if status("availableReplicas") < status("updatedReplicas") {
            return Health(.progressing, "\(status("availableReplicas")) of \(status("updatedReplicas")) updated replicas are available")
        }
        return .healthy
    }

    private func replicatedHealth(_ live: JSONValue) -> Health {
        if let waiting = observedCurrent(live) { return waiting }
        let desired = Self.desiredReplicas(live)
        let ready = live.integer(at: "status", "readyReplicas") ?? 0
        if ready < desired { return Health(.progressing, "\(ready) of \(desired) replicas ready") }
        if live.kind == "StatefulSet", let updated = live.integer(at: "status", "updatedReplicas"), updated < desired {
            return Health(.progressing, "\(updated) of \(desired) replicas updated")
        }
        return .healthy
    }

    private func daemonSetHealth(_ live: JSONValue) -> Health {
        if let waiting = observedCurrent(live) { return waiting }
        let status = { (field: String) in live.integer(at: "status", field) ?? 0 }
        let desired = status("desiredNumberScheduled")
        if status("updatedNumberScheduled") < desired {
            return Health(.progressing, "\(status("updatedNumberScheduled")) of \(desired) updated pods scheduled")
        }
        if status("numberAvailable") < desired {
            return Health(.progressing, "\(status("numberAvailable")) of \(desired) updated pods available")
        }
        return .healthy
    }

    private func jobHealth(_ live: JSONValue, _ conditions: Conditions) -> Health {
        if let failed = conditions["Failed"], failed.status == "True" { return Health(.degraded, failed.explanation) }
        if conditions.has("Complete", "True") { return .healthy }
        if conditions.has("Suspended", "True") { return Health(.progressing, "\(Self.jobSuspended): the Job is suspended") }
        let succeeded = live.integer(at: "status", "succeeded") ?? 0
        let completions = live.integer(at: "spec", "completions") ?? 1
        return Health(.progressing, "\(succeeded) of \(completions) completions")
    }
}
