import TetherJSON
import TetherModel
import TetherPlugin

/// A HorizontalPodAutoscaler's status across members, and its TARGETS column.
extension PolicyPlugin {
    /// TARGETS as kubectl 1.32 prints it: each resource metric's reading against its target
    /// (`cpu: 45%/80%`, `<unknown>` before a reading), the first two, then how many more.
    static func autoscalerTargets(_ autoscaler: JSONValue) -> String {
        let specs = autoscaler.value(at: "spec", "metrics")?.arrayElements ?? []
        guard !specs.isEmpty else { return "<none>" }
        let readings = autoscaler.value(at: "status", "currentMetrics")?.arrayElements ?? []
        let shown: [String] = specs.enumerated().map { index, spec in
            let type = spec["type"]?.stringValue ?? "?"
            switch type {
            case "Resource", "ContainerResource":
                let field = type == "Resource" ? "resource" : "containerResource"
                guard let name = spec.string(at: field, "name") else { return "\(type): <unknown>" }
                let current = readings.first { $0["type"]?.stringValue == type && $0.string(at: field, "name") == name }?.value(at: field, "current")
                if let utilization = spec.integer(at: field, "target", "averageUtilization") {
                    return "\(name): \(current?["averageUtilization"]?.integerValue.map { "\($0)%" } ?? "<unknown>")/\(utilization)%"
                }
                let target = spec.string(at: field, "target", "averageValue") ?? "<unknown>"
                return "\(name): \(current?["averageValue"]?.stringValue ?? "<unknown>")/\(target)"
            case "Pods", "Object", "External":
                // As kubectl prints them: `current/target`, `(avg)` for an Object or External average.
                let field = type.lowercased()
                let current =
                    (index < readings.count && readings[index]["type"]?.stringValue == type) ? readings[index].value(at: field, "current") : nil
                if let average = spec.string(at: field, "target", "averageValue") {
                    return "\(current?["averageValue"]?.stringValue ?? "<unknown>")/\(average)\(type == "Pods" ? "" : " (avg)")"
                }
                return "\(current?["value"]?.stringValue ?? "<unknown>")/\(spec.string(at: field, "target", "value") ?? "<unknown>")"
            default: return "\(type): <unknown>"
            }
        }
        return shown.count > 2 ? shown.prefix(2).joined(separator: ", ") + " + \(shown.count - 2) more..." : shown.joined(separator: ", ")
    }

    /// What a member reports: its replica counts and its metrics' readings.
    static func autoscalerSummary(of live: JSONValue) -> [String: JSONValue] {
        var summary = StatusSummary.counts(autoscalerCounts, of: live)
        if let readings = live.value(at: "status", "currentMetrics") { summary["currentMetrics"] = readings }
        return summary
    }

    /// At the hub: each member's current and desired replicas summed, and each metric's
    /// reading averaged over the members, weighted by the replicas each runs (so `kubectl get
    /// hpa` at the hub shows the federation's utilization against the target).
    static func aggregatedAutoscalerStatus(of members: [MemberObjectStatus]) -> JSONValue {
        var status = StatusSummary.sums(autoscalerCounts, of: members)
        var totals: [String: MetricTotal] = [:]
        var order: [String] = []
        for member in members {
            let weight = max(member.summary["currentReplicas"]?.integerValue ?? 0, 0)
            for reading in member.summary["currentMetrics"]?.arrayElements ?? [] {
                guard weight > 0, let type = reading["type"]?.stringValue, let field = metricFields[type], var source = reading[field] else {
                    continue
                }
                let current = source["current"]
                source[member: "current"] = nil
                // One total per metric: its type and what names it (resource, container, metric, object).
                let key = "\(type) \((try? source.serializedText()) ?? "")"
                if totals[key] == nil {
                    order.append(key)
                    totals[key] = MetricTotal(type: type, field: field, identity: source)
                }
                totals[key]?.add(current, weight: weight, resource: type.hasSuffix("Resource") ? source["name"]?.stringValue : nil)
            }
        }
        let averaged = order.compactMap { totals[$0]?.averaged }
        if !averaged.isEmpty { status["currentMetrics"] = .array(averaged) }
        return .object(status)
    }

    /// Where each metric type's reading sits in a `currentMetrics` entry.
    static let metricFields = [
        "Resource": "resource", "ContainerResource": "containerResource", "Pods": "pods", "Object": "object", "External": "external",
    ]

    /// One metric's readings over the members, each weighted by the replicas its member runs.
    struct MetricTotal {
        var type: String
        var field: String
        var identity: JSONValue
        var weight: Int64 = 0
        var utilization: Int64?
        var averageValue: Int64?
        var value: Int64?
        /// `cpu` or `memory` for resource metrics, whose amounts are written as their quotas write them.
        var resource: String?

        mutating func add(_ current: JSONValue?, weight: Int64, resource: String?) {
            self.weight += weight
            self.resource = resource
            if let utilization = current?["averageUtilization"]?.integerValue { self.utilization = (self.utilization ?? 0) + utilization * weight }
            if let average = ResourceQuantity.milli(current?["averageValue"]?.stringValue) { averageValue = (averageValue ?? 0) + average * weight }
            if let value = ResourceQuantity.milli(current?["value"]?.stringValue) { self.value = (self.value ?? 0) + value * weight }
        }

        var averaged: JSONValue? {
            guard weight > 0 else { return nil }
            var current: [String: JSONValue] = [:]
            if let utilization { current["averageUtilization"] = .integer(utilization / weight) }
            if let averageValue { current["averageValue"] = .string(amount(averageValue / weight)) }
            if let value { current["value"] = .string(amount(value / weight)) }
            var entry = identity
            entry[member: "current"] = .object(current)
            return .object(["type": .string(type), field: entry])
        }

        private func amount(_ milli: Int64) -> String {
            switch resource {
            case "cpu": ResourceQuotaAdmission.quantity(milli, of: "cpu")
            case let name?: ResourceQuotaAdmission.quantity(milli / 1_000, of: name)
            case nil: milli % 1_000 == 0 ? "\(milli / 1_000)" : "\(milli)m"
            }
        }
    }
}
