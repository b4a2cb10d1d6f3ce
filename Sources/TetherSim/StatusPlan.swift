import Foundation
import TetherJSON
import TetherModel

/// The status a real cluster's controllers would show for an object at a moment of its
/// progress: pure computation, so it is tested without a store or a clock.
struct StatusPlan {
    let object: JSONValue
    /// How long the object's current generation has been seen.
    let elapsed: Duration
    let readyAfter: Duration
    let failing: Bool
    var status: JSONValue
    /// When the status will next change by itself; nil when it is settled.
    var lookAgainAfter: Duration?

    init(object: JSONValue, elapsed: Duration, readyAfter: Duration, failing: Bool) {
        self.object = object
        self.elapsed = elapsed
        self.readyAfter = readyAfter
        self.failing = failing
        self.status = object["status"] ?? [:]
    }

    /// A status counted by a controller of its own (a disruption budget's).
    mutating func counted(_ counted: JSONValue, lookAgainAfter: Duration?) {
        status = counted
        self.lookAgainAfter = lookAgainAfter
    }

    var generation: Int64 { object.generation ?? 1 }
    func spec(_ key: String) -> Int64? { object["spec"]?[key]?.integerValue }
    private func current(_ key: String) -> Int64 { status[key]?.integerValue ?? 0 }

    /// A ReplicaSet's status as its controller counts it, from its Pods (`pods`, those it holds
    /// now, not being deleted): how many exist, how many are Running and Ready, and how many of
    /// those have been Ready for `spec.minReadySeconds` (available). So a Pod that waits for a
    /// node, or crash-loops, is not counted ready; one just ready is counted available only when
    /// its minimum has passed, and the status is looked at again then.
    mutating func replicaSet(pods: [JSONValue], now: Date) {
        let (ready, available) = counted(pods, now: now)
        status[member: "observedGeneration"] = .integer(generation)
        status[member: "replicas"] = .integer(Int64(pods.count))
        status[member: "fullyLabeledReplicas"] = .integer(Int64(pods.count))
        status[member: "readyReplicas"] = .integer(Int64(ready))
        status[member: "availableReplicas"] = .integer(Int64(available))
        status[member: "conditions"] = failing ? .array([failureCondition(type: "ReplicaFailure")]) : nil
    }

    /// A StatefulSet's status as its controller counts it, from its Pods (`pods`, those it holds
    /// now): how many exist, are Ready, run the template of `updateRevision` (`NAME-HASH`) and of
    /// the revision they are rolling from, which becomes `updateRevision` once every Pod runs it.
    /// So `kubectl rollout status statefulset` waits for the Pods themselves, one at a time.
    mutating func statefulSet(pods: [JSONValue], updateRevision: String, now: Date) {
        let desired = spec("replicas") ?? 1
        func revision(_ pod: JSONValue) -> String? { pod.labels["controller-revision-hash"] }
        let (ready, available) = counted(pods, now: now)
        let updated = pods.filter { revision($0) == updateRevision }.count
        var currentRevision = status["currentRevision"]?.stringValue ?? updateRevision
        if updated == pods.count, Int64(pods.count) == desired { currentRevision = updateRevision }
        status[member: "observedGeneration"] = .integer(generation)
        status[member: "replicas"] = .integer(Int64(pods.count))
        status[member: "readyReplicas"] = .integer(Int64(ready))
        status[member: "availableReplicas"] = .integer(Int64(available))
        status[member: "currentReplicas"] = .integer(Int64(pods.filter { revision($0) == currentRevision }.count))
        status[member: "updatedReplicas"] = .integer(Int64(updated))
        status[member: "currentRevision"] = .string(currentRevision)
        status[member: "updateRevision"] = .string(updateRevision)
        status[member: "collisionCount"] = 0
        status[member: "conditions"] = failing ? .array([failureCondition(type: "ReplicaFailure")]) : nil
    }

    /// How many of `pods` are Running and Ready, and how many of those have been Ready for
    /// longer than the object's `spec.minReadySeconds` (available, as the controllers judge
    /// it); looks again when the next becomes available.
    mutating func counted(_ pods: [JSONValue], now: Date) -> (ready: Int, available: Int) {
        let minReady = spec("minReadySeconds") ?? 0
        var ready = 0
        var available = 0
        for pod in pods where PodController.isRunningAndReady(pod) {
            ready += 1
            let wait = Self.untilAvailable(pod, minReadySeconds: minReady, now: now)
            if wait < 0 {
                available += 1
            } else {
                let delay = Duration.milliseconds(Int64(wait * 1000) + 100)
                lookAgainAfter = min(lookAgainAfter ?? delay, delay)
            }
        }
        return (ready, available)
    }

