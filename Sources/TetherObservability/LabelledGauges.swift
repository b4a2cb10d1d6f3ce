import CoreMetrics
import Synchronization

/// Gauges with labels (a hub's per-cluster revision, lag, heartbeat and certificate expiry),
/// kept outside swift-prometheus's registry and rendered beside it.
///
/// swift-prometheus 2.4 copies every label set of a metric each time it adds one, so a hub
/// whose 16,000 agents reconnect after a restart spent O(N²) of its engine's time registering
/// per-cluster gauges. Here adding a series is one dictionary insertion, and recording is one
/// atomic store.
final class LabelledGauges: Sendable {
    private struct Family {
        /// Rendered label sets (`cluster="eu-1"`) → their gauge, in the order first seen.
        var series: [String: LabelledGauge] = [:]
        var order: [String] = []
    }

    private struct State {
        var families: [String: Family] = [:]
        var order: [String] = []
    }

    private let state = Mutex(State())

    func gauge(name: String, dimensions: [(String, String)]) -> LabelledGauge {
        let labels = dimensions.map { "\(Self.labelName($0.0))=\"\(Self.escaped($0.1))\"" }.joined(separator: ",")
        return state.withLock { state in
            if let existing = state.families[name]?.series[labels] { return existing }
            if state.families[name] == nil { state.order.append(name) }
            let gauge = LabelledGauge()
            state.families[name, default: Family()].series[labels] = gauge
            state.families[name, default: Family()].order.append(labels)
            return gauge
        }
    }

    /// Prometheus text exposition (version 0.0.4) of every series.
    func emit(into buffer: inout [UInt8]) {
        state.withLock { state in
            for name in state.order {
                guard let family = state.families[name] else { continue }
                buffer.append(contentsOf: "# TYPE \(name) gauge\n".utf8)
                for labels in family.order {
                    guard let gauge = family.series[labels] else { continue }
                    buffer.append(contentsOf: "\(name){\(labels)} \(Self.format(gauge.value))\n".utf8)
                }
            }
        }
    }

    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 9_007_199_254_740_992 { return String(Int64(value)) }
        return String(value)
    }

    /// Backslash, double quote and line feed are escaped in label values.
    static func escaped(_ value: String) -> String {
        var text = ""
        for character in value {
            switch character {
            case "\\": text += "\\\\"
            case "\"": text += "\\\""
            case "\n": text += "\\n"
            default: text.append(character)
            }
        }
        return text
    }

    /// Label names are `[a-zA-Z_][a-zA-Z0-9_]*`: anything else becomes `_`.
    static func labelName(_ name: String) -> String {
        var text = ""
        for (index, scalar) in name.unicodeScalars.enumerated() {
            let letter = (scalar >= "a" && scalar <= "z") || (scalar >= "A" && scalar <= "Z") || scalar == "_"
            let digit = scalar >= "0" && scalar <= "9"
            text.unicodeScalars.append(letter || (digit && index > 0) ? scalar : "_")
        }
        return text.isEmpty ? "_" : text
    }
}

/// One series: the last value recorded.
final class LabelledGauge: RecorderHandler, Sendable {
    private let bits = Atomic<UInt64>(0)

    var value: Double { Double(bitPattern: bits.load(ordering: .relaxed)) }

    func record(_ value: Int64) { record(Double(value)) }
    func record(_ value: Double) { bits.store(value.bitPattern, ordering: .relaxed) }
}

/// swift-prometheus for every metric but labelled gauges, which go to ``LabelledGauges``.
struct TetherMetricsFactory: MetricsFactory {
    let prometheus: any MetricsFactory
    let labelled: LabelledGauges

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        prometheus.makeCounter(label: label, dimensions: dimensions)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        prometheus.makeFloatingPointCounter(label: label, dimensions: dimensions)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        prometheus.makeMeter(label: label, dimensions: dimensions)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard !aggregate, !dimensions.isEmpty else { return prometheus.makeRecorder(label: label, dimensions: dimensions, aggregate: aggregate) }
        return labelled.gauge(name: label, dimensions: dimensions)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        prometheus.makeTimer(label: label, dimensions: dimensions)
    }

    func destroyCounter(_ handler: any CounterHandler) { prometheus.destroyCounter(handler) }
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) { prometheus.destroyFloatingPointCounter(handler) }
    func destroyMeter(_ handler: any MeterHandler) { prometheus.destroyMeter(handler) }
    func destroyRecorder(_ handler: any RecorderHandler) {
        guard !(handler is LabelledGauge) else { return }
        prometheus.destroyRecorder(handler)
    }
    func destroyTimer(_ handler: any TimerHandler) { prometheus.destroyTimer(handler) }
}
