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

    /// At the hub: each member's current and desired replicas summed, and each resource
    /// metric's reading averaged over the members, weighted by the replicas each runs (so
    /// `kubectl get hpa` at the hub shows the federation's utilization against the target).
    static func aggregatedAutoscalerStatus(of members: [MemberObjectStatus]) -> JSONValue {
        var status = StatusSummary.sums(autoscalerCounts, of: members)
        var readings: [String: (weight: Int64, utilization: Int64?, value: Int64?)] = [:]
        var order: [String] = []
        for member in members {
            let weight = max(member.summary["currentReplicas"]?.integerValue ?? 0, 0)
            for reading in member.summary["currentMetrics"]?.arrayElements ?? [] {
                guard reading["type"]?.stringValue == "Resource", let name = reading.string(at: "resource", "name"), weight > 0 else { continue }
                let current = reading.value(at: "resource", "current")
                if readings[name] == nil { order.append(name) }
                var total = readings[name] ?? (0, nil, nil)
                total.weight += weight
                if let utilization = current?["averageUtilization"]?.integerValue {
                    total.utilization = (total.utilization ?? 0) + utilization * weight
                }
                if let value = ResourceQuantity.milli(current?["averageValue"]?.stringValue) { total.value = (total.value ?? 0) + value * weight }
                readings[name] = total
            }
        }
        let averaged: [JSONValue] = order.compactMap { name in
            guard let total = readings[name], total.weight > 0 else { return nil }
            var current: [String: JSONValue] = [:]
            if let utilization = total.utilization { current["averageUtilization"] = .integer(utilization / total.weight) }
            if let value = total.value {
                let milli = value / total.weight
                current["averageValue"] = .string(
                    name == "cpu" ? ResourceQuotaAdmission.quantity(milli, of: name) : ResourceQuotaAdmission.quantity(milli / 1_000, of: name))
            }
            return ["type": "Resource", "resource": ["name": .string(name), "current": .object(current)]]
        }
        if !averaged.isEmpty { status["currentMetrics"] = .array(averaged) }
        return .object(status)
    }
}
