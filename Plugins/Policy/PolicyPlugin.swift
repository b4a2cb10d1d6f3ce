import TetherJSON
import TetherModel
import TetherPlugin

/// Identity, access and guard rails operators federate with their workloads: ServiceAccounts,
/// Roles and their bindings, quotas and limit ranges, disruption budgets, network policies,
/// volumes and their claims, and autoscalers.
///
/// Roles, ClusterRoles and their bindings are served and federated, but no agent writes them
/// unless its allow-list names them: writing RBAC means granting access (an agent allowed it is
/// given `bind` and `escalate` in the manifests `tetherctl join --emit-manifests` writes), and
/// that must be an operator's choice, never a default. An autoscaler is not divided among clusters: each member gets the same bounds and
/// scales its own share (docs/federation.md).
public struct PolicyPlugin: ResourcePlugin {
    public let name = "policy"
    public let kinds: [KindDescriptor] = [
        Self.serviceAccount, Self.role, Self.roleBinding, Self.clusterRole, Self.clusterRoleBinding, Self.resourceQuota, Self.limitRange,
        Self.persistentVolume, Self.persistentVolumeClaim, Self.podDisruptionBudget, Self.networkPolicy, Self.horizontalPodAutoscaler,
        Self.priorityClass, Self.storageClass,
    ]

    public init() {}

    static let rbacGroup = "rbac.authorization.k8s.io"

    public static let serviceAccount = KindDescriptor(
        group: "", version: "v1", kind: "ServiceAccount", plural: "serviceaccounts", namespaced: true, shortNames: ["sa"],
        printerColumns: [.count("SECRETS") { Int64($0["secrets"]?.arrayElements.count ?? 0) }],
        hasStatus: false,
        fields: [
            "secrets": .array(.objectReference), "imagePullSecrets": .array(.localObjectReference), "automountServiceAccountToken": .boolean,
        ],
        summary: "ServiceAccount binds together a name for a workload's identity and the secrets it may use.",
        protobufNumbers: ["secrets": 2, "imagePullSecrets": 3, "automountServiceAccountToken": 4]
    )

    /// `rbac/v1.PolicyRule`.
    static let policyRule = FieldSchema.numbered(
        .field(1, "verbs", .stringList), .field(2, "apiGroups", .stringList), .field(3, "resources", .stringList),
        .field(4, "resourceNames", .stringList), .field(5, "nonResourceURLs", .stringList)
    )
    static let subjects = FieldSchema.array(
        .numbered(.field(1, "kind", .string), .field(2, "apiGroup", .string), .field(3, "name", .string), .field(4, "namespace", .string)))
    static let roleRef = FieldSchema.numbered(.field(1, "apiGroup", .string), .field(2, "kind", .string), .field(3, "name", .string))
    static let roleColumn = PrinterColumn.text("ROLE") { "\($0.string(at: "roleRef", "kind") ?? "")/\($0.string(at: "roleRef", "name") ?? "")" }

    public static let role = KindDescriptor(
        group: rbacGroup, version: "v1", kind: "Role", plural: "roles", namespaced: true, hasStatus: false,
        fields: ["rules": .array(policyRule)],
        summary: "Role is a namespaced set of rules that a RoleBinding grants.",
        protobufNumbers: ["rules": 2]
    )
    public static let clusterRole = KindDescriptor(
        group: rbacGroup, version: "v1", kind: "ClusterRole", plural: "clusterroles", namespaced: false, hasStatus: false,
        fields: ["rules": .array(policyRule), "aggregationRule": .numbered(.field(1, "clusterRoleSelectors", .array(.labelSelector)))],
        summary: "ClusterRole is a cluster-wide set of rules that a RoleBinding or ClusterRoleBinding grants.",
        protobufNumbers: ["rules": 2, "aggregationRule": 3]
    )
    public static let roleBinding = KindDescriptor(
        group: rbacGroup, version: "v1", kind: "RoleBinding", plural: "rolebindings", namespaced: true, printerColumns: [roleColumn],
        hasStatus: false,
        fields: ["subjects": subjects, "roleRef": roleRef],
        summary: "RoleBinding grants a Role or ClusterRole to subjects within a namespace.",
        protobufNumbers: ["subjects": 2, "roleRef": 3]
    )
    public static let clusterRoleBinding = KindDescriptor(
        group: rbacGroup, version: "v1", kind: "ClusterRoleBinding", plural: "clusterrolebindings", namespaced: false,
        printerColumns: [roleColumn], hasStatus: false,
        fields: ["subjects": subjects, "roleRef": roleRef],
        summary: "ClusterRoleBinding grants a ClusterRole to subjects cluster-wide.",
        protobufNumbers: ["subjects": 2, "roleRef": 3]
    )

