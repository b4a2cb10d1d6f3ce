import Foundation
import Logging
import Synchronization
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore

/// The HorizontalPodAutoscaler controller of a real cluster. A target below `minReplicas` is
/// scaled up to it and one above `maxReplicas` down to it (before any metric is read), a target
/// at zero replicas is left alone (autoscaling disabled); within the bounds the replicas follow
/// the resource metrics the simulated metrics server reports (``SimulatedMetrics``), with the
/// controller's tolerance, rate limits and stabilization windows
/// (`AutoscalerController+Metrics`). Its status, conditions, `SuccessfulRescale` Events and
/// `lastScaleTime` are the controller's. Looked at again when the autoscaler or its target
/// changes, and every 15 s while it scales on metrics (the controller's sync period: usage is
/// read, not announced).
final class AutoscalerController: Sendable {
    static let autoscalers = ResourceType(group: "autoscaling", resource: "horizontalpodautoscalers", namespaced: true)
    /// The kinds it scales, by kind: the ones whose replicas a simulated member runs.
    static let scalable: [String: ResourceType] = [
        "Deployment": ResourceType(group: "apps", resource: "deployments", namespaced: true),
        "ReplicaSet": ResourceType(group: "apps", resource: "replicasets", namespaced: true),
        "ReplicationController": ResourceType(group: "", resource: "replicationcontrollers", namespaced: true),
        "StatefulSet": ResourceType(group: "apps", resource: "statefulsets", namespaced: true),
    ]

    /// kube-controller-manager's `--horizontal-pod-autoscaler-sync-period`.
    static let syncPeriod = Duration.seconds(15)

    let store: any ResourceStore
    /// The kinds served, for the object an `Object` metric describes.
    let kinds: [KindDescriptor]
    private let events: EventRecorder
    private let logger: Logger
    let metrics: SimulatedMetrics
    /// Which autoscalers name each target, so a target's change looks at them again.
    private let targets = Mutex<[ObjectKey: Set<String>]>([:])
    /// Each autoscaler's recent recommendations (`namespace/name`), for the stabilization windows.
    let recommendations = Mutex<[String: [(at: Date, replicas: Int64)]]>([:])
    /// Each autoscaler's rescales (`namespace/name`; positive up), for its policies' periods.
    let rescales = Mutex<[String: [(at: Date, change: Int64)]]>([:])
    /// The longest period a policy may have (kube validates `periodSeconds` to at most 1800).
    static let longestPolicyPeriod: TimeInterval = 1800

    private var source: EventRecorder.Source { EventRecorder.Source(component: "horizontal-pod-autoscaler") }

    init(store: any ResourceStore, kinds: [KindDescriptor], events: EventRecorder, metrics: SimulatedMetrics, logger: Logger) {
        self.store = store
        self.kinds = kinds
        self.events = events
        self.metrics = metrics
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
        _ = recommendations.withLock { $0.removeValue(forKey: "\(namespace ?? "default")/\(name)") }
        _ = rescales.withLock { $0.removeValue(forKey: "\(namespace ?? "default")/\(name)") }
    }

