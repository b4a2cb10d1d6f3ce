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
        /// An Indexed Job's indexes with a Pod that succeeded, and with one running now.
        var succeededIndexes: Set<Int> = []
        var activeIndexes: Set<Int> = []
        /// Why the Job fails at once: a failed Pod matched a `FailJob` rule of its `podFailurePolicy`.
        var failJob: String?
        /// An Indexed Job's counted failures per index, when the latest of them ended, and the
        /// indexes a `FailIndex` rule failed (what `backoffLimitPerIndex` counts).
        var failuresByIndex: [Int: Int] = [:]
        var lastFailureByIndex: [Int: Date] = [:]
        var failIndex: Set<Int> = []

        /// Counts `pods` of `job`; a failed Pod that its `podFailurePolicy` ignores is not counted.
        init(_ pods: [JSONValue], of job: JSONValue) {
            for pod in pods {
                let index = PodController.completionIndex(of: pod)
                switch pod.string(at: "status", "phase") {
                case "Succeeded":
                    succeeded += 1
                    if let index { succeededIndexes.insert(index) }
                case "Failed":
                    switch PodController.failurePolicyMatch(of: pod, in: job) {
                    case .ignore?: continue
                    case .failJob(let message)?: failJob = failJob ?? message
                    case .failIndex?: if let index { failIndex.insert(index) }
                    case .count?, nil: break
                    }
                    failed += 1
                    let finished = pod.value(at: "status", "containerStatuses")?.arrayElements.compactMap {
                        $0["state"]?["terminated"]?["finishedAt"]?.stringValue.flatMap(kubernetesTimeParts)
                    }.map { Date(timeIntervalSince1970: TimeInterval($0.seconds)) }.max()
                    if let finished { lastFailure = max(lastFailure ?? finished, finished) }
                    if let index {
                        failuresByIndex[index, default: 0] += 1
                        if let finished { lastFailureByIndex[index] = max(lastFailureByIndex[index] ?? finished, finished) }
                    }
                default:
                    guard pod.deletionTimestamp == nil else { continue }
                    active.append(pod)
                    if let index { activeIndexes.insert(index) }
                    if isRunningAndReady(pod) { ready += 1 }
                }
            }
        }
    }

    static let completionIndexKey = "batch.kubernetes.io/job-completion-index"
    /// How many times a Pod's index has failed before it, on the Pods of a Job limited per index.
    static let indexFailureCountKey = "batch.kubernetes.io/job-index-failure-count"

    /// What a Job's `podFailurePolicy` does with a failed Pod: its first rule that matches.
    enum FailurePolicyAction: Equatable {
        case failJob(String)
        case failIndex
        case ignore
        case count
    }

    /// The first rule of the Job's `podFailurePolicy` that a failed Pod matches, by a container's
    /// exit code (`onExitCodes`, `In` or `NotIn`, one container or any) or by one of its
    /// conditions (`onPodConditions`); nil when none does, and the failure counts as usual.
    /// `FailIndex` fails the Pod's index (the API allows it only with `backoffLimitPerIndex`).
    static func failurePolicyMatch(of pod: JSONValue, in job: JSONValue) -> FailurePolicyAction? {
        let rules = job.value(at: "spec", "podFailurePolicy", "rules")?.arrayElements ?? []
        guard !rules.isEmpty else { return nil }
        let terminated = (pod.value(at: "status", "containerStatuses")?.arrayElements ?? []).compactMap { status -> (String, Int64)? in
            guard let code = status["state"]?["terminated"]?["exitCode"]?.integerValue else { return nil }
            return (status["name"]?.stringValue ?? "", code)
        }
        let conditions = pod.value(at: "status", "conditions")?.arrayElements ?? []
        for (position, rule) in rules.enumerated() {
            var matched: (container: String, code: Int64)?
            if let onExitCodes = rule["onExitCodes"] {
                let values = Set((onExitCodes["values"]?.arrayElements ?? []).compactMap(\.integerValue))
                let only = onExitCodes["containerName"]?.stringValue
                let isIn = onExitCodes["operator"]?.stringValue != "NotIn"
                // Exit code 0 never matches: a container that succeeded did not fail the Pod.
                matched = terminated.first { name, code in
                    code != 0 && (only == nil || only == name) && values.contains(code) == isIn
                }.map { (container: $0.0, code: $0.1) }
                guard matched != nil else { continue }
            } else if let patterns = rule["onPodConditions"]?.arrayElements {
                let hit = patterns.contains { pattern in
                    conditions.contains { $0["type"] == pattern["type"] && $0["status"] == (pattern["status"] ?? "True") }
                }
                guard hit else { continue }
            } else {
                continue
            }
            switch rule["action"]?.stringValue {
            case "FailJob":
                let pod = "\(pod.namespace ?? "default")/\(pod.name ?? "")"
                let message =
                    matched.map {
                        "Container \($0.container) for pod \(pod) failed with exit code \($0.code) matching FailJob rule at index \(position)"
                    }
                    ?? "Pod \(pod) has condition matching FailJob rule at index \(position)"
                return .failJob(message)
            case "Ignore": return .ignore
            case "FailIndex": return .failIndex
            default: return .count
            }
        }
        return nil
    }

    static func indexed(_ job: JSONValue) -> Bool { job.string(at: "spec", "completionMode") == "Indexed" }

    /// The completion index an Indexed Job's Pod carries (its annotation), nil for any other Pod.
    static func completionIndex(of pod: JSONValue) -> Int? {
        pod.annotations[completionIndexKey].flatMap { Int($0) }.flatMap { $0 >= 0 ? $0 : nil }
    }

    /// How many of its completions a Job has: for an Indexed Job, its distinct indexes that succeeded.
    static func succeeded(_ counts: JobCounts, of job: JSONValue) -> Int {
        indexed(job) ? counts.succeededIndexes.filter { $0 < completions(of: job) }.count : counts.succeeded
    }

    /// An Indexed Job's Pod as the Job controller makes it: named `JOB-INDEX-xxxxx` with the
    /// hostname `JOB-INDEX`, and told its index in `JOB_COMPLETION_INDEX` in every container.
    static func indexPod(_ pod: inout JSONValue, job: String, index: Int) {
        pod.set(.string("\(job)-\(index)"), at: ["spec", "hostname"])
        let variable: JSONValue = [
            "name": "JOB_COMPLETION_INDEX",
            "valueFrom": ["fieldRef": ["apiVersion": "v1", "fieldPath": .string("metadata.annotations['\(completionIndexKey)']")]],
        ]
        for list in ["initContainers", "containers"] {
            guard var containers = pod.value(at: "spec", list)?.arrayElements else { continue }
            for position in containers.indices {
                var env = containers[position]["env"]?.arrayElements ?? []
                if !env.contains(where: { $0["name"] == "JOB_COMPLETION_INDEX" }) { env.append(variable) }
                containers[position][member: "env"] = .array(env)
            }
            pod.set(.array(containers), at: ["spec", list])
        }
    }

    /// Indexes as the Job controller writes `completedIndexes`: ascending, runs of three or more as ranges ("0,2-5,7").
    static func indexRanges(_ indexes: Set<Int>) -> String {
        var parts: [String] = []
        var sorted = indexes.sorted()[...]
        while let first = sorted.popFirst() {
            var last = first
            while sorted.first == last + 1 { last = sorted.popFirst()! }
            parts.append(last == first ? "\(first)" : last == first + 1 ? "\(first),\(last)" : "\(first)-\(last)")
        }
        return parts.joined(separator: ",")
    }

    /// When the TTL-after-finished controller deletes a finished Job: `ttlSecondsAfterFinished`
    /// after its `completionTime`, or after its `Failed` condition's transition; nil while it runs
    /// or without a TTL.
    static func expiry(of job: JSONValue) -> Date? {
        guard let ttl = job.integer(at: "spec", "ttlSecondsAfterFinished"), ttl >= 0 else { return nil }
        let failed = (job.value(at: "status", "conditions")?.arrayElements ?? []).first { $0["type"] == "Failed" && $0["status"] == "True" }
        guard let finished = job.string(at: "status", "completionTime") ?? failed?["lastTransitionTime"]?.stringValue,
            let parts = kubernetesTimeParts(finished)
        else { return nil }
        return Date(timeIntervalSince1970: TimeInterval(parts.seconds) + TimeInterval(ttl))
    }

    static func completions(of job: JSONValue) -> Int { Int(max(0, job.integer(at: "spec", "completions") ?? parallelism(of: job))) }
    static func parallelism(of job: JSONValue) -> Int64 { max(0, job.integer(at: "spec", "parallelism") ?? 1) }
    static func backoffLimit(of job: JSONValue) -> Int {
        // Without a stated limit, an Indexed Job limited per index has none overall (the API's default).
        Int(max(0, job.integer(at: "spec", "backoffLimit") ?? (backoffLimitPerIndex(of: job) != nil ? Int64(Int32.max) : 6)))
    }

    /// How many times each index of an Indexed Job may fail before it is failed for good; nil when not limited per index.
    static func backoffLimitPerIndex(of job: JSONValue) -> Int? {
        guard indexed(job), let limit = job.integer(at: "spec", "backoffLimitPerIndex") else { return nil }
        return Int(max(0, limit))
    }

    /// The indexes failed for good: more failures than `backoffLimitPerIndex`, or a `FailIndex`
    /// rule matched, and no success.
    static func failedIndexes(_ counts: JobCounts, of job: JSONValue) -> Set<Int> {
        guard let limit = backoffLimitPerIndex(of: job) else { return [] }
        let failed = Set(counts.failuresByIndex.filter { $0.value > limit }.keys).union(counts.failIndex)
        return failed.subtracting(counts.succeededIndexes).filter { $0 < completions(of: job) }
    }

    /// Why a Job limited per index fails: more indexes failed than `maxFailedIndexes`, or every
    /// index finished and some failed; nil otherwise.
    static func failedByIndexes(_ counts: JobCounts, of job: JSONValue) -> (reason: String, message: String)? {
        guard backoffLimitPerIndex(of: job) != nil else { return nil }
        let failed = failedIndexes(counts, of: job)
        if let most = job.integer(at: "spec", "maxFailedIndexes"), failed.count > most {
            return ("MaxFailedIndexesExceeded", "Job has exceeded the specified maximal number of failed indexes")
        }
        let succeeded = counts.succeededIndexes.filter { $0 < completions(of: job) }
        guard !failed.isEmpty, failed.count + succeeded.count >= completions(of: job) else { return nil }
        return ("FailedIndexes", "Job has failed indexes")
    }

    /// When an index limited per index may run again after its latest failure (the controller's back-off per index).
    static func indexRetry(_ index: Int, _ counts: JobCounts) -> Date? {
        guard let last = counts.lastFailureByIndex[index], let failures = counts.failuresByIndex[index] else { return nil }
        return last.addingTimeInterval(retryDelay(afterFailures: failures))
    }
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
        let counts = JobCounts(owned, of: job)
        let conditions = job.value(at: "status", "conditions")?.arrayElements ?? []
        let failedJob =
            conditions.contains { $0["type"] == "Failed" && $0["status"] == "True" } || counts.failJob != nil
            || counts.failed > Self.backoffLimit(of: job) || Self.failedByIndexes(counts, of: job) != nil
            || Self.deadline(of: job).map { now >= $0 } == true
        if failedJob { return ([], counts.active) }
        let complete = conditions.contains { $0["type"] == "Complete" && $0["status"] == "True" }
        let remaining = Self.completions(of: job) - Self.succeeded(counts, of: job)
        guard !complete, remaining > 0 else { return ([], []) }
        if Self.suspended(job) { return ([], counts.active) }
        let perIndex = Self.backoffLimitPerIndex(of: job) != nil
        if !perIndex, counts.failed > 0, let last = counts.lastFailure,
            now < last.addingTimeInterval(Self.retryDelay(afterFailures: counts.failed))
        {
            return ([], [])
        }
        let wanted = min(Int(Self.parallelism(of: job)), remaining) - counts.active.count
        guard Self.indexed(job) else { return (Array(repeating: Slot(), count: max(0, wanted)), []) }
        // The lowest indexes with neither a success nor a Pod running; limited per index, not
        // failed for good, and past their own back-off.
        let failed = Self.failedIndexes(counts, of: job)
        let open = (0..<Self.completions(of: job)).lazy.filter { index in
            !counts.succeededIndexes.contains(index) && !counts.activeIndexes.contains(index) && !failed.contains(index)
                && (!perIndex || Self.indexRetry(index, counts).map { now >= $0 } ?? true)
        }
        return (
            open.prefix(max(0, wanted)).map { index in
                var slot = Slot(index: index)
                if perIndex { slot.annotations[Self.indexFailureCountKey] = "\(counts.failuresByIndex[index] ?? 0)" }
                return slot
            }, []
        )
    }
}
