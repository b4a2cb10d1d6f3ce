import Foundation
import Testing
import TetherJSON
import TetherModel

@testable import TetherSim

/// The Job controller's step for an Indexed Job limited per index (`backoffLimitPerIndex`), on its own.
@Suite("Simulated Jobs limited per index")
struct JobPerIndexTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let job: JSONValue = [
        "kind": "Job", "metadata": ["name": "j"],
        "spec": ["completions": 3, "parallelism": 3, "completionMode": "Indexed", "backoffLimitPerIndex": 1],
    ]

    func pod(_ index: Int, _ phase: String, finishedAgo seconds: TimeInterval = 0) -> JSONValue {
        var pod: JSONValue = [
            "metadata": [
                "name": .string("j-\(index)-\(phase)-\(Int(seconds))"),
                "annotations": [.init(stringLiteral: PodController.completionIndexKey): .string("\(index)")],
            ],
            "status": ["phase": .string(phase)],
        ]
        if phase == "Failed" || phase == "Succeeded" {
            let finished = JSONValue.string(kubernetesTimestamp(now.addingTimeInterval(-seconds)))
            pod.set([["name": "a", "state": ["terminated": ["finishedAt": finished]]]], at: ["status", "containerStatuses"])
        }
        return pod
    }

    func step(_ pods: [JSONValue]) -> (made: [PodController.Slot], deleted: Int, status: JSONValue, lookAgain: Duration?) {
        let (make, delete) = PodController.jobStep(job, owned: pods, now: now)
        var plan = StatusPlan(object: job, elapsed: .zero, readyAfter: .seconds(3), failing: false)
        plan.job(pods: pods, now: now)
        return (make, delete.count, plan.status, plan.lookAgainAfter)
    }

    @Test(
        "each index backs off on its own and runs again with its failure count; past its limit it is failed for good, and the Job fails once every index finished"
    )
    func perIndex() {
        // Index 0 failed 5 s ago: it waits out its 10 s back-off while index 1 runs; the controller looks again then.
        let waiting = step([pod(0, "Failed", finishedAgo: 5), pod(1, "Running"), pod(2, "Succeeded")])
        #expect(waiting.made.isEmpty)
        #expect(waiting.status["failedIndexes"] == "" && waiting.status["completedIndexes"] == "2")
        #expect(waiting.lookAgain.map { $0 > .seconds(4) && $0 < .seconds(6) } == true, "\(String(describing: waiting.lookAgain))")
        // Its back-off over, it runs again, told it failed once.
        let retried = step([pod(0, "Failed", finishedAgo: 15), pod(1, "Running"), pod(2, "Succeeded")])
        #expect(retried.made.map(\.index) == [0] && retried.made.first?.annotations[PodController.indexFailureCountKey] == "1")
        // Failed twice, past its limit of 1: failed for good, never run again; the Job goes on while index 1 runs.
        let failures = [pod(0, "Failed", finishedAgo: 40), pod(0, "Failed", finishedAgo: 1)]
        let running = step(failures + [pod(1, "Running"), pod(2, "Succeeded")])
        #expect(running.made.isEmpty && running.status["failedIndexes"] == "0")
        #expect(running.status["conditions"]?.arrayElements.contains { $0["type"] == "Failed" } != true)
        let finished = step(failures + [pod(1, "Succeeded"), pod(2, "Succeeded")])
        let failed = finished.status["conditions"]?.arrayElements.first { $0["type"] == "Failed" }
        #expect(failed?["reason"] == "FailedIndexes" && failed?["message"] == "Job has failed indexes", "\(finished.status)")
        #expect(finished.status["completedIndexes"] == "1,2" && finished.status["failed"] == 2)
    }
}
