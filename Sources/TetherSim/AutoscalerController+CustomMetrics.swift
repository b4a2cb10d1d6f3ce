import Foundation
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore

/// The autoscaler's readings of each metric type kube's controller knows. Resource and
/// ContainerResource metrics come from the simulated metrics server's usage; Pods, Object and
/// External metrics from values an operator declares (``SimulatedMetrics/metricAnnotation(_:)``),
/// since no custom or external metrics adapter runs in a simulated cluster.
extension AutoscalerController {
    /// One metric's reading: the replicas it proposes, the controller's words for it, and its
    /// `status.currentMetrics` entry; or why it has none.
    enum MetricReading {
        case read(replicas: Int64, text: String, current: JSONValue)
        case failed(String)
    }

    /// The replicas a usage ratio proposes, as kube's calculator: the current count within the
    /// tolerance, else the ratio applied to the ready Pods, rounded up.
    static func proposedReplicas(ratio: Double, readyPods: Int64, current: Int64) -> Int64 {
        abs(1 - ratio) <= tolerance ? current : Int64((ratio * Double(readyPods)).rounded(.up))
    }

    /// A quantity of milli-units as Kubernetes writes it: `3`, `1500m`.
    static func quantity(milli: Int64) -> String { milli % 1000 == 0 ? "\(milli / 1000)" : "\(milli)m" }

    /// A `Resource` metric (or a `ContainerResource` one, of `container` alone): usage against
    /// `averageUtilization` of the requests or `averageValue`.
    static func resourceReading(
        _ source: JSONValue, container: String?, pods: [SimulatedMetrics.PodReading], current replicasNow: Int64
    ) -> MetricReading {
        guard let name = source["name"]?.stringValue, name == "cpu" || name == "memory" else {
            return .failed("this simulated cluster measures cpu and memory, not \(source["name"]?.stringValue ?? "(none)")")
        }
        guard !pods.isEmpty else { return .failed("unable to get metrics for resource \(name): no metrics returned from resource metrics API") }
        let cpu = name == "cpu"
        let kind = container == nil ? "resource" : "container resource"
        let counted: (SimulatedMetrics.ContainerUsage) -> Bool = { container == nil || $0.name == container }
        let usage = pods.reduce(Int64(0)) { sum, entry in sum + entry.usage.filter(counted).reduce(0) { $0 + (cpu ? $1.cpuMillis : $1.memoryBytes) } }
        let averageUsage = usage / Int64(pods.count)
        let target = source["target"]
        var current: [String: JSONValue] = ["averageValue": .string(ResourceQuotaAdmission.quantity(averageUsage, of: name))]
        let replicas: Int64
        let text: String
        if target?["type"]?.stringValue == "AverageValue" {
            let wanted =
                cpu ? ResourceQuantity.milli(target?["averageValue"]?.stringValue) : ResourceQuantity.whole(target?["averageValue"]?.stringValue)
            guard let wanted, wanted > 0 else { return .failed("invalid metrics: the target average value of \(name) is missing or zero") }
            replicas = proposedReplicas(ratio: Double(usage) / Double(wanted * Int64(pods.count)), readyPods: Int64(pods.count), current: replicasNow)
            text = "\(name) \(kind)"
        } else {
            var requested: Int64 = 0
            for reading in pods {
                for entry in reading.pod.value(at: "spec", "containers")?.arrayElements ?? []
                where container == nil || entry["name"]?.stringValue == container {
                    let request = entry.value(at: "resources", "requests", name)?.stringValue
                    guard let amount = cpu ? ResourceQuantity.milli(request) : ResourceQuantity.whole(request), amount > 0 else {
                        return .failed(
                            "failed to get \(name) utilization: missing request for \(name) in container \(entry["name"]?.stringValue ?? "") of Pod \(reading.pod.name ?? "")"
                        )
                    }
                    requested += amount
                }
            }
            guard requested > 0 else { return .failed("failed to get \(name) utilization: no container \(container ?? "") in the target's Pods") }
            let utilization = usage * 100 / requested
            let wanted = target?["averageUtilization"]?.integerValue ?? defaultUtilization
            current["averageUtilization"] = .integer(utilization)
            replicas = proposedReplicas(ratio: Double(utilization) / Double(max(wanted, 1)), readyPods: Int64(pods.count), current: replicasNow)
            text = "\(name) \(kind) utilization (percentage of request)"
        }
        let entry: JSONValue =
            container.map {
                ["type": "ContainerResource", "containerResource": ["name": .string(name), "container": .string($0), "current": .object(current)]]
            }
            ?? ["type": "Resource", "resource": ["name": .string(name), "current": .object(current)]]
        return .read(replicas: replicas, text: text, current: entry)
    }

