import Foundation
import Testing
import TetherLocal
import TetherTestSupport

extension FederationEndToEndTests {
    @Test(
        "a hub that starts again while a member's agent is away still counts that member with its last report: its Propagation line and its share of the summed status"
    )
    func lastReportsAcrossHubRestart() async throws {
        try await withFederation { federation in
            var (hub, port) = try await federation.startHub(heartbeatInterval: 1)
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            var agents: [String: ManagedProcess] = [:]
            var members: [String: Kubectl] = [:]
            for name in ["m1", "m2"] {
                let member = try await federation.startMember(
                    name, hub: hub, hubPort: port, agentArguments: ["--backoff-initial", "0.2", "--backoff-max", "1"])
                (members[name], agents[name]) = (member.kubectl, member.agent)
            }
            try await hubctl.succeed(["create", "deployment", "web", "--image=nginx:1.27", "--replicas=4"])
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.readyReplicas}=4", "deployment/web", "--timeout=60s"], within: .seconds(70))

            // m2's agent goes away, then the hub restarts: m2 stays placed (the rebalance grace is a minute).
            _ = await agents["m2"]?.stop()
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.phase}=NotReady", "clusters/m2", "--timeout=30s"])
            _ = await hub.stop()
            (hub, port) = try await federation.startHub(heartbeatInterval: 1, agentListen: "127.0.0.1:\(port)")
            try await hub.waitForEvent("federation.settled", within: .seconds(30))

            // A change m1 reports on makes the hub write the object's status again, from m1's new
            // report and m2's last one: 3 ready in m1 and m2's 2, not 3 alone with m2 pending.
            try await hubctl.succeed(["scale", "deployment/web", "--replicas=6"])
            let m1 = try #require(members["m1"])
            try await m1.succeed(["wait", "--for=jsonpath={.status.readyReplicas}=3", "deployment/web", "--timeout=30s"], within: .seconds(40))
            let record = "propagation/deployment.default.web"
            try await hubctl.succeed(
                ["wait", "--for=jsonpath={.status.clusters[?(@.name==\"m1\")].summary.readyReplicas}=3", record, "--timeout=30s"],
                within: .seconds(40))
            let m2Line = try await hubctl.succeed([
                "get", record, "-o",
                "jsonpath={.status.clusters[?(@.name==\"m2\")].state}/{.status.clusters[?(@.name==\"m2\")].summary.readyReplicas}",
            ])
            #expect(m2Line == "applied/2")
            let summed = try await hubctl.run(["wait", "--for=jsonpath={.status.readyReplicas}=5", "deployment/web", "--timeout=30s"])
            let status = try await hubctl.run(["get", "deployment", "web", "-o", "jsonpath={.status}"]).stdout
            #expect(summed.status == 0, "\(status)")
        }
    }
}

extension FederationEndToEndTests {
    @Test(
        "a hub that starts again in the middle of a rollout keeps the generation a member lacks unobserved: observedGeneration moves only when that member's agent returns and acknowledges it"
    )
    func generationAcrossHubRestart() async throws {
        try await withFederation { federation in
            var (hub, port) = try await federation.startHub(heartbeatInterval: 1)
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            let agentArguments = ["--backoff-initial", "0.2", "--backoff-max", "1"]
            let m1 = try await federation.startMember("m1", hub: hub, hubPort: port, agentArguments: agentArguments)
            let m2 = try await federation.startMember("m2", hub: hub, hubPort: port, agentArguments: agentArguments)
            try await hubctl.succeed(["create", "deployment", "web", "--image=nginx:1.27", "--replicas=2"])
            try await hubctl.succeed(
                ["wait", "--for=jsonpath={.status.observedGeneration}=1", "deployment/web", "--timeout=30s"], within: .seconds(40))

            // m2's agent goes away; the new generation reaches m1 alone, so it is not observed.
            _ = await m2.agent.stop()
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.phase}=NotReady", "clusters/m2", "--timeout=30s"])
            try await hubctl.succeed(["set", "image", "deployment/web", "nginx=nginx:1.28"])
            try await m1.kubectl.succeed(
                ["wait", "--for=jsonpath={.spec.template.spec.containers[0].image}=nginx:1.28", "deployment/web", "--timeout=30s"],
                within: .seconds(40))
            let record = "propagation/deployment.default.web"
            try await hubctl.succeed(
                ["wait", "--for=jsonpath={.status.clusters[?(@.name==\"m1\")].generation}=2", record, "--timeout=30s"], within: .seconds(40))
            #expect(try await hubctl.succeed(["get", "deployment", "web", "-o", "jsonpath={.status.observedGeneration}"]) == "1")

            // The hub restarts with m2 still away. m1's agent returns and reports, so the status is
            // written again: still generation 1 observed, since m2 never had 2.
            _ = await hub.stop()
            (hub, port) = try await federation.startHub(heartbeatInterval: 1, agentListen: "127.0.0.1:\(port)")
            try await hub.waitForEvent("federation.resumed", within: .seconds(30)) { $0["tether.cluster"] == "m1" }
            try await hubctl.succeed(["scale", "deployment/web", "--replicas=4"])
            try await hubctl.succeed(
                ["wait", "--for=jsonpath={.status.clusters[?(@.name==\"m1\")].generation}=3", record, "--timeout=30s"], within: .seconds(40))
            #expect(try await hubctl.succeed(["get", record, "-o", "jsonpath={.status.observedGeneration}"]) == "1")
            #expect(try await hubctl.succeed(["get", "deployment", "web", "-o", "jsonpath={.status.observedGeneration}"]) == "1")

            // m2's agent returns and applies generation 3: observed.
            _ = try federation.startAgent(
                name: "agent-m2-again", bundle: try federation.issueBundle(cluster: "m2", hubPort: port), kubeconfig: m2.directory + "/kubeconfig",
                extraArguments: agentArguments)
            try await hubctl.succeed(
                ["wait", "--for=jsonpath={.status.observedGeneration}=3", "deployment/web", "--timeout=30s"], within: .seconds(40))
        }
    }
}
