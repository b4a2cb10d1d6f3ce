import TetherJSON
import TetherModel
import TetherPlugin

/// `autoscaling/v1` HorizontalPodAutoscalers (what `kubectl autoscale` makes), stored as
/// `autoscaling/v2`. v1 has one target, CPU utilization; the v2 metrics and behaviour it cannot
/// hold travel in annotations, as kube-apiserver carries them, so an update through v1 keeps them.
enum AutoscalerV1 {
    static let metricsAnnotation = "autoscaling.alpha.kubernetes.io/metrics"
    static let behaviorAnnotation = "autoscaling.alpha.kubernetes.io/behavior"
    static let conditionsAnnotation = "autoscaling.alpha.kubernetes.io/conditions"
    static let currentMetricsAnnotation = "autoscaling.alpha.kubernetes.io/current-metrics"

    static let fields: [String: FieldSchema] = [
        "spec": .numbered(
            .field(1, "scaleTargetRef", PolicyPlugin.crossVersionReference),
            .field(2, "minReplicas", .integer, optional: true), .field(3, "maxReplicas", .integer),
            .field(4, "targetCPUUtilizationPercentage", .integer, optional: true)
        ),
        "status": .numbered(
            .field(1, "observedGeneration", .integer, optional: true), .field(2, "lastScaleTime", .time),
            .field(3, "currentReplicas", .integer), .field(4, "desiredReplicas", .integer),
            .field(5, "currentCPUUtilizationPercentage", .integer, optional: true)
        ),
    ]

    static let conversion = VersionConversion(storageVersion: "v2", toStorage: toV2, fromStorage: fromV2)

    /// Whether a v2 metric is the one v1 holds: a CPU utilization target of the pods.
    private static func isCPUUtilization(_ metric: JSONValue) -> Bool {
        metric["type"]?.stringValue == "Resource" && metric["resource"]?["name"]?.stringValue == "cpu"
            && metric["resource"]?["target"]?["type"]?.stringValue == "Utilization"
    }

    static func fromV2(_ stored: JSONValue) -> JSONValue {
        var object = stored
        object[member: "apiVersion"] = "autoscaling/v1"
        var annotations = object.metadata["annotations"]?.objectMembers ?? [:]
        let spec = stored["spec"] ?? [:]
        var shownSpec: [String: JSONValue] = [:]
        for key in ["scaleTargetRef", "minReplicas", "maxReplicas"] { shownSpec[key] = spec[key] }
        let metrics = spec["metrics"]?.arrayElements ?? []
        if let cpu = metrics.first(where: isCPUUtilization), let target = cpu["resource"]?["target"]?["averageUtilization"] {
            shownSpec["targetCPUUtilizationPercentage"] = target
        }
        var others = metrics
        if let index = others.firstIndex(where: isCPUUtilization) { others.remove(at: index) }
        annotations[metricsAnnotation] = others.isEmpty ? nil : jsonText(.array(others))
        annotations[behaviorAnnotation] = spec["behavior"].flatMap { $0 == .null ? nil : jsonText($0) }
        object[member: "spec"] = .object(shownSpec)
        if let status = stored["status"] {
            var shownStatus: [String: JSONValue] = [:]
            for key in ["observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas"] { shownStatus[key] = status[key] }
            var current = status["currentMetrics"]?.arrayElements ?? []
            let cpuIndex = current.firstIndex { $0["type"]?.stringValue == "Resource" && $0["resource"]?["name"]?.stringValue == "cpu" }
            if let cpuIndex {
                shownStatus["currentCPUUtilizationPercentage"] = current[cpuIndex]["resource"]?["current"]?["averageUtilization"]
                current.remove(at: cpuIndex)
            }
            annotations[currentMetricsAnnotation] = current.isEmpty ? nil : jsonText(.array(current))
            let conditions = status["conditions"]?.arrayElements ?? []
            annotations[conditionsAnnotation] = conditions.isEmpty ? nil : jsonText(.array(conditions))
            object[member: "status"] = .object(shownStatus.filter { $0.value != .null })
        }
        object.metadata["annotations"] = annotations.isEmpty ? nil : .object(annotations)
        return object
    }

    static func toV2(_ shown: JSONValue) throws -> JSONValue {
        var object = shown
        object[member: "apiVersion"] = "autoscaling/v2"
        var annotations = object.metadata["annotations"]?.objectMembers ?? [:]
        func taken(_ name: String) throws -> JSONValue? {
            guard let text = annotations.removeValue(forKey: name)?.stringValue else { return nil }
            do {
                return try JSONValue(parsing: text)
            } catch {
                throw VersionConversionError("annotation \(name) is not JSON: \(error)")
            }
        }
        let spec = shown["spec"] ?? [:]
        var storedSpec: [String: JSONValue] = [:]
        for key in ["scaleTargetRef", "minReplicas", "maxReplicas"] { storedSpec[key] = spec[key] }
        var metrics: [JSONValue] = []
        if let target = spec["targetCPUUtilizationPercentage"], target != .null {
            metrics.append(["type": "Resource", "resource": ["name": "cpu", "target": ["type": "Utilization", "averageUtilization": target]]])
        }
        if let others = try taken(metricsAnnotation) {
            guard case .array(let list) = others else { throw VersionConversionError("annotation \(metricsAnnotation) must be a JSON array") }
            metrics += list
        }
        if !metrics.isEmpty { storedSpec["metrics"] = .array(metrics) }
        if let behavior = try taken(behaviorAnnotation) { storedSpec["behavior"] = behavior }
        object[member: "spec"] = .object(storedSpec)
        let currentOthers = try taken(currentMetricsAnnotation)
        let conditions = try taken(conditionsAnnotation)
        if let status = shown["status"] {
            var storedStatus: [String: JSONValue] = [:]
            for key in ["observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas"] { storedStatus[key] = status[key] }
            var current: [JSONValue] = []
            if let utilization = status["currentCPUUtilizationPercentage"], utilization != .null {
                current.append(["type": "Resource", "resource": ["name": "cpu", "current": ["averageUtilization": utilization]]])
            }
            if case .array(let others)? = currentOthers { current += others }
            if !current.isEmpty { storedStatus["currentMetrics"] = .array(current) }
            if let conditions { storedStatus["conditions"] = conditions }
            object[member: "status"] = .object(storedStatus.filter { $0.value != .null })
        }
        object.metadata["annotations"] = annotations.isEmpty ? nil : .object(annotations)
        return object
    }

    private static func jsonText(_ value: JSONValue) -> JSONValue? {
        (try? value.serializedText()).map(JSONValue.string)
    }
}
