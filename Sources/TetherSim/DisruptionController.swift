import Foundation
import Logging
import Synchronization
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore

/// The disruption controller of a real cluster: each PodDisruptionBudget's status counted from
/// the Pods it selects, which the API's `eviction` subresource (`kubectl drain`) judges by.
///
/// As Kubernetes counts: `currentHealthy` is the selected Pods that are Ready, not being
/// deleted and not just evicted (`disruptedPods`, kept until the Pod is being deleted or for
/// two minutes); `desiredHealthy` is `minAvailable`, or the expected Pods less
/// `maxUnavailable`, where a percentage or `maxUnavailable` counts the expected Pods from
/// their controllers' replicas (a Deployment's, a ReplicaSet's, a StatefulSet's) and an integer
/// `minAvailable` from the Pods themselves; `disruptionsAllowed` is the difference, never below
/// zero. A budget whose Pods have no such controller allows nothing, with a condition saying why.
final class DisruptionController: Sendable {
    static let budgets = ResourceType(group: "policy", resource: "poddisruptionbudgets", namespaced: true)
    static let replicaSets = ResourceType(group: "apps", resource: "replicasets", namespaced: true)
    static let deployments = ResourceType(group: "apps", resource: "deployments", namespaced: true)
    static let statefulSets = ResourceType(group: "apps", resource: "statefulsets", namespaced: true)
    /// How long an eviction counts against a budget before its Pod is seen going, as in Kubernetes.
    static let disruptedPodTimeout: TimeInterval = 120

    private let store: any ResourceStore
    private let logger: Logger
    /// Each namespace's budgets and their selectors, so a changed Pod queues only the budgets selecting it.
    private let selectors = Mutex<[String: [String: LabelSelector]]>([:])