    /// A `Pods` metric: each ready Pod's declared value, averaged, against `averageValue`.
    static func podsReading(_ spec: JSONValue, pods: [SimulatedMetrics.PodReading], current replicasNow: Int64) -> MetricReading {
        let name = spec.string(at: "pods", "metric", "name") ?? ""
        guard let target = ResourceQuantity.milli(spec.string(at: "pods", "target", "averageValue")), target > 0 else {
            return .failed("invalid metrics: the pods metric \(name) needs a target averageValue above zero")
        }
        guard !pods.isEmpty else { return .failed("unable to get metric \(name): no ready Pods to read it from") }
        var total: Int64 = 0
        for reading in pods {
            guard let value = ResourceQuantity.milli(reading.annotations[SimulatedMetrics.metricAnnotation(name)]) else {
                return .failed(
                    "unable to get metric \(name): Pod \(reading.pod.name ?? "") declares no value (annotate it or its workload with \(SimulatedMetrics.metricAnnotation(name)))"
                )
            }
            total += value
        }
        let average = total / Int64(pods.count)
        let replicas = proposedReplicas(ratio: Double(average) / Double(target), readyPods: Int64(pods.count), current: replicasNow)
        let current: JSONValue = [
            "type": "Pods", "pods": ["metric": ["name": .string(name)], "current": ["averageValue": .string(quantity(milli: average))]],
        ]
        return .read(replicas: replicas, text: "pods metric \(name)", current: current)
    }

    /// An `Object` metric: the value declared on the object it describes (in the autoscaler's
    /// namespace), against `value` (scaled by the ready Pods) or `averageValue` (per Pod).
    func objectReading(_ spec: JSONValue, namespace: String, readyPods: Int64, current replicasNow: Int64) async -> MetricReading {
        let described = spec.value(at: "object", "describedObject") ?? [:]
        let name = spec.string(at: "object", "metric", "name") ?? ""
        let kind = described["kind"]?.stringValue ?? ""
        let objectName = described["name"]?.stringValue ?? ""
        let apiVersion = described["apiVersion"]?.stringValue ?? ""
        guard let descriptor = kinds.first(where: { $0.kind == kind && (apiVersion.isEmpty || $0.apiVersion == apiVersion) }) else {
            return .failed(
                "unable to get metric \(name): \(kind) \(objectName): no kind \(kind) in \(apiVersion.isEmpty ? "any version" : apiVersion) here")
        }
        let type = ResourceType(group: descriptor.group, resource: descriptor.plural, namespaced: descriptor.namespaced)
        guard let object = try? await store.get(type, namespace: descriptor.namespaced ? namespace : nil, name: objectName) else {
            return .failed("unable to get metric \(name): \(kind) \(objectName) not found")
        }
        guard let value = ResourceQuantity.milli(object.annotations[SimulatedMetrics.metricAnnotation(name)]) else {
            return .failed(
                "unable to get metric \(name): \(kind) \(objectName) declares no value (annotate it with \(SimulatedMetrics.metricAnnotation(name)))")
        }
        return Self.valueReading(
            spec["object"] ?? [:], value: value, readyPods: readyPods, current: replicasNow, text: "\(kind) metric \(name)",
            entry: { ["type": "Object", "object": ["describedObject": described, "metric": ["name": .string(name)], "current": $0]] })
    }

    /// An `External` metric: the value declared on the autoscaler's namespace.
    func externalReading(_ spec: JSONValue, namespace: String, readyPods: Int64, current replicasNow: Int64) async -> MetricReading {
        let name = spec.string(at: "external", "metric", "name") ?? ""
        let holder = try? await store.get(PodController.namespaces, namespace: nil, name: namespace)
        guard let value = ResourceQuantity.milli(holder?.annotations[SimulatedMetrics.metricAnnotation(name)]) else {
            return .failed(
                "unable to get external metric \(namespace)/\(name): the namespace declares no value (annotate it with \(SimulatedMetrics.metricAnnotation(name)))"
            )
        }
        return Self.valueReading(
            spec["external"] ?? [:], value: value, readyPods: readyPods, current: replicasNow, text: "external metric \(name)",
            entry: { ["type": "External", "external": ["metric": ["name": .string(name)], "current": $0]] })
    }

    /// An Object or External metric's value against its target: `Value` scaled by the ready
    /// Pods, or `AverageValue` per current replica.
    static func valueReading(
        _ source: JSONValue, value: Int64, readyPods: Int64, current replicasNow: Int64, text: String, entry: (JSONValue) -> JSONValue
    ) -> MetricReading {
        let target = source["target"] ?? [:]
        if target["type"]?.stringValue == "AverageValue" {
            guard let average = ResourceQuantity.milli(target["averageValue"]?.stringValue), average > 0 else {
                return .failed("invalid metrics: the \(text) needs a target averageValue above zero")
            }
            let ratio = Double(value) / Double(average * max(replicasNow, 1))
            let replicas = abs(1 - ratio) <= tolerance ? replicasNow : Int64((Double(value) / Double(average)).rounded(.up))
            return .read(replicas: replicas, text: text, current: entry(["averageValue": .string(quantity(milli: value / max(replicasNow, 1)))]))
        }
        guard let wanted = ResourceQuantity.milli(target["value"]?.stringValue), wanted > 0 else {
            return .failed("invalid metrics: the \(text) needs a target value above zero")
        }
        let replicas = proposedReplicas(ratio: Double(value) / Double(wanted), readyPods: max(readyPods, 1), current: replicasNow)
        return .read(replicas: replicas, text: text, current: entry(["value": .string(quantity(milli: value))]))
    }
}
