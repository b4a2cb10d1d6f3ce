import Foundation
import TetherJSON
import TetherModel

/// A Deployment's status as the Deployment controller writes it: figures summed from its
/// ReplicaSets, and the `Available` and `Progressing` conditions with the controller's progress
/// deadline.
extension StatusPlan {
    /// A Deployment's status as its controller sums it from its ReplicaSets' (`newest` holding
    /// the current template): all their Pods, the newest's as updated, and the available ones
    /// against the desired count. So `kubectl rollout status` waits on the Pods themselves, and
    /// fails once the rollout has made no progress for `spec.progressDeadlineSeconds`.
    mutating func deployment(replicaSets: [JSONValue], newest: String?, now: Date) {
        let before = status
        let desired = spec("replicas") ?? 1
        func sum(_ key: String) -> Int64 { replicaSets.reduce(0) { $0 + ($1.integer(at: "status", key) ?? 0) } }
        let available = sum("availableReplicas")
        let updated = replicaSets.first { $0.name == newest }?.integer(at: "status", "replicas") ?? 0
        status[member: "observedGeneration"] = .integer(generation)
        status[member: "replicas"] = .integer(sum("replicas"))
        status[member: "updatedReplicas"] = .integer(updated)
        status[member: "readyReplicas"] = .integer(sum("readyReplicas"))
        status[member: "availableReplicas"] = .integer(available)
        status[member: "unavailableReplicas"] = .integer(max(0, desired - available))
        guard !failing else {
            status[member: "conditions"] = [
                [
                    "type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                    "message": "Deployment does not have minimum availability.",
                ],
                failureCondition(type: "Progressing"),
            ]
            return
        }
        var conditions = DeploymentConditions(before["conditions"]?.arrayElements ?? [], at: now)
        if available >= desired - Self.maxUnavailable(of: object) {
            conditions.set("Available", "True", reason: "MinimumReplicasAvailable", message: "Deployment has minimum availability.")
        } else {
            conditions.set("Available", "False", reason: "MinimumReplicasUnavailable", message: "Deployment does not have minimum availability.")
        }
        progress(&conditions, before: before, newest: newest, now: now)
        status[member: "conditions"] = .array(conditions.all)
    }

    /// The `Progressing` condition as the controller keeps it: a rollout's clock starts when its
    /// ReplicaSet appears (or the Deployment is resumed) and starts again whenever more Pods are
    /// updated, ready or available or fewer old ones remain; past `progressDeadlineSeconds` with
    /// none, the rollout has `ProgressDeadlineExceeded`, which `kubectl rollout status` reports
    /// as failure. A paused Deployment is not timed. No deadline set (or the maximum): no condition.
    private mutating func progress(_ conditions: inout DeploymentConditions, before: JSONValue, newest: String?, now: Date) {
        guard let deadline = spec("progressDeadlineSeconds"), deadline != Int64(Int32.max) else {
            conditions.remove("Progressing")
            return
        }
        let current = conditions.named("Progressing")
        let reason = current?["reason"]?.stringValue
        if object.value(at: "spec", "paused") == .bool(true) {
            if reason != Self.timedOut, reason != "DeploymentPaused" {
                conditions.set("Progressing", "Unknown", reason: "DeploymentPaused", message: "Deployment is paused")
            }
            return
        }
        if reason == "DeploymentPaused" {
            conditions.set("Progressing", "Unknown", reason: "DeploymentResumed", message: "Deployment is resumed")
        }
        guard let newest else { return }
        // The API made the ReplicaSet of a template this controller has not reported on: a rollout
        // starts. (A resumed Deployment's condition names none; the resume started the clock.)
        let reported = conditions.named("Progressing")
        if reported == nil || reported.flatMap(Self.replicaSetNamed(in:)).map({ $0 != newest }) == true {
            conditions.set("Progressing", "True", reason: "NewReplicaSetCreated", message: "Created new replica set \"\(newest)\"")
        }
        func figure(_ status: JSONValue, _ key: String) -> Int64 { status[key]?.integerValue ?? 0 }
        let desired = spec("replicas") ?? 1
        let replicas = figure(status, "replicas")
        let updated = figure(status, "updatedReplicas")
        let settled = replicas == updated && reason == "NewReplicaSetAvailable" && current.flatMap(Self.replicaSetNamed(in:)) == newest
        guard !settled else { return }
        let progressed =
            updated > figure(before, "updatedReplicas") || replicas - updated < figure(before, "replicas") - figure(before, "updatedReplicas")
            || figure(status, "readyReplicas") > figure(before, "readyReplicas")
            || figure(status, "availableReplicas") > figure(before, "availableReplicas")
        if updated == desired, replicas == desired, figure(status, "availableReplicas") == desired {
            conditions.set("Progressing", "True", reason: "NewReplicaSetAvailable", message: "ReplicaSet \"\(newest)\" has successfully progressed.")
        } else if progressed {
            conditions.set("Progressing", "True", reason: "ReplicaSetUpdated", message: "ReplicaSet \"\(newest)\" is progressing.", refresh: true)
        } else if let since = conditions.lastUpdate("Progressing"), conditions.named("Progressing")?["reason"]?.stringValue != Self.timedOut {
            let left = since.addingTimeInterval(TimeInterval(deadline)).timeIntervalSince(now)
            if left < 0 {
                conditions.set("Progressing", "False", reason: Self.timedOut, message: "ReplicaSet \"\(newest)\" has timed out progressing.")
            } else {
                lookAgainAfter = .milliseconds(Int64(left * 1000) + 100)
            }
        }
    }

    static let timedOut = "ProgressDeadlineExceeded"

