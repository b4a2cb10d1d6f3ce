import Foundation
import Testing
import TetherJSON
import TetherModel

@testable import TetherSim

func workload(_ kind: String, replicas: Int64, generation: Int64 = 1, status: JSONValue? = nil) -> JSONValue {
    var object: JSONValue = [
        "apiVersion": "apps/v1", "kind": .string(kind), "metadata": ["name": "w", "generation": .integer(generation)],
        "spec": ["replicas": .integer(replicas)],
    ]
    // As the API defaults it.
    if kind == "Deployment" { object.set(600, at: ["spec", "progressDeadlineSeconds"]) }
    if let status { object[member: "status"] = status }
    return object
}

@Suite("Simulated status")
struct StatusPlanTests {
    let delay = Duration.seconds(3)

    static func pod(_ phase: String, ready: Bool) -> JSONValue {
        ["metadata": ["name": "p"], "status": ["phase": .string(phase), "conditions": [["type": "Ready", "status": ready ? "True" : "False"]]]]
    }

    @Test("a ReplicaSet counts its Pods: all that exist, and as ready only those Running and Ready")
    func replicaSet() {
        var plan = StatusPlan(object: workload("ReplicaSet", replicas: 4), elapsed: .seconds(1), readyAfter: delay, failing: false)
        plan.replicaSet(pods: [Self.pod("Running", ready: true), Self.pod("Running", ready: false), Self.pod("Pending", ready: false)], now: Date())
        #expect(plan.status["replicas"] == 3 && plan.status["readyReplicas"] == 1 && plan.status["availableReplicas"] == 1)
        #expect(plan.status["observedGeneration"] == 1 && plan.lookAgainAfter == nil, "its Pods' changes bring it back, not a timer")
    }

