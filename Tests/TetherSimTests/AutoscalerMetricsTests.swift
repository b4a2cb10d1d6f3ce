import Foundation
import Logging
import Testing
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore
import TetherTestSupport

@testable import TetherSim

/// The simulated metrics server's figures, and the autoscaler controller's rate limits and
/// stabilization, on their own.
@Suite("Simulated metrics and autoscaling")
struct AutoscalerMetricsTests {
    static func pod(cpu: String?, memory: String? = nil) -> JSONValue {
        var container: JSONValue = ["name": "web", "image": "nginx"]
        if let cpu { container.set(.string(cpu), at: ["resources", "requests", "cpu"]) }
        if let memory { container.set(.string(memory), at: ["resources", "requests", "memory"]) }
        return ["metadata": ["name": "p"], "spec": ["containers": [container]]]
    }

    @Test("a container's usage: idle without a load, a share of its request, or an amount; memory at its request unless loaded")
    func usage() {
        let idle = SimulatedMetrics.usage(of: Self.pod(cpu: "200m", memory: "64Mi"), cpu: nil, memory: nil)
        #expect(idle == [.init(name: "web", cpuMillis: 1, memoryBytes: 64 << 20)])
        #expect(SimulatedMetrics.usage(of: Self.pod(cpu: "200m"), cpu: "150%", memory: nil)[0].cpuMillis == 300)
        #expect(SimulatedMetrics.usage(of: Self.pod(cpu: nil), cpu: "50%", memory: nil)[0].cpuMillis == 50, "of 100m without a request")
        #expect(
            SimulatedMetrics.usage(of: Self.pod(cpu: "200m"), cpu: "750m", memory: "1Gi")[0]
                == .init(name: "web", cpuMillis: 750, memoryBytes: 1 << 30))
        #expect(
            SimulatedMetrics.usage(of: Self.pod(cpu: "200m"), cpu: "lots", memory: nil)[0].cpuMillis == 1, "a load that does not parse is no load")
        #expect(SimulatedMetrics.cpu(250) == "250000000n" && SimulatedMetrics.memory(64 << 20) == "65536Ki")
    }

    @Test(
        "without a behavior, kube's older rule: up to twice the count (at least 4) per step, down at once; with one, each policy bounds the count from where it stood at the start of its period, Max or Min of them, or Disabled"
    )
    func rateLimits() {
        let now = Date()
        func limited(_ desired: Int64, current: Int64, _ autoscaler: JSONValue, events: [(TimeInterval, Int64)] = []) -> Int64 {
            AutoscalerController.rateLimited(
                desired, current: current, autoscaler: autoscaler, events: events.map { (now.addingTimeInterval(-$0.0), $0.1) }, now: now
            ).replicas
        }
        let plain: JSONValue = ["spec": [:]]
        #expect(limited(18, current: 2, plain) == 4, "at least 4")
        #expect(limited(30, current: 10, plain) == 20, "twice the count")
        #expect(limited(1, current: 10, plain) == 1, "down at once")

        // The defaults a stated behavior gets (4 Pods or 100 % per 15 s up, 100 % per 15 s down).
        let stated: JSONValue = ["spec": ["behavior": AutoscalerBehaviorDefaults.filled(["scaleDown": ["stabilizationWindowSeconds": 3]])]]
        #expect(limited(18, current: 2, stated) == 6, "4 Pods beats doubling at 2")
        #expect(limited(30, current: 10, stated) == 20, "doubling beats 4 Pods at 10")
        // 2 -> 6 five seconds ago: the period started at 2, so 6 is all it allows until it ends.
        #expect(limited(18, current: 6, stated, events: [(5, 4)]) == 6)
        let (held, loosens) = AutoscalerController.rateLimited(
            18, current: 6, autoscaler: stated, events: [(now.addingTimeInterval(-5), 4)], now: now)
        #expect(held == 6 && loosens.map { abs($0 - 10) < 0.01 } == true, "\(String(describing: loosens))")
        #expect(limited(18, current: 6, stated, events: [(16, 4)]) == 12, "the step has left the period")
        #expect(limited(0, current: 10, stated, events: [(5, -2)]) == 0, "100 % down from where the period started (12)")

        let careful: JSONValue = [
            "spec": [
                "behavior": [
                    "scaleUp": [
                        "selectPolicy": "Min",
                        "policies": [["type": "Pods", "value": 1, "periodSeconds": 60], ["type": "Percent", "value": 50, "periodSeconds": 60]],
                    ],
                    "scaleDown": ["selectPolicy": "Disabled"],
                ]
            ]
        ]
        #expect(limited(18, current: 10, careful) == 11)
        #expect(limited(18, current: 11, careful, events: [(30, 1)]) == 11, "one Pod per minute")
        #expect(limited(2, current: 10, careful) == 10)
    }

    @Test("a scale-down waits for the highest recommendation of its window, starting from the count first seen; a scale-up does not wait")
    func stabilization() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tether-hpa-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteResourceStore(path: directory.appendingPathComponent("sim.db").path)
        let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let controller = AutoscalerController(
            store: store, kinds: [], events: EventRecorder(store: store, logger: logger), metrics: SimulatedMetrics(store: store), logger: logger)
        let autoscaler: JSONValue = ["spec": ["behavior": ["scaleDown": ["stabilizationWindowSeconds": 60]]]]
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        let first = controller.stabilize(2, current: 6, autoscaler: autoscaler, key: "ns/web", now: start)
        #expect(first.replicas == 6 && first.heldFor.map { $0 > 59 && $0 <= 61 } == true, "\(first)")
        let later = controller.stabilize(3, current: 6, autoscaler: autoscaler, key: "ns/web", now: start.addingTimeInterval(30))
        #expect(later.replicas == 6)
        let afterWindow = controller.stabilize(3, current: 6, autoscaler: autoscaler, key: "ns/web", now: start.addingTimeInterval(61))
        #expect(afterWindow.replicas == 3 && afterWindow.heldFor == nil, "the 6 seen first left the window; 3 is the highest since")
        let up = controller.stabilize(9, current: 3, autoscaler: autoscaler, key: "ns/web", now: start.addingTimeInterval(62))
        #expect(up.replicas == 9 && up.heldFor == nil)
    }
}
