import Foundation
import Logging
import Metrics
import Synchronization

/// The engine's metrics and its budget for security logs: gauges made once per cluster,
/// push-to-ack latency measured from the moment a push was written.
final class FederationMeasures: Sendable {
    /// A cluster's gauges, made once: making a labelled gauge is a registry lookup, and a
    /// fan-out records three per cluster.
    private struct ClusterGauges {
        let revision: Gauge
        let ackedRevision: Gauge
        let lag: Gauge
        let lastHeartbeat: Gauge
        let certificateExpiry: Gauge

        init(cluster: String) {
            revision = Gauge(label: "tether_hub_cluster_revision", dimensions: [("cluster", cluster)])
            ackedRevision = Gauge(label: "tether_hub_cluster_acked_revision", dimensions: [("cluster", cluster)])
            lag = Gauge(label: "tether_hub_cluster_revision_lag", dimensions: [("cluster", cluster)])
            lastHeartbeat = Gauge(label: "tether_hub_cluster_last_heartbeat_timestamp_seconds", dimensions: [("cluster", cluster)])
            certificateExpiry = Gauge(label: "tether_hub_cluster_certificate_expiry_timestamp_seconds", dimensions: [("cluster", cluster)])
        }
    }

    private struct State {
        var gauges: [String: ClusterGauges] = [:]
        var pushes: [String: (revision: UInt64, at: ContinuousClock.Instant)] = [:]
        var securityLogged: [String: ContinuousClock.Instant] = [:]
    }

    private let state = Mutex(State())
    /// Made on first use, after the hub has bootstrapped its metrics backend.
    private let pushToAck = Mutex<Metrics.Timer?>(nil)

    private func gauges(_ cluster: String) -> ClusterGauges {
        state.withLock { state in
            if let known = state.gauges[cluster] { return known }
            let made = ClusterGauges(cluster: cluster)
            state.gauges[cluster] = made
            return made
        }
    }

    func record(_ metric: FederationMetric) {
        switch metric {
        case .revision(let cluster, let desired, let acked):
            let gauges = gauges(cluster)
            gauges.revision.record(Double(desired))
            if let acked { gauges.ackedRevision.record(Double(acked)) }
            gauges.lag.record(Double(desired > (acked ?? 0) ? desired - (acked ?? 0) : 0))
        case .pushWritten(let cluster, let revision):
            state.withLock { $0.pushes[cluster] = (revision, .now) }
        case .acknowledged(let cluster, let revision):
            let started: ContinuousClock.Instant? = state.withLock { state in
                guard let push = state.pushes[cluster], push.revision == revision else { return nil }
                state.pushes[cluster] = nil
                return push.at
            }
            if let started {
                let elapsed = ContinuousClock.now - started
                let timer = pushToAck.withLock { timer in
                    if timer == nil { timer = Metrics.Timer(label: "tether_hub_push_to_ack_seconds") }
                    return timer!
                }
                timer.recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
            }
        case .heartbeat(let cluster, let at):
            gauges(cluster).lastHeartbeat.record(at.timeIntervalSince1970)
        case .applyFailures(let cluster, let kinds):
            for kind in kinds { Counter(label: "tether_hub_apply_failures_total", dimensions: [("cluster", cluster), ("kind", kind)]).increment() }
        case .pushFailure(let cluster):
            Counter(label: "tether_hub_push_failures_total", dimensions: [("cluster", cluster)]).increment()
        case .certificateExpiry(let cluster, let notAfter):
            gauges(cluster).certificateExpiry.record(notAfter.timeIntervalSince1970)
        }
    }

    /// Counts a refused report, and logs it at most once a minute per cluster and kind of event,
    /// so a hostile agent cannot flood the log either.
    func securityEvent(_ event: String, cluster: String, message: String, count: Int, logger: Logger) {
        Counter(label: "tether_hub_security_events_total", dimensions: [("event", event)]).increment(by: count)
        let now = ContinuousClock.now
        let due = state.withLock { state in
            let key = "\(cluster)|\(event)"
            if let last = state.securityLogged[key], now - last < .seconds(60) { return false }
            state.securityLogged[key] = now
            if state.securityLogged.count > 4_096 { state.securityLogged = state.securityLogged.filter { now - $0.value < .seconds(60) } }
            return true
        }
        guard due else { return }
        logger.warning(
            "SECURITY: agent report refused",
            metadata: [
                "tether.event": "federation.report_refused", "tether.security": "true", "tether.cluster": "\(cluster)",
                "tether.refusal": "\(event)", "tether.reason": "\(message)",
            ]
        )
    }
}
