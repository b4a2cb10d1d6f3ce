import TetherJSON

/// kube-apiserver's Priority admission for a Pod being created: `spec.priority` and
/// `spec.preemptionPolicy` come from the PriorityClass the Pod names, or from the class marked
/// `globalDefault` (whose name it then takes), else 0. A Pod naming a class that does not exist,
/// or stating a priority its class does not give, is refused.
public enum PodPriority {
    /// The PriorityClasses Kubernetes makes itself, the only ones a `system-` name may have.
    public static let systemClasses: [String: Int64] = ["system-node-critical": 2_000_001_000, "system-cluster-critical": 2_000_000_000]

    /// Why a Pod is refused, worded as kube-apiserver words it (after `pods "NAME" is forbidden: `).
    public struct Refusal: Error, Sendable, Equatable {
        public let reason: String
    }

    /// `pod` with its priority set from `classes` (the stored PriorityClasses).
    public static func admit(_ pod: JSONValue, classes: [JSONValue]) throws(Refusal) -> JSONValue {
        var name = pod.string(at: "spec", "priorityClassName") ?? ""
        let value: Int64
        var policy = "PreemptLowerPriority"
        if name.isEmpty {
            let fallback = classes.filter { $0["globalDefault"] == .bool(true) }.min {
                ($0["value"]?.integerValue ?? 0) < ($1["value"]?.integerValue ?? 0)
            }
            name = fallback?.name ?? ""
            value = fallback?["value"]?.integerValue ?? 0
            policy = fallback?["preemptionPolicy"]?.stringValue ?? policy
        } else if let found = classes.first(where: { $0.name == name }) {
            value = found["value"]?.integerValue ?? 0
            policy = found["preemptionPolicy"]?.stringValue ?? policy
        } else if let system = systemClasses[name] {
            value = system
        } else {
            throw Refusal(reason: "no PriorityClass with name \(name) was found")
        }
        if let stated = pod.integer(at: "spec", "priority"), stated != value {
            throw Refusal(
                reason:
                    "the integer value of priority (\(stated)) must not be provided in pod spec; priority admission controller computed \(value) from the given PriorityClass name"
            )
        }
        if let stated = pod.string(at: "spec", "preemptionPolicy"), stated != policy {
            throw Refusal(
                reason:
                    "the string value of PreemptionPolicy (\(stated)) must not be provided in pod spec; priority admission controller computed \(policy) from the given PriorityClass name"
            )
        }
        var admitted = pod
        if !name.isEmpty { admitted.set(.string(name), at: ["spec", "priorityClassName"]) }
        admitted.set(.integer(value), at: ["spec", "priority"])
        admitted.set(.string(policy), at: ["spec", "preemptionPolicy"])
        return admitted
    }
}
