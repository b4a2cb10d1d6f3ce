import Foundation
import Logging
import Testing
import TetherJSON
import TetherModel
import TetherStore
import TetherTestSupport

@testable import TetherSim

/// PodDisruptionBudgets' status counted as Kubernetes' disruption controller counts it, over a
/// real store.
@Suite("Simulated disruption budgets")
struct DisruptionControllerTests {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    static let replicaSets = ResourceType(group: "apps", resource: "replicasets", namespaced: true)

    func pod(_ name: String, ready: Bool, owner: String? = "web") -> JSONValue {
        var metadata: JSONValue = ["name": .string(name), "namespace": "default", "labels": ["app": "web"]]
        if let owner {
            metadata[member: "ownerReferences"] = [
                ["apiVersion": "apps/v1", "kind": "ReplicaSet", "name": .string(owner), "uid": "uid-rs", "controller": true]
            ]
        }
        return [
            "apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": ["containers": [["name": "c", "image": "nginx"]]],
            "status": ["phase": "Running", "conditions": [["type": "Ready", "status": ready ? "True" : "False"]]],
        ]
    }

    func budget(_ spec: JSONValue, disrupted: [String: String] = [:]) -> JSONValue {
        var status: JSONValue = [:]
        if !disrupted.isEmpty { status[member: "disruptedPods"] = .object(disrupted.mapValues(JSONValue.string)) }
        var spec = spec
        spec[member: "selector"] = ["matchLabels": ["app": "web"]]
        return [
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": ["name": "web", "namespace": "default", "generation": 2],
            "spec": spec, "status": status,
        ]
    }

    @Test(
        "minAvailable counts the Pods; maxUnavailable and percentages count the controller's replicas; evicted, deleting and unready Pods are not healthy"
    )
    func counting() async throws {
        let scratch = try ScratchDirectory("tether-sim-pdb")
        let store = try SQLiteResourceStore(path: scratch.file("sim.db"))
        let controller = DisruptionController(store: store, logger: logger)
        _ = try await store.create(
            ["apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": ["name": "web", "namespace": "default"], "spec": ["replicas": 6]],
            as: Self.replicaSets, dryRun: false)
        for (name, ready) in [("a", true), ("b", true), ("c", true), ("d", true), ("e", false), ("f", true)] {
            _ = try await store.create(pod(name, ready: ready), as: PodController.pods, dryRun: false)
        }
        // Deleted gracefully: marked, still there while its kubelet stops it.
        _ = try await store.delete(
            PodController.pods, namespace: "default", name: "f", preconditions: DeletePreconditions(gracePeriodSeconds: 30), dryRun: false)
        // Six Pods: a-d healthy, e unready, f being deleted; d was just evicted.
        let now = Date()
        let evictedJustNow = [("d", kubernetesTimestamp(now)), ("gone", kubernetesTimestamp(now)), ("a", kubernetesTimestamp(now - 600))]
        let disrupted = Dictionary(uniqueKeysWithValues: evictedJustNow)

        let byCount = await controller.status(of: budget(["minAvailable": 2], disrupted: disrupted), now: now)
        #expect(byCount.status["currentHealthy"] == 3 && byCount.status["desiredHealthy"] == 2 && byCount.status["expectedPods"] == 6)
        #expect(byCount.status["disruptionsAllowed"] == 1 && byCount.status["observedGeneration"] == 2)
        // Only d's record stays: a's expired, "gone" has no Pod; d's ends in two minutes.
        #expect(byCount.status["disruptedPods"]?.objectMembers.keys.sorted() == ["d"])
        #expect(byCount.lookAgainAfter.map { $0 > .seconds(110) && $0 <= .seconds(120) } == true, "\(String(describing: byCount.lookAgainAfter))")

        let byMaximum = await controller.status(of: budget(["maxUnavailable": "34%"]), now: now)
        // 34 % of the ReplicaSet's 6 rounds up to 3: desired 3, and four healthy (d is no longer counted as evicted).
        #expect(byMaximum.status["expectedPods"] == 6 && byMaximum.status["desiredHealthy"] == 3 && byMaximum.status["disruptionsAllowed"] == 1)
        let strict = await controller.status(of: budget(["minAvailable": "100%"]), now: now)
        #expect(strict.status["desiredHealthy"] == 6 && strict.status["disruptionsAllowed"] == 0)
        let condition = strict.status["conditions"]?.arrayElements.first
        #expect(condition?["reason"] == "InsufficientPods" && condition?["status"] == "False")
        #expect(controller.budgets(selecting: pod("x", ready: true)) == ["web"])
        // Hostile figures are bounded, never overflowing: a negative minimum needs nothing, 1000 % of
        // unavailability is all of them.
        let negative = await controller.status(of: budget(["minAvailable": .integer(.min)]), now: now)
        #expect(negative.status["desiredHealthy"] == 0 && negative.status["disruptionsAllowed"] == 4, "\(negative.status)")
        let everything = await controller.status(of: budget(["maxUnavailable": "1000%"]), now: now)
        #expect(everything.status["desiredHealthy"] == 0 && everything.status["disruptionsAllowed"] == 4, "\(everything.status)")

        // A Pod without a controller leaves a percentage unknowable: nothing is allowed, and the condition says why.
        _ = try await store.create(pod("bare", ready: true, owner: nil), as: PodController.pods, dryRun: false)
        let unknown = await controller.status(of: budget(["maxUnavailable": 1]), now: now)
        #expect(unknown.status["disruptionsAllowed"] == 0)
        let failed = unknown.status["conditions"]?.arrayElements.first
        #expect(failed?["reason"] == "SyncFailed" && failed?["message"]?.stringValue?.contains("bare") == true, "\(unknown.status)")
    }
}
