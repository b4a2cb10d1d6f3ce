import Foundation
import Synchronization
import TetherJSON
import TetherModel
import TetherPlugin

/// The HorizontalPodAutoscaler controller's replica calculation over resource metrics, as
/// kube-controller-manager's: per `Resource` metric (CPU or memory) the ready Pods' usage against the target, within a 10 %
/// tolerance; the highest proposal of all metrics; then the behaviour's rate limits and
/// stabilization windows.
extension AutoscalerController {
    static let tolerance = 0.1
    static let defaultUtilization: Int64 = 80
    static let defaultScaleDownWindow: Int64 = 300

    /// What the metrics propose: the replica count (nil when none can be computed), each
    /// metric's reading for `status.currentMetrics`, and why, in the controller's words.
    struct Proposal {
        var replicas: Int64?
        var currentMetrics: [JSONValue] = []
        /// The metric that decided, in the controller's words (`cpu resource utilization (percentage of request)`).
        var metric = ""
        var reason = ""
        var failure: String?
        /// The controller's reason for the failure: `FailedGetResourceMetric`, `FailedGetPodsMetric`, ...
        var failureReason = "FailedGetResourceMetric"
    }

    /// The replicas the metrics ask for, from the ready Pods `selector` picks in `namespace`.
    func propose(for autoscaler: JSONValue, target: JSONValue, currentReplicas: Int64) async -> Proposal {
        let namespace = autoscaler.namespace ?? "default"
        guard let selectorObject = target.value(at: "spec", "selector"), let selector = LabelSelector(object: selectorObject) else {
            return Proposal(failure: "the HPA target's scale is missing a selector")
        }
        let pods: [SimulatedMetrics.PodReading]
        do {
            pods = try await metrics.readyPodUsage(namespace: namespace, selector: selector)
        } catch {
            return Proposal(failure: "unable to get metrics for resource cpu: \(error)")
        }
        var proposal = Proposal()
        var reasons: [(replicas: Int64, text: String)] = []
        // The API defaults an autoscaler that names none to 80 % of the CPU request (`PolicyPlugin`).
        let specs = autoscaler.value(at: "spec", "metrics")?.arrayElements ?? []
        if specs.isEmpty { proposal.failure = "the autoscaler names no metric" }
        for spec in specs {
            let reading: MetricReading
            switch spec["type"]?.stringValue {
            case "Resource":
                reading = Self.resourceReading(spec["resource"] ?? [:], container: nil, pods: pods, current: currentReplicas)
            case "ContainerResource":
                let source = spec["containerResource"] ?? [:]
                reading = Self.resourceReading(source, container: source["container"]?.stringValue ?? "", pods: pods, current: currentReplicas)
            case "Pods": reading = Self.podsReading(spec, pods: pods, current: currentReplicas)
            case "Object": reading = await objectReading(spec, namespace: namespace, readyPods: Int64(pods.count), current: currentReplicas)
            case "External": reading = await externalReading(spec, namespace: namespace, readyPods: Int64(pods.count), current: currentReplicas)
            default: reading = .failed("invalid metrics: the metric type \(spec["type"]?.stringValue ?? "(none)") is not one kube knows")
            }
            switch reading {
            case .failed(let failure):
                proposal.failure = failure
                proposal.failureReason = "FailedGet\(spec["type"]?.stringValue ?? "Resource")Metric"
                if failure.hasPrefix("failed to get") { return proposal }
            case .read(let replicas, let text, let current):
                reasons.append((replicas, text))
                proposal.currentMetrics.append(current)
            }
        }
        guard let highest = reasons.max(by: { $0.replicas < $1.replicas }) else { return proposal }
        proposal.failure = nil
        proposal.replicas = highest.replicas
        proposal.metric = highest.text
        proposal.reason = highest.replicas > currentReplicas ? "\(highest.text) above target" : "All metrics below target"
        return proposal
    }

