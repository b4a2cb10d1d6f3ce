import Foundation
import Testing
import TetherJSON
import TetherLocal
import TetherSecurity
import TetherTestSupport

/// Agents on every hub (`--agent-sessions every-hub`): two hubs on one PostgreSQL database, as
/// real processes, each holding the sessions of the agents that reach it.
@Suite("agents on every hub, on PostgreSQL", .serialized, .timeLimit(.minutes(4)))
struct EveryHubTests {
    /// A second hub on the federation's directory and database, with its own ports.
    struct SecondHub {
        var process: ManagedProcess
        var agentPort: Int
        var hubctl: Kubectl
    }

    static func startSecondHub(_ federation: LocalFederation, name: String, port: Int? = nil, arguments: [String]) async throws -> SecondHub {
        let port = try port ?? LoopbackPort.free()
        let hub = try federation.launch(
            name: name, binary: "tether-hub",
            arguments: [
                "--dir", federation.directory.path, "--agent-listen", "127.0.0.1:\(port)", "--api-listen", "127.0.0.1:0", "--heartbeat-interval", "1",
                "--auto-join",
            ] + arguments)
        let ready = try await hub.waitForEvent("api.ready", within: .seconds(30))
        let api = try #require(ready["tether.port"])
        let kubeconfig = federation.root + "/kubeconfig-\(name)"
        try federation.directory.writeKubeconfig(server: "https://127.0.0.1:\(api)", to: kubeconfig)
        return SecondHub(process: hub, agentPort: port, hubctl: try Kubectl(.modern, kubeconfig: kubeconfig, home: federation.root + "/home-\(name)"))
    }

    /// A simulated member whose agent lists only `ports`.
    static func startMember(
        _ federation: LocalFederation, _ name: String, ports: [Int], agentName: String? = nil, simulator: String? = nil
    ) async throws -> (kubectl: Kubectl, agent: ManagedProcess, directory: String) {
        var directory = simulator ?? ""
        if simulator == nil { directory = try await federation.startSimcluster(name, nodes: 1, readyAfter: "1s").directory }
        let agentName = agentName ?? "agent-\(name)"
        let bundle = try federation.directory.issueAgentBundle(
            cluster: name, to: federation.root + "/bundles/\(agentName)", hubAddresses: ports.map { "127.0.0.1:\($0)" })
        let agent = try federation.startAgent(
            name: agentName, bundle: bundle, kubeconfig: directory + "/kubeconfig",
            extraArguments: ["--state-dir", federation.root + "/state-\(agentName)", "--backoff-initial", "0.1", "--backoff-max", "0.5"])
        return (try Kubectl(.modern, kubeconfig: directory + "/kubeconfig", home: directory + "/home"), agent, directory)
    }

    @Test(
        "two hubs hold sessions side by side: a write through either reaches both members, each hub's lines and the summed status cover both, the member proxy reaches a cluster held by the other hub, an unjoin through one hub is carried out by the one holding the session, and of two agents of one cluster on the two hubs the newer wins and the older gets goaway"
    )
    func sessionsSideBySide() async throws {
        let server = try await PostgresServer.shared()
        let store = server.url(database: try await server.createDatabase("everyhub"))
        try await withFederation { federation in
            let common = ["--store", store, "--agent-sessions", "every-hub", "--rebalance-after", "30"]
            let (hubA, portA) = try await federation.startHub(heartbeatInterval: 1, extraArguments: common)
            try await hubA.waitForEvent("federation.leading", within: .seconds(10))
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            let hubB = try await Self.startSecondHub(federation, name: "hub-b", arguments: common)
            #expect(!hubB.process.lines.contains { $0.event == "federation.leading" }, "hub B leads beside hub A")

            let m1 = try await Self.startMember(federation, "m1", ports: [portA])
            let m2 = try await Self.startMember(federation, "m2", ports: [hubB.agentPort])
            for cluster in ["m1", "m2"] {
                // Registered by the hub its agent reached (auto-join); a jsonpath wait on an object not there yet fails at once.
                try await hubctl.succeed(["wait", "--for=create", "clusters/\(cluster)", "--timeout=30s"], within: .seconds(40))
                try await hubctl.succeed(
                    ["wait", "--for=jsonpath={.status.phase}=Ready", "clusters/\(cluster)", "--timeout=30s"], within: .seconds(40))
            }
            let holders = try await hubctl.succeed([
                "get", "clusters", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.session.hub} {end}",
            ])
            let byCluster = Dictionary(
                uniqueKeysWithValues: holders.split(separator: " ").map { $0.split(separator: "=").map(String.init) }.map {
                    ($0[0], $0.count > 1 ? $0[1] : "")
                })
            #expect(byCluster["m1"] != nil && byCluster["m2"] != nil && byCluster["m1"] != byCluster["m2"], "\(holders)")

            // A write through A reaches both members, each from the hub holding its session; the
            // status at either hub sums what both report.
            try await hubctl.succeed(["create", "deployment", "web", "--image=nginx:1.27", "--replicas=4"])
            for member in [m1.kubectl, m2.kubectl] {
                try await member.succeed(["wait", "--for=create", "deployment/web", "--timeout=30s"], within: .seconds(40))
                try await member.succeed(
                    ["wait", "--for=jsonpath={.status.readyReplicas}=2", "deployment/web", "--timeout=30s"], within: .seconds(40))
            }
            try await hubB.hubctl.succeed(
                ["wait", "--for=jsonpath={.status.readyReplicas}=4", "deployment/web", "--timeout=30s"], within: .seconds(40))
            let record = "propagation/deployment.default.web"
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.applied}=2", record, "--timeout=30s"], within: .seconds(40))

