import Foundation
import Testing
import TetherJSON
import TetherModel
import TetherWire

@testable import TetherHub

extension FederationStateTests {
    @Test("a generation sent to 4,000 clusters is observed at the last acknowledgement, once")
    func generationAcrossManyClusters() throws {
        var harness = H()
        let names = (0..<4_000).map { "member-\($0)" }
        // Two replicas each, then three: every cluster's copy changes.
        var web = H.deployment("web", replicas: 8_000)
        web[member: "metadata"]?[member: "generation"] = .integer(1)
        harness.settle(clusters: Dictionary(uniqueKeysWithValues: names.map { ($0, [:]) }), objects: [web])
        for name in names { harness.connect(name) }
        _ = harness.deliverPushes()
        web[member: "metadata"]?[member: "generation"] = .integer(2)
        web[member: "spec"]?[member: "replicas"] = .integer(12_000)
        harness.change(web)
        let revisions = Dictionary(uniqueKeysWithValues: harness.deliverPushes().map { ($0.cluster, $0.revision) })
        #expect(revisions.count == names.count)
        _ = harness.take()
        let clock = ContinuousClock()
        var observedAt: [Int] = []
        let took = try clock.measure {
            for (index, name) in names.enumerated() {
                let answered = harness.send(.received(.ack(Ack(revision: try #require(revisions[name]))), cluster: name, at: H.start))
                if answered.contains(where: { if case .writeFederatedStatus(let write) = $0 { write.observedGeneration == 2 } else { false } }) {
                    observedAt.append(index)
                }
            }
        }
        #expect(observedAt == [names.count - 1])
        #expect(harness.state.observedGeneration(of: Self.web) == 2)
        print("4,000 acknowledgements of one generation took \(took)")
    }
}
