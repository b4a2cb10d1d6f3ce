import TetherJSON

/// Where `metrics.k8s.io` figures come from: what metrics-server reports in a real cluster (the
/// simulated member computes them from its Pods). Figures are computed on each request, never stored.
public protocol ResourceMetricsSource: Sendable {
    /// A `NodeMetrics` for every node.
    func nodeMetrics() async throws -> [JSONValue]
    /// A `PodMetrics` for every running Pod of `namespace` (of every namespace when nil).
    func podMetrics(namespace: String?) async throws -> [JSONValue]
}
