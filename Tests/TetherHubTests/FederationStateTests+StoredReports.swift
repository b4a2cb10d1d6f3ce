import Foundation
import Testing
import TetherJSON
import TetherModel
import TetherWire

@testable import TetherHub

extension FederationStateTests {
    @Test("a Propagation's lines read back as the reports they were written from, summaries included; lines never reported are not reports")
    func propagationLinesReadBack() throws {
        let one = H.reference(H.configMap("one"))
        let reports = [
            ClusterReport(
                cluster: "a", report: StatusReport.ObjectStatus(object: one, state: .applied, health: .healthy, summary: ["readyReplicas": 2]),
                ackedRevision: 7),
            ClusterReport(
                cluster: "b", report: StatusReport.ObjectStatus(object: one, state: .failed, health: .degraded, message: "quota exceeded"),
                ackedRevision: nil),
        ]
        var record = PropagationRecord.object(for: one, uid: "uid-one")
        record[member: "status"] = PropagationRecord.status(
            reports: reports, placedOn: ["a", "b", "c"], generations: ["a": 3, "b": 2], generation: 2)
        let read = try #require(PropagationRecord.reports(in: record))
        #expect(read.reference == one && read.uid == "uid-one")
        #expect(read.statuses == ["a": reports[0].report, "b": reports[1].report], "c's line is pending: no report was ever written for it")
        #expect(read.generations == ["a": 3, "b": 2, "c": 0], "c's line names no generation: it holds none yet")
    }

    @Test(
        "a hub that starts again counts each cluster with its stored last report until its agent reports anew, for objects still placed there and of the same uid"
    )
    func storedReportsAdopted() throws {
        var harness = H()
        let policy = H.propagationPolicy(
            "a-and-b", spec: ["resourceSelectors": [["apiVersion": "v1", "kind": "ConfigMap"]], "placement": ["clusterNames": ["a", "b"]]])
        let one = H.reference(H.configMap("one"))
        let two = H.reference(H.configMap("two"))
        let stored = [
            StoredReports(
                reference: one, uid: "uid-one",
                statuses: [
                    "a": StatusReport.ObjectStatus(object: one, state: .failed, health: .unknown, message: "an old failure"),
                    "b": StatusReport.ObjectStatus(object: one, state: .applied, health: .healthy, summary: ["note": "b's last"]),
                    // Not placed on c (any more): its line does not count.
                    "c": StatusReport.ObjectStatus(object: one, state: .applied, health: .healthy),
                ]),
            // Written for an earlier object of the same name.
            StoredReports(
                reference: two, uid: "uid-gone", statuses: ["b": StatusReport.ObjectStatus(object: two, state: .applied, health: .healthy)]),
        ]
        harness.settle(
            clusters: ["a": [:], "b": [:], "c": [:]], objects: [H.configMap("one"), H.configMap("two")], propagationPolicies: [policy],
            stored: stored)
        #expect(harness.take().events.contains("federation.reports_restored"))

        // a's agent returns and reports; b's has not: b still counts with its last report, and a's new one replaces its old.
        harness.connect("a")
        _ = harness.deliverPushes()
        _ = harness.take()
        let fresh = StatusReport.ObjectStatus(object: one, state: .applied, health: .healthy)
        let freshTwo = StatusReport.ObjectStatus(object: two, state: .applied, health: .healthy)
        harness.send(.received(.status(StatusReport(objects: [fresh, freshTwo])), cluster: "a", at: H.start))
        var written: [ObjectReference: [String: StatusReport.ObjectStatus]] = [:]
        for action in harness.take() {
            guard case .writeFederatedStatus(let write) = action else { continue }
            written[write.reference] = Dictionary(uniqueKeysWithValues: write.reports.map { ($0.cluster, $0.report) })
        }
        #expect(written[one] == ["a": fresh, "b": stored[0].statuses["b"]!])
        #expect(written[two] == ["a": freshTwo], "a record of another object of that name does not count")
    }

    @Test(
        "a hub that starts again keeps a generation in flight to each cluster whose stored line holds an older one: observed only when that cluster acknowledges"
    )
    func storedGenerationsStayInFlight() throws {
        var harness = H()
        var web = H.deployment("web", replicas: 2)
        web[member: "metadata"]?[member: "generation"] = 3
        let reference = H.reference(web)
        let stored = [
            StoredReports(
                reference: reference, uid: "uid-web",
                statuses: ["a": StatusReport.ObjectStatus(object: reference, state: .applied, health: .healthy)], generations: ["a": 3, "b": 2])
        ]
        harness.settle(clusters: ["a": [:], "b": [:]], objects: [web], stored: stored)
        #expect(harness.state.observedGeneration(of: reference) == 2, "b's line holds generation 2")
        #expect(harness.state.generationsHeld(of: reference, on: ["a", "b"]) == ["a": 3, "b": 2])

        // a's agent returns holding its set: nothing changes for b.
        harness.connect("a")
        _ = harness.deliverPushes()
        let revisionA = try #require(harness.state.members["a"]?.revision)
        harness.send(.received(.ack(Ack(revision: revisionA)), cluster: "a", at: H.start))
        #expect(harness.state.observedGeneration(of: reference) == 2)

        // b's returns and acknowledges what it is sent: generation 3 is observed, and written.
        harness.connect("b")
        let pushed = harness.deliverPushes()
        _ = harness.take()
        let revisionB = try #require(pushed.last { $0.cluster == "b" }?.revision)
        harness.send(.received(.ack(Ack(revision: revisionB)), cluster: "b", at: H.start))
        #expect(harness.state.observedGeneration(of: reference) == 3)
        #expect(
            harness.take().contains {
                if case .writeFederatedStatus(let write) = $0 {
                    write.reference == reference && write.observedGeneration == 3 && write.generations == ["a": 3, "b": 3]
                } else {
                    false
                }
            })
    }
}
