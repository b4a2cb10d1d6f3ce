import Foundation
import Testing
import TetherJSON
import TetherLocal
import TetherSecurity
import TetherTestSupport

/// Two hubs on one PostgreSQL database, as real processes: both serve the API; one drives the
/// federation, the other stands by, and takes over when the first is killed.
@Suite("hub failover on PostgreSQL", .timeLimit(.minutes(4)))
struct HubFailoverTests {
    @Test(
        "Both hubs serve the API (writes on either reach the member, a watch on the standby sees them in order, the member proxy through the standby reaches the member); SIGKILL of the active hub: the standby takes the lock, the agent follows its hub list to it, the member's objects stay, and the standby's watch and writes go on"
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
            let portB = try LoopbackPort.free()
            let hubB = try federation.launch(
                name: "hub-b", binary: "tether-hub",
                arguments: [
                    "--dir", federation.directory.path, "--agent-listen", "127.0.0.1:\(portB)", "--api-listen", "127.0.0.1:0",
                    "--heartbeat-interval", "1", "--auto-join",
                ] + common)
            let standby = try await hubB.waitForEvent("hub.standby", within: .seconds(30))
            #expect(standby["tether.holder"]?.hasSuffix("pid \(hubA.processIdentifier)") == true, "\(standby)")
            // The standby serves the API meanwhile, from the shared store.
            let apiReadyB = try await hubB.waitForEvent("api.ready", within: .seconds(30))
            let apiB = try #require(apiReadyB["tether.port"])
            let kubeconfigB = federation.root + "/kubeconfig-b"
            try federation.directory.writeKubeconfig(server: "https://127.0.0.1:\(apiB)", to: kubeconfigB)
            let hubctlB = try Kubectl(.modern, kubeconfig: kubeconfigB, home: federation.root + "/home-hub-b")
            #expect(!hubB.lines.contains { $0.event == "hub.active" }, "hub B drives the federation beside hub A")

            let (_, simDirectory) = try await federation.startSimcluster("m1", nodes: 1, readyAfter: "1s")
            let member = try Kubectl(.modern, kubeconfig: simDirectory + "/kubeconfig", home: simDirectory + "/home")
            let bundle = try federation.directory.issueAgentBundle(
                cluster: "m1", to: federation.root + "/bundles/m1", hubAddresses: ["127.0.0.1:\(portA)", "127.0.0.1:\(portB)"])
            let agent = try federation.startAgent(
                bundle: bundle, kubeconfig: simDirectory + "/kubeconfig",
                extraArguments: ["--state-dir", federation.root + "/state-m1", "--backoff-initial", "0.1", "--backoff-max", "0.5"])
            try await hubctl.succeed(["create", "namespace", "shop"])
            // A watch on the standby sees the writes made on either hub, in the order they were made.
            let watcher = try federation.launch(
                name: "watch-b", executable: hubctlB.executable,
                arguments: hubctlB.prefix + [
                    "--kubeconfig", kubeconfigB, "--cache-dir", hubctlB.home + "/cache", "get", "configmaps", "-n", "shop", "-w",
                    "--output-watch-events",
                ])
            try await hubctlB.succeed(["get", "namespace", "shop"])
            for index in 0..<6 {
                let writer = index.isMultiple(of: 2) ? hubctl : hubctlB
                try await writer.succeed(["create", "configmap", "c\(index)", "-n", "shop", "--from-literal=i=\(index)"])
            }
            try await watcher.waitForLine(within: .seconds(30), "the ADDED event of c5") { Self.added($0.raw) == "c5" }
            let added = watcher.lines.compactMap { Self.added($0.raw) }
            #expect(added == (0..<6).map { "c\($0)" }, "the standby's watch saw \(added)")
            // What was written through the standby reaches the member through the active hub.
            try await member.succeed(["wait", "--for=create", "configmap/c5", "-n", "shop", "--timeout=60s"], within: .seconds(70))
            try await member.succeed(["get", "configmap", "c1", "c3", "-n", "shop"])
            let uidBefore = try await member.succeed(["get", "configmap", "c0", "-n", "shop", "-o", "jsonpath={.metadata.uid}"])

            // The member's API through the standby, whose hub holds no session: sent on to the
            // active hub, for the same user, and audited by both.
            let proxied = try await hubctlB.succeed(["get", "--raw", "/clusters/m1/proxy/api/v1/namespaces/shop/configmaps/c1"])
            #expect(try JSONValue(parsing: proxied)["data"]?["i"] == "1", "\(proxied)")
            let forwardedAudit = try await hubA.waitForEvent("tunnel.request", within: .seconds(10)) { $0.raw.contains("configmaps/c1") }
            #expect(forwardedAudit["tether.user"] == "admin" && forwardedAudit["tether.status"] == "200", "\(forwardedAudit)")
            // A watch streams back the same way.
            let watched = try await hubctlB.succeed([
                "get", "--raw", "/clusters/m1/proxy/api/v1/namespaces/shop/configmaps?watch=1&timeoutSeconds=1",
            ])
            #expect(watched.split(separator: "\n").filter { $0.contains("\"ADDED\"") }.count == 6, "\(watched)")
            // A hub certificate acts for a user on the member proxy only.
            let dir = federation.directory.path
            let hubAsUser = try await curl(
                [
                    "--cacert", dir + "/ca.crt", "--cert", dir + "/hub.crt", "--key", dir + "/hub.key", "-H", "Tether-Forwarded-User: admin",
                    "-o", "/dev/null", "-w", "%{http_code}", "https://127.0.0.1:\(apiB)/api/v1/namespaces",
                ], in: federation)
            #expect(hubAsUser == "403", "\(hubAsUser)")

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

            // The standby's API never stopped: its watch goes on, and writes through it reach the member.
            #expect(try await hubctlB.succeed(["get", "configmaps", "-n", "shop", "-o", "name"]).split(separator: "\n").count == 6)
            try await hubctlB.succeed(["create", "configmap", "after", "-n", "shop", "--from-literal=k=v"])
            try await watcher.waitForLine(within: .seconds(30), "the ADDED event of after") { Self.added($0.raw) == "after" }
            try await member.succeed(["wait", "--for=create", "configmap/after", "-n", "shop", "--timeout=60s"], within: .seconds(70))
            #expect(try await member.succeed(["get", "configmap", "c0", "-n", "shop", "-o", "jsonpath={.metadata.uid}"]) == uidBefore)
            #expect(try federation.directory.readPorts()?.api == Int(apiB), "hub B wrote no ports file once it drove")
            #expect(agent.lines.filter { $0.event == "applier.pruned" }.isEmpty, "the agent pruned something during the failover")

            // A standby told to stop stops at once, without waiting for the lock.
            let hubC = try federation.launch(
                name: "hub-c", binary: "tether-hub",
                arguments: [
                    "--dir", federation.directory.path, "--agent-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--heartbeat-interval", "1",
                ] + common)
            try await hubC.waitForEvent("hub.standby", within: .seconds(30))
            try await hubC.waitForEvent("api.ready", within: .seconds(30))
            hubC.send(SIGTERM)
            let status = await hubC.waitForExit(within: .seconds(15))
            #expect(status == 0, "the standby exited with \(String(describing: status)); it logged:\n\(hubC.tail(20))")
        }
    }

    @Test(
        "SIGKILL of the active hub while a member is rebalanced away: the standby keeps that member's share where it runs (no agent gets a new desired state), its own outage timer rebalances the next member that goes, and shares come back when agents return"
    )
    func rebalancingMovesWithTheLock() async throws {
        let server = try await PostgresServer.shared()
        let store = server.url(database: try await server.createDatabase("rebalance"))
        try await withFederation { federation in
            let common = ["--store", store, "--rebalance-after", "2", "--offline-after", "3600"]
            let (hubA, portA) = try await federation.startHub(heartbeatInterval: 1, extraArguments: common)
            try await hubA.waitForEvent("hub.active", within: .seconds(5))
            let portB = try LoopbackPort.free()
            let hubB = try federation.launch(
                name: "hub-b", binary: "tether-hub",
                arguments: [
                    "--dir", federation.directory.path, "--agent-listen", "127.0.0.1:\(portB)", "--api-listen", "127.0.0.1:0",
                    "--heartbeat-interval", "1",
                ] + common)
            try await hubB.waitForEvent("hub.standby", within: .seconds(30))
            let apiB = try #require(try await hubB.waitForEvent("api.ready", within: .seconds(30))["tether.port"])
            let kubeconfigB = federation.root + "/kubeconfig-b"
            try federation.directory.writeKubeconfig(server: "https://127.0.0.1:\(apiB)", to: kubeconfigB)
            let hubctl = try Kubectl(.modern, kubeconfig: kubeconfigB, home: federation.root + "/home-hub-b")

            var kubeconfigs: [String: String] = [:]
            var agents: [String: ManagedProcess] = [:]
            func startAgent(_ name: String) throws -> ManagedProcess {
                try federation.startAgent(
                    name: "agent-\(name)-\(UUID().uuidString.prefix(4))",
                    bundle: try federation.directory.issueAgentBundle(
                        cluster: name, to: federation.root + "/bundles/\(name)", hubAddresses: ["127.0.0.1:\(portA)", "127.0.0.1:\(portB)"]),
                    kubeconfig: kubeconfigs[name],
                    extraArguments: ["--state-dir", federation.root + "/state-\(name)", "--backoff-initial", "0.1", "--backoff-max", "0.5"])
            }
            var members: [String: Kubectl] = [:]
            for name in ["m1", "m2", "m3"] {
                let directory = try await federation.startSimcluster(name, nodes: 1, readyAfter: "1s").directory
                kubeconfigs[name] = directory + "/kubeconfig"
                members[name] = try Kubectl(.modern, kubeconfig: directory + "/kubeconfig", home: directory + "/home")
                agents[name] = try startAgent(name)
                try await hubA.waitForEvent("federation.cluster_added", within: .seconds(30)) { $0["tether.cluster"] == name }
            }
            let m1 = try #require(members["m1"])
            try await hubctl.succeed(["apply", "-f", "-"], stdin: frontendReplicaSet.replacingOccurrences(of: "replicas: 5", with: "replicas: 6"))
            for member in members.values {
                // A jsonpath wait fails at once on an object not made yet.
                try await member.succeed(["wait", "--for=create", "rs/frontend", "--timeout=30s"])
                try await member.succeed(["wait", "--for=jsonpath={.spec.replicas}=2", "rs/frontend", "--timeout=30s"])
            }

            // m3 goes away; hub A moves its share to m1 and m2.
            _ = await agents["m3"]?.stop()
            try await hubctl.succeed(["wait", "--for=condition=ReplicasMovedAway", "clusters/m3", "--timeout=30s"])
            try await m1.succeed(["wait", "--for=jsonpath={.spec.replicas}=3", "rs/frontend", "--timeout=30s"])

            // Hub A dies: hub B drives, and m1's and m2's agents hold what it would send them: it
            // says so, or (when A died before writing their revisions) renumbers it with an empty delta.
            let marks = agents.mapValues(\.mark)
            hubA.send(SIGKILL)
            try await hubB.waitForEvent("hub.active", within: .seconds(30))
            for name in ["m1", "m2"] {
                let agent = try #require(agents[name])
                let outcome = try await withThrowingTaskGroup(of: String.self) { group in
                    group.addTask {
                        try await hubB.waitForEvent("federation.resumed", within: .seconds(30)) { $0["tether.cluster"] == name }.raw
                    }
                    group.addTask { try await agent.waitForEvent("applier.desired", after: marks[name] ?? 0, within: .seconds(30)).raw }
                    defer { group.cancelAll() }
                    return try await group.next() ?? ""
                }
                #expect(outcome.contains("federation.resumed") || outcome.contains("\"tether.carried\":\"delta of 0\""), "\(name): \(outcome)")
                print("hub failover: \(name) after the takeover: \(outcome)")
            }
            #expect(try await m1.succeed(["get", "rs", "frontend", "-o", "jsonpath={.spec.replicas}"]) == "3")

            // Hub B's own timer: m2 goes away, and m1 runs all six.
            _ = await agents["m2"]?.stop()
            try await hubB.waitForEvent("federation.rebalanced_away", within: .seconds(30)) { $0["tether.cluster"] == "m2" }
            try await m1.succeed(["wait", "--for=jsonpath={.spec.replicas}=6", "rs/frontend", "--timeout=30s"])

            // Both return: the six are divided again, and each Cluster says its share is back.
            agents["m2"] = try startAgent("m2")
            agents["m3"] = try startAgent("m3")
            try await hubctl.succeed(["wait", "--for=condition=ReplicasMovedAway=false", "clusters/m2", "clusters/m3", "--timeout=30s"])
            for member in members.values { try await member.succeed(["wait", "--for=jsonpath={.spec.replicas}=2", "rs/frontend", "--timeout=30s"]) }
            #expect(agents.values.allSatisfy { $0.lines.filter { $0.event == "applier.pruned" }.isEmpty }, "an agent pruned during the failover")
        }
    }

    /// The name in a line `kubectl get -w --output-watch-events` prints for an ADDED event.
    static func added(_ line: String) -> String? {
        let columns = line.split(separator: " ", omittingEmptySubsequences: true)
        return columns.count > 1 && columns[0] == "ADDED" ? String(columns[1]) : nil
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

    @Test("a standby that cannot bind its agent port when it takes over exits with the listener's error and gives the lock up")
    func standbyCannotListen() async throws {
        let server = try await PostgresServer.shared()
        let store = server.url(database: try await server.createDatabase("nolisten"))
        try await withFederation { federation in
            let (hubA, _) = try await federation.startHub(heartbeatInterval: 1, extraArguments: ["--store", store])
            try await hubA.waitForEvent("hub.active", within: .seconds(5))
            let portB = try LoopbackPort.free()
            let hubB = try federation.launch(
                name: "hub-b", binary: "tether-hub",
                arguments: [
                    "--dir", federation.directory.path, "--agent-listen", "127.0.0.1:\(portB)", "--api-listen", "127.0.0.1:0", "--store", store,
                ])
            try await hubB.waitForEvent("hub.standby", within: .seconds(30))
            // Another program takes the standby's agent port while it waits.
            let squatter = try LoopbackPort.Listener(port: portB)
            defer { squatter.close() }
            hubA.send(SIGKILL)
            try await hubB.waitForEvent("hub.active", within: .seconds(30))
            let status = await hubB.waitForExit(within: .seconds(30))
            #expect(status == 1, "hub B exited with \(String(describing: status)); it logged:\n\(hubB.tail(20))")
            #expect(
                hubB.lines.contains { $0.raw.contains("cannot listen for agents on 127.0.0.1:\(portB)") && $0.raw.contains("--agent-listen") },
                "\(hubB.tail(20))")
            // The lock went with it: a third hub drives the federation.
            let (hubC, _) = try await federation.startHub(heartbeatInterval: 1, extraArguments: ["--store", store])
            try await hubC.waitForEvent("hub.active", within: .seconds(30))
        }
    }
}
