/// How a live object in a member cluster is doing, as its kind's plugin judges it: the fixed
/// vocabulary agents report and the hub aggregates (the wire carries the raw values).
public enum HealthState: String, Codable, Sendable, Hashable, CaseIterable {
    /// Doing what it was asked: replicas ready, address assigned, job complete.
    case healthy = "Healthy"
    /// On its way: a rollout, a pending address, replicas starting.
    case progressing = "Progressing"
    /// Stuck or failed; the report's message says how.
    case degraded = "Degraded"
    /// The kind gives no way to tell.
    case unknown = "Unknown"
}
