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
    private(set) var status: JSONValue
    /// When the status will next change by itself; nil when it is settled.
    private(set) var lookAgainAfter: Duration?

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

    private var generation: Int64 { object.generation ?? 1 }
    private func spec(_ key: String) -> Int64? { object["spec"]?[key]?.integerValue }
    private func current(_ key: String) -> Int64 { status[key]?.integerValue ?? 0 }

    /// A ReplicaSet's status as its controller counts it, from its Pods (`pods`, those it holds
    /// now, not being deleted): how many exist and how many are Running and Ready. So a Pod that
    /// waits for a node, or crash-loops, is not counted ready.
    mutating func replicaSet(pods: [JSONValue]) {
        let ready = pods.filter { $0.string(at: "status", "phase") == "Running" && EndpointsController.isReady($0) }.count
        status[member: "observedGeneration"] = .integer(generation)
        status[member: "replicas"] = .integer(Int64(pods.count))
        status[member: "fullyLabeledReplicas"] = .integer(Int64(pods.count))
        status[member: "readyReplicas"] = .integer(Int64(ready))
        status[member: "availableReplicas"] = .integer(Int64(ready))
        status[member: "conditions"] = failing ? .array([failureCondition(type: "ReplicaFailure")]) : nil
    }

    /// A Deployment's status as its controller sums it from its ReplicaSets' (`newest` holding
    /// the current template): all their Pods, the newest's as updated, and the available ones
    /// against the desired count. So `kubectl rollout status` waits on the Pods themselves.
    mutating func deployment(replicaSets: [JSONValue], newest: String?) {
        let desired = spec("replicas") ?? 1
        func sum(_ key: String) -> Int64 { replicaSets.reduce(0) { $0 + ($1.integer(at: "status", key) ?? 0) } }
        let available = sum("availableReplicas")
        let updated = replicaSets.first { $0.name == newest }?.integer(at: "status", "replicas") ?? 0
        let complete = !failing && updated == desired && sum("replicas") == desired && available >= desired
        status[member: "observedGeneration"] = .integer(generation)
        status[member: "replicas"] = .integer(sum("replicas"))
        status[member: "updatedReplicas"] = .integer(updated)
        status[member: "readyReplicas"] = .integer(sum("readyReplicas"))
        status[member: "availableReplicas"] = .integer(available)
        status[member: "unavailableReplicas"] = .integer(max(0, desired - available))
        status[member: "conditions"] = .array(
            deploymentConditions(available: available >= desired - Self.maxUnavailable(of: object), complete: complete, newest: newest ?? ""))
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

    /// A StatefulSet's status as its controller counts it, from its Pods (`pods`, those it holds
    /// now): how many exist, are Ready, run the template of `updateRevision` (`NAME-HASH`) and of
    /// the revision they are rolling from, which becomes `updateRevision` once every Pod runs it.
    /// So `kubectl rollout status statefulset` waits for the Pods themselves, one at a time.
    mutating func statefulSet(pods: [JSONValue], updateRevision: String) {
        let desired = spec("replicas") ?? 1
        func revision(_ pod: JSONValue) -> String? { pod.labels["controller-revision-hash"] }
        let ready = pods.filter { $0.string(at: "status", "phase") == "Running" && EndpointsController.isReady($0) }.count
        let updated = pods.filter { revision($0) == updateRevision }.count
        var currentRevision = status["currentRevision"]?.stringValue ?? updateRevision
        if updated == pods.count, Int64(pods.count) == desired { currentRevision = updateRevision }
        status[member: "observedGeneration"] = .integer(generation)
        status[member: "replicas"] = .integer(Int64(pods.count))
        status[member: "readyReplicas"] = .integer(Int64(ready))
        status[member: "availableReplicas"] = .integer(Int64(ready))
        status[member: "currentReplicas"] = .integer(Int64(pods.filter { revision($0) == currentRevision }.count))
        status[member: "updatedReplicas"] = .integer(Int64(updated))
        status[member: "currentRevision"] = .string(currentRevision)
        status[member: "updateRevision"] = .string(updateRevision)
        status[member: "collisionCount"] = 0
        status[member: "conditions"] = failing ? .array([failureCondition(type: "ReplicaFailure")]) : nil
    }

    mutating func daemonSet(nodes: Int) {
        let scheduled = Int64(nodes)
        let ready: Int64 = failing ? 0 : (elapsed >= readyAfter ? scheduled : current("numberReady"))
        if !failing, ready < scheduled { lookAgainAfter = readyAfter - elapsed }
        status[member: "observedGeneration"] = .integer(generation)
        status[member: "desiredNumberScheduled"] = .integer(scheduled)
        status[member: "currentNumberScheduled"] = .integer(scheduled)
        status[member: "numberMisscheduled"] = 0
        status[member: "numberReady"] = .integer(ready)
        status[member: "numberAvailable"] = .integer(ready)
        status[member: "updatedNumberScheduled"] = .integer(ready)
    }

    mutating func job() {
        let completions = spec("completions") ?? 1
        if status["startTime"] == nil { status[member: "startTime"] = .string(kubernetesTimestamp(Date())) }
        if failing {
            status[member: "active"] = 0
            status[member: "failed"] = 1
            status[member: "conditions"] = .array([failureCondition(type: "Failed")])
        } else if elapsed >= readyAfter {
            status[member: "active"] = 0
            status[member: "succeeded"] = .integer(completions)
            if status["completionTime"] == nil { status[member: "completionTime"] = .string(kubernetesTimestamp(Date())) }
            status[member: "conditions"] = .array([
                [
                    "type": "Complete", "status": "True", "reason": "CompletionsReached",
                    "message": "Reached expected number of succeeded pods (simulated)",
                ]
            ])
        } else {
            status[member: "active"] = .integer(spec("parallelism") ?? 1)
            lookAgainAfter = readyAfter - elapsed
        }
    }

    /// A Pod, scheduled at once: Pending with its containers being created, then Running with
    /// every container ready after the delay. One marked failing runs with its first container
    /// in CrashLoopBackOff and never becomes ready. A Pod that `completes` (a Job's) is Succeeded
    /// after the delay instead, or Failed when marked failing. A status already showing that
    /// state is kept as it is, times included, so the Pod settles.
    mutating func pod(hostIP: String, podIP: String, now: String, completes: Bool = false) {
        let done = elapsed >= readyAfter
        if completes, failing || done {
            completedPod(hostIP: hostIP, podIP: podIP, now: now, succeeded: !failing)
            return
        }
        let ready = !failing && done
        if !failing, !ready { lookAgainAfter = readyAfter - elapsed }
        let phase = failing || ready ? "Running" : "Pending"
        let shownReady = (status["conditions"]?.arrayElements ?? []).contains {
            $0["type"] == "Ready" && $0["status"]?.stringValue == (ready ? "True" : "False")
        }
        guard status["phase"]?.stringValue != phase || !shownReady else { return }
        let containers = object.value(at: "spec", "containers")?.arrayElements ?? []
        let namespaceAndName = "\(object.namespace ?? "default").\(object.name ?? "")"
        let statuses = containers.enumerated().map { index, container -> JSONValue in
            let name = container["name"]?.stringValue ?? ""
            let image = container["image"]?.stringValue ?? ""
            let crashing = failing && index == 0
            let state: JSONValue =
                crashing
                ? ["waiting": ["reason": "CrashLoopBackOff", "message": .string("back-off 10s restarting failed container=\(name) (simulated)")]]
                : phase == "Running" ? ["running": ["startedAt": .string(now)]] : ["waiting": ["reason": "ContainerCreating"]]
            return [
                "name": .string(name), "image": .string(image), "imageID": .string("sim://\(image)"),
                "containerID": .string("sim://\(namespaceAndName).\(name)"), "ready": .bool(phase == "Running" && !failing),
                "started": .bool(phase == "Running" && !crashing), "restartCount": .integer(crashing ? 1 : 0), "state": state,
            ]
        }
        func condition(_ type: String, _ holds: Bool) -> JSONValue {
            ["type": .string(type), "status": holds ? "True" : "False", "lastTransitionTime": .string(now)]
        }
        let requests = containers.contains { $0["resources"]?.objectMembers.isEmpty == false }
        status = [
            "phase": .string(phase), "hostIP": .string(hostIP), "hostIPs": [["ip": .string(hostIP)]], "podIP": .string(podIP),
            "podIPs": [["ip": .string(podIP)]], "startTime": status["startTime"] ?? .string(now),
            "qosClass": .string(requests ? "Burstable" : "BestEffort"), "containerStatuses": .array(statuses),
            "conditions": [
                condition("PodScheduled", true), condition("Initialized", true), condition("ContainersReady", ready),
                condition("Ready", ready),
            ],
        ]
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

    mutating func loadBalancer(ip: String) {
        status[member: "loadBalancer"] = ["ingress": [["ip": .string(ip)]]]
    }

    static func loadBalancerIP(of object: JSONValue) -> String? {
        guard case .array(let ingress)? = object["status"]?["loadBalancer"]?["ingress"] else { return nil }
        return ingress.first?["ip"]?.stringValue
    }

    private func deploymentConditions(available: Bool, complete: Bool, newest name: String) -> [JSONValue] {
        if failing {
            return [
                [
                    "type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                    "message": "Deployment does not have minimum availability.",
                ],
                failureCondition(type: "Progressing"),
            ]
        }
        return [
            [
                "type": "Available", "status": .string(available ? "True" : "False"),
                "reason": .string(available ? "MinimumReplicasAvailable" : "MinimumReplicasUnavailable"),
                "message": .string(available ? "Deployment has minimum availability." : "Deployment does not have minimum availability."),
            ],
            [
                "type": "Progressing", "status": "True",
                "reason": .string(complete ? "NewReplicaSetAvailable" : "ReplicaSetUpdated"),
                "message": .string(complete ? "ReplicaSet \"\(name)\" has successfully progressed." : "ReplicaSet \"\(name)\" is progressing."),
            ],
        ]
    }

    private func failureCondition(type: String) -> JSONValue {
        [
            "type": .string(type), "status": .string(type == "Progressing" ? "False" : "True"), "reason": "SimulatedFailure",
            "message": .string("simulated failure: the object carries \(WorkloadSimulator.failAnnotation)=\"true\"; it never becomes ready"),
        ]
    }
}