    public static let priorityClass = KindDescriptor(
        group: "scheduling.k8s.io", version: "v1", kind: "PriorityClass", plural: "priorityclasses", namespaced: false, shortNames: ["pc"],
        printerColumns: [
            .count("VALUE") { $0["value"]?.integerValue ?? 0 },
            .text("GLOBAL-DEFAULT") { $0["globalDefault"] == .bool(true) ? "true" : "false" },
            .text("PREEMPTIONPOLICY") { $0["preemptionPolicy"]?.stringValue ?? "" },
        ],
        hasStatus: false,
        fields: ["value": .integer, "globalDefault": .boolean, "description": .string, "preemptionPolicy": .string],
        summary: "PriorityClass maps a priority class name to the priority of the Pods that name it.",
        protobufNumbers: ["value": 2, "globalDefault": 3, "description": 4, "preemptionPolicy": 5]
    )
    /// The highest value a PriorityClass an operator makes may have; above it, the system's own.
    static let highestUserPriority: Int64 = 1_000_000_000
    /// The PriorityClasses Kubernetes makes itself, the only ones a `system-` name may have.
    static let systemPriorityClasses = PodPriority.systemClasses

    public static let resourceQuota = KindDescriptor(
        group: "", version: "v1", kind: "ResourceQuota", plural: "resourcequotas", namespaced: true, shortNames: ["quota"],
        printerColumns: [
            .text("HARD") { quota in
                (quota.value(at: "spec", "hard")?.objectMembers ?? [:]).sorted { $0.key < $1.key }
                    .map { "\($0.key): \($0.value.stringValue ?? $0.value.integerValue.map(String.init) ?? "")" }.joined(separator: ", ")
            }
        ],
        fields: [
            "spec": .numbered(
                .field(1, "hard", .map(.quantity)), .field(2, "scopes", .stringList),
                .field(
                    3, "scopeSelector",
                    .numbered(
                        .field(
                            1, "matchExpressions",
                            .array(.numbered(.field(1, "scopeName", .string), .field(2, "operator", .string), .field(3, "values", .stringList))))),
                    optional: true)),
            "status": .numbered(.field(1, "hard", .map(.quantity)), .field(2, "used", .map(.quantity))),
        ],
        summary: "ResourceQuota sets aggregate quota restrictions enforced per namespace.",
        protobufNumbers: ["spec": 2, "status": 3]
    )
    public static let limitRange = KindDescriptor(
        group: "", version: "v1", kind: "LimitRange", plural: "limitranges", namespaced: true, shortNames: ["limits"],
        hasStatus: false,
        fields: [
            "spec": .numbered(
                .field(
                    1, "limits",
                    .array(
                        .numbered(
                            .field(1, "type", .string), .field(2, "max", .map(.quantity)), .field(3, "min", .map(.quantity)),
                            .field(4, "default", .map(.quantity)), .field(5, "defaultRequest", .map(.quantity)),
                            .field(6, "maxLimitRequestRatio", .map(.quantity))))))
        ],
        summary: "LimitRange sets resource usage limits for each kind of resource in a namespace.",
        protobufNumbers: ["spec": 2]
    )
    /// A volume in one cluster, made by hand or by a provisioner; cluster-scoped.
    public static let persistentVolume = KindDescriptor(
        group: "", version: "v1", kind: "PersistentVolume", plural: "persistentvolumes", namespaced: false, shortNames: ["pv"],
        printerColumns: [
            .text("CAPACITY") { $0.string(at: "spec", "capacity", "storage") ?? "" },
            .text("ACCESS MODES") { accessModes($0.value(at: "spec", "accessModes")) },
            .text("RECLAIM POLICY") { $0.string(at: "spec", "persistentVolumeReclaimPolicy") ?? "" },
            .text("STATUS") { $0.string(at: "status", "phase") ?? "" },
            .text("CLAIM") { volume in
                guard let name = volume.string(at: "spec", "claimRef", "name") else { return "" }
                return "\(volume.string(at: "spec", "claimRef", "namespace") ?? "")/\(name)"
            },
            .text("STORAGECLASS") { $0.string(at: "spec", "storageClassName") ?? "" },
            .text("VOLUMEATTRIBUTESCLASS") { $0.string(at: "spec", "volumeAttributesClassName") ?? "<unset>" },
            .text("REASON") { $0.string(at: "status", "reason") ?? "" },
            .text("VOLUMEMODE", priority: 1) { $0.string(at: "spec", "volumeMode") ?? "<unset>" },
        ],
        fields: [
            "spec": .persistentVolumeSpec,
            "status": .persistentVolumeStatus,
        ],
        summary: "PersistentVolume is a storage resource provisioned in a cluster, which a claim binds.",
        protobufNumbers: ["spec": 2, "status": 3]
    )

