import Foundation
import Testing
import TetherLocal
import TetherSecurity
import TetherTestSupport

extension EveryHubTests {
    @Test(
        "three hubs with agents on every hub, three members whose agents list all three: writes through each hub reach every member; SIGKILL of the leader, then of its successor: only the dead hub's agents move, one of the others leads each time, and a write through the last hub reaches every member with nothing replaced"
    )
    func threeHubsInTurn() async throws {
        let server = try await PostgresServer.shared()
        let store = server.url(database: try await server.createDatabase("everythree"))
        try await withFederation { federation in
            let common = ["--store", store, "--agent-sessions", "every-hub", "--rebalance-after", "60"]
            let (hubA, portA) = try await federation.startHub(heartbeatInterval: 1, extraArguments: common)
            try await hubA.waitForEvent("federation.leading", within: .seconds(10))
            var hubs: [String: ManagedProcess] = ["a": hubA]
            var addressOf = ["a": "127.0.0.1:\(portA)"]
            var controls = ["a": try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub-a")]
            for name in ["b", "c"] {
                let hub = try await Self.startSecondHub(federation, name: "hub-\(name)", arguments: common)
                hubs[name] = hub.process
                addressOf[name] = "127.0.0.1:\(hub.agentPort)"
                controls[name] = hub.hubctl
            }
            let addresses = ["a", "b", "c"].compactMap { addressOf[$0] }
            var members: [String: Kubectl] = [:]
            var agents: [String: ManagedProcess] = [:]
            var holder: [String: String] = [:]
            for name in ["m1", "m2", "m3"] {
                let directory = try await federation.startSimcluster(name, nodes: 1, readyAfter: "1s").directory
                members[name] = try Kubectl(.modern, kubeconfig: directory + "/kubeconfig", home: directory + "/home")
                let agent = try federation.startAgent(
                    name: "agent-\(name)",
                    bundle: try federation.directory.issueAgentBundle(
                        cluster: name, to: federation.root + "/bundles/\(name)", hubAddresses: addresses),
                    kubeconfig: directory + "/kubeconfig",
                    extraArguments: ["--state-dir", federation.root + "/state-\(name)", "--backoff-initial", "0.1", "--backoff-max", "0.5"])
                agents[name] = agent
                let session = try await agent.waitForEvent("session.established", within: .seconds(30))
                holder[name] = addressOf.first { $0.value == session["tether.hub"] }?.key
            }
            print("three hubs, agents on every hub: sessions at \(holder.sorted { $0.key < $1.key })")

            try await controls["a"]!.succeed(["wait", "--for=create", "clusters/m3", "--timeout=30s"], within: .seconds(40))
            try await HubWrites.throughEach(controls, members: members)
            let before = try await members["m1"]!.succeed(HubWrites.written)

            var leader = "a"
            for _ in 0..<2 {
                let marks = agents.mapValues(\.mark)
                let leadMarks = hubs.mapValues(\.mark)
                let killed = ContinuousClock.now
                hubs[leader]!.send(SIGKILL)
                hubs[leader] = nil
                let successor = try await withThrowingTaskGroup(of: String.self) { group in
                    for (name, hub) in hubs {
                        group.addTask {
                            try await hub.waitForEvent("federation.leading", after: leadMarks[name] ?? 0, within: .seconds(30))
                            return name
                        }
                    }
                    defer { group.cancelAll() }
                    return try await group.next() ?? ""
                }
                // Only the agents the dead hub held move, each to a live hub.
                let moving = Set(agents.keys.filter { holder[$0] == leader })
                for (name, agent) in agents where moving.contains(name) {
                    let session = try await agent.waitForEvent("session.established", after: marks[name] ?? 0, within: .seconds(30))
                    let now = addressOf.first { $0.value == session["tether.hub"] }?.key
                    #expect(now.map { hubs[$0] != nil } == true, "\(name) went to \(String(describing: now))")
                    holder[name] = now
                }
                for (name, agent) in agents where !moving.contains(name) {
                    #expect(
                        !agent.lines.dropFirst(marks[name] ?? 0).contains { $0.event == "session.ended" },
                        "\(name) lost its session though its hub lives")
                }
                print(
                    "three hubs, agents on every hub: hub \(successor) led \(ContinuousClock.now - killed) after SIGKILL of hub \(leader); sessions at \(holder.sorted { $0.key < $1.key })"
                )
                leader = successor
            }
            try await HubWrites.last(through: controls[leader]!, hub: leader, members: members)
            #expect(try await members["m1"]!.succeed(HubWrites.written) == before, "the ConfigMaps were replaced")
            #expect(agents.values.allSatisfy { $0.lines.filter { $0.event == "applier.pruned" }.isEmpty }, "an agent pruned during the failovers")
        }
    }
}