    /// kube's stabilization: the lowest recommendation of the scale-up window and the highest of
    /// the scale-down window bound the change. Returns the stabilized count and, when a
    /// scale-down is held back, how long until the window lets it through.
    func stabilize(
        _ recommended: Int64, current: Int64, autoscaler: JSONValue, key: String, now: Date
    ) -> (replicas: Int64, heldFor: TimeInterval?) {
        let upWindow = TimeInterval(autoscaler.integer(at: "spec", "behavior", "scaleUp", "stabilizationWindowSeconds") ?? 0)
        let downWindow = TimeInterval(
            autoscaler.integer(at: "spec", "behavior", "scaleDown", "stabilizationWindowSeconds") ?? Self.defaultScaleDownWindow)
        return recommendations.withLock { all in
            // A newly seen autoscaler starts from its target's count, as the controller's does.
            var history = all[key] ?? [(now, current)]
            history.append((now, recommended))
            history.removeAll { now.timeIntervalSince($0.at) > max(upWindow, downWindow) }
            all[key] = history
            let up = history.filter { now.timeIntervalSince($0.at) <= upWindow }.map(\.replicas).min() ?? recommended
            let down = history.filter { now.timeIntervalSince($0.at) <= downWindow }.map(\.replicas).max() ?? recommended
            var result = current
            if result < up { result = up }
            if result > down { result = down }
            guard result > recommended, result == down else { return (result, nil) }
            // Held at the highest recent recommendation: look again when it leaves the window.
            let oldestHigher = history.filter { $0.replicas > recommended && now.timeIntervalSince($0.at) <= downWindow }.map(\.at).min() ?? now
            return (result, max(1, downWindow - now.timeIntervalSince(oldestHigher) + 0.5))
        }
    }

    /// The behaviour's rate limit, as kube's controller applies it. Each policy of the direction
    /// bounds the count from where it stood at the start of its period (`periodSeconds` back:
    /// the count now, less what this controller added, plus what it removed, in that time), and
    /// `selectPolicy` picks among them (Max by default: the policy allowing the largest change).
    /// An autoscaler with no `behavior` at all takes kube's older rule: up to twice the count
    /// (at least 4) per step, down without a limit. `events`: this autoscaler's recent
    /// rescales, positive up. Returns the limited count and, when the limit cut it, when the
    /// first counted rescale leaves its period (the limit then loosens).
    static func rateLimited(
        _ desired: Int64, current: Int64, autoscaler: JSONValue, events: [(at: Date, change: Int64)], now: Date
    ) -> (replicas: Int64, loosensIn: TimeInterval?) {
        guard desired != current else { return (desired, nil) }
        let up = desired > current
        guard let behavior = autoscaler.value(at: "spec", "behavior") else {
            return up ? (min(desired, max(2 * current, 4)), nil) : (desired, nil)
        }
        let rules = behavior[up ? "scaleUp" : "scaleDown"] ?? AutoscalerBehaviorDefaults.rules(up: up)
        let select = rules["selectPolicy"]?.stringValue ?? "Max"
        if select == "Disabled" { return (current, nil) }
        let policies = rules["policies"]?.arrayElements ?? AutoscalerBehaviorDefaults.rules(up: up)["policies"]?.arrayElements ?? []
        var loosensIn: TimeInterval?
        let bounds: [Int64] = policies.compactMap { policy in
            guard let value = policy["value"]?.integerValue else { return nil }
            let period = TimeInterval(policy["periodSeconds"]?.integerValue ?? 15)
            let counted = events.filter { now.timeIntervalSince($0.at) < period }
            let added = counted.filter { $0.change > 0 }.reduce(0) { $0 + $1.change }
            let removed = counted.filter { $0.change < 0 }.reduce(0) { $0 - $1.change }
            let start = current - added + removed
            if let oldest = counted.map(\.at).min() { loosensIn = min(loosensIn ?? .infinity, period - now.timeIntervalSince(oldest)) }
            switch (policy["type"]?.stringValue, up) {
            case ("Pods", true): return start + value
            case ("Pods", false): return start - value
            case ("Percent", true): return Int64((Double(start) * (1 + Double(value) / 100)).rounded(.up))
            case ("Percent", false): return Int64((Double(start) * (1 - Double(value) / 100)).rounded(.towardZero))
            default: return nil
            }
        }
        guard !bounds.isEmpty else { return (desired, nil) }
        // Max is the policy allowing the largest change: the highest bound up, the lowest down.
        let bound = (select == "Min") == up ? bounds.min()! : bounds.max()!
        let limited = up ? min(desired, bound) : max(desired, max(0, bound))
        return (limited, limited == desired ? nil : loosensIn)
    }
}
