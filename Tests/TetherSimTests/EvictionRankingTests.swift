import Testing
import TetherJSON
import TetherModel

@testable import TetherSim

/// Which Pod a kubelet under memory pressure evicts first, on its own.
@Suite("Eviction ranking")
struct EvictionRankingTests {
    static func use(_ name: String, used: Int64, requested: Int64, priority: Int64 = 0) -> WorkloadSimulator.MemoryUse {
        let pod: JSONValue = [
            "metadata": ["name": .string(name)],
            "spec": [
                "priority": .integer(priority),
                "containers": [["name": "main", "resources": ["requests": ["memory": .string("\(requested)")]]]],
            ],
        ]
        return WorkloadSimulator.MemoryUse(pod: pod, containers: [.init(name: "main", cpuMillis: 1, memoryBytes: used)])
    }

    @Test("over its request first, then the lowest priority, then the most used beyond its request; critical Pods never")
    func ranking() {
        func victim(_ uses: [WorkloadSimulator.MemoryUse]) -> String? { WorkloadSimulator.evictionVictim(among: uses)?.pod.name }
        #expect(
            victim([Self.use("within", used: 900, requested: 1_000, priority: -5), Self.use("over", used: 1_100, requested: 1_000, priority: 100)])
                == "over")
        #expect(
            victim([Self.use("important", used: 2_000, requested: 1_000, priority: 100), Self.use("cheap", used: 1_100, requested: 1_000)]) == "cheap"
        )
        #expect(victim([Self.use("little", used: 1_100, requested: 1_000), Self.use("much", used: 5_000, requested: 1_000)]) == "much")
        #expect(victim([Self.use("critical", used: 9_000, requested: 0, priority: 2_000_000_000)]) == nil)
    }
}
