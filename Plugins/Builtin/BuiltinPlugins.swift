import ConfigPlugin
import FederationPlugin
import NetworkingPlugin
import TetherModel
import TetherPlugin
import WorkloadsPlugin

/// The plugins compiled into Tether, and the registries the executables serve from them.
public enum BuiltinPlugins {
    /// Every family of Kubernetes kinds Tether propagates.
    public static let kubernetesFamilies: [any ResourcePlugin] = [ConfigPlugin(), NetworkingPlugin(), WorkloadsPlugin()]

    /// What the hub serves: the Kubernetes kinds and Tether's own.
    public static let hub = KindRegistry(plugins: kubernetesFamilies + [FederationPlugin()])

    /// What a member cluster serves (the simulated one included): the Kubernetes kinds and Nodes.
    public static let memberCluster = KindRegistry(plugins: kubernetesFamilies + [NodePlugin()])

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
            .text("STATUS") { Conditions($0).has("Ready", "True") ? "Ready" : "NotReady" },
            .text("VERSION") { $0.string(at: "status", "nodeInfo", "kubeletVersion") ?? "" },
        ]
    )

    public func propagates(_ kind: KindDescriptor) -> Bool { false }
}
