import Foundation
import Testing
import TetherLocal
import TetherSecurity
import TetherTestSupport

extension HubFailoverTests {
    @Test(
        "three hubs on one PostgreSQL, three members whose agents list all three: writes through each hub reach every member; SIGKILL of the active hub, then of its successor: each time one of the others takes the lock, every agent follows, and a write through the last hub reaches every member with nothing replaced"
    )
    func threeHubsInTurn() async throws {
        let server = try await PostgresServer.shared()
        let store = server.url(database: try await server.createDatabase("three"))
        try await withFederation { federation in
            let common = ["--store", store, "--rebalance-after", "60"]
            let (hubA, portA) = try await federation.startHub(heartbeatInterval: 1, extraArguments: common)
            try await hubA.waitForEvent("hub.active", within: .seconds(5))
            var hubs: [String: ManagedProcess] = ["a": hubA]
            var agentPorts = ["a": portA]
            var controls: [String: Kubectl] = [
                "a": try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub-a")
            ]
            for name in ["b", "c"] {
                let port = try LoopbackPort.free()
                let hub = try federation.launch(
                    name: "hub-\(name)", binary: "tether-hub",
                    arguments: [
                        "--dir", federation.directory.path, "--agent-listen", "127.0.0.1:\(port)", "--api-listen", "127.0.0.1:0",
                        "--heartbeat-interval", "1",
                    ] + common)
                try await hub.waitForEvent("hub.standby", within: .seconds(30))
                let api = try #require(try await hub.waitForEvent("api.ready", within: .seconds(30))["tether.port"])
                let kubeconfig = federation.root + "/kubeconfig-\(name)"
                try federation.directory.writeKubeconfig(server: "https://127.0.0.1:\(api)", to: kubeconfig)
                hubs[name] = hub
                agentPorts[name] = port
                controls[name] = try Kubectl(.modern, kubeconfig: kubeconfig, home: federation.root + "/home-hub-\(name)")
            }
            let addresses = ["a", "b", "c"].compactMap { agentPorts[$0] }.map { "127.0.0.1:\($0)" }
            var members: [String: Kubectl] = [:]
            var agents: [String: ManagedProcess] = [:]
            for name in ["m1", "m2", "m3"] {
                let directory = try await federation.startSimcluster(name, nodes: 1, readyAfter: "1s").directory
                members[name] = try Kubectl(.modern, kubeconfig: directory + "/kubeconfig", home: directory + "/home")
                agents[name] = try federation.startAgent(
                    name: "agent-\(name)",
                    bundle: try federation.directory.issueAgentBundle(
                        cluster: name, to: federation.root + "/bundles/\(name)", hubAddresses: addresses),
                    kubeconfig: directory + "/kubeconfig",
                    extraArguments: ["--state-dir", federation.root + "/state-\(name)", "--backoff-initial", "0.1", "--backoff-max", "0.5"])
                try await hubA.waitForEvent("federation.cluster_added", within: .seconds(30)) { $0["tether.cluster"] == name }
            }

            // One write through each hub; every member gets all three.
            try await HubWrites.throughEach(controls, members: members)
            let before = try await members["m1"]!.succeed(HubWrites.written)

            // The active hub dies, then its successor: each time one of the remaining hubs drives,
            // and every agent is served by it.
            var active = "a"
            for _ in 0..<2 {
                let marks = agents.mapValues(\.mark)
                let killed = ContinuousClock.now
                hubs[active]!.send(SIGKILL)
                hubs[active] = nil
                let successor = try await withThrowingTaskGroup(of: String.self) { group in
                    for (name, hub) in hubs {
                        group.addTask {
                            try await hub.waitForEvent("hub.active", within: .seconds(30))
                            return name
                        }
                    }
                    defer { group.cancelAll() }
                    return try await group.next() ?? ""
                }
                let port = try #require(agentPorts[successor])
                for (name, agent) in agents {
                    let session = try await agent.waitForEvent("session.established", after: marks[name] ?? 0, within: .seconds(30))
                    #expect(session["tether.hub"] == "127.0.0.1:\(port)", "\(name): \(session)")
                }
                print("three hubs: hub \(successor) drove and served all three agents \(ContinuousClock.now - killed) after SIGKILL of hub \(active)")
                #expect(hubs.values.filter { $0.lines.contains { $0.event == "hub.active" } }.count == 1, "two hubs drive at once")
                active = successor
            }

            // The last hub takes a write that reaches every member; what was there stays.
            try await HubWrites.last(through: controls[active]!, hub: active, members: members)
            let after = try await members["m1"]!.succeed(HubWrites.written)
            #expect(after == before, "the ConfigMaps were replaced: \(before) then \(after)")
            #expect(agents.values.allSatisfy { $0.lines.filter { $0.event == "applier.pruned" }.isEmpty }, "an agent pruned during the failovers")
        }
    }
}
