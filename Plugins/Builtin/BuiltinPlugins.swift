import ConfigPlugin
import FederationPlugin
import NetworkingPlugin
import PolicyPlugin
import TetherJSON
import TetherModel
import TetherPlugin
import WorkloadsPlugin

/// The plugins compiled into Tether, and the registries the executables serve from them.
public enum BuiltinPlugins {
    /// Every family of Kubernetes kinds Tether propagates.
    public static let kubernetesFamilies: [any ResourcePlugin] = [
        ConfigPlugin(), NetworkingPlugin(), PolicyPlugin(), WorkloadsPlugin(), PodsPlugin(), CustomResourceDefinitionPlugin(),
    ]

    /// What the hub serves: the Kubernetes kinds and Tether's own, and endpoints and Nodes only
    /// to list (``HubListOnlyPlugin``).
    public static let hub = KindRegistry(
        plugins: kubernetesFamilies + [
            FederationPlugin(), EventPlugin(), LeasePlugin(), InterpreterCustomizationPlugin(),
            HubListOnlyPlugin(EndpointsPlugin(), reason: "each member's endpoints controller writes its own"),
            HubListOnlyPlugin(NodePlugin(), reason: "each member's are in its own context (kubectl --context NAME get nodes)"),
        ])

    /// What a member cluster serves (the simulated one included): the Kubernetes kinds, Nodes,
    /// Events and endpoints.
    public static let memberCluster = KindRegistry(plugins: kubernetesFamilies + [NodePlugin(), EventPlugin(), LeasePlugin(), EndpointsPlugin()])

    /// What an agent applies and judges.
    public static let agent = KindRegistry(plugins: kubernetesFamilies)
}

/// Kinds only members hold, served at the hub so that what kubectl looks up by default finds
/// them, and always empty there: Endpoints and EndpointSlices (`apply --prune`'s list of kinds,
/// `create role --resource=endpoints`), which each member's endpoints controller writes and
/// which, written at the hub, could send a Service's traffic anywhere in every member; and Nodes
/// (`create clusterrole --resource=nodes`), which are each member's own. A write at the hub is
/// refused with the reason.
public struct HubListOnlyPlugin: ResourcePlugin {
    public let name: String
    public let kinds: [KindDescriptor]
    private let reason: String

    public init(_ base: any ResourcePlugin, reason: String) {
        self.name = "hub-\(base.name)"
        self.kinds = base.kinds
        self.reason = reason
    }

    public func propagates(_ kind: KindDescriptor) -> Bool { false }

    public func validate(_ object: JSONValue) -> [ValidationProblem] {
        [ValidationProblem(field: "metadata", "Forbidden: the hub holds no \(object.kind ?? "such objects"): \(reason)")]
    }
}

/// Nodes exist only in members (simulated or real); the federation reads them, never sends them.
public struct NodePlugin: ResourcePlugin {
    public let name = "nodes"
    public let kinds: [KindDescriptor] = [Self.node]

    public init() {}

    /// kube-apiserver's columns: `NAME STATUS ROLES AGE VERSION`, and with `-o wide` the
    /// addresses, the OS image, the kernel and the container runtime.
    public static let node: KindDescriptor = {
        var node = KindDescriptor(
            group: "", version: "v1", kind: "Node", plural: "nodes", namespaced: false, shortNames: ["no"],
            printerColumns: [
                // As kubectl shows a cordoned node: `Ready,SchedulingDisabled`.
                .text("STATUS") { node in
                    let ready = Conditions(node).has("Ready", "True") ? "Ready" : "NotReady"
                    return node.value(at: "spec", "unschedulable") == .bool(true) ? "\(ready),SchedulingDisabled" : ready
                },
                .text("ROLES") { roles(of: $0) },
                .text("VERSION") { $0.string(at: "status", "nodeInfo", "kubeletVersion") ?? "" },
                .text("INTERNAL-IP", priority: 1) { address("InternalIP", of: $0) ?? "<none>" },
                .text("EXTERNAL-IP", priority: 1) { address("ExternalIP", of: $0) ?? "<none>" },
                .text("OS-IMAGE", priority: 1) { nodeInfo("osImage", of: $0) },
                .text("KERNEL-VERSION", priority: 1) { nodeInfo("kernelVersion", of: $0) },
                .text("CONTAINER-RUNTIME", priority: 1) { nodeInfo("containerRuntimeVersion", of: $0) },
            ],
            fields: ["spec": nodeSpec, "status": nodeStatus],
            summary: "Node is a worker in a member cluster.",
            protobufNumbers: ["spec": 2, "status": 3]
        )
        node.ageColumnAt = 2
        return node
    }()

