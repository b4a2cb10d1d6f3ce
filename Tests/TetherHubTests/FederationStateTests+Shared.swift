import Foundation
import Testing
import TetherJSON
import TetherModel
import TetherWire

@testable import TetherHub

/// Agents on every hub: the state of one hub among several.
extension FederationStateTests {
    static func cluster(_ name: String, session: (hub: String, id: String, epoch: Int64)?) -> JSONValue {
        var object = H.cluster(name)
        if let session {
            object[member: "status"] = [
                "phase": "Ready", "session": ["hub": .string(session.hub), "id": .string(session.id), "epoch": .integer(session.epoch)],
            ]
        }
        return object
    }

    @Test("a hub claims the session it holds, and ends it with goaway when the Cluster names a newer session on another hub")
    func sharedSessionSuperseded() throws {
        var harness = H(settings: FederationState.Settings(hub: "hub-a"))
        harness.settle(clusters: ["m1": [:]], objects: [H.configMap("one")])
        harness.connect("m1", session: "s1")
        let claimed = harness.take()
        #expect(claimed.contains { if case .updateClusterStatus("m1", .claim("hub-a", "s1", nil, _)) = $0 { true } else { false } })
        #expect(!claimed.contains { if case .updateClusterStatus("m1", .phase) = $0 { true } else { false } }, "the claim says Ready")
        harness.send(.sessionClaimed(cluster: "m1", session: "s1", epoch: 4))
        // An echo of this hub's own claim, then a newer claim by hub B.
        harness.change(Self.cluster("m1", session: ("hub-a", "s1", 4)))
        #expect(!harness.take().contains { if case .endSession = $0 { true } else { false } })
        harness.change(Self.cluster("m1", session: ("hub-b", "s2", 5)))
        let ended = harness.take()
        #expect(ended.contains { if case .endSession("m1", "s1", let goaway) = $0 { goaway.code == .replaced } else { false } })
        // Its end afterwards writes nothing over B's session.
        harness.send(.sessionEnded(cluster: "m1", session: "s1", at: H.start))
        #expect(!harness.take().contains { if case .updateClusterStatus("m1", _) = $0 { true } else { false } })
    }

    @Test("the leader releases only the sessions of hubs it asked about and found gone, and runs the outage of a cluster no hub holds")
    func sharedLeaderSweeps() throws {
        var harness = H(settings: FederationState.Settings(hub: "hub-a"))
        harness.settle(clusters: ["m1": [:]])
        harness.send(.leading(at: H.start))
        #expect(harness.take().schedules.contains(.sweepSessions))
        // m1 was not held when the leader asked; a hub claimed it meanwhile: not released.
        harness.change(Self.cluster("m1", session: ("hub-b", "s2", 1)))
        harness.send(.liveHubs([], among: [], at: H.start))
        #expect(!harness.take().contains { if case .updateClusterStatus("m1", .release) = $0 { true } else { false } })
        // Asked about hub B, and B is gone: released.
        harness.send(.liveHubs([], among: ["hub-b"], at: H.start))
        #expect(harness.take().contains { if case .updateClusterStatus("m1", .release("s2", _, _)) = $0 { true } else { false } })
        // The release comes round: no hub holds m1, so the leader's outage timers start.
        harness.change(Self.cluster("m1", session: nil))
        #expect(harness.take().schedules.contains { if case .rebalance("m1", _) = $0 { true } else { false } })
    }

    @Test("a hub writes the Propagation lines of the clusters whose sessions it holds, and keeps every other line as stored")
    func sharedLinesMerged() throws {
        let one = H.reference(H.configMap("one"))
        let stored = StoredReports(
            reference: one, uid: "uid-one",
            statuses: ["b": StatusReport.ObjectStatus(object: one, state: .applied, health: .healthy, summary: ["ready": 1])],
            generations: ["a": 1, "b": 3], revisions: ["b": 9])
        let write = FederatedStatusWrite(
            reference: one, uid: "uid-one",
            reports: [
                ClusterReport(cluster: "a", report: StatusReport.ObjectStatus(object: one, state: .failed, health: .unknown), ackedRevision: 4)
            ],
            placedOn: ["a", "b", "c"], generations: ["a": 3], observedGeneration: nil, speaksFor: ["a"])
        let merged = FederationWriters.merge(write, stored: stored, speaksFor: ["a"], generation: 3)
        #expect(merged.reports.map(\.cluster) == ["a", "b"])
        #expect(merged.reports.last?.ackedRevision == 9)
        #expect(merged.generations == ["a": 3, "b": 3])
        #expect(merged.observed == 0, "c holds no generation yet")
        let status = merged.status(placedOn: write.placedOn)
        #expect(status["placed"] == 3 && status["applied"] == 1)
    }

    @Test("with one hub, a session record left by hubs that ran with agents on every hub names no one: the cluster's outage still moves its replicas")
    func staleSessionRecordIgnored() throws {
        var harness = H()
        harness.settle(clusters: [:])
        harness.change(Self.cluster("m1", session: ("hub-gone", "s0", 3)))
        _ = harness.take()
        harness.send(
            .sessionEstablished(cluster: "m1", session: "s1", hello: Hello(protocolVersions: [1], agentVersion: "t", cluster: "m1"), at: H.start))
        harness.send(.sessionEnded(cluster: "m1", session: "s1", at: H.start))
        let outage = try #require(harness.take().schedules.compactMap { if case .rebalance("m1", let outage) = $0 { outage } else { nil } }.last)
        harness.send(.timerFired(.rebalance(cluster: "m1", outage: outage), at: H.start))
        #expect(harness.take().contains { if case .updateClusterStatus("m1", .movedAway(true, _, _)) = $0 { true } else { false } })
    }
}
