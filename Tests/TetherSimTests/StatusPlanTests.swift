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

    @Test("a ReplicaSet is unready until the delay, then wholly ready; the plan says when to look again")
    func replicaSet() {
        var early = StatusPlan(object: workload("ReplicaSet", replicas: 4), elapsed: .seconds(1), readyAfter: delay, failing: false)
        early.replicas(stepped: false)
        #expect(early.status["readyReplicas"] == 0)
        #expect(early.lookAgainAfter == .seconds(2))
        var late = StatusPlan(object: workload("ReplicaSet", replicas: 4), elapsed: .seconds(3), readyAfter: delay, failing: false)
        late.replicas(stepped: false)
        #expect(late.status["readyReplicas"] == 4 && late.status["observedGeneration"] == 1)
        #expect(late.lookAgainAfter == nil)
    }

    @Test("a Deployment rolls out in three visible steps")
    func rollout() {
        let counts = [0.5, 1.5, 2.5, 3.5].map { seconds -> Int64? in
            var plan = StatusPlan(
                object: workload("Deployment", replicas: 6), elapsed: .milliseconds(Int64(seconds * 1000)), readyAfter: delay, failing: false)
            plan.replicas(stepped: true)
            return plan.status["readyReplicas"]?.integerValue
        }
        #expect(counts == [0, 2, 4, 6])
    }

    @Test("scaling down takes effect at once")
    func scaleDown() {
        var plan = StatusPlan(
            object: workload("Deployment", replicas: 2, generation: 2, status: ["readyReplicas": 5, "updatedReplicas": 5]),
            elapsed: .zero, readyAfter: delay, failing: false
        )
        plan.replicas(stepped: true)
        #expect(plan.status["readyReplicas"] == 2 && plan.status["unavailableReplicas"] == 0)
    }

    @Test("a failing workload never becomes ready, whatever the time, and says why")
    func failing() {
        var plan = StatusPlan(object: workload("Deployment", replicas: 3), elapsed: .seconds(3600), readyAfter: delay, failing: true)
        plan.replicas(stepped: true)
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
