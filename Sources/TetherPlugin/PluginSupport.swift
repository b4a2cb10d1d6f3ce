import Foundation
import TetherJSON
import TetherModel

/// The `status.conditions` of a live object, looked up by type.
public struct Conditions: Sendable {
    public struct Condition: Sendable, Hashable {
        public var type: String
        /// `True`, `False` or `Unknown`.
        public var status: String
        public var reason: String
        public var message: String

        /// The message, else the reason, for an operator.
        public var explanation: String { message.isEmpty ? reason : message }
    }

    public let all: [Condition]

    /// Sets condition `type` in a status object, keeping the others; its `lastTransitionTime`
    /// moves only when its status does, as Kubernetes' controllers write conditions.
    public static func set(_ type: String, _ value: Bool, reason: String, message: String, at now: Date, in status: inout JSONValue) {
        var conditions = status["conditions"]?.arrayElements ?? []
        let text = value ? "True" : "False"
        let index = conditions.firstIndex { $0["type"]?.stringValue == type }
        let previous = index.map { conditions[$0] }
        let since = previous?["status"]?.stringValue == text ? previous?["lastTransitionTime"] : nil
        let condition: JSONValue = [
            "type": .string(type), "status": .string(text), "reason": .string(reason), "message": .string(message),
            "lastTransitionTime": since ?? .string(kubernetesTimestamp(now)),
        ]
        if let index { conditions[index] = condition } else { conditions.append(condition) }
        status[member: "conditions"] = .array(conditions)
    }

    public init(_ object: JSONValue) {
        all = (object.value(at: "status", "conditions")?.arrayElements ?? []).compactMap { item in
            guard let type = item["type"]?.stringValue else { return nil }
            return Condition(
                type: type,
                status: item["status"]?.stringValue ?? "Unknown",
                reason: item["reason"]?.stringValue ?? "",
                message: item["message"]?.stringValue ?? ""
            )
        }
    }

    public subscript(type: String) -> Condition? { all.first { $0.type == type } }

    /// Whether the condition `type` is present with status `status`.
    public func has(_ type: String, _ status: String) -> Bool { self[type]?.status == status }

    /// Health from a `Ready` condition, else an `Available` one: the generic plugin's rule.
    public var genericHealth: Health {
        guard let condition = self["Ready"] ?? self["Available"] else {
            return Health(.unknown, "no Ready or Available condition")
        }
        switch condition.status {
        case "True": return .healthy
        case "False": return Health(.degraded, "\(condition.type) is False: \(condition.explanation)")
        default: return Health(.progressing, "\(condition.type) is \(condition.status): \(condition.explanation)")
        }
    }
}

/// Preparing a member's copy of a federated object: the parts every kind shares.
public enum MemberCopy {
    /// Metadata a server sets, which a copy sent to another server must not carry.
    public static let serverSetMetadata = [
        "uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
        "deletionGracePeriodSeconds", "managedFields", "selfLink", "ownerReferences", "finalizers",
    ]

    /// Annotations that describe the hub's copy and mean nothing in a member.
    public static let hubOnlyAnnotations = ["kubectl.kubernetes.io/last-applied-configuration"]

    /// The object without `status`, server-set metadata and hub-only annotations.
    public static func stripServerFields(_ object: JSONValue) -> JSONValue {
        var copy = object
        copy[member: "status"] = nil
        var metadata = copy.metadata
        for key in serverSetMetadata { metadata[key] = nil }
        copy.metadata = metadata
        var annotations = copy.annotations
        for key in hubOnlyAnnotations { annotations[key] = nil }
        copy.annotations = annotations
        return copy
    }

    /// The object without the pod template's node binding, which belongs to a member's scheduler.
    public static func stripNodeBinding(_ object: JSONValue) -> JSONValue {
        var copy = object
        copy.set(nil, at: ["spec", "template", "spec", "nodeName"])
        return copy
    }
}

/// Picking summary fields from a live object and combining members' summaries.
public enum StatusSummary {
    /// The integer members of `status` named in `fields`, absent ones as 0 so sums stay honest.
    public static func counts(_ fields: [String], of live: JSONValue) -> [String: JSONValue] {
        var summary: [String: JSONValue] = [:]
        for field in fields { summary[field] = .integer(live.integer(at: "status", field) ?? 0) }
        return summary
    }

