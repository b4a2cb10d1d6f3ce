import Foundation
import TetherJSON
import TetherModel

/// The Job controller's step, and the counts its status is made of.
extension PodController {
    /// What a Job's Pods add up to, as its controller counts them.
    struct JobCounts {
        var active: [JSONValue] = []
        var ready = 0
        var succeeded = 0
        var failed = 0
        /// When the latest failed Pod's containers stopped.
        var lastFailure: Date?

        init(_ pods: [JSONValue]) {
            for pod in pods {
                switch pod.string(at: "status", "phase") {
                case "Succeeded": succeeded += 1
                case "Failed":
                    failed += 1
                    let finished = pod.value(at: "status", "containerStatuses")?.arrayElements.compactMap {
                        $0["state"]?["terminated"]?["finishedAt"]?.stringValue.flatMap(kubernetesTimeParts)
                    }.map { Date(timeIntervalSince1970: TimeInterval($0.seconds)) }.max()
                    if let finished { lastFailure = max(lastFailure ?? finished, finished) }
                default:
                    guard pod.deletionTimestamp == nil else { continue }
                    active.append(pod)
                    if isRunningAndReady(pod) { ready += 1 }
                }
            }
        }
    }

    static func completions(of job: JSONValue) -> Int { Int(max(0, job.integer(at: "spec", "completions") ?? parallelism(of: job))) }
    static func parallelism(of job: JSONValue) -> Int64 { max(0, job.integer(at: "spec", "parallelism") ?? 1) }
    static func backoffLimit(of job: JSONValue) -> Int { Int(max(0, job.integer(at: "spec", "backoffLimit") ?? 6)) }
    static func suspended(_ job: JSONValue) -> Bool { job.value(at: "spec", "suspend") == .bool(true) }

    /// When the Job has been active for its `activeDeadlineSeconds`, counted from `startTime`;
    /// nil without either, while it is suspended, and while it is being resumed (its status
    /// still `Suspended`), as the resume sets `startTime` again.
    static func deadline(of job: JSONValue) -> Date? {
        let resuming = (job.value(at: "status", "conditions")?.arrayElements ?? []).contains {
            $0["type"] == "Suspended" && $0["status"] == "True"
        }
        guard !suspended(job), !resuming, let seconds = job.integer(at: "spec", "activeDeadlineSeconds"),
            let start = job.string(at: "status", "startTime").flatMap(kubernetesTimeParts)
        else { return nil }
        return Date(timeIntervalSince1970: TimeInterval(start.seconds) + TimeInterval(seconds))
    }

    /// How long the Job controller waits before replacing its `failures`-th failed Pod: 10 s,
    /// doubled for each failure, at most 6 minutes.
    static func retryDelay(afterFailures failures: Int) -> TimeInterval {
        min(360, 10 * pow(2, Double(max(0, failures - 1))))
    }

    /// The Pods to make and to delete: up to `parallelism` running until `completions` have
    /// succeeded; a failed Pod replaced after the controller's back-off, until more than
    /// `backoffLimit` have failed or the Job has been active for `activeDeadlineSeconds`, when
    /// the Job fails and its running Pods are deleted. A suspended Job's running Pods are
    /// deleted and none is made until it is resumed. A finished Job's Pods stay (kubectl shows
    /// them `Completed` or `Error`).
    static func jobStep(_ job: JSONValue, owned: [JSONValue], now: Date) -> (make: [Slot], delete: [JSONValue]) {
        let counts = JobCounts(owned)
        let conditions = job.value(at: "status", "conditions")?.arrayElements ?? []
        let failedJob =
            conditions.contains { $0["type"] == "Failed" && $0["status"] == "True" } || counts.failed > Self.backoffLimit(of: job)
            || Self.deadline(of: job).map { now >= $0 } == true
        if failedJob { return ([], counts.active) }
        let complete = conditions.contains { $0["type"] == "Complete" && $0["status"] == "True" }
        let remaining = Self.completions(of: job) - counts.succeeded
        guard !complete, remaining > 0 else { return ([], []) }
        if Self.suspended(job) { return ([], counts.active) }
        if counts.failed > 0, let last = counts.lastFailure,
            now < last.addingTimeInterval(Self.retryDelay(afterFailures: counts.failed))
        {
            return ([], [])
        }
        let wanted = min(Int(Self.parallelism(of: job)), remaining) - counts.active.count
        return (Array(repeating: Slot(), count: max(0, wanted)), [])
    }
}
