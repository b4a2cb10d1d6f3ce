import Testing
import TetherJSON
import TetherStore

@testable import TetherSim

/// The simulated scheduler's filters, on their own.
@Suite("Simulated node availability")
struct NodeAvailabilityTests {
    static let pods = ResourceType(group: "", resource: "pods", namespaced: true)

    func pod(_ name: String, cpu: [String], node: String? = nil) -> JSONValue {
        var pod: JSONValue = [
            "apiVersion": "v1", "kind": "Pod", "metadata": ["name": .string(name), "namespace": "default"],
            "spec": ["containers": .array(cpu.map { ["name": "c", "image": "i", "resources": ["requests": ["cpu": .string($0)]]] })],
        ]
        if let node { pod.set(.string(node), at: ["spec", "nodeName"]) }
        return pod
    }

    @Test("requests add up per node; huge or negative ones neither overflow nor free room; a freed Pod makes room again")
    func requests() throws {
        let nodes = NodeAvailability(settings: SimulationSettings(clusterName: "s", nodes: 2, maxPodsPerNode: 3))
        // Two containers of 9e15 CPUs each: more than Int64 millicores together, so saturated, and fitting nowhere.
        let huge = PodRequests(of: pod("huge", cpu: ["9e15", "9e15"]))
        #expect(huge.milliCPU == .max)
        guard case .failure(let reason) = nodes.fitting(huge) else {
            Issue.record("a pod of 1.8e16 CPUs fitted")
            return
        }
        #expect(reason.message.hasPrefix("0/2 nodes are available: 2 Insufficient cpu."), "\(reason.message)")
        #expect(PodRequests(of: pod("negative", cpu: ["-4"])).milliCPU == 0)

        let key = TetherSim.ObjectKey(type: Self.pods, namespace: "default", name: "a")
        nodes.track(pod("a", cpu: ["3500m"], node: "s-node-1"), key: key, gone: false)
        let second = PodRequests(of: pod("b", cpu: ["1"]))
        #expect(try nodes.fitting(second).get() == ["s-node-2"])
        #expect(nodes.track(pod("a", cpu: ["3500m"], node: "s-node-1"), key: key, gone: true), "the Pod's going frees room")
        #expect(try nodes.fitting(second).get() == ["s-node-1", "s-node-2"])
    }
}
