import Foundation
import Logging
import Synchronization
import Testing
import TetherJSON
import TetherModel
import TetherStore
import TetherTestSupport

@testable import TetherSim

@Suite("Simulated events")
struct EventRecorderTests {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    func owner(_ name: String) -> JSONValue {
        [
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": ["name": .string(name), "namespace": "default", "uid": .string("uid-\(name)"), "resourceVersion": "7"],
        ]
    }

    /// The Events stored, once `condition` holds of them (within 30 s: the recorder writes in the
    /// background, slowly on a loaded machine).
    func events(in store: any ResourceStore, until condition: ([JSONValue]) -> Bool) async throws -> [JSONValue] {
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            let listed = try await store.list(EventRecorder.events, options: ListOptions()).objects
            if condition(listed) { return listed }
            guard ContinuousClock.now < deadline else {
                Issue.record("the stored events never met the condition; last: \(listed.map { $0.string(at: "message") ?? "" })")
                return listed
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    @Test(
        "the same event again counts up one Event; the tenth different message of one reason starts one combined Event",
        .timeLimit(.minutes(1)))
    func correlation() async throws {
        let scratch = try ScratchDirectory("tether-sim-events")
        let store = try SQLiteResourceStore(path: scratch.file("sim.db"))
        let recorder = EventRecorder(store: store, logger: logger)
        let source = EventRecorder.Source(component: "replicaset-controller")
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await recorder.run() }
            defer { group.cancelAll() }
            for index in 1...15 {
                await recorder.record(.normal, "SuccessfulCreate", "Created pod: front-\(index)", about: owner("front"), source: source)
            }
            for _ in 1...3 {
                await recorder.record(.warning, "FailedCreate", "Error creating: quota", about: owner("front"), source: source)
            }
            let stored = try await events(in: store) { listed in
                listed.reduce(0) { $0 + ($1.integer(at: "count") ?? 0) } == 18
            }
            let created = stored.filter { $0.string(at: "reason") == "SuccessfulCreate" }
            // Nine on their own, then the tenth to fifteenth combined.
            #expect(created.count == 10, "\(created.map { $0.string(at: "message") ?? "" })")
            let combined = created.filter { $0.string(at: "message")?.hasPrefix(EventRecorder.combinedPrefix) == true }
            #expect(combined.count == 1 && combined.first?.integer(at: "count") == 6, "\(combined)")
            let failed = stored.filter { $0.string(at: "reason") == "FailedCreate" }
            #expect(failed.count == 1 && failed.first?.integer(at: "count") == 3 && failed.first?.string(at: "type") == "Warning")
            let first = try #require(created.first { $0.string(at: "message") == "Created pod: front-1" })
            #expect(
                first.value(at: "involvedObject") == [
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "front", "namespace": "default", "uid": "uid-front",
                    "resourceVersion": "7",
                ])
            #expect(first.string(at: "source", "component") == "replicaset-controller" && first.namespace == "default")
        }
    }

    @Test(
        "Events are kept within their limit, oldest deleted first, and deleted once not written for their time to live",
        .timeLimit(.minutes(1)))
    func keptBounded() async throws {
        let scratch = try ScratchDirectory("tether-sim-events")
        let store = try SQLiteResourceStore(path: scratch.file("sim.db"))
        let now = Mutex(Date())
        let recorder = EventRecorder(store: store, logger: logger, keptLimit: 5, timeToLive: 60, clock: { now.withLock { $0 } })
        let source = EventRecorder.Source(component: "default-scheduler")
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await recorder.run() }
            defer { group.cancelAll() }
            for index in 1...8 {
                await recorder.record(.normal, "Scheduled", "assigned", about: owner("pod-\(index)"), source: source)
            }
            let kept = try await events(in: store) { listed in
                listed.count == 5 && listed.contains { $0.string(at: "involvedObject", "name") == "pod-8" }
            }
            #expect(Set(kept.compactMap { $0.string(at: "involvedObject", "name") }) == ["pod-4", "pod-5", "pod-6", "pod-7", "pod-8"])

            // Past the time to live, the next write deletes what was not written since.
            now.withLock { $0 = $0.addingTimeInterval(61) }
            await recorder.record(.normal, "Scheduled", "assigned", about: owner("pod-9"), source: source)
            let after = try await events(in: store) { $0.count == 1 }
            #expect(after.first?.string(at: "involvedObject", "name") == "pod-9")
        }
    }
}
