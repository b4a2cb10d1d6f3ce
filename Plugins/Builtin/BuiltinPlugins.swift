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

    /// What the hub serves: the Kubernetes kinds and Tether's own.
    public static let hub = KindRegistry(plugins: kubernetesFamilies + [FederationPlugin(), EventPlugin(), InterpreterCustomizationPlugin()])

    /// What a member cluster serves (the simulated one included): the Kubernetes kinds, Nodes,
    /// Events and endpoints.
    public static let memberCluster = KindRegistry(plugins: kubernetesFamilies + [NodePlugin(), EventPlugin(), EndpointsPlugin()])

    /// What an agent applies and judges.
    public static let agent = KindRegistry(plugins: kubernetesFamilies)
}

/// Nodes exist only in members (simulated or real); the federation reads them, never sends them.
public struct NodePlugin: ResourcePlugin {
    public let name = "nodes"
    public let kinds: [KindDescriptor] = [Self.node]

    public init() {}

    public static let node = KindDescriptor(
        group: "", version: "v1", kind: "Node", plural: "nodes", namespaced: false, shortNames: ["no"],
        printerColumns: [
            // As kubectl shows a cordoned node: `Ready,SchedulingDisabled`.
            .text("STATUS") { node in
                let ready = Conditions(node).has("Ready", "True") ? "Ready" : "NotReady"
                return node.value(at: "spec", "unschedulable") == .bool(true) ? "\(ready),SchedulingDisabled" : ready
            },
            .text("VERSION") { $0.string(at: "status", "nodeInfo", "kubeletVersion") ?? "" },
        ],
        fields: ["spec": .free, "status": .free],
        summary: "Node is a worker in a member cluster."
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