    @Test("a Deployment sums its ReplicaSets: the newest's Pods are the updated ones; it is complete only when all are new and available")
    func deployment() {
        let now = Date()
        func conditions(_ plan: StatusPlan) -> [String] {
            (plan.status["conditions"]?.arrayElements ?? []).map {
                "\($0["type"]?.stringValue ?? "")=\($0["status"]?.stringValue ?? "")/\($0["reason"]?.stringValue ?? "")"
            }
        }
        // Mid-rollout: 3 old available, 2 new of which 1 available; 3 of 4 available is within 25 % unavailable.
        var rolling = StatusPlan(object: workload("Deployment", replicas: 4), elapsed: .zero, readyAfter: delay, failing: false)
        rolling.deployment(
            replicaSets: [Self.replicaSet("w-old", replicas: 3, available: 3), Self.replicaSet("w-new", replicas: 2, available: 1)], newest: "w-new",
            now: now)
        #expect(rolling.status["replicas"] == 5 && rolling.status["updatedReplicas"] == 2 && rolling.status["availableReplicas"] == 4)
        #expect(rolling.status["unavailableReplicas"] == 0)
        #expect(
            conditions(rolling) == ["Available=True/MinimumReplicasAvailable", "Progressing=True/ReplicaSetUpdated"], "its first look is progress")
        var done = StatusPlan(object: workload("Deployment", replicas: 4), elapsed: .zero, readyAfter: delay, failing: false)
        done.deployment(
            replicaSets: [Self.replicaSet("w-old", replicas: 0, available: 0), Self.replicaSet("w-new", replicas: 4, available: 4)], newest: "w-new",
            now: now)
        #expect(conditions(done) == ["Available=True/MinimumReplicasAvailable", "Progressing=True/NewReplicaSetAvailable"])
        #expect(done.status["conditions"]?.arrayElements.last?["message"] == "ReplicaSet \"w-new\" has successfully progressed.")
        var short = StatusPlan(object: workload("Deployment", replicas: 4), elapsed: .zero, readyAfter: delay, failing: false)
        short.deployment(replicaSets: [Self.replicaSet("w-new", replicas: 4, available: 2)], newest: "w-new", now: now)
        #expect(short.status["unavailableReplicas"] == 2)
        #expect(conditions(short) == ["Available=False/MinimumReplicasUnavailable", "Progressing=True/ReplicaSetUpdated"])
    }

    static func replicaSet(_ name: String, replicas: Int64, available: Int64) -> JSONValue {
        [
            "metadata": ["name": .string(name)],
            "status": ["replicas": .integer(replicas), "readyReplicas": .integer(available), "availableReplicas": .integer(available)],
        ]
    }

    @Test(
        "a rollout with no progress for progressDeadlineSeconds has ProgressDeadlineExceeded; progress, a new ReplicaSet or a resume restarts its clock; a paused one is not timed"
    )
    func progressDeadline() {
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        var deployment = workload("Deployment", replicas: 2)
        deployment.set(10, at: ["spec", "progressDeadlineSeconds"])
        /// One step of the controller at `seconds` after the start; the Deployment then holds its result.
        func step(_ sets: [JSONValue], newest: String, at seconds: TimeInterval) -> StatusPlan {
            var plan = StatusPlan(object: deployment, elapsed: .zero, readyAfter: delay, failing: false)
            plan.deployment(replicaSets: sets, newest: newest, now: start.addingTimeInterval(seconds))
            deployment[member: "status"] = plan.status
            return plan
        }
        func progressing(_ plan: StatusPlan) -> [String] {
            let condition = plan.status["conditions"]?.arrayElements.first { $0["type"] == "Progressing" }
            return ["status", "reason", "message", "lastUpdateTime"].map { condition?[$0]?.stringValue ?? "-" }
        }
        func time(_ seconds: TimeInterval) -> String { kubernetesTimestamp(start.addingTimeInterval(seconds)) }
        let a2 = Self.replicaSet("w-a", replicas: 2, available: 2)
        #expect(progressing(step([a2], newest: "w-a", at: -100))[1] == "NewReplicaSetAvailable")

        // A new template whose Pods never become ready.
        let created = step([a2, Self.replicaSet("w-b", replicas: 0, available: 0)], newest: "w-b", at: 0)
        #expect(progressing(created) == ["True", "NewReplicaSetCreated", "Created new replica set \"w-b\"", time(0)])
        #expect(created.lookAgainAfter == .milliseconds(10_100), "looked at again when the deadline passes")
        let stuck = [a2, Self.replicaSet("w-b", replicas: 1, available: 0)]
        #expect(progressing(step(stuck, newest: "w-b", at: 1)) == ["True", "ReplicaSetUpdated", "ReplicaSet \"w-b\" is progressing.", time(1)])
        let waiting = step(stuck, newest: "w-b", at: 5)
        #expect(progressing(waiting)[3] == time(1) && waiting.lookAgainAfter == .milliseconds(6_100), "no progress: the clock runs on")
        let late = step(stuck, newest: "w-b", at: 12)
        #expect(progressing(late) == ["False", "ProgressDeadlineExceeded", "ReplicaSet \"w-b\" has timed out progressing.", time(12)])
        #expect(late.lookAgainAfter == nil)
        #expect(progressing(step(stuck, newest: "w-b", at: 60))[1] == "ProgressDeadlineExceeded", "it stays until something changes")

        // `rollout undo`: the old template's ReplicaSet is the newest again; its Pods are available.
        let undone = step([Self.replicaSet("w-b", replicas: 1, available: 0), a2], newest: "w-a", at: 70)
        #expect(progressing(undone) == ["True", "ReplicaSetUpdated", "ReplicaSet \"w-a\" is progressing.", time(70)])
        #expect(progressing(step([Self.replicaSet("w-b", replicas: 0, available: 0), a2], newest: "w-a", at: 71))[1] == "NewReplicaSetAvailable")

        // Paused mid-rollout, then resumed: the deadline counts from the resume.
        let stalled = [a2, Self.replicaSet("w-c", replicas: 1, available: 0)]
        _ = step(stalled, newest: "w-c", at: 100)
        deployment.set(true, at: ["spec", "paused"])
        #expect(progressing(step(stalled, newest: "w-c", at: 101))[0...1] == ["Unknown", "DeploymentPaused"])
        #expect(progressing(step(stalled, newest: "w-c", at: 500))[0...1] == ["Unknown", "DeploymentPaused"], "not timed while paused")
        deployment.set(false, at: ["spec", "paused"])
        let resumed = step(stalled, newest: "w-c", at: 600)
        #expect(progressing(resumed) == ["Unknown", "DeploymentResumed", "Deployment is resumed", time(600)])
        #expect(progressing(step(stalled, newest: "w-c", at: 611))[1] == "ProgressDeadlineExceeded")

        // No deadline (the maximum): no Progressing condition at all.
        deployment.set(.integer(Int64(Int32.max)), at: ["spec", "progressDeadlineSeconds"])
        #expect(progressing(step(stalled, newest: "w-c", at: 700)) == ["-", "-", "-", "-"])
    }

    @Test("a ReplicaSet and a StatefulSet count a Pod available only once it has been Ready for minReadySeconds, and look again then")
    func minReadySeconds() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        func pod(readyFor seconds: TimeInterval) -> JSONValue {
            [
                "metadata": ["name": "p"],
                "status": [
                    "phase": "Running",
                    "conditions": [
                        ["type": "Ready", "status": "True", "lastTransitionTime": .string(kubernetesTimestamp(now.addingTimeInterval(-seconds)))]
                    ],
                ],
            ]
        }
        var set = workload("ReplicaSet", replicas: 3)
        set.set(5, at: ["spec", "minReadySeconds"])
        var plan = StatusPlan(object: set, elapsed: .zero, readyAfter: delay, failing: false)
        plan.replicaSet(pods: [pod(readyFor: 9), pod(readyFor: 2), pod(readyFor: 4)], now: now)
        #expect(plan.status["readyReplicas"] == 3 && plan.status["availableReplicas"] == 1)
        #expect(plan.lookAgainAfter == .milliseconds(1_100), "when the next Pod's minimum has passed")
        var statefulSet = workload("StatefulSet", replicas: 3)
        statefulSet.set(5, at: ["spec", "minReadySeconds"])
        var counted = StatusPlan(object: statefulSet, elapsed: .zero, readyAfter: delay, failing: false)
        counted.statefulSet(pods: [pod(readyFor: 9), pod(readyFor: 2)], updateRevision: "w-1", now: now)
        #expect(counted.status["readyReplicas"] == 2 && counted.status["availableReplicas"] == 1 && counted.lookAgainAfter == .milliseconds(3_100))
        var immediate = StatusPlan(object: workload("ReplicaSet", replicas: 3), elapsed: .zero, readyAfter: delay, failing: false)
        immediate.replicaSet(pods: [pod(readyFor: 0)], now: now)
        #expect(immediate.status["availableReplicas"] == 1 && immediate.lookAgainAfter == nil)
    }

    @Test(
        "a Deployment scaled mid-rollout spreads the change over its ReplicaSets in proportion to their sizes, as the Kubernetes documentation's example"
    )
    func proportionalScaling() {
        // 10 replicas, maxSurge 3, stuck mid-rollout with 8 old and 5 new; scaled to 15: 3 more old, 2 more new.
        #expect(StatusPlan.proportionallyScaled(sizes: [8, 5], maxReplicas: [13, 13], desired: 15, maxSurge: 3, current: 13) == [11, 7])
        // Back down to 5 (8 allowed with the surge): 3 fewer old, 2 fewer new.
        #expect(StatusPlan.proportionallyScaled(sizes: [8, 5], maxReplicas: [13, 13], desired: 5, maxSurge: 3, current: 13) == [5, 3])
        // Of two equal ones the newer grows first (2.5 rounds up to 3); a ReplicaSet with no Pods stays empty.
        #expect(StatusPlan.proportionallyScaled(sizes: [0, 2, 2], maxReplicas: [nil, 4, 4], desired: 5, maxSurge: 0, current: 4) == [0, 2, 3])
        // No annotation: the Deployment's current count stands in.
        #expect(StatusPlan.proportionallyScaled(sizes: [6, 6], maxReplicas: [nil, nil], desired: 24, maxSurge: 0, current: 12) == [12, 12])
        #expect(
            StatusPlan.proportionallyScaled(sizes: [8, 5], maxReplicas: [13, 13], desired: 10, maxSurge: 3, current: 13) == [8, 5], "no change")
        // Rounding leaves one over (3 × 10 / 9 rounds to 3 for each): the first in order, the newest, takes it.
        #expect(StatusPlan.proportionallyScaled(sizes: [3, 3, 3], maxReplicas: [9, 9, 9], desired: 10, maxSurge: 0, current: 9) == [3, 3, 4])
    }

    @Test("rolling-update bounds resolve as the Deployment controller resolves them")
    func rollingBounds() {
        func bounds(_ replicas: Int64, _ strategy: JSONValue?) -> [Int64] {
            var deployment = workload("Deployment", replicas: replicas)
            if let strategy { deployment.set(strategy, at: ["spec", "strategy"]) }
            let (surge, unavailable) = StatusPlan.rollingBounds(of: deployment)
            return [surge, unavailable]
        }
        #expect(bounds(10, nil) == [3, 2], "25 % each: surge rounded up, unavailable down")
        #expect(bounds(1, nil) == [1, 0])
        #expect(bounds(6, ["type": "RollingUpdate", "rollingUpdate": ["maxSurge": 0, "maxUnavailable": "50%"]]) == [0, 3])
        #expect(bounds(6, ["type": "RollingUpdate", "rollingUpdate": ["maxSurge": 0, "maxUnavailable": 0]]) == [0, 1])
        #expect(bounds(6, ["type": "Recreate"]) == [0, 6])
    }

    @Test("a failing workload never becomes ready, whatever the time, and says why")
    func failing() {
        var plan = StatusPlan(object: workload("Deployment", replicas: 3), elapsed: .seconds(3600), readyAfter: delay, failing: true)
        plan.deployment(replicaSets: [], newest: nil, now: Date())
        #expect(plan.status["readyReplicas"] == 0)
        #expect(plan.lookAgainAfter == nil)
        guard case .array(let conditions)? = plan.status["conditions"] else {
            Issue.record("no conditions")
            return
        }
        #expect(conditions.contains { $0["message"]?.stringValue?.contains("sim.tether.io/fail") == true })
    }

    @Test("a DaemonSet counts its Pods node by node: scheduled, updated, ready, available, misscheduled")
    func daemonSet() {
        func pod(on node: String, revision: String, ready: Bool) -> JSONValue {
            [
                "metadata": ["name": .string("a-\(node)"), "labels": ["controller-revision-hash": .string(revision)]],
                "spec": ["nodeName": .string(node)],
                "status": ["phase": ready ? "Running" : "Pending", "conditions": [["type": "Ready", "status": ready ? "True" : "False"]]],
            ]
        }
        var daemonSet = StatusPlan(object: workload("DaemonSet", replicas: 0), elapsed: .seconds(5), readyAfter: delay, failing: false)
        let pods = [
            pod(on: "n1", revision: "a-new", ready: true), pod(on: "n2", revision: "a-old", ready: true),
            pod(on: "n3", revision: "a-new", ready: false), pod(on: "gone", revision: "a-old", ready: true),
        ]
        daemonSet.daemonSet(pods: pods, nodes: ["n1", "n2", "n3", "n4"], revision: "a-new", now: Date())
        let counts = [
            "desiredNumberScheduled", "currentNumberScheduled", "updatedNumberScheduled", "numberReady", "numberAvailable", "numberUnavailable",
            "numberMisscheduled",
        ]
        .map { daemonSet.status[$0]?.integerValue ?? -1 }
        #expect(counts == [4, 3, 2, 2, 2, 2, 1], "\(counts)")
        #expect(counts.count == 7)

    }

    @Test(
        "a Job counts its Pods: up to parallelism running until completions succeed; a failed Pod replaced after 10 s, 20 s, 40 s...; failed beyond backoffLimit, its running Pods deleted"
    )
    func job() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        func pod(_ phase: String, finishedAgo seconds: TimeInterval = 0) -> JSONValue {
            var pod: JSONValue = ["metadata": ["name": .string("j-\(phase)")], "status": ["phase": .string(phase)]]
            if phase == "Running" { pod.set([["type": "Ready", "status": "True"]], at: ["status", "conditions"]) }
            if phase == "Failed" || phase == "Succeeded" {
                let finished = JSONValue.string(kubernetesTimestamp(now.addingTimeInterval(-seconds)))
                pod.set([["name": "a", "state": ["terminated": ["finishedAt": finished]]]], at: ["status", "containerStatuses"])
            }
            return pod
        }
        var job: JSONValue = ["kind": "Job", "metadata": ["name": "j"], "spec": ["completions": 3, "parallelism": 2, "backoffLimit": 1]]
        func step(_ pods: [JSONValue]) -> (make: Int, delete: Int, status: JSONValue, lookAgain: Duration?) {
            let (make, delete) = PodController.jobStep(job, owned: pods, now: now)
            var plan = StatusPlan(object: job, elapsed: .zero, readyAfter: delay, failing: false)
            plan.job(pods: pods, now: now)
            return (make.count, delete.count, plan.status, plan.lookAgainAfter)
        }
        #expect(step([]).make == 2, "parallelism 2")
        let running = step([pod("Succeeded"), pod("Running")])
        #expect(running.make == 1 && running.status["active"] == 1 && running.status["ready"] == 1 && running.status["succeeded"] == 1)
        #expect(step([pod("Succeeded"), pod("Succeeded"), pod("Running")]).make == 0, "one more to go, and it runs")
        let complete = step([pod("Succeeded"), pod("Succeeded"), pod("Succeeded")])
        #expect(complete.status["conditions"]?.arrayElements.map { $0["type"]?.stringValue ?? "" } == ["SuccessCriteriaMet", "Complete"])
        // A failure 4 s ago: the replacement waits 10 s, and the status looks again then.
        let waiting = step([pod("Failed", finishedAgo: 4)])
        #expect(waiting.make == 0 && waiting.lookAgain == .milliseconds(6_100) && waiting.status["failed"] == 1)
        #expect(step([pod("Failed", finishedAgo: 11)]).make == 2, "back-off over")
        // A second failure is more than backoffLimit 1: the Job fails and its running Pod goes.
        let failed = step([pod("Failed", finishedAgo: 30), pod("Failed"), pod("Running")])
        #expect(failed.make == 0 && failed.delete == 1)
        #expect(failed.status["conditions"]?.arrayElements.last?["reason"] == "BackoffLimitExceeded")
        #expect(PodController.retryDelay(afterFailures: 3) == 40 && PodController.retryDelay(afterFailures: 10) == 360)
        job.set([["type": "Complete", "status": "True"]], at: ["status", "conditions"])
        #expect(step([pod("Succeeded")]).make == 0, "a finished Job makes nothing more")
    }

    @Test(
        "an Indexed Job makes the lowest open indexes up to parallelism, retries a failed index, counts each index once and writes completedIndexes as ranges"
    )
    func indexedJob() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        func pod(_ index: Int, _ phase: String) -> JSONValue {
            var pod: JSONValue = [
                "metadata": [
                    "name": .string("j-\(index)-x"), "annotations": [.init(stringLiteral: PodController.completionIndexKey): .string("\(index)")],
                ],
                "status": ["phase": .string(phase)],
            ]
            if phase == "Failed" {
                let finished = JSONValue.string(kubernetesTimestamp(now.addingTimeInterval(-60)))
                pod.set([["name": "a", "state": ["terminated": ["finishedAt": finished]]]], at: ["status", "containerStatuses"])
            }
            return pod
        }
        let job: JSONValue = ["kind": "Job", "metadata": ["name": "j"], "spec": ["completions": 5, "parallelism": 2, "completionMode": "Indexed"]]
        func step(_ pods: [JSONValue]) -> (indexes: [Int], status: JSONValue) {
            let made = PodController.jobStep(job, owned: pods, now: now).make.compactMap(\.index)
            var plan = StatusPlan(object: job, elapsed: .zero, readyAfter: delay, failing: false)
            plan.job(pods: pods, now: now)
            return (made, plan.status)
        }
        #expect(step([]).indexes == [0, 1])
        // 0 succeeded twice (counted once), 1 failed a minute ago and is open again, 2 runs: 1 is made next.
        let midway = step([pod(0, "Succeeded"), pod(0, "Succeeded"), pod(1, "Failed"), pod(2, "Running")])
        #expect(midway.indexes == [1])
        #expect(midway.status["succeeded"] == 1 && midway.status["completedIndexes"] == "0" && midway.status["failed"] == 1)
        let almost = step([pod(0, "Succeeded"), pod(1, "Succeeded"), pod(2, "Succeeded"), pod(4, "Succeeded")])
        #expect(almost.indexes == [3] && almost.status["completedIndexes"] == "0-2,4")
        let done = step((0..<5).map { pod($0, "Succeeded") })
        #expect(done.indexes.isEmpty && done.status["completedIndexes"] == "0-4")
        #expect(done.status["conditions"]?.arrayElements.last?["type"] == "Complete")
        #expect(PodController.indexRanges([1, 2, 5, 7, 8, 9]) == "1,2,5,7-9")

        var made: JSONValue = ["spec": ["containers": [["name": "a", "env": [["name": "X", "value": "1"]]]], "initContainers": [["name": "i"]]]]
        PodController.indexPod(&made, job: "train", index: 3)
        #expect(made.string(at: "spec", "hostname") == "train-3")
        let env = made.value(at: "spec", "containers")?.arrayElements.first?["env"]?.arrayElements.map { $0["name"]?.stringValue ?? "" }
        #expect(env == ["X", "JOB_COMPLETION_INDEX"])
        #expect(made.value(at: "spec", "initContainers")?.arrayElements.first?["env"]?.arrayElements.count == 1)
    }

    @Test(
        "a Job's podFailurePolicy: a FailJob rule on an exit code fails the Job at once with PodFailurePolicy; an Ignore rule keeps the failure out of the count and the back-off"
    )
    func podFailurePolicy() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        func failed(exitCode: Int64, conditions: JSONValue = []) -> JSONValue {
            [
                "metadata": ["name": "j-abcde", "namespace": "batch"],
                "status": [
                    "phase": "Failed", "conditions": conditions,
                    "containerStatuses": [
                        [
                            "name": "main",
                            "state": ["terminated": ["exitCode": .integer(exitCode), "finishedAt": .string(kubernetesTimestamp(now))]],
                        ],
                        ["name": "side", "state": ["terminated": ["exitCode": 0]]],
                    ],
                ],
            ]
        }
        let job: JSONValue = [
            "kind": "Job", "metadata": ["name": "j"],
            "spec": [
                "backoffLimit": 6,
                "podFailurePolicy": [
                    "rules": [
                        ["action": "FailJob", "onExitCodes": ["containerName": "main", "operator": "In", "values": [42]]],
                        ["action": "Ignore", "onPodConditions": [["type": "DisruptionTarget"]]],
                        ["action": "Ignore", "onExitCodes": ["operator": "NotIn", "values": [1, 42]]],
                    ]
                ],
            ],
        ]
        let fatal = PodController.failurePolicyMatch(of: failed(exitCode: 42), in: job)
        #expect(fatal == .failJob("Container main for pod batch/j-abcde failed with exit code 42 matching FailJob rule at index 0"))
        #expect(PodController.failurePolicyMatch(of: failed(exitCode: 1), in: job) == nil, "no rule: counted as usual")
        #expect(PodController.failurePolicyMatch(of: failed(exitCode: 3), in: job) == .ignore, "NotIn [1, 42]")
        let evicted = failed(exitCode: 1, conditions: [["type": "DisruptionTarget", "status": "True"]])
        #expect(PodController.failurePolicyMatch(of: evicted, in: job) == .ignore)

        let step = PodController.jobStep(job, owned: [failed(exitCode: 42)], now: now)
        #expect(step.make.isEmpty, "a FailJob match ends the Job without a retry")
        var plan = StatusPlan(object: job, elapsed: .zero, readyAfter: delay, failing: false)
        plan.job(pods: [failed(exitCode: 42)], now: now)
        let condition = plan.status["conditions"]?.arrayElements.last
        #expect(condition?["type"] == "Failed" && condition?["reason"] == "PodFailurePolicy")

        // Ignored failures: not in `failed`, no back-off, the replacement made at once.
        let ignored = [failed(exitCode: 3), evicted]
        #expect(PodController.jobStep(job, owned: ignored, now: now).make.count == 1)
        plan = StatusPlan(object: job, elapsed: .zero, readyAfter: delay, failing: false)
        plan.job(pods: ignored, now: now)
        #expect(plan.status["failed"] == 0 && plan.status["conditions"] == nil)
    }

    @Test(
        "a Job active longer than activeDeadlineSeconds fails with DeadlineExceeded and its running Pods go; until then the status looks again at the deadline"
    )
    func jobDeadline() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let running: JSONValue = ["metadata": ["name": "j-1"], "status": ["phase": "Running"]]
        func job(startedAgo seconds: TimeInterval) -> JSONValue {
            [
                "kind": "Job", "metadata": ["name": "j"], "spec": ["completions": 2, "activeDeadlineSeconds": 30],
                "status": ["startTime": .string(kubernetesTimestamp(now.addingTimeInterval(-seconds)))],
            ]
        }
        let young = job(startedAgo: 20)
        #expect(PodController.jobStep(young, owned: [running], now: now).delete.isEmpty)
        var plan = StatusPlan(object: young, elapsed: .zero, readyAfter: delay, failing: false)
        plan.job(pods: [running], now: now)
        #expect(plan.lookAgainAfter == .milliseconds(10_100), "at the deadline, 10 s from now")
        #expect(plan.status["conditions"] == nil)

        let old = job(startedAgo: 31)
        let step = PodController.jobStep(old, owned: [running], now: now)
        #expect(step.make.isEmpty && step.delete.count == 1, "its running Pod goes")
        plan = StatusPlan(object: old, elapsed: .zero, readyAfter: delay, failing: false)
        plan.job(pods: [], now: now)
        let failed = plan.status["conditions"]?.arrayElements.last
        #expect(failed?["type"] == "Failed" && failed?["reason"] == "DeadlineExceeded")
        #expect(failed?["message"] == "Job was active longer than specified deadline")
    }

    @Test("a finished Job expires ttlSecondsAfterFinished after its completion time or its failure; a running one, or one without a TTL, never")
    func jobExpiry() {
        let job: JSONValue = [
            "kind": "Job", "spec": ["ttlSecondsAfterFinished": 30],
            "status": ["completionTime": "2026-12-04T00:00:00Z"],
        ]
        #expect(PodController.expiry(of: job) == Date(timeIntervalSince1970: 1_796_342_430))
        var failed = job
        failed.set(nil, at: ["status", "completionTime"])
        failed.set([["type": "Failed", "status": "True", "lastTransitionTime": "2026-12-04T00:01:00Z"]], at: ["status", "conditions"])
        #expect(PodController.expiry(of: failed) == Date(timeIntervalSince1970: 1_796_342_490))
        var running = job
        running[member: "status"] = ["active": 1]
        #expect(PodController.expiry(of: running) == nil)
        var kept = job
        kept[member: "spec"] = [:]
        #expect(PodController.expiry(of: kept) == nil)
    }

    @Test("a suspended Job deletes its running Pods and makes none, says Suspended and stops its deadline; resumed, its startTime starts again")
    func jobSuspended() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let running: JSONValue = ["metadata": ["name": "j-1"], "status": ["phase": "Running"]]
        let started = JSONValue.string(kubernetesTimestamp(now.addingTimeInterval(-100)))
        var job: JSONValue = [
            "kind": "Job", "metadata": ["name": "j"], "spec": ["completions": 2, "suspend": true, "activeDeadlineSeconds": 60],
            "status": ["startTime": started],
        ]
        let step = PodController.jobStep(job, owned: [running], now: now)
        #expect(step.make.isEmpty && step.delete.count == 1)
        var plan = StatusPlan(object: job, elapsed: .zero, readyAfter: delay, failing: false)
        plan.job(pods: [], now: now)
        var suspended = plan.status["conditions"]?.arrayElements.first
        #expect(suspended?["type"] == "Suspended" && suspended?["status"] == "True" && suspended?["reason"] == "JobSuspended")
        #expect(plan.lookAgainAfter == nil, "no deadline while suspended, though the start was 100 s ago")
        #expect(plan.status["active"] == 0)

        // Resumed: the Pods are made again, the condition turns False, and the deadline counts from now.
        job[member: "status"] = plan.status
        job.set(false, at: ["spec", "suspend"])
        #expect(PodController.jobStep(job, owned: [], now: now).make.count == 1)
        plan = StatusPlan(object: job, elapsed: .zero, readyAfter: delay, failing: false)
        plan.job(pods: [running], now: now)
        suspended = plan.status["conditions"]?.arrayElements.first
        #expect(suspended?["status"] == "False" && suspended?["reason"] == "JobResumed")
        #expect(plan.status["startTime"] == .string(kubernetesTimestamp(now)))
        #expect(plan.lookAgainAfter == .milliseconds(60_100))

        // A Job made suspended has not started.
        var fresh: JSONValue = ["kind": "Job", "metadata": ["name": "k"], "spec": ["suspend": true]]
        plan = StatusPlan(object: fresh, elapsed: .zero, readyAfter: delay, failing: false)
        plan.job(pods: [], now: now)
        #expect(plan.status["startTime"] == nil)
        fresh.set(nil, at: ["spec", "suspend"])
        #expect(PodController.jobStep(fresh, owned: [], now: now).make.count == 1)
    }

    @Test(
        "a Pod is Pending with its containers being created, then Running and Ready; a settled status is kept, times included; a failing one crash-loops"
    )
    func pod() {
        let pod: JSONValue = [
            "apiVersion": "v1", "kind": "Pod", "metadata": ["name": "web", "namespace": "default"],
            "spec": ["nodeName": "c-node-1", "containers": [["name": "nginx", "image": "nginx:1.27"], ["name": "side", "image": "busybox"]]],
        ]
        func plan(_ object: JSONValue, elapsed: Duration, failing: Bool = false, now: String) -> StatusPlan {
            var plan = StatusPlan(object: object, elapsed: elapsed, readyAfter: delay, failing: failing)
            plan.pod(hostIP: "172.18.0.11", podIP: "10.244.0.2", now: now)
            return plan
        }
        let early = plan(pod, elapsed: .seconds(1), now: "2026-12-03T02:00:00Z")
        #expect(early.status["phase"] == "Pending" && early.lookAgainAfter == .seconds(2))
        #expect(
            early.status["containerStatuses"]?.arrayElements.map { $0["state"]?["waiting"]?["reason"] } == ["ContainerCreating", "ContainerCreating"])

        var pending = pod
        pending[member: "status"] = early.status
        let late = plan(pending, elapsed: .seconds(3), now: "2026-12-03T02:00:03Z")
        #expect(late.status["phase"] == "Running" && late.status["podIP"] == "10.244.0.2" && late.lookAgainAfter == nil)
        #expect(late.status["startTime"] == "2026-12-03T02:00:00Z", "the start time is the first one written")
        #expect(late.status["containerStatuses"]?.arrayElements.allSatisfy { $0["ready"] == .bool(true) } == true)
        #expect(late.status["conditions"]?.arrayElements.contains { $0["type"] == "Ready" && $0["status"] == "True" } == true)

        var running = pod
        running[member: "status"] = late.status
        #expect(plan(running, elapsed: .seconds(9), now: "2026-12-03T02:00:09Z").status == late.status, "a settled Pod is not rewritten")

        let failing = plan(pod, elapsed: .seconds(9), failing: true, now: "2026-12-03T02:00:09Z")
        let first = failing.status["containerStatuses"]?.arrayElements.first
        #expect(failing.status["phase"] == "Running" && first?["state"]?["waiting"]?["reason"] == "CrashLoopBackOff" && first?["restartCount"] == 1)
        #expect(failing.status["conditions"]?.arrayElements.contains { $0["type"] == "Ready" && $0["status"] == "False" } == true)

        // An image from a `.invalid` registry: created, then backing off pulling, Pending and never ready.
        var unpullable = pod
        unpullable.set([["name": "nginx", "image": "registry.invalid/web:2"], ["name": "side", "image": "busybox"]], at: ["spec", "containers"])
        #expect(
            StatusPlan.cannotPull("registry.invalid:5000/web:2") && !StatusPlan.cannotPull("nginx:invalid") && !StatusPlan.cannotPull("invalid/web"))
        let creating = plan(unpullable, elapsed: .seconds(1), now: "2026-12-03T02:00:00Z")
        unpullable[member: "status"] = creating.status
        let backingOff = plan(unpullable, elapsed: .seconds(3), now: "2026-12-03T02:00:03Z")
        let states = backingOff.status["containerStatuses"]?.arrayElements.map { $0["state"]?["waiting"]?["reason"]?.stringValue ?? "running" }
        #expect(backingOff.status["phase"] == "Pending" && states == ["ImagePullBackOff", "running"] && backingOff.lookAgainAfter == nil)
        #expect(
            backingOff.status["containerStatuses"]?.arrayElements.first?["state"]?["waiting"]?["message"]
                == "Back-off pulling image \"registry.invalid/web:2\"")
        #expect(backingOff.status["conditions"]?.arrayElements.contains { $0["type"] == "Ready" && $0["status"] == "False" } == true)
        unpullable[member: "status"] = backingOff.status
        #expect(plan(unpullable, elapsed: .seconds(9), now: "2026-12-03T02:00:09Z").status == backingOff.status, "settled: not rewritten")
    }

    @Test(
        "a Job's Pod runs, then is Succeeded with its containers Completed (exit 0); a failing one is Failed with exit 1; neither is rewritten; one whose image cannot be pulled never completes"
    )
    func completingPod() {
        let pod: JSONValue = [
            "apiVersion": "v1", "kind": "Pod", "metadata": ["name": "once-x7k2p", "namespace": "default"],
            "spec": ["nodeName": "c-node-1", "restartPolicy": "Never", "containers": [["name": "a", "image": "busybox"]]],
        ]
        func plan(_ object: JSONValue, elapsed: Duration, failing: Bool = false) -> StatusPlan {
            var plan = StatusPlan(object: object, elapsed: elapsed, readyAfter: delay, failing: failing)
            plan.pod(hostIP: "172.18.0.11", podIP: "10.244.0.3", now: "2026-12-03T02:00:00Z", completes: true)
            return plan
        }
        #expect(plan(pod, elapsed: .seconds(1)).status["phase"] == "Pending")
        let done = plan(pod, elapsed: .seconds(3))
        let terminated = done.status["containerStatuses"]?.arrayElements.first?["state"]?["terminated"]
        #expect(
            done.status["phase"] == "Succeeded" && terminated?["reason"] == "Completed" && terminated?["exitCode"] == 0 && done.lookAgainAfter == nil)
        #expect(done.status["conditions"]?.arrayElements.contains { $0["type"] == "Ready" && $0["reason"] == "PodCompleted" } == true)
        var succeeded = pod
        succeeded[member: "status"] = done.status
        #expect(plan(succeeded, elapsed: .seconds(9)).status == done.status, "a finished Pod is not rewritten")

        let failed = plan(pod, elapsed: .zero, failing: true)
        #expect(
            failed.status["phase"] == "Failed" && failed.status["containerStatuses"]?.arrayElements.first?["state"]?["terminated"]?["exitCode"] == 1)

        // An image that cannot be pulled: the container never runs, so the Pod waits and never completes.
        var unpullable = pod
        unpullable.set([["name": "a", "image": "registry.invalid/once:1"]], at: ["spec", "containers"])
        let waiting = plan(unpullable, elapsed: .seconds(9))
        #expect(waiting.status["phase"] == "Pending")
        #expect(waiting.status["containerStatuses"]?.arrayElements.first?["state"]?["waiting"]?["reason"] == "ImagePullBackOff")
    }
}