    /// Seconds until a ready Pod counts as available (negative: it does).
    static func untilAvailable(_ pod: JSONValue, minReadySeconds: Int64, now: Date) -> TimeInterval {
        guard minReadySeconds > 0 else { return -1 }
        return (readySince(pod) ?? now).addingTimeInterval(TimeInterval(minReadySeconds)).timeIntervalSince(now)
    }

    /// When a Pod's Ready condition last turned true.
    static func readySince(_ pod: JSONValue) -> Date? {
        guard let ready = pod.value(at: "status", "conditions")?.arrayElements.first(where: { $0["type"] == "Ready" }),
            let time = ready["lastTransitionTime"]?.stringValue, let parts = kubernetesTimeParts(time)
        else { return nil }
        return Date(timeIntervalSince1970: TimeInterval(parts.seconds))
    }

    /// A DaemonSet's status as its controller counts it, from its Pods (`pods`, those it holds
    /// now, not being deleted) on the nodes it belongs on (`nodes`): how many nodes run one, run
    /// one of the current template (`revision`), and run one that is ready, and available
    /// (ready for `spec.minReadySeconds`); Pods on other nodes are misscheduled. So `kubectl
    /// rollout status daemonset` waits on the Pods themselves, node by node.
    mutating func daemonSet(pods: [JSONValue], nodes: [String], revision: String, now: Date) {
        let admitted = Set(nodes)
        // A surging node holds an old Pod and a new one: it counts once, updated if either is
        // current, ready or available if either is.
        var byNode: [String: [JSONValue]] = [:]
        var misscheduled = 0
        for pod in pods {
            let node = pod.string(at: "spec", "nodeName") ?? ""
            if admitted.contains(node) { byNode[node, default: []].append(pod) } else { misscheduled += 1 }
        }
        var (ready, available) = (0, 0)
        for pods in byNode.values {
            let (nodeReady, nodeAvailable) = counted(pods, now: now)
            if nodeReady > 0 { ready += 1 }
            if nodeAvailable > 0 { available += 1 }
        }
        let desired = nodes.count
        status[member: "observedGeneration"] = .integer(generation)
        status[member: "desiredNumberScheduled"] = .integer(Int64(desired))
        status[member: "currentNumberScheduled"] = .integer(Int64(byNode.count))
        status[member: "numberMisscheduled"] = .integer(Int64(misscheduled))
        status[member: "numberReady"] = .integer(Int64(ready))
        status[member: "numberAvailable"] = .integer(Int64(available))
        status[member: "numberUnavailable"] = desired > available ? .integer(Int64(desired - available)) : nil
        status[member: "updatedNumberScheduled"] = .integer(
            Int64(byNode.values.filter { $0.contains { $0.labels["controller-revision-hash"] == revision } }.count))
    }