    /// Each field in `fields` summed over the members that reported it.
    public static func sums(_ fields: [String], of members: [MemberObjectStatus]) -> [String: JSONValue] {
        var status: [String: JSONValue] = [:]
        for field in fields {
            status[field] = .integer(members.reduce(0) { $0 + ($1.summary[field]?.integerValue ?? 0) })
        }
        return status
    }

    /// `status.loadBalancer.ingress` of a live object, as reported.
    public static func loadBalancer(of live: JSONValue) -> [String: JSONValue] {
        let ingress = live.value(at: "status", "loadBalancer", "ingress")?.arrayElements ?? []
        return ["loadBalancer": ["ingress": .array(ingress)]]
    }

    /// Every member's load-balancer addresses in one `loadBalancer.ingress` list, in cluster-name
    /// order so the aggregate does not change when reports arrive in another order.
    public static func combinedLoadBalancer(of members: [MemberObjectStatus]) -> JSONValue {
        let ingress = members.sorted { $0.cluster < $1.cluster }.flatMap { member in
            member.summary["loadBalancer"]?["ingress"]?.arrayElements ?? []
        }
        return ["loadBalancer": ["ingress": .array(ingress)]]
    }
}

/// Checks shared by many kinds' validation.
public enum FieldChecks {
    /// A problem when the integer at `keys` is present but negative or not an integer.
    public static func nonNegativeInteger(_ object: JSONValue, _ keys: String...) -> ValidationProblem? {
        guard let value = object.value(at: keys), value != .null else { return nil }
        guard let number = value.integerValue, number >= 0 else {
            return ValidationProblem(field: keys.joined(separator: "."), "must be a non-negative integer, not \(value)")
        }
        return nil
    }

    /// A problem when the object at `keys` is missing.
    public static func required(_ object: JSONValue, _ keys: String...) -> ValidationProblem? {
        guard object.value(at: keys) == nil || object.value(at: keys) == .null else { return nil }
        return ValidationProblem(field: keys.joined(separator: "."), "required")
    }
}

/// What a Pod spec needs to exist beside it in its namespace, as Karmada's default interpreter
/// finds a workload's dependencies: the ConfigMaps and Secrets its volumes, projected volumes,
/// environment and image pulls name, the PersistentVolumeClaims it mounts, and its
/// ServiceAccount (not `default`, which every namespace has).
public enum PodDependencies {
    public static func of(podSpec spec: JSONValue, namespace: String?) -> [ObjectReference] {
        var found: [(kind: String, name: String)] = []
        func add(_ kind: String, _ name: JSONValue?) {
            if let name = name?.stringValue, !name.isEmpty { found.append((kind, name)) }
        }
        for volume in spec["volumes"]?.arrayElements ?? [] {
            add("ConfigMap", volume["configMap"]?["name"])
            add("Secret", volume["secret"]?["secretName"])
            add("PersistentVolumeClaim", volume["persistentVolumeClaim"]?["claimName"])
            for source in volume["projected"]?["sources"]?.arrayElements ?? [] {
                add("ConfigMap", source["configMap"]?["name"])
                add("Secret", source["secret"]?["name"])
            }
        }
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            for container in spec[list]?.arrayElements ?? [] {
                for variable in container["env"]?.arrayElements ?? [] {
                    add("ConfigMap", variable["valueFrom"]?["configMapKeyRef"]?["name"])
                    add("Secret", variable["valueFrom"]?["secretKeyRef"]?["name"])
                }
                for source in container["envFrom"]?.arrayElements ?? [] {
                    add("ConfigMap", source["configMapRef"]?["name"])
                    add("Secret", source["secretRef"]?["name"])
                }
            }
        }
        for secret in spec["imagePullSecrets"]?.arrayElements ?? [] { add("Secret", secret["name"]) }
        if let account = spec["serviceAccountName"]?.stringValue, account != "default" { add("ServiceAccount", .string(account)) }
        var seen = Set<String>()
        return found.compactMap { dependency in
            guard seen.insert("\(dependency.kind)/\(dependency.name)").inserted else { return nil }
            return ObjectReference(apiVersion: "v1", kind: dependency.kind, namespace: namespace, name: dependency.name)
        }
    }
}