    /// Access modes as kubectl prints them: `RWO,ROX,RWX,RWOP`.
    static func accessModes(_ modes: JSONValue?) -> String {
        let short = ["ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"]
        return (modes?.arrayElements ?? []).compactMap(\.stringValue).map { short[$0] ?? $0 }.joined(separator: ",")
    }

    public static let persistentVolumeClaim = KindDescriptor(
        group: "", version: "v1", kind: "PersistentVolumeClaim", plural: "persistentvolumeclaims", namespaced: true, shortNames: ["pvc"],
        printerColumns: [
            .text("STATUS") { $0.string(at: "status", "phase") ?? "Pending" },
            .text("VOLUME") { $0.string(at: "spec", "volumeName") ?? "" },
            .text("CAPACITY") { $0.string(at: "status", "capacity", "storage") ?? "" },
            .text("ACCESS MODES") { accessModes($0.value(at: "status", "accessModes")) },
            .text("STORAGECLASS") { $0.string(at: "spec", "storageClassName") ?? "<unset>" },
            .text("VOLUMEATTRIBUTESCLASS") { $0.string(at: "status", "currentVolumeAttributesClassName") ?? "<unset>" },
            .text("VOLUMEMODE", priority: 1) { $0.string(at: "spec", "volumeMode") ?? "<unset>" },
        ],
        fields: [
            "spec": .persistentVolumeClaimSpec,
            "status": .persistentVolumeClaimStatus,
        ],
        summary: "PersistentVolumeClaim is a user's request for and claim to a persistent volume.",
        protobufNumbers: ["spec": 2, "status": 3]
    )
    public static let podDisruptionBudget = KindDescriptor(
        group: "policy", version: "v1", kind: "PodDisruptionBudget", plural: "poddisruptionbudgets", namespaced: true,
        shortNames: ["pdb"],
        printerColumns: [
            .text("MIN AVAILABLE") { Self.intOrString($0.value(at: "spec", "minAvailable")) ?? "N/A" },
            .text("MAX UNAVAILABLE") { Self.intOrString($0.value(at: "spec", "maxUnavailable")) ?? "N/A" },
            .count("ALLOWED DISRUPTIONS") { $0.integer(at: "status", "disruptionsAllowed") ?? 0 },
        ],
        fields: [
            "spec": .numbered(
                .field(1, "minAvailable", .intOrString, optional: true), .field(2, "selector", .labelSelector),
                .field(3, "maxUnavailable", .intOrString, optional: true), .field(4, "unhealthyPodEvictionPolicy", .string, optional: true)
            ),
            "status": .numbered(
                .field(1, "observedGeneration", .integer), .field(2, "disruptedPods", .map(.time)), .field(3, "disruptionsAllowed", .integer),
                .field(4, "currentHealthy", .integer), .field(5, "desiredHealthy", .integer), .field(6, "expectedPods", .integer),
                .field(7, "conditions", .array(.condition))
            ),
        ],
        summary: "PodDisruptionBudget limits how many pods of a set may be down at once by voluntary disruption.",
        protobufNumbers: ["spec": 2, "status": 3]
    )
    public static let networkPolicy = KindDescriptor(
        group: "networking.k8s.io", version: "v1", kind: "NetworkPolicy", plural: "networkpolicies", namespaced: true,
        shortNames: ["netpol"],
        printerColumns: [
            .text("POD-SELECTOR") { policy in
                let labels = policy.value(at: "spec", "podSelector", "matchLabels")?.objectMembers ?? [:]
                return labels.isEmpty
                    ? "<none>" : labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.stringValue ?? "")" }.joined(separator: ",")
            }
        ],
        hasStatus: false,
        fields: [
            "spec": .numbered(
                .field(1, "podSelector", .labelSelector), .field(2, "ingress", .array(Self.networkPolicyRule(peers: "from"))),
                .field(3, "egress", .array(Self.networkPolicyRule(peers: "to"))),
                .field(4, "policyTypes", .stringList)
            )
        ],
        summary: "NetworkPolicy describes what network traffic is allowed for a set of pods.",
        protobufNumbers: ["spec": 2]
    )
    public static let horizontalPodAutoscaler = KindDescriptor(
        group: "autoscaling", version: "v2", kind: "HorizontalPodAutoscaler", plural: "horizontalpodautoscalers", namespaced: true,
        shortNames: ["hpa"], categories: ["all"],
        printerColumns: [
            .text("REFERENCE") {
                "\($0.string(at: "spec", "scaleTargetRef", "kind") ?? "")/\($0.string(at: "spec", "scaleTargetRef", "name") ?? "")"
            },
            .text("TARGETS") { Self.autoscalerTargets($0) },
            .count("MINPODS") { $0.integer(at: "spec", "minReplicas") ?? 1 },
            .count("MAXPODS") { $0.integer(at: "spec", "maxReplicas") ?? 0 },
            .count("REPLICAS") { $0.integer(at: "status", "currentReplicas") ?? 0 },
        ],
        fields: [
            "spec": .numbered(
                .field(1, "scaleTargetRef", Self.crossVersionReference),
                .field(2, "minReplicas", .integer, optional: true), .field(3, "maxReplicas", .integer), .field(4, "metrics", .array(Self.metricSpec)),
                .field(5, "behavior", Self.autoscalerBehavior, optional: true)
            ),
            "status": Self.autoscalerStatus,
        ],
        summary: "HorizontalPodAutoscaler scales a workload's replicas to the metrics it names.",
        protobufNumbers: ["spec": 2, "status": 3]
    )

    /// `policy/v1beta1` PodDisruptionBudgets (kubectl 1.20's `create poddisruptionbudget`) and
    /// `autoscaling/v1` autoscalers (`kubectl autoscale`), stored at `policy/v1` and `autoscaling/v2`.
    public var otherVersions: [KindDescriptor] {
        [
            Self.podDisruptionBudget.alsoServed(as: "v1beta1"),
            Self.horizontalPodAutoscaler.alsoServed(
                as: "v1", fields: AutoscalerV1.fields,
                summary: "HorizontalPodAutoscaler scales a workload's replicas to a target CPU utilization (stored as autoscaling/v2).",
                conversion: AutoscalerV1.conversion),
        ]
    }

    static func intOrString(_ value: JSONValue?) -> String? {
        value?.stringValue ?? value?.integerValue.map(String.init)
    }

    /// Identity and access come before the workloads that use them; the rest with the workloads.
    public func applyPhase(of kind: KindDescriptor) -> ApplyPhase {
        switch kind.kind {
        case "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "ResourceQuota", "LimitRange",
            "PersistentVolume", "PersistentVolumeClaim", "PriorityClass", "StorageClass":
            .configuration
        default: .workloads
        }
    }

    /// kube-apiserver's defaults: a PriorityClass preempts lower priorities unless it says Never;
    /// a LimitRange's `Container` item limits by default to its `max`, and requests by default
    /// what it limits by default, else its `min`.
    public func normalizeOnWrite(_ object: JSONValue) -> JSONValue {
        if let defaulted = Self.storageDefaults(object) { return defaulted }
        if object.kind == "LimitRange", var items = object.value(at: "spec", "limits")?.arrayElements {
            for index in items.indices where items[index]["type"]?.stringValue == "Container" {
                var limits = items[index]["default"]?.objectMembers ?? [:]
                var requests = items[index]["defaultRequest"]?.objectMembers ?? [:]
                for (resource, value) in items[index]["max"]?.objectMembers ?? [:] where limits[resource] == nil { limits[resource] = value }
                for (resource, value) in limits where requests[resource] == nil { requests[resource] = value }
                for (resource, value) in items[index]["min"]?.objectMembers ?? [:] where requests[resource] == nil { requests[resource] = value }
                if !limits.isEmpty { items[index][member: "default"] = .object(limits) }
                if !requests.isEmpty { items[index][member: "defaultRequest"] = .object(requests) }
            }
            var defaulted = object
            defaulted.set(.array(items), at: ["spec", "limits"])
            return defaulted
        }
        if object.kind == "HorizontalPodAutoscaler" {
            // autoscaling/v2's defaults: at least one replica, and 80 % of the CPU request when no
            // metric is named; a behavior stated is completed (AutoscalerBehaviorDefaults).
            var defaulted = object
            KubernetesDefaults.fill(&defaulted, ["spec", "minReplicas"], 1)
            if let behavior = object.value(at: "spec", "behavior") {
                defaulted.set(AutoscalerBehaviorDefaults.filled(behavior), at: ["spec", "behavior"])
            }
            if (object.value(at: "spec", "metrics")?.arrayElements ?? []).isEmpty {
                defaulted.set(
                    [["type": "Resource", "resource": ["name": "cpu", "target": ["type": "Utilization", "averageUtilization": 80]]]],
                    at: ["spec", "metrics"])
            }
            return defaulted
        }
        if object.kind == "PersistentVolume" {
            // A volume made by hand is kept when its claim goes, as kube-apiserver defaults it.
            var defaulted = object
            KubernetesDefaults.fill(&defaulted, ["spec", "persistentVolumeReclaimPolicy"], "Retain")
            KubernetesDefaults.fill(&defaulted, ["spec", "volumeMode"], "Filesystem")
            return defaulted
        }
        guard object.kind == "PriorityClass", object["preemptionPolicy"] == nil else { return object }
        var defaulted = object
        defaulted[member: "preemptionPolicy"] = "PreemptLowerPriority"
        return defaulted
    }

    /// kube-apiserver's checks of a PriorityClass: `system-` names are the system's, a user's
    /// value is at most one billion, and the preemption policy is one it knows.
    public func validate(_ object: JSONValue) -> [ValidationProblem] {
        if object.kind == "PersistentVolume" { return Self.volumeProblems(object) }
        if object.kind == "StorageClass" { return Self.storageClassProblems(object) }
        if object.kind == "PersistentVolumeClaim" { return Self.claimProblems(object) }
        if object.kind == "ResourceQuota" {
            return ResourceQuotaAdmission.scopeProblems(of: object).map { ValidationProblem(field: $0.field, $0.message) }
        }
        guard object.kind == "PriorityClass" else { return [] }
        var problems: [ValidationProblem] = []
        let name = object.name ?? ""
        let value = object["value"]?.integerValue ?? 0
        if name.hasPrefix("system-") {
            if Self.systemPriorityClasses[name] == nil {
                problems.append(
                    ValidationProblem(field: "metadata.name", "Invalid value: \"\(name)\": priority class names with 'system-' prefix are reserved"))
            }
        } else if value > Self.highestUserPriority {
            problems.append(
                ValidationProblem(field: "value", "Forbidden: maximum allowed value of a user defined priority is \(Self.highestUserPriority)"))
        }
        if let policy = object["preemptionPolicy"]?.stringValue, !["PreemptLowerPriority", "Never"].contains(policy) {
            problems.append(
                ValidationProblem(
                    field: "preemptionPolicy", "Unsupported value: \"\(policy)\": supported values: \"Never\", \"PreemptLowerPriority\""))
        }
        return problems
    }

    /// kube-apiserver's checks of a volume: a storage capacity, an access mode, and exactly one source.
    static func volumeProblems(_ volume: JSONValue) -> [ValidationProblem] {
        var problems: [ValidationProblem] = []
        if volume.value(at: "spec", "capacity", "storage") == nil {
            problems.append(ValidationProblem(field: "spec.capacity", "Required value"))
        }
        if (volume.value(at: "spec", "accessModes")?.arrayElements ?? []).isEmpty {
            problems.append(ValidationProblem(field: "spec.accessModes", "Required value"))
        }
        let sources = FieldSchema.persistentVolumeSourceNames.filter { volume.value(at: "spec", $0) != nil }
        if sources.isEmpty {
            problems.append(ValidationProblem(field: "spec", "Required value: must specify a volume type"))
        } else if sources.count > 1 {
            problems.append(ValidationProblem(field: "spec.\(sources[1])", "Forbidden: may not specify more than 1 volume type"))
        }
        return problems
    }

    /// A PriorityClass's value and preemption policy never change: Pods already carry them.
    public func validateUpdate(_ object: JSONValue, from old: JSONValue) -> [ValidationProblem] {
        guard object.kind == "PriorityClass" else { return Self.storageUpdateProblems(object, from: old) }
        var problems = validate(object)
        if (object["value"]?.integerValue ?? 0) != (old["value"]?.integerValue ?? 0) {
            problems.append(ValidationProblem(field: "value", "Forbidden: may not be changed in an update."))
        }
        if object["preemptionPolicy"] != old["preemptionPolicy"] {
            problems.append(ValidationProblem(field: "preemptionPolicy", "Invalid value: field is immutable"))
        }
        return problems
    }

    /// Access is granted only when an agent's allow-list names RBAC; and a PersistentVolume only
    /// when it names that, since a volume (a host path, another namespace's disk) opens storage to
    /// whichever claim binds it, which Kubernetes keeps for administrators.
    /// A StorageClass neither: each member keeps its own classes (its provisioners, its default).
    public func allowedByDefault(_ kind: KindDescriptor) -> Bool {
        kind.group != Self.rbacGroup && kind.kind != "PersistentVolume" && kind.kind != "StorageClass"
    }

    /// A claim is healthy once bound; an autoscaler that cannot scale is degraded; the rest
    /// (identity, access, limits) hold nothing that can fail once written.
    /// What a member's disruption controller counted for a PodDisruptionBudget.
    static let budgetCounts = ["currentHealthy", "desiredHealthy", "expectedPods", "disruptionsAllowed"]

    /// What a member's autoscaler counted for a HorizontalPodAutoscaler.
    static let autoscalerCounts = ["currentReplicas", "desiredReplicas"]

    /// A volume's or a claim's phases, the least advanced first: the hub shows the least
    /// advanced of its members' (a claim Bound in one member and Pending in another is Pending).
    static let phasesInOrder = ["Failed", "Lost", "Pending", "Released", "Available", "Bound"]

    public func summary(of live: JSONValue) -> [String: JSONValue] {
        switch live.kind {
        case "PersistentVolume", "PersistentVolumeClaim": live.value(at: "status", "phase").map { ["phase": $0] } ?? [:]
        case "PodDisruptionBudget": StatusSummary.counts(Self.budgetCounts, of: live)
        case "HorizontalPodAutoscaler": Self.autoscalerSummary(of: live)
        case "ResourceQuota": live.value(at: "status", "used").map { ["used": $0] } ?? [:]
        default: [:]
        }
    }

    /// A federated PodDisruptionBudget's status: each member's counts summed (`kubectl get pdb`
    /// at the hub shows the disruptions allowed in all of them), and `DisruptionAllowed` saying
    /// which members allow none, since a disruption is always taken in one member. A
    /// HorizontalPodAutoscaler's: each member's current and desired replicas summed. A
    /// ResourceQuota's: its limits, and for each the most any member uses, since every member
    /// enforces the whole quota on its own (`kubectl describe quota` at the hub shows how close
    /// the fullest member is).
    public func aggregateStatus(of object: JSONValue, members: [MemberObjectStatus]) -> JSONValue? {
        if object.kind == "ResourceQuota" {
            guard let hard = object.value(at: "spec", "hard") else { return nil }
            var most: [String: (amount: Int64, text: JSONValue)] = [:]
            for member in members {
                for (resource, value) in member.summary["used"]?.objectMembers ?? [:] {
                    guard let amount = ResourceQuantity.milli(value.stringValue) else { continue }
                    if most[resource].map({ amount > $0.amount }) ?? true { most[resource] = (amount, value) }
                }
            }
            var status: JSONValue = ["hard": hard]
            if !most.isEmpty { status[member: "used"] = .object(most.mapValues(\.text)) }
            return status
        }
        if object.kind == "PersistentVolume" || object.kind == "PersistentVolumeClaim" {
            let phases = Set(members.compactMap { $0.summary["phase"]?.stringValue })
            guard let phase = Self.phasesInOrder.first(where: phases.contains) ?? phases.sorted().first else { return nil }
            return ["phase": .string(phase)]
        }
        if object.kind == "HorizontalPodAutoscaler", !members.isEmpty { return Self.aggregatedAutoscalerStatus(of: members) }
        guard object.kind == "PodDisruptionBudget", !members.isEmpty else { return nil }
        var status = StatusSummary.sums(Self.budgetCounts, of: members)
        let blocked = members.filter { ($0.summary["disruptionsAllowed"]?.integerValue ?? 0) <= 0 }.map(\.cluster).sorted()
        let holds = blocked.count < members.count
        let message = blocked.isEmpty ? "" : "no disruption allowed in \(blocked.joined(separator: ", "))"
        let previous = (object.value(at: "status", "conditions")?.arrayElements ?? []).first { $0["type"] == "DisruptionAllowed" }
        let since = previous?["status"]?.stringValue == (holds ? "True" : "False") ? previous?["lastTransitionTime"] : nil
        status["conditions"] = [
            [
                "type": "DisruptionAllowed", "status": holds ? "True" : "False", "reason": holds ? "SufficientPods" : "InsufficientPods",
                "message": .string(message), "lastTransitionTime": since ?? .string(kubernetesTimestamp()),
            ]
        ]
        return .object(status)
    }

    public func health(of live: JSONValue) -> Health {
        switch live.kind {
        case "PersistentVolume":
            let phase = live.string(at: "status", "phase") ?? "Pending"
            switch phase {
            case "Available", "Bound", "Released": return .healthy
            case "Failed": return Health(.degraded, "the volume failed: \(live.string(at: "status", "message") ?? "no reason given")")
            default: return Health(.progressing, "the volume is \(phase)")
            }
        case "PersistentVolumeClaim":
            let phase = live.string(at: "status", "phase") ?? "Pending"
            switch phase {
            case "Bound": return .healthy
            case "Lost": return Health(.degraded, "the claim lost its volume")
            default: return Health(.progressing, "the claim is \(phase)")
            }
        case "HorizontalPodAutoscaler":
            if let condition = Conditions(live)["AbleToScale"], condition.status == "False" {
                return Health(.degraded, "AbleToScale is False: \(condition.explanation)")
            }
            return .healthy
        default:
            return .healthy
        }
    }
}