    /// The ReplicaSet a `Progressing` condition's message names (every message the controller
    /// writes names one in quotes).
    static func replicaSetNamed(in condition: JSONValue) -> String? {
        guard let message = condition["message"]?.stringValue, let open = message.firstIndex(of: "\"") else { return nil }
        let rest = message[message.index(after: open)...]
        guard let close = rest.firstIndex(of: "\"") else { return nil }
        return String(rest[..<close])
    }

    /// A Deployment's rolling-update bounds, as its controller resolves them against `spec.replicas`:
    /// `maxSurge` rounded up, `maxUnavailable` rounded down (25 % each by default); both zero is
    /// read as one unavailable, as the API refuses both zero. A Recreate Deployment has neither.
    static func rollingBounds(of deployment: JSONValue) -> (maxSurge: Int64, maxUnavailable: Int64) {
        let desired = max(0, deployment.integer(at: "spec", "replicas") ?? 1)
        guard deployment.string(at: "spec", "strategy", "type") != "Recreate" else { return (0, desired) }
        func resolve(_ value: JSONValue?, roundUp: Bool) -> Int64 {
            switch value {
            case .integer(let count)?: return max(0, count)
            case .string(let text)? where text.hasSuffix("%"):
                let percent = min(100, max(0, Int64(text.dropLast()) ?? 25))
                return roundUp ? (desired * percent + 99) / 100 : desired * percent / 100
            default: return roundUp ? (desired * 25 + 99) / 100 : desired * 25 / 100
            }
        }
        let rolling = deployment.value(at: "spec", "strategy", "rollingUpdate")
        let surge = resolve(rolling?["maxSurge"], roundUp: true)
        let unavailable = resolve(rolling?["maxUnavailable"], roundUp: false)
        return surge == 0 && unavailable == 0 ? (0, 1) : (surge, unavailable)
    }

    static func maxUnavailable(of deployment: JSONValue) -> Int64 { rollingBounds(of: deployment).maxUnavailable }

    /// The annotations the Deployment controller keeps on each ReplicaSet it scales: the
    /// Deployment's count, and its count plus surge, when it last did.
    static let desiredReplicasAnnotation = "deployment.kubernetes.io/desired-replicas"
    static let maxReplicasAnnotation = "deployment.kubernetes.io/max-replicas"

    /// A Deployment scaled while several of its ReplicaSets hold Pods (mid-rollout), as its
    /// controller spreads the change: each ReplicaSet (`sizes`, oldest first, with the count
    /// plus surge each was last scaled for, `maxReplicas`) grows or shrinks in proportion to its
    /// size, largest first (the newer of two equal ones first when growing, the older when
    /// shrinking), within what the new count plus surge allows; what rounding leaves over goes
    /// to the first. `current` is the Deployment's `status.replicas`, for a ReplicaSet never annotated.
    static func proportionallyScaled(sizes: [Int64], maxReplicas: [Int64?], desired: Int64, maxSurge: Int64, current: Int64) -> [Int64] {
        var scaled = sizes
        let toAdd = desired + maxSurge - sizes.reduce(0, +)
        guard toAdd != 0 else { return scaled }
        let order = sizes.indices.filter { sizes[$0] > 0 }.sorted { a, b in
            sizes[a] != sizes[b] ? sizes[a] > sizes[b] : (toAdd > 0 ? a > b : a < b)
        }
        var added: Int64 = 0
        for index in order where added != toAdd {
            let fraction: Int64
            if desired == 0 {
                fraction = -sizes[index]
            } else {
                let annotated = Double(max(1, maxReplicas[index] ?? current))
                fraction = Int64((Double(sizes[index] * (desired + maxSurge)) / annotated + 0.5).rounded(.down)) - sizes[index]
            }
            let proportion = toAdd > 0 ? min(fraction, toAdd - added) : max(fraction, toAdd - added)
            scaled[index] += proportion
            added += proportion
        }
        if let first = order.first { scaled[first] = max(0, scaled[first] + toAdd - added) }
        return scaled
    }
}

/// A workload's conditions as the controllers set them: a condition whose status and reason
/// are unchanged is left as it is, times included; a changed one is written with the time now
/// as its `lastUpdateTime`, keeping its `lastTransitionTime` while its status holds, and goes
/// to the end of the list.
struct DeploymentConditions {
    private(set) var all: [JSONValue]
    private let timestamp: String

    init(_ conditions: [JSONValue], at now: Date) {
        self.all = conditions
        self.timestamp = kubernetesTimestamp(now)
    }

    func named(_ type: String) -> JSONValue? { all.first { $0["type"]?.stringValue == type } }

    func lastUpdate(_ type: String) -> Date? {
        guard let time = named(type)?["lastUpdateTime"]?.stringValue, let parts = kubernetesTimeParts(time) else { return nil }
        return Date(timeIntervalSince1970: TimeInterval(parts.seconds))
    }

    /// `refresh`: written even when its status and reason are unchanged (the controller's
    /// mark of progress on `Progressing`).
    mutating func set(_ type: String, _ status: String, reason: String, message: String, refresh: Bool = false) {
        let current = named(type)
        if !refresh, current?["status"]?.stringValue == status, current?["reason"]?.stringValue == reason { return }
        let transition = current?["status"]?.stringValue == status ? current?["lastTransitionTime"] ?? .string(timestamp) : .string(timestamp)
        remove(type)
        all.append([
            "type": .string(type), "status": .string(status), "lastUpdateTime": .string(timestamp), "lastTransitionTime": transition,
            "reason": .string(reason), "message": .string(message),
        ])
    }

    mutating func remove(_ type: String) { all.removeAll { $0["type"]?.stringValue == type } }
}