    /// A Job's status as its controller counts it, from its Pods (`pods`, all it made): `active`,
    /// `ready`, `succeeded` and `failed`; `Complete` once `completions` have succeeded, `Failed`
    /// once more than `backoffLimit` have failed (`BackoffLimitExceeded`) or once it has been
    /// active for `activeDeadlineSeconds` (`DeadlineExceeded`, looked at again then); while a
    /// failed Pod's replacement waits out the controller's back-off, looked at again when it
    /// ends. `Suspended` while `spec.suspend` holds, with no deadline running; a resumed Job's
    /// `startTime` is set again, as its deadline counts from it.
    mutating func job(pods: [JSONValue], now: Date) {
        let counts = PodController.JobCounts(pods, of: object)
        let timestamp = kubernetesTimestamp(now)
        var conditions = status["conditions"]?.arrayElements ?? []
        let suspended = PodController.suspended(object)
        let wasSuspended = conditions.contains { $0["type"] == "Suspended" && $0["status"] == "True" }
        if !suspended, status["startTime"] == nil || wasSuspended { status[member: "startTime"] = .string(timestamp) }
        status[member: "active"] = .integer(Int64(counts.active.count))
        status[member: "ready"] = .integer(Int64(counts.ready))
        status[member: "succeeded"] = .integer(Int64(PodController.succeeded(counts, of: object)))
        if PodController.indexed(object) {
            let completed = counts.succeededIndexes.filter { $0 < PodController.completions(of: object) }
            status[member: "completedIndexes"] = completed.isEmpty ? nil : .string(PodController.indexRanges(completed))
            // Written, empty at first, whenever the Job is limited per index, as its controller does.
            if PodController.backoffLimitPerIndex(of: object) != nil {
                status[member: "failedIndexes"] = .string(PodController.indexRanges(PodController.failedIndexes(counts, of: object)))
            }
        }
        status[member: "failed"] = .integer(Int64(counts.failed))
        status[member: "uncountedTerminatedPods"] = [:]
        let finished = conditions.contains { ($0["type"] == "Complete" || $0["type"] == "Failed") && $0["status"] == "True" }
        guard !finished else { return }
        func condition(_ type: String, _ reason: String, _ message: String, _ value: Bool = true) -> JSONValue {
            [
                "type": .string(type), "status": value ? "True" : "False", "reason": .string(reason), "message": .string(message),
                "lastProbeTime": .string(timestamp), "lastTransitionTime": .string(timestamp),
            ]
        }
        defer { status[member: "conditions"] = conditions.isEmpty ? nil : .array(conditions) }
        if suspended != wasSuspended, suspended || conditions.contains(where: { $0["type"] == "Suspended" }) {
            conditions.removeAll { $0["type"] == "Suspended" }
            conditions.append(
                suspended ? condition("Suspended", "JobSuspended", "Job suspended") : condition("Suspended", "JobResumed", "Job resumed", false))
        }
        // The status as it stands now (the resume's startTime and condition), which the deadline counts from.
        var current = object
        current[member: "status"] = status
        current.set(.array(conditions), at: ["status", "conditions"])
        if let message = counts.failJob {
            conditions += [condition("FailureTarget", "PodFailurePolicy", message), condition("Failed", "PodFailurePolicy", message)]
        } else if counts.failed > PodController.backoffLimit(of: object) {
            conditions += [
                condition("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
                condition("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
            ]
        } else if let failed = PodController.failedByIndexes(counts, of: object) {
            conditions += [condition("FailureTarget", failed.reason, failed.message), condition("Failed", failed.reason, failed.message)]
        } else if let deadline = PodController.deadline(of: current), now >= deadline {
            conditions += [
                condition("FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline"),
                condition("Failed", "DeadlineExceeded", "Job was active longer than specified deadline"),
            ]
        } else if PodController.succeeded(counts, of: object) >= PodController.completions(of: object) {
            status[member: "completionTime"] = .string(timestamp)
            conditions += [
                condition("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"),
                condition("Complete", "CompletionsReached", "Reached expected number of succeeded pods"),
            ]
        } else {
            func lookAgain(at date: Date) {
                let wait = date.timeIntervalSince(now)
                guard wait >= 0 else { return }
                let delay = Duration.milliseconds(Int64(wait * 1000) + 100)
                lookAgainAfter = min(lookAgainAfter ?? delay, delay)
            }
            if PodController.backoffLimitPerIndex(of: object) != nil {
                // Each index backs off on its own, whatever else runs.
                let failed = PodController.failedIndexes(counts, of: object)
                for index in counts.failuresByIndex.keys where !failed.contains(index) && !counts.activeIndexes.contains(index) {
                    if !suspended, let retry = PodController.indexRetry(index, counts) { lookAgain(at: retry) }
                }
            } else if !suspended, counts.active.isEmpty, counts.failed > 0, let last = counts.lastFailure {
                lookAgain(at: last.addingTimeInterval(PodController.retryDelay(afterFailures: counts.failed)))
            }
            if let deadline = PodController.deadline(of: current) { lookAgain(at: deadline) }
        }
    }

    /// A Pod, scheduled at once: Pending with its containers being created, then Running with
    /// every container ready after the delay. One marked failing runs with its first container
    /// in CrashLoopBackOff and never becomes ready. A Pod that `completes` (a Job's) is Succeeded
    /// after the delay instead, or Failed when marked failing. A status already showing that
    /// state is kept as it is, times included, so the Pod settles.
    mutating func pod(hostIP: String, podIP: String, now: String, completes: Bool = false) {
        let done = elapsed >= readyAfter
        let containers = object.value(at: "spec", "containers")?.arrayElements ?? []
        // A container that is never pulled never runs, so a Job's Pod with one never completes.
        let unpullable = containers.contains { Self.cannotPull($0["image"]?.stringValue ?? "") }
        if completes, failing || done, !unpullable {
            completedPod(hostIP: hostIP, podIP: podIP, now: now, succeeded: !failing)
            return
        }
        // Pulled once the delay has passed; an image that cannot be pulled then backs off for good.
        let pullFailed = done && containers.contains { Self.cannotPull($0["image"]?.stringValue ?? "") }
        let ready = !failing && done && !pullFailed
        if !failing, !done { lookAgainAfter = readyAfter - elapsed }
        let phase = (failing || done) && !pullFailed ? "Running" : "Pending"
        let shownReady = (status["conditions"]?.arrayElements ?? []).contains {
            $0["type"] == "Ready" && $0["status"]?.stringValue == (ready ? "True" : "False")
        }
        let shownPullFailure =
            status["containerStatuses"]?.arrayElements.contains { $0["state"]?["waiting"]?["reason"] == "ImagePullBackOff" } == true
        let ephemeral = object.value(at: "spec", "ephemeralContainers")?.arrayElements ?? []
        let ephemeralShown =
            (status["ephemeralContainerStatuses"]?.arrayElements ?? []).compactMap { $0["name"]?.stringValue }
            == ephemeral.compactMap { $0["name"]?.stringValue }
        guard status["phase"]?.stringValue != phase || !shownReady || shownPullFailure != pullFailed || !ephemeralShown else { return }
        let namespaceAndName = "\(object.namespace ?? "default").\(object.name ?? "")"
        let statuses = containers.enumerated().map { index, container -> JSONValue in
            let name = container["name"]?.stringValue ?? ""
            let image = container["image"]?.stringValue ?? ""
            let unpulled = done && Self.cannotPull(image)
            let crashing = failing && index == 0 && !unpulled
            let running = (failing || done) && !unpulled && !crashing
            let state: JSONValue =
                unpulled
                ? ["waiting": ["reason": "ImagePullBackOff", "message": .string("Back-off pulling image \"\(image)\"")]]
                : crashing
                    ? ["waiting": ["reason": "CrashLoopBackOff", "message": .string("back-off 10s restarting failed container=\(name) (simulated)")]]
                    : running ? ["running": ["startedAt": .string(now)]] : ["waiting": ["reason": "ContainerCreating"]]
            var containerStatus: JSONValue = [
                "name": .string(name), "image": .string(image), "ready": .bool(running && !failing), "started": .bool(running),
                "restartCount": .integer(crashing ? 1 : 0), "state": state,
            ]
            if !unpulled {
                containerStatus[member: "imageID"] = .string("sim://\(image)")
                containerStatus[member: "containerID"] = .string("sim://\(namespaceAndName).\(name)")
            }
            return containerStatus
        }
        func condition(_ type: String, _ holds: Bool) -> JSONValue {
            ["type": .string(type), "status": holds ? "True" : "False", "lastTransitionTime": .string(now)]
        }
        let ephemeralStatuses = ephemeralContainerStatuses(ephemeral, running: phase == "Running", now: now, namespaceAndName: namespaceAndName)
        let requests = containers.contains { $0["resources"]?.objectMembers.isEmpty == false }
        // Conditions others own (the scheduler's `DisruptionTarget`, readiness gates) stay, as a kubelet merges its own.
        let kubeletOwned: Set<String> = ["PodScheduled", "Initialized", "ContainersReady", "Ready"]
        let othersConditions = (status["conditions"]?.arrayElements ?? []).filter { !kubeletOwned.contains($0["type"]?.stringValue ?? "") }
        status = [
            "phase": .string(phase), "hostIP": .string(hostIP), "hostIPs": [["ip": .string(hostIP)]], "podIP": .string(podIP),
            "podIPs": [["ip": .string(podIP)]], "startTime": status["startTime"] ?? .string(now),
            "qosClass": .string(requests ? "Burstable" : "BestEffort"), "containerStatuses": .array(statuses),
            "conditions": .array(
                [
                    condition("PodScheduled", true), condition("Initialized", true), condition("ContainersReady", ready),
                    condition("Ready", ready),
                ] + othersConditions),
        ]
        if !ephemeralStatuses.isEmpty { status[member: "ephemeralContainerStatuses"] = .array(ephemeralStatuses) }
    }

    /// `kubectl debug`'s containers: running as soon as the Pod runs (never ready, as in
    /// Kubernetes), each keeping the time it started.
    private func ephemeralContainerStatuses(_ containers: [JSONValue], running: Bool, now: String, namespaceAndName: String) -> [JSONValue] {
        let shown = status["ephemeralContainerStatuses"]?.arrayElements ?? []
        return containers.map { container in
            let name = container["name"]?.stringValue ?? ""
            let image = container["image"]?.stringValue ?? ""
            let startedAt = shown.first { $0["name"]?.stringValue == name }?.value(at: "state", "running", "startedAt") ?? .string(now)
            let unpulled = Self.cannotPull(image)
            let state: JSONValue =
                unpulled
                ? ["waiting": ["reason": "ImagePullBackOff", "message": .string("Back-off pulling image \"\(image)\"")]]
                : running ? ["running": ["startedAt": startedAt]] : ["waiting": ["reason": "ContainerCreating"]]
            var containerStatus: JSONValue = [
                "name": .string(name), "image": .string(image), "ready": false, "restartCount": 0, "state": state,
            ]
            if !unpulled {
                containerStatus[member: "imageID"] = .string("sim://\(image)")
                containerStatus[member: "containerID"] = .string("sim://\(namespaceAndName).\(name)")
            }
            return containerStatus
        }
    }

    /// Whether the simulated kubelet fails to pull `image`: one from a registry under `.invalid`,
    /// a name RFC 2606 reserves so that no real image can have it (`registry.invalid/web:2`).
    static func cannotPull(_ image: String) -> Bool {
        guard let slash = image.firstIndex(of: "/") else { return false }
        let host = image[..<slash].split(separator: ":").first.map(String.init) ?? ""
        return host.lowercased().hasSuffix(".invalid")
    }

    /// A Pod whose containers ran to their end: exit 0 (`Completed`) or 1 (`Error`), not ready.
    private mutating func completedPod(hostIP: String, podIP: String, now: String, succeeded: Bool) {
        let phase = succeeded ? "Succeeded" : "Failed"
        guard status["phase"]?.stringValue != phase else { return }
        let containers = object.value(at: "spec", "containers")?.arrayElements ?? []
        let namespaceAndName = "\(object.namespace ?? "default").\(object.name ?? "")"
        let statuses = containers.map { container -> JSONValue in
            let name = container["name"]?.stringValue ?? ""
            let image = container["image"]?.stringValue ?? ""
            return [
                "name": .string(name), "image": .string(image), "imageID": .string("sim://\(image)"),
                "containerID": .string("sim://\(namespaceAndName).\(name)"), "ready": false, "started": false, "restartCount": 0,
                "state": [
                    "terminated": [
                        "exitCode": .integer(succeeded ? 0 : 1), "reason": .string(succeeded ? "Completed" : "Error"),
                        "startedAt": status["startTime"] ?? .string(now), "finishedAt": .string(now),
                    ]
                ],
            ]
        }
        func condition(_ type: String, _ holds: Bool, reason: String? = nil) -> JSONValue {
            var condition: JSONValue = ["type": .string(type), "status": holds ? "True" : "False", "lastTransitionTime": .string(now)]
            if let reason { condition[member: "reason"] = .string(reason) }
            return condition
        }
        status = [
            "phase": .string(phase), "hostIP": .string(hostIP), "hostIPs": [["ip": .string(hostIP)]], "podIP": .string(podIP),
            "podIPs": [["ip": .string(podIP)]], "startTime": status["startTime"] ?? .string(now),
            "qosClass": .string(containers.contains { $0["resources"]?.objectMembers.isEmpty == false } ? "Burstable" : "BestEffort"),
            "containerStatuses": .array(statuses),
            "conditions": [
                condition("PodScheduled", true), condition("Initialized", true), condition("ContainersReady", false, reason: "PodCompleted"),
                condition("Ready", false, reason: "PodCompleted"),
            ],
        ]
    }

    /// A namespace being deleted is `Terminating` until the API server's controller lets it go.
    mutating func namespace() {
        status[member: "phase"] = object.deletionTimestamp == nil ? "Active" : "Terminating"
    }

    /// The persistent volume controller's phase for a volume made by hand: `Available` until a
    /// claim is bound to it (`spec.claimRef`), then `Bound`. No claim binds here: members bind
    /// none of their own (docs/simulation.md).
    mutating func loadBalancer(ip: String) {
        status[member: "loadBalancer"] = ["ingress": [["ip": .string(ip)]]]
    }

    static func loadBalancerIP(of object: JSONValue) -> String? {
        guard case .array(let ingress)? = object["status"]?["loadBalancer"]?["ingress"] else { return nil }
        return ingress.first?["ip"]?.stringValue
    }

    func failureCondition(type: String) -> JSONValue {
        [
            "type": .string(type), "status": .string(type == "Progressing" ? "False" : "True"), "reason": "SimulatedFailure",
            "message": .string("simulated failure: the object carries \(WorkloadSimulator.failAnnotation)=\"true\"; it never becomes ready"),
        ]
    }
}
