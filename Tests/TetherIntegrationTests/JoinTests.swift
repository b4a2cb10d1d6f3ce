import Foundation
import TetherLocal
import TetherSecurity
import TetherTestSupport
import Testing

@Suite("join and unjoin", .timeLimit(.minutes(3)))
struct JoinTests {
    @Test("only joined clusters are admitted; join labels the Cluster and writes bundle and manifests; unjoin prunes and refuses, --orphan leaves objects")
    func joinAndUnjoin() async throws {
        try await withFederation { federation in
            let (hub, _) = try await federation.startHub(heartbeatInterval: 1, autoJoin: false)
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            let dir = federation.directory.path

            // An agent with a valid certificate from the CA, but for a cluster that never joined, is refused.
            let stranger = try federation.startAgent(name: "stranger", bundle: try federation.issueBundle(cluster: "m9"))
            let refused = try await stranger.waitForEvent("session.ended", within: .seconds(30))
            #expect((refused["tether.reason"] ?? "").contains("not joined"), "\(refused.raw)")
            await stranger.stop()

            var members: [String: Kubectl] = [:]
            var agents: [String: ManagedProcess] = [:]
            for name in ["m1", "m2"] {
                let join = try await run("tetherctl", ["join", name, "--dir", dir, "--out", federation.root + "/join-\(name)", "--label", "region=\(name == "m1" ? "eu" : "us")", "--emit-manifests"])
                #expect(join.status == 0, "\(join.output)")
                let (_, directory) = try await federation.startSimcluster(name, nodes: 2, readyAfter: "1s")
                members[name] = try Kubectl(.modern, kubeconfig: directory + "/kubeconfig", home: directory + "/home")
                agents[name] = try federation.startAgent(
                    bundle: AgentBundle(path: federation.root + "/join-\(name)"),
                    kubeconfig: directory + "/kubeconfig",
                    extraArguments: ["--state-dir", federation.root + "/state-\(name)"]
                )
            }
            let again = try await run("tetherctl", ["join", "m1", "--dir", dir, "--out", federation.root + "/again"])
            #expect(again.status != 0 && again.output.contains("already joined"), "\(again.output)")
            let manifests = try String(contentsOfFile: federation.root + "/join-m1/manifests.yaml", encoding: .utf8)
            for kind in ["kind: Namespace", "kind: ServiceAccount", "kind: ClusterRole", "kind: ClusterRoleBinding", "kind: Secret", "kind: Deployment", "--in-cluster"] {
                #expect(manifests.contains(kind), "\(kind)")
            }
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.phase}=Ready", "clusters/m1", "clusters/m2", "--timeout=30s"])
            #expect(try await hubctl.succeed(["get", "clusters", "-l", "region=eu", "-o", "name"]).trimmingCharacters(in: .whitespacesAndNewlines) == "cluster.core.tether.io/m1")

            try await hubctl.succeed(["apply", "-f", "-"], stdin: frontendReplicaSet)
            let m1 = try #require(members["m1"]), m2 = try #require(members["m2"])
            try await m1.succeed(["wait", "--for=jsonpath={.spec.replicas}=3", "rs/frontend", "--timeout=30s"])
            try await m2.succeed(["wait", "--for=jsonpath={.spec.replicas}=2", "rs/frontend", "--timeout=30s"])

            // Unjoin m1: its agent prunes, the hub drops and then refuses it, the rest moves to m2.
            let unjoin = try await run("tetherctl", ["unjoin", "m1", "--dir", dir])
            #expect(unjoin.status == 0, "\(unjoin.output)")
            try await m1.succeed(["wait", "--for=delete", "rs/frontend", "--timeout=30s"])
            try await m2.succeed(["wait", "--for=jsonpath={.spec.replicas}=5", "rs/frontend", "--timeout=30s"])
            let agent1 = try #require(agents["m1"])
            try await agent1.waitForEvent("agent.unjoined", within: .seconds(30))
            await agent1.stop()
            // The same certificate no longer gets a session: unjoin put it on the revocation list, so
            // the hub refuses it in the handshake.
            let retry = try federation.startAgent(name: "m1-again", bundle: AgentBundle(path: federation.root + "/join-m1"))
            try await retry.waitForEvent("session.ended", within: .seconds(30))
            let refusal = try await hub.waitForEvent("session.refused", within: .seconds(30)) { $0["tether.refusal"] == "revoked" }
            #expect((refusal["tether.reason"] ?? "").contains("cluster/m1") && (refusal["tether.reason"] ?? "").contains("unjoined"), "\(refusal.raw)")
            #expect(!retry.lines.contains { $0.event == "session.established" })
            let gone = try await hubctl.run(["get", "cluster", "m1"])
            #expect(gone.status != 0 && gone.stderr.contains("NotFound"), "\(gone)")

            // Unjoin m2 with --orphan: its objects stay, unmanaged by any agent.
            let orphan = try await run("tetherctl", ["unjoin", "m2", "--dir", dir, "--orphan"])
            #expect(orphan.status == 0, "\(orphan.output)")
            try await (try #require(agents["m2"])).waitForEvent("applier.forgotten", within: .seconds(30))
            #expect(try await m2.succeed(["get", "rs", "frontend", "-o", "jsonpath={.spec.replicas}"]) == "5")
            #expect(!hub.lines.contains { $0.event == "federation.unjoining" && $0["tether.cluster"] == "m2" && $0["tether.orphan"] != "true" })
            let missing = try await run("tetherctl", ["unjoin", "m2", "--dir", dir])
            #expect(missing.status != 0 && missing.output.contains("not joined"), "\(missing.output)")
        }
    }
}
