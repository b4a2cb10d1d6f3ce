import Testing
import TetherJSON
import TetherModel

@testable import TetherSim

func workload(_ kind: String, replicas: Int64, generation: Int64 = 1, status: JSONValue? = nil) -> JSONValue {
    var object: JSONValue = [
        "apiVersion": "apps/v1", "kind": .string(kind), "metadata": ["name": "w", "generation": .integer(generation)],
        "spec": ["replicas": .integer(replicas)],
    ]
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
        plan.replicaSet(pods: [Self.pod("Running", ready: true), Self.pod("Running", ready: false), Self.pod("Pending", ready: false)])
        #expect(plan.status["replicas"] == 3 && plan.status["readyReplicas"] == 1 && plan.status["availableReplicas"] == 1)
        #expect(plan.status["observedGeneration"] == 1 && plan.lookAgainAfter == nil, "its Pods' changes bring it back, not a timer")
    }

    @Test("a Deployment sums its ReplicaSets: the newest's Pods are the updated ones; it is complete only when all are new and available")
    func deployment() {
        func set(_ name: String, replicas: Int64, available: Int64) -> JSONValue {
            [
                "metadata": ["name": .string(name)],
                "status": ["replicas": .integer(replicas), "readyReplicas": .integer(available), "availableReplicas": .integer(available)],
            ]
        }
        func conditions(_ plan: StatusPlan) -> [String] {
            (plan.status["conditions"]?.arrayElements ?? []).map {
                "\($0["type"]?.stringValue ?? "")=\($0["status"]?.stringValue ?? "")/\($0["reason"]?.stringValue ?? "")"
            }
        }
        // Mid-rollout: 3 old available, 2 new of which 1 available; 3 of 4 available is within 25 % unavailable.
        var rolling = StatusPlan(object: workload("Deployment", replicas: 4), elapsed: .zero, readyAfter: delay, failing: false)
        rolling.deployment(replicaSets: [set("w-old", replicas: 3, available: 3), set("w-new", replicas: 2, available: 1)], newest: "w-new")
        #expect(rolling.status["replicas"] == 5 && rolling.status["updatedReplicas"] == 2 && rolling.status["availableReplicas"] == 4)
        #expect(rolling.status["unavailableReplicas"] == 0)
        #expect(conditions(rolling) == ["Available=True/MinimumReplicasAvailable", "Progressing=True/ReplicaSetUpdated"])
        var done = StatusPlan(object: workload("Deployment", replicas: 4), elapsed: .zero, readyAfter: delay, failing: false)
        done.deployment(replicaSets: [set("w-old", replicas: 0, available: 0), set("w-new", replicas: 4, available: 4)], newest: "w-new")
        #expect(conditions(done) == ["Available=True/MinimumReplicasAvailable", "Progressing=True/NewReplicaSetAvailable"])
        #expect(done.status["conditions"]?.arrayElements.last?["message"] == "ReplicaSet \"w-new\" has successfully progressed.")
        var short = StatusPlan(object: workload("Deployment", replicas: 4), elapsed: .zero, readyAfter: delay, failing: false)
        short.deployment(replicaSets: [set("w-new", replicas: 4, available: 2)], newest: "w-new")
        #expect(short.status["unavailableReplicas"] == 2)
        #expect(conditions(short) == ["Available=False/MinimumReplicasUnavailable", "Progressing=True/ReplicaSetUpdated"])
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
        plan.deployment(replicaSets: [], newest: nil)
        #expect(plan.status["readyReplicas"] == 0)
        #expect(plan.lookAgainAfter == nil)
        guard case .array(let conditions)? = plan.status["conditions"] else {
            Issue.record("no conditions")
            return
        }
        #expect(conditions.contains { $0["message"]?.stringValue?.contains("sim.tether.io/fail") == true })
    }

    @Test("DaemonSets follow the node count; Jobs complete after the delay")
    func daemonSetAndJob() {
        var daemonSet = StatusPlan(object: workload("DaemonSet", replicas: 0), elapsed: .seconds(5), readyAfter: delay, failing: false)
        daemonSet.daemonSet(nodes: 7)
        #expect(daemonSet.status["desiredNumberScheduled"] == 7 && daemonSet.status["numberReady"] == 7)
        var job = StatusPlan(
            object: ["kind": "Job", "metadata": ["name": "j"], "spec": ["completions": 3]], elapsed: .seconds(5), readyAfter: delay, failing: false)
        job.job()
        #expect(job.status["succeeded"] == 3)
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
    }

    @Test("a Job's Pod runs, then is Succeeded with its containers Completed (exit 0); a failing one is Failed with exit 1; neither is rewritten")
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
    }
}