    /// The roles a node's `node-role.kubernetes.io/ROLE` labels (or the older `kubernetes.io/role`) give it, as kubectl lists them.
    static func roles(of node: JSONValue) -> String {
        var roles = Set<String>()
        for (key, value) in node.labels {
            if key.hasPrefix("node-role.kubernetes.io/") {
                let role = String(key.dropFirst("node-role.kubernetes.io/".count))
                if !role.isEmpty { roles.insert(role) }
            } else if key == "kubernetes.io/role", !value.isEmpty {
                roles.insert(value)
            }
        }
        return roles.isEmpty ? "<none>" : roles.sorted().joined(separator: ",")
    }

    static func address(_ type: String, of node: JSONValue) -> String? {
        (node.value(at: "status", "addresses")?.arrayElements ?? []).first { $0["type"]?.stringValue == type }?["address"]?.stringValue
    }

    static func nodeInfo(_ field: String, of node: JSONValue) -> String {
        let value = node.string(at: "status", "nodeInfo", field) ?? ""
        return value.isEmpty ? "<unknown>" : value
    }

    /// `core/v1.NodeConfigSource` (the deprecated dynamic kubelet configuration).
    static let configSource = FieldSchema.numbered(
        .field(
            2, "configMap",
            .numbered(
                .field(1, "namespace", .string), .field(2, "name", .string), .field(3, "uid", .string), .field(4, "resourceVersion", .string),
                .field(5, "kubeletConfigKey", .string)
            ), optional: true))

    /// `core/v1.NodeSpec`.
    static let nodeSpec = FieldSchema.numbered(
        .field(1, "podCIDR", .string), .field(7, "podCIDRs", .stringList), .field(3, "providerID", .string),
        .field(4, "unschedulable", .boolean),
        .field(
            5, "taints",
            .array(
                .numbered(
                    .field(1, "key", .string), .field(2, "value", .string), .field(3, "effect", .string),
                    .field(4, "timeAdded", .time, optional: true)))),
        .field(6, "configSource", configSource, optional: true), .field(2, "externalID", .string)
    )

    /// `core/v1.NodeStatus`.
    static let nodeStatus = FieldSchema.numbered(
        .field(1, "capacity", .map(.quantity)), .field(2, "allocatable", .map(.quantity)), .field(3, "phase", .string),
        .field(
            4, "conditions",
            .array(
                .numbered(
                    .field(1, "type", .string), .field(2, "status", .string), .field(3, "lastHeartbeatTime", .time),
                    .field(4, "lastTransitionTime", .time), .field(5, "reason", .string), .field(6, "message", .string)))),
        .field(5, "addresses", .array(.numbered(.field(1, "type", .string), .field(2, "address", .string)))),
        .field(6, "daemonEndpoints", .numbered(.field(1, "kubeletEndpoint", .numbered(.field(1, "Port", .integer))))),
        .field(
            7, "nodeInfo",
            .numbered(
                .field(1, "machineID", .string), .field(2, "systemUUID", .string), .field(3, "bootID", .string),
                .field(4, "kernelVersion", .string), .field(5, "osImage", .string), .field(6, "containerRuntimeVersion", .string),
                .field(7, "kubeletVersion", .string), .field(8, "kubeProxyVersion", .string), .field(9, "operatingSystem", .string),
                .field(10, "architecture", .string),
                .field(11, "swap", .numbered(.field(1, "capacity", .integer, optional: true)), optional: true)
            )),
        .field(8, "images", .array(.numbered(.field(1, "names", .stringList), .field(2, "sizeBytes", .integer)))),
        .field(9, "volumesInUse", .stringList),
        .field(10, "volumesAttached", .array(.numbered(.field(1, "name", .string), .field(2, "devicePath", .string)))),
        .field(
            11, "config",
            .numbered(
                .field(1, "assigned", configSource, optional: true), .field(2, "active", configSource, optional: true),
                .field(3, "lastKnownGood", configSource, optional: true), .field(4, "error", .string)
            ), optional: true),
        .field(
            12, "runtimeHandlers",
            .array(
                .numbered(
                    .field(1, "name", .string),
                    .field(
                        2, "features",
                        .numbered(
                            .field(1, "recursiveReadOnlyMounts", .boolean, optional: true), .field(2, "userNamespaces", .boolean, optional: true)),
                        optional: true)))),
        .field(13, "features", .numbered(.field(1, "supplementalGroupsPolicy", .boolean, optional: true)), optional: true)
    )

