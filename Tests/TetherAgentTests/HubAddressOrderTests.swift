import Testing

@testable import TetherAgent

@Suite("where an agent starts in its list of hubs")
struct HubAddressOrderTests {
    @Test("agents spread over the hubs they list by their cluster's name, each always starting at the same one")
    func spread() {
        var starts = [0, 0, 0]
        for index in 0..<300 {
            let first = AgentConnector.firstAddressIndex(cluster: "cluster-\(index)", count: 3)
            #expect(first == AgentConnector.firstAddressIndex(cluster: "cluster-\(index)", count: 3))
            starts[first] += 1
        }
        #expect(starts.allSatisfy { $0 >= 70 }, "first hubs of 300 clusters: \(starts)")
        #expect(AgentConnector.firstAddressIndex(cluster: "eu-1", count: 1) == 0)
    }
}