    init(store: any ResourceStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    /// The budgets in the Pod's namespace that select it.
    func budgets(selecting pod: JSONValue) -> [String] {
        let labels = pod.labels
        return selectors.withLock { selectors in
            (selectors[pod.namespace ?? "default"] ?? [:]).filter { $0.value.matches(labels) }.map(\.key).sorted()
        }
    }

    func budgetDeleted(namespace: String?, name: String) {
        selectors.withLock { _ = $0[namespace ?? "default"]?.removeValue(forKey: name) }
    }

    /// The budget's status now, and when to look again (a recorded eviction expiring).
    func status(of budget: JSONValue, now: Date = Date()) async -> (status: JSONValue, lookAgainAfter: Duration?) {
        let namespace = budget.namespace ?? "default"
        let selector = budget.value(at: "spec", "selector").flatMap { LabelSelector(object: $0) }
        selectors.withLock { selectors in
            selectors[namespace, default: [:]][budget.name ?? ""] = selector
        }
        var pods: [JSONValue] = []
        if let selector {
            pods = (try? await store.list(PodController.pods, options: ListOptions(namespace: namespace, labelSelector: selector)))?.objects ?? []
        }
        var disrupted = budget.value(at: "status", "disruptedPods")?.objectMembers ?? [:]
        var lookAgain: TimeInterval?
        for (name, time) in disrupted {
            let at = time.stringValue.flatMap(kubernetesTimeParts).map { Date(timeIntervalSince1970: TimeInterval($0.seconds)) }
            let pod = pods.first { $0.name == name }
            guard let at, let pod, pod.deletionTimestamp == nil, now.timeIntervalSince(at) < Self.disruptedPodTimeout else {
                disrupted[name] = nil
                continue
            }
            let left = Self.disruptedPodTimeout - now.timeIntervalSince(at)
            lookAgain = min(lookAgain ?? left, left)
        }
        let healthy = Int64(
            pods.filter { pod in
                pod.deletionTimestamp == nil && Conditions(pod).has("Ready", "True") && disrupted[pod.name ?? ""] == nil
            }.count)
        var expected = Int64(pods.count)
        var desired: Int64 = 0
        var failure: String?
        let minAvailable = budget.value(at: "spec", "minAvailable")
        if let maxUnavailable = budget.value(at: "spec", "maxUnavailable") {
            switch await controllersScale(of: pods) {
            case .success(let scale):
                expected = scale
                desired = max(0, scale - Self.scaled(maxUnavailable, of: scale))
            case .failure(let problem): failure = problem.message
            }
        } else if let minAvailable, case .integer(let count) = minAvailable {
            desired = max(0, count)
        } else if let minAvailable {
            switch await controllersScale(of: pods) {
            case .success(let scale):
                expected = scale
                desired = Self.scaled(minAvailable, of: scale)
            case .failure(let problem): failure = problem.message
            }
        }
        let allowed = failure == nil ? max(0, healthy - desired) : 0
        var status: [String: JSONValue] = [
            "observedGeneration": .integer(budget.generation ?? 1), "disruptionsAllowed": .integer(allowed),
            "currentHealthy": .integer(healthy), "desiredHealthy": .integer(desired), "expectedPods": .integer(expected),
        ]
        if !disrupted.isEmpty { status["disruptedPods"] = .object(disrupted) }
        let (holds, reason, message) =
            failure.map { ("False", "SyncFailed", $0) } ?? (allowed > 0 ? ("True", "SufficientPods", "") : ("False", "InsufficientPods", ""))
        let previous = (budget.value(at: "status", "conditions")?.arrayElements ?? []).first { $0["type"] == "DisruptionAllowed" }
        let since = previous?["status"]?.stringValue == holds ? previous?["lastTransitionTime"] : nil
        status["conditions"] = [
            [
                "type": "DisruptionAllowed", "status": .string(holds), "reason": .string(reason), "message": .string(message),
                "observedGeneration": .integer(budget.generation ?? 1),
                "lastTransitionTime": since ?? .string(kubernetesTimestamp(now)),
            ]
        ]
        return (.object(status), lookAgain.map { .milliseconds(Int64(($0 * 1000).rounded(.up))) })
    }

    private struct ScaleProblem: Error {
        var message: String
    }

    /// The replicas the selected Pods' controllers want, each controller once; a Pod without
    /// one (or whose controller has no replicas: a Job, a DaemonSet) makes the count unknown.
    private func controllersScale(of pods: [JSONValue]) async -> Result<Int64, ScaleProblem> {
        var counted: [String: Int64] = [:]
        for pod in pods {
            let namespace = pod.namespace
            guard let owner = WorkloadSimulator.controller(of: pod) else {
                return .failure(ScaleProblem(message: "found no controllers for pod \"\(pod.name ?? "")\""))
            }
            switch owner.kind {
            case "ReplicaSet":
                guard let set = try? await store.get(Self.replicaSets, namespace: namespace, name: owner.name) else { continue }
                if let deployment = WorkloadSimulator.controller(of: set), deployment.kind == "Deployment",
                    let object = try? await store.get(Self.deployments, namespace: namespace, name: deployment.name)
                {
                    counted[deployment.uid] = max(0, min(object.integer(at: "spec", "replicas") ?? 1, Int64(Int32.max)))
                } else {
                    counted[owner.uid] = max(0, min(set.integer(at: "spec", "replicas") ?? 1, Int64(Int32.max)))
                }
            case "StatefulSet":
                guard let set = try? await store.get(Self.statefulSets, namespace: namespace, name: owner.name) else { continue }
                counted[owner.uid] = max(0, min(set.integer(at: "spec", "replicas") ?? 1, Int64(Int32.max)))
            default:
                return .failure(
                    ScaleProblem(message: "found no controllers with a scale for pod \"\(pod.name ?? "")\" (its controller is a \(owner.kind))"))
            }
        }
        return .success(counted.values.reduce(0, +))
    }

    /// An integer, or a percentage of `total` rounded up, as Kubernetes scales both budget
    /// fields; kept within 0 and `total`'s bounds whatever a hostile budget says, so no count overflows.
    static func scaled(_ value: JSONValue, of total: Int64) -> Int64 {
        if let count = value.integerValue { return max(0, count) }
        guard let text = value.stringValue, text.hasSuffix("%"), let percent = Int64(text.dropLast()) else { return 0 }
        let bounded = max(0, min(percent, 100))
        return (bounded * max(0, total) + 99) / 100
    }
}