    public func propagates(_ kind: KindDescriptor) -> Bool { false }
}

/// Core v1 Events: what happened to an object, as `kubectl describe` and `kubectl get events` show.
/// The hub writes them for per-cluster changes of a federated object; they never propagate.
public struct EventPlugin: ResourcePlugin {
    public let name = "events"
    public let kinds: [KindDescriptor] = [Self.event]

    public init() {}

    /// The fields `kubectl describe` selects an object's events by, and the usual others.
    public static let event = KindDescriptor(
        group: "", version: "v1", kind: "Event", plural: "events", namespaced: true, shortNames: ["ev"],
        printerColumns: [
            .text("TYPE") { $0.string(at: "type") ?? "" },
            .text("REASON") { $0.string(at: "reason") ?? "" },
            .text("OBJECT") { event in
                let kind = event.string(at: "involvedObject", "kind")?.lowercased() ?? ""
                return "\(kind)/\(event.string(at: "involvedObject", "name") ?? "")"
            },
            .count("COUNT", priority: 1) { $0.integer(at: "count") ?? 1 },
            .text("MESSAGE") { $0.string(at: "message") ?? "" },
        ],
        hasStatus: false,
        selectableFields: [
            "involvedObject.apiVersion", "involvedObject.kind", "involvedObject.name", "involvedObject.namespace",
            "involvedObject.uid", "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason", "type",
            "reportingComponent",
        ],
        fields: [
            "involvedObject": .objectReference, "reason": .string, "message": .string,
            "source": .numbered(.field(1, "component", .string), .field(2, "host", .string)),
            "firstTimestamp": .time, "lastTimestamp": .time, "count": .integer, "type": .string, "eventTime": .microTime,
            "series": .numbered(.field(1, "count", .integer), .field(2, "lastObservedTime", .microTime)), "action": .string,
            "related": .objectReference, "reportingComponent": .string, "reportingInstance": .string,
        ],
        summary: "Event is a report of an event somewhere in the cluster (at the hub: in a member cluster).",
        protobufNumbers: [
            "involvedObject": 2, "reason": 3, "message": 4, "source": 5, "firstTimestamp": 6, "lastTimestamp": 7, "count": 8, "type": 9,
            "eventTime": 10, "series": 11, "action": 12, "related": 13, "reportingComponent": 14, "reportingInstance": 15,
        ]
    )

    public func propagates(_ kind: KindDescriptor) -> Bool { false }
}

/// Leases (`coordination.k8s.io/v1`): what controllers elect a leader with, so a controller
/// run against the hub or a member with leader election works, and what a member's kubelets
/// renew (`kubectl describe node` reads them). Each end's own: never propagated.
public struct LeasePlugin: ResourcePlugin {
    public let name = "leases"
    public let kinds: [KindDescriptor] = [Self.lease]

    public init() {}

    public static let lease = KindDescriptor(
        group: "coordination.k8s.io", version: "v1", kind: "Lease", plural: "leases", namespaced: true,
        printerColumns: [.text("HOLDER") { $0.string(at: "spec", "holderIdentity") ?? "" }],
        hasStatus: false,
        fields: [
            "spec": .numbered(
                .field(1, "holderIdentity", .string, optional: true), .field(2, "leaseDurationSeconds", .integer, optional: true),
                .field(3, "acquireTime", .microTime, optional: true), .field(4, "renewTime", .microTime, optional: true),
                .field(5, "leaseTransitions", .integer, optional: true), .field(6, "strategy", .string, optional: true),
                .field(7, "preferredHolder", .string, optional: true)
            )
        ],
        summary: "Lease defines a lease concept: who holds it, since when, and for how long.",
        protobufNumbers: ["spec": 2]
    )

    public func propagates(_ kind: KindDescriptor) -> Bool { false }
}