            // A write through B: both members get their share, and the new generation is observed
            // once both acknowledged it, each to its own hub.
            try await hubB.hubctl.succeed(["scale", "deployment/web", "--replicas=6"])
            for member in [m1.kubectl, m2.kubectl] {
                try await member.succeed(["wait", "--for=jsonpath={.spec.replicas}=3", "deployment/web", "--timeout=30s"], within: .seconds(40))
            }
            try await hubctl.succeed(
                ["wait", "--for=jsonpath={.status.observedGeneration}=2", "deployment/web", "--timeout=30s"], within: .seconds(40))
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.readyReplicas}=6", "deployment/web", "--timeout=30s"], within: .seconds(40))

            // The member proxy through A reaches m2, whose session B holds.
            let proxied = try await hubctl.succeed(["get", "--raw", "/clusters/m2/proxy/apis/apps/v1/namespaces/default/deployments/web"])
            #expect(try JSONValue(parsing: proxied)["spec"]?["replicas"] == 3, "\(proxied)")

            // m2 is unjoined through A while B holds its session: B has its agent prune, then lets the Cluster go.
            try await hubctl.succeed(["delete", "cluster", "m2", "--timeout=60s"], within: .seconds(70))
            try await m2.kubectl.succeed(["wait", "--for=delete", "deployment/web", "--timeout=30s"], within: .seconds(40))
            // B let go once its agent pruned (the member's copy is gone above); the leader, seeing no
            // session left afterwards, may say so too, a no-op by then.
            try await hubB.process.waitForEvent("federation.unjoined", within: .seconds(10)) { $0["tether.cluster"] == "m2" }
            #expect(m2.agent.lines.contains { $0.event == "agent.unjoined" }, "m2's agent was not told it was unjoined")

            // A second agent of m1 reaches B: it holds m1 now, and A ends the older session with goaway.
            let mark = m1.agent.mark
            let second = try await Self.startMember(federation, "m1", ports: [hubB.agentPort], agentName: "agent-m1-second", simulator: m1.directory)
            let ended = try await m1.agent.waitForEvent("session.ended", after: mark, within: .seconds(30)) { $0.raw.contains("replaced by session") }
            #expect(ended.raw.contains("on hub \(byCluster["m2"] ?? "?")"), "\(ended)")
            try await hubA.waitForEvent("federation.session_superseded", within: .seconds(10)) { $0["tether.cluster"] == "m1" }
            try await hubctl.succeed(
                ["wait", "--for=jsonpath={.status.session.hub}=\(byCluster["m2"] ?? "?")", "clusters/m1", "--timeout=30s"], within: .seconds(40))
            #expect(try await hubctl.succeed(["get", "clusters/m1", "-o", "jsonpath={.status.phase}"]) == "Ready")
            _ = await second.agent.stop()
        }
    }
}
