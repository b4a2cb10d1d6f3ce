import Foundation
import Testing
import TetherLocal
import TetherSecurity
import TetherTestSupport

/// Two hubs on one PostgreSQL database, as real processes: one drives the federation, the other
/// stands by, and takes over when the first is killed.
@Suite("hub failover on PostgreSQL", .timeLimit(.minutes(4)))
struct HubFailoverTests {
    @Test(
        "SIGKILL of the active hub: the standby takes the lock, the agent follows its hub list to it, the member's objects stay, and writes go on"
    )
    func failover() async throws {
        let server = try await PostgresServer.shared()
        let store = server.url(database: try await server.createDatabase("failover"))
        try await withFederation { federation in
            let common = ["--store", store, "--rebalance-after", "30"]
            let (hubA, portA) = try await federation.startHub(heartbeatInterval: 1, extraArguments: common)
            try await hubA.waitForEvent("hub.active", within: .seconds(5))
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")

            // The standby: same directory and database, its own ports; it binds nothing while it waits.
            let portB = try BINDServer.freeUDPAndTCPPort()
            let hubB = try federation.launch(
                name: "hub-b", binary: "tether-hub",
                arguments: [
                    "--dir", federation.directory.path, "--agent-listen", "127.0.0.1:\(portB)", "--api-listen", "127.0.0.1:0",
                    "--heartbeat-interval", "1", "--auto-join",
                ] + common)
            let standby = try await hubB.waitForEvent("hub.standby", within: .seconds(30))
            #expect(standby["tether.holder"]?.hasSuffix("pid \(hubA.processIdentifier)") == true, "\(standby)")

            let (_, simDirectory) = try await federation.startSimcluster("m1", nodes: 1, readyAfter: "1s")
            let member = try Kubectl(.modern, kubeconfig: simDirectory + "/kubeconfig", home: simDirectory + "/home")
            let bundle = try federation.directory.issueAgentBundle(
                cluster: "m1", to: federation.root + "/bundles/m1", hubAddresses: ["127.0.0.1:\(portA)", "127.0.0.1:\(portB)"])
            let agent = try federation.startAgent(
                bundle: bundle, kubeconfig: simDirectory + "/kubeconfig",
                extraArguments: ["--state-dir", federation.root + "/state-m1", "--backoff-initial", "0.1", "--backoff-max", "0.5"])
            try await hubctl.succeed(["create", "namespace", "shop"])
            for index in 0..<5 { try await hubctl.succeed(["create", "configmap", "c\(index)", "-n", "shop", "--from-literal=i=\(index)"]) }
            try await member.succeed(["wait", "--for=create", "configmap/c4", "-n", "shop", "--timeout=60s"], within: .seconds(70))
            let uidBefore = try await member.succeed(["get", "configmap", "c0", "-n", "shop", "-o", "jsonpath={.metadata.uid}"])

            // The active hub dies without a word.
            let mark = agent.mark
            let killed = ContinuousClock.now
            hubA.send(SIGKILL)
            try await hubB.waitForEvent("hub.active", within: .seconds(30))
            try await hubB.waitForEvent("hub.ready", within: .seconds(30))
            let session = try await agent.waitForEvent("session.established", after: mark, within: .seconds(30))
            let takeover = ContinuousClock.now - killed
            #expect(session["tether.hub"] == "127.0.0.1:\(portB)", "\(session)")
            #expect(takeover < .seconds(10), "the agent was served again after \(takeover)")
            print("hub failover: agent served by the standby \(takeover) after SIGKILL of the active hub")

            // Writes through the new hub reach the member; nothing there was deleted or replaced.
            guard let apiB = try federation.directory.readPorts()?.api else {
                Issue.record("hub B wrote no API port")
                return
            }
            try federation.directory.writeKubeconfig(server: "https://127.0.0.1:\(apiB)", to: federation.kubeconfigPath)
            #expect(try await hubctl.succeed(["get", "configmaps", "-n", "shop", "-o", "name"]).split(separator: "\n").count == 5)
            try await hubctl.succeed(["create", "configmap", "after", "-n", "shop", "--from-literal=k=v"])
            try await member.succeed(["wait", "--for=create", "configmap/after", "-n", "shop", "--timeout=60s"], within: .seconds(70))
            #expect(try await member.succeed(["get", "configmap", "c0", "-n", "shop", "-o", "jsonpath={.metadata.uid}"]) == uidBefore)
            #expect(agent.lines.filter { $0.event == "applier.pruned" }.isEmpty, "the agent pruned something during the failover")
        }
    }

    @Test("the active hub that loses its connection to PostgreSQL stops, saying why, rather than drive the federation beside a successor")
    func lockLost() async throws {
        // A server of its own, to restart.
        let server = try await PostgresServer.start()
        let store = server.url(database: try await server.createDatabase("lost"))
        try await withFederation { federation in
            let (hub, _) = try await federation.startHub(heartbeatInterval: 1, extraArguments: ["--store", store])
            try await hub.waitForEvent("hub.active", within: .seconds(5))
            await server.stop()
            let lost = try await hub.waitForEvent("hub.lock_lost", within: .seconds(30))
            #expect(lost.raw.contains("Restart the hub"), "\(lost)")
            let status = await hub.waitForExit(within: .seconds(30))
            #expect(status == 75, "the hub exited with \(String(describing: status)); it logged:\n\(hub.tail(30))")
            // Restarted with the database back, it drives the federation again.
            try await server.start()
            let (again, _) = try await federation.startHub(heartbeatInterval: 1, extraArguments: ["--store", store])
            try await again.waitForEvent("hub.active", within: .seconds(5))
        }
        await server.stop()
    }
}