    /// One step of the controller for `autoscaler`: its target scaled to its bounds and its
    /// metrics, its status, and when to look again.
    func sync(_ autoscaler: JSONValue, now: Date = Date()) async -> (status: JSONValue, lookAgainAfter: Duration?)? {
        guard let name = autoscaler.name, autoscaler.deletionTimestamp == nil else { return nil }
        let namespace = autoscaler.namespace ?? "default"
        let reference = autoscaler.value(at: "spec", "scaleTargetRef")
        let kind = reference?["kind"]?.stringValue ?? ""
        let targetName = reference?["name"]?.stringValue ?? ""
        var status = autoscaler["status"] ?? [:]
        status[member: "observedGeneration"] = .integer(autoscaler.generation ?? 1)
        guard let type = Self.scalable[kind] else {
            let message = "the HPA controller was unable to get the target's current scale: no matches for kind \"\(kind)\" in this cluster"
            return (await unableToScale(autoscaler, status, reason: "FailedGetScale", message: message, at: now), nil)
        }
        let key = ObjectKey(type: type, namespace: namespace, name: targetName)
        targets.withLock { targets in
            for other in targets.keys where other.namespace == namespace && other != key { targets[other]?.remove(name) }
            targets[key, default: []].insert(name)
        }
        guard let target = try? await store.get(type, namespace: namespace, name: targetName) else {
            let message =
                "the HPA controller was unable to get the target's current scale: \(type.resource).\(type.group) \"\(targetName)\" not found"
            return (await unableToScale(autoscaler, status, reason: "FailedGetScale", message: message, at: now), nil)
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
            return (status, nil)
        }
        let bounded = min(max(current, minimum), maximum)
        if bounded != current {
            // Out of bounds: the controller's first step, before any metric is read.
            let reason = bounded > current ? "Current number of replicas below Spec.MinReplicas" : "Current number of replicas above Spec.MaxReplicas"
            status[member: "desiredReplicas"] = .integer(bounded)
            Self.limitedByBounds(tooMany: bounded < current, at: now, in: &status)
            return (await rescale(autoscaler, target: target, type: type, to: bounded, reason: reason, status: status, at: now), nil)
        }
        let proposal = await propose(for: autoscaler, target: target, currentReplicas: current)
        status[member: "currentMetrics"] = proposal.currentMetrics.isEmpty ? nil : .array(proposal.currentMetrics)
        guard let recommended = proposal.replicas else {
            status[member: "desiredReplicas"] = .integer(current)
            Conditions.set(
                "AbleToScale", true, reason: "SucceededGetScale", message: "the HPA controller was able to get the target's current scale", at: now,
                in: &status)
            let message = "the HPA was unable to compute the replica count: \(proposal.failure ?? "no metrics")"
            let previous = (status["conditions"]?.arrayElements ?? []).first { $0["type"] == "ScalingActive" }
            if previous?["message"]?.stringValue != message {
                await events.record(.warning, proposal.failureReason, message, about: autoscaler, source: source)
            }
            Conditions.set("ScalingActive", false, reason: proposal.failureReason, message: message, at: now, in: &status)
            Conditions.set(
                "ScalingLimited", false, reason: "DesiredWithinRange", message: "the desired count is within the acceptable range", at: now,
                in: &status)
            return (status, Self.syncPeriod)
        }
        Conditions.set(
            "ScalingActive", true, reason: "ValidMetricFound",
            message: "the HPA was able to successfully calculate a replica count from \(proposal.metric)",
            at: now, in: &status)
        let (stabilized, heldFor) = stabilize(
            recommended, current: current, autoscaler: autoscaler, key: "\(namespace)/\(name)", now: now)
        let recent = rescales.withLock { all in
            all["\(namespace)/\(name)", default: []].removeAll { now.timeIntervalSince($0.at) > Self.longestPolicyPeriod }
            return all["\(namespace)/\(name)"] ?? []
        }
        let (limitedByRate, loosensIn) = Self.rateLimited(stabilized, current: current, autoscaler: autoscaler, events: recent, now: now)
        let desired = min(max(limitedByRate, minimum), maximum)
        if desired != limitedByRate {
            Self.limitedByBounds(tooMany: limitedByRate > maximum, at: now, in: &status)
        } else if limitedByRate != stabilized {
            let up = stabilized > current
            Conditions.set(
                "ScalingLimited", true, reason: up ? "ScaleUpLimit" : "ScaleDownLimit",
                message: "the desired replica count is \(up ? "increasing" : "decreasing") faster than the maximum scale rate", at: now, in: &status)
        } else {
            Conditions.set(
                "ScalingLimited", false, reason: "DesiredWithinRange", message: "the desired count is within the acceptable range", at: now,
                in: &status)
        }
        status[member: "desiredReplicas"] = .integer(desired)
        // Held by a window, or by a rate limit that loosens sooner than the next sync: look again then.
        let due = [heldFor, loosensIn.map { max(0.5, $0 + 0.5) }].compactMap { $0 }.min()
        let lookAgain = due.map { min(Duration.milliseconds(Int64($0 * 1000)), Self.syncPeriod) } ?? Self.syncPeriod
        guard desired != current else {
            if heldFor != nil {
                Conditions.set(
                    "AbleToScale", true, reason: "ScaleDownStabilized",
                    message: "recent recommendations were higher than current one, applying the highest recent recommendation", at: now,
                    in: &status)
            } else {
                Conditions.set(
                    "AbleToScale", true, reason: "ReadyForNewScale", message: "recommended size matches current size", at: now, in: &status)
            }
            return (status, lookAgain)
        }
        return (await rescale(autoscaler, target: target, type: type, to: desired, reason: proposal.reason, status: status, at: now), lookAgain)
    }

    /// `ScalingLimited` when the bounds cut the count: above `maxReplicas`, or below `minReplicas`.
    private static func limitedByBounds(tooMany: Bool, at now: Date, in status: inout JSONValue) {
        Conditions.set(
            "ScalingLimited", true, reason: tooMany ? "TooManyReplicas" : "TooFewReplicas",
            message: "the desired replica count is \(tooMany ? "more than the maximum" : "less than the minimum") replica count", at: now, in: &status
        )
    }

    /// Writes `replicas` into the target, with the controller's Event and conditions.
    private func rescale(
        _ autoscaler: JSONValue, target: JSONValue, type: ResourceType, to replicas: Int64, reason: String, status: JSONValue, at now: Date
    ) async -> JSONValue {
        var status = status
        let namespace = autoscaler.namespace ?? "default"
        let targetName = target.name ?? ""
        do throws(StoreError) {
            try await store.modify(type, namespace: namespace, name: targetName) { stored in
                guard stored.uid == target.uid, stored.integer(at: "spec", "replicas") != replicas else { return false }
                stored.set(.integer(replicas), at: ["spec", "replicas"])
                return true
            }
        } catch {
            let message = "the HPA controller was unable to update the target scale: \(error.message)"
            await events.record(
                .warning, "FailedRescale", "New size: \(replicas); reason: \(reason); error: \(error.message)", about: autoscaler, source: source)
            return await unableToScale(autoscaler, status, reason: "FailedUpdateScale", message: message, at: now)
        }
        await events.record(.normal, "SuccessfulRescale", "New size: \(replicas); reason: \(reason)", about: autoscaler, source: source)
        // Counted against the policies' periods, as kube's controller keeps its scale events.
        let previous = target.integer(at: "spec", "replicas") ?? 1
        rescales.withLock { $0["\(namespace)/\(autoscaler.name ?? "")", default: []].append((now, replicas - previous)) }
        logger.debug(
            "autoscaler rescaled its target", metadata: ["tether.object": "\(namespace)/\(autoscaler.name ?? "")", "tether.replicas": "\(replicas)"])
        status[member: "lastScaleTime"] = .string(kubernetesTimestamp(now))
        Conditions.set(
            "AbleToScale", true, reason: "SucceededRescale", message: "the HPA controller was able to update the target scale to \(replicas)",
            at: now,
            in: &status)
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
