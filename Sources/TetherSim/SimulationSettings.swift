import Foundation

/// How the simulated cluster behaves.
public struct SimulationSettings: Sendable {
    public var clusterName: String
    public var nodes: Int
    /// How long a workload takes to become ready after its spec changes.
    public var readyAfter: Duration
    /// How many Pods each node takes (a kubelet's `--max-pods`).
    public var maxPodsPerNode: Int
    /// How long a node's memory pressure lasts after it is relieved (a kubelet's
    /// `--eviction-pressure-transition-period`).
    public var evictionPressureTransition: Duration

    public init(
        clusterName: String, nodes: Int = 3, readyAfter: Duration = .seconds(2), maxPodsPerNode: Int = 110,
        evictionPressureTransition: Duration = .seconds(300)
    ) {
        self.clusterName = clusterName
        self.nodes = nodes
        self.readyAfter = readyAfter
        self.maxPodsPerNode = maxPodsPerNode
        self.evictionPressureTransition = evictionPressureTransition
    }
}
