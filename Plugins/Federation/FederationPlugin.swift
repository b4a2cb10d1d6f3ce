import TetherModel
import TetherPlugin

/// Tether's own kinds in `core.tether.io`: they describe the federation and stay at the hub.
public struct FederationPlugin: ResourcePlugin {
    public let name = "federation"
    public let kinds: [KindDescriptor] = [Self.cluster, Self.propagationPolicy, Self.overridePolicy]

    public init() {}

    public static let group = "core.tether.io"

    public static let cluster = KindDescriptor(
        group: group, version: "v1alpha1", kind: "Cluster", plural: "clusters", namespaced: false,
        printerColumns: [
            .text("STATUS") { $0.string(at: "status", "phase") ?? "Unknown" },
            .text("AGENT", priority: 1) { $0.string(at: "status", "agentVersion") ?? "<none>" },
            .text("KUBERNETES", priority: 1) { $0.string(at: "status", "kubernetesVersion") ?? "<none>" },
            .text("NODES", priority: 1) { $0.integer(at: "status", "nodeCount").map(String.init) ?? "<none>" },
            .text("LAST-HEARTBEAT", priority: 1) { $0.string(at: "status", "lastHeartbeatTime") ?? "<none>" },
        ]
    )
    public static let propagationPolicy = KindDescriptor(
        group: group, version: "v1alpha1", kind: "PropagationPolicy", plural: "propagationpolicies",
        namespaced: true, shortNames: ["pp"], hasStatus: false
    )
    public static let overridePolicy = KindDescriptor(
        group: group, version: "v1alpha1", kind: "OverridePolicy", plural: "overridepolicies",
        namespaced: true, shortNames: ["op"], hasStatus: false
    )

    public func propagates(_ kind: KindDescriptor) -> Bool { false }
}
