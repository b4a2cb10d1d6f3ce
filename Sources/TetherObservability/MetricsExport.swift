import Metrics
import Prometheus

/// Prometheus as the swift-metrics backend of a process, and the text its `/metrics` serves.
public enum MetricsExport {
    /// Bootstraps swift-metrics once per process and returns what `/metrics` serves: the
    /// Prometheus text exposition of every metric so far.
    public static func bootstrapPrometheus() -> @Sendable () -> [UInt8] {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Push-to-ack and apply latencies: from a millisecond to a minute.
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
        ]
        let labelled = LabelledGauges()
        MetricsSystem.bootstrap(TetherMetricsFactory(prometheus: factory, labelled: labelled))
        return {
            var text = registry.emitToBuffer()
            labelled.emit(into: &text)
            return text
        }
    }
}
