import Foundation
import Logging
import Synchronization
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore

/// The HorizontalPodAutoscaler controller of a real cluster, as far as a cluster without a
/// metrics API takes it: a target below `minReplicas` is scaled up to it and one above
/// `maxReplicas` down to it (Kubernetes does this before it reads any metric), a target at zero
/// replicas is left alone (autoscaling disabled), and within the bounds the replica count stays,
/// with `ScalingActive=False` saying that no metrics can be read here. Its status and
/// conditions, its `SuccessfulRescale` Events and `lastScaleTime` are the controller's.
/// Looked at again when the autoscaler or its target changes, not polled.
final class AutoscalerController: Sendable {
    static let autoscalers = ResourceType(group: "autoscaling", resource: "horizontalpodautoscalers", namespaced: true)
    /// The kinds it scales, by kind: the ones whose replicas a simulated member runs.
    static let scalable: [String: ResourceType] = [
        "Deployment": ResourceType(group: "apps", resource: "deployments", namespaced: true),
        "ReplicaSet": ResourceType(group: "apps", resource: "replicasets", namespaced: true),
        "ReplicationController": ResourceType(group: "", resource: "replicationcontrollers", namespaced: true),
        "StatefulSet": ResourceType(group: "apps", resource: "statefulsets", namespaced: true),
    ]

    private let store: any ResourceStore
    private let events: EventRecorder
    private let logger: Logger
    /// Which autoscalers name each target, so a target's change looks at them again.
    private let targets = Mutex<[ObjectKey: Set<String>]>([:])

    private var source: EventRecorder.Source { EventRecorder.Source(component: "horizontal-pod-autoscaler") }

    init(store: any ResourceStore, events: EventRecorder, logger: Logger) {
        self.store = store
        self.events = events
        self.logger = logger
    }

    /// The autoscalers whose target is the object at `key`.
    func autoscalers(targeting key: ObjectKey) -> [String] {
        targets.withLock { $0[key].map { $0.sorted() } ?? [] }
    }

    func autoscalerDeleted(namespace: String?, name: String) {
        targets.withLock { targets in
            for key in targets.keys where key.namespace == namespace { targets[key]?.remove(name) }
        }
    }

    /// One step of the controller for `autoscaler`: its target scaled if out of bounds, and its status.
    func sync(_ autoscaler: JSONValue, now: Date = Date()) async -> JSONValue? {
        guard let name = autoscaler.name, autoscaler.deletionTimestamp == nil else { return nil }
        let namespace = autoscaler.namespace ?? "default"
        let reference = autoscaler.value(at: "spec", "scaleTargetRef")
        let kind = reference?["kind"]?.stringValue ?? ""
        let targetName = reference?["name"]?.stringValue ?? ""
        var status = autoscaler["status"] ?? [:]
        status[member: "observedGeneration"] = .integer(autoscaler.generation ?? 1)
        guard let type = Self.scalable[kind] else {
            let message = "the HPA controller was unable to get the target's current scale: no matches for kind \"\(kind)\" in this cluster"
            return await unableToScale(autoscaler, status, reason: "FailedGetScale", message: message, at: now)
        }
        let key = ObjectKey(type: type, namespace: namespace, name: targetName)
        targets.withLock { targets in
            for other in targets.keys where other.namespace == namespace && other != key { targets[other]?.remove(name) }
            targets[key, default: []].insert(name)
        }
        guard let target = try? await store.get(type, namespace: namespace, name: targetName) else {
            let message =
                "the HPA controller was unable to get the target's current scale: \(type.resource).\(type.group) \"\(targetName)\" not found"
            return await unableToScale(autoscaler, status, reason: "FailedGetScale", message: message, at: now)
        }
        let current = target.integer(at: "spec", "replicas") ?? 1
        let minimum = autoscaler.integer(at: "spec", "minReplicas") ?? 1
        let maximum = autoscaler.integer(at: "spec", "maxReplicas") ?? minimum
        status[member: "currentReplicas"] = .integer(target.integer(at: "status", "replicas") ?? current)
        if current == 0, minimum != 0 {
            status[member: "desiredReplicas"] = 0
            Conditions.set(
                "AbleToScale", true, reason: "SucceededGetScale", message: "the HPA controller was able to get the target's current scale", at: now,
                in: &status)
            Conditions.set(
                "ScalingActive", false, reason: "ScalingDisabled", message: "scaling is disabled since the replica count of the target is zero",
                at: now, in: &status)
            return status
        }
        let desired = min(max(current, minimum), maximum)
        status[member: "desiredReplicas"] = .integer(desired)
        guard desired != current else {
            Conditions.set(
                "AbleToScale", true, reason: "SucceededGetScale", message: "the HPA controller was able to get the target's current scale", at: now,
                in: &status)
            Conditions.set(
                "ScalingActive", false, reason: "FailedGetResourceMetric",
                message: "the HPA was unable to compute the replica count: this simulated cluster serves no metrics API", at: now, in: &status)
            Conditions.set(
                "ScalingLimited", false, reason: "DesiredWithinRange", message: "the desired count is within the acceptable range", at: now,
                in: &status)
            return status
        }
        let reason = desired > current ? "Current number of replicas below Spec.MinReplicas" : "Current number of replicas above Spec.MaxReplicas"
        do throws(StoreError) {
            try await store.modify(type, namespace: namespace, name: targetName) { stored in
                guard stored.uid == target.uid, stored.integer(at: "spec", "replicas") != desired else { return false }
                stored.set(.integer(desired), at: ["spec", "replicas"])
                return true
            }
        } catch {
            let message = "the HPA controller was unable to update the target scale: \(error.message)"
            await events.record(
                .warning, "FailedRescale", "New size: \(desired); reason: \(reason); error: \(error.message)", about: autoscaler, source: source)
            return await unableToScale(autoscaler, status, reason: "FailedUpdateScale", message: message, at: now)
        }
        await events.record(.normal, "SuccessfulRescale", "New size: \(desired); reason: \(reason)", about: autoscaler, source: source)
        logger.debug("autoscaler rescaled its target", metadata: ["tether.object": "\(namespace)/\(name)", "tether.replicas": "\(desired)"])
        status[member: "lastScaleTime"] = .string(kubernetesTimestamp(now))
        Conditions.set(
            "AbleToScale", true, reason: "SucceededRescale", message: "the HPA controller was able to update the target scale to \(desired)", at: now,
            in: &status)
        let limited = desired > current
        Conditions.set(
            "ScalingLimited", true, reason: limited ? "TooFewReplicas" : "TooManyReplicas",
            message: limited
                ? "the desired replica count is less than the minimum replica count"
                : "the desired replica count is more than the maximum replica count",
            at: now, in: &status)
        return status
    }

    private func unableToScale(_ autoscaler: JSONValue, _ status: JSONValue, reason: String, message: String, at now: Date) async -> JSONValue {
        var status = status
        let previous = (status["conditions"]?.arrayElements ?? []).first { $0["type"] == "AbleToScale" }
        if previous?["reason"]?.stringValue != reason {
            await events.record(.warning, reason, message, about: autoscaler, source: source)
        }
        Conditions.set("AbleToScale", false, reason: reason, message: message, at: now, in: &status)
        return status
    }
}
