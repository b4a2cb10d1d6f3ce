import Foundation
import Testing
import TetherLocal
import TetherTestSupport

/// Nothing the API accepts can wedge propagation, and a restarted hub is honest about agents it
/// has not heard from: real hub, simulated members and agents on loopback.
@Suite("propagation that nothing can wedge", .timeLimit(.minutes(10)))
struct PropagationHardeningTests {
    @Test("20 objects of 1.3 MB each reach a new agent (a snapshot in chunks); objects the API refuses never block the ones after them")
    func largeDesiredSet() async throws {
        try await withFederation { federation in
            // Heartbeats every 5 s (a session ends after 15 s of silence): a debug agent decoding
            // 1.3 MB chunks on a machine busy with the rest of the suite can be silent for more
            // than the 6 s that 2 s would allow, and a clean-clone run lost its session twice so.
            let (hub, port) = try await federation.startHub(heartbeatInterval: 5)
            let client = try APIClient(federation)
            for index in 0..<20 {
                let value = RandomText.alphanumeric(count: 1_300_000)
                let body = #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big-\#(index)"},"data":{"v":"\#(value)"}}"#
                let created = try await client.request("POST", "/api/v1/namespaces/default/configmaps", body: body)
                #expect(created.code == 201, "\(created.body.prefix(200))")
            }
            var nested = #""leaf""#
            for _ in 0..<60 { nested = #"{"a":\#(nested)}"# }
            let refused = try await client.request(
                "POST", "/api/v1/namespaces/default/configmaps",
                body: #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"deep"},"extra":\#(nested)}"#)
            #expect(refused.code == 400)

            let (_, directory) = try await federation.startSimcluster("m1", nodes: 1, readyAfter: "1s")
            let member = try Kubectl(.modern, kubeconfig: directory + "/kubeconfig", home: directory + "/home")
            let agent = try federation.startAgent(
                bundle: try federation.issueBundle(cluster: "m1", hubPort: port), kubeconfig: directory + "/kubeconfig",
                extraArguments: ["--state-dir", federation.root + "/state-m1"]
            )
            let accepted = try await agent.waitForEvent("applier.desired", within: .seconds(60))
            #expect(Int(accepted["tether.objects"] ?? "") ?? 0 >= 20, "\(accepted)")
            try await agent.waitForEvent("applier.revision_done", within: .seconds(120)) { $0["tether.failures"] == "0" }
            let names = try await member.succeed(["get", "configmaps", "-n", "default", "-o", "name"])
            #expect((0..<20).allSatisfy { names.contains("configmap/big-\($0)") }, "\(names)")
            #expect(!hub.lines.contains { $0.event == "federation.push_failed" })

            // Later objects flow as before.
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            try await hubctl.succeed(["create", "configmap", "after", "--from-literal=k=v"])
            // The agent rewrites its saved desired set (26 MB here) before applying the change: a debug
            // build takes seconds for that, so the wait is for the object to appear at all.
            try await member.succeed(["wait", "--for=create", "configmap/after", "--timeout=120s"], within: .seconds(130))
            try await member.succeed(["wait", "--for=jsonpath={.data.k}=v", "configmap/after", "--timeout=30s"])
        }
    }

    @Test(
        "after a restart every cluster is NotReady (waiting for its agent) until it returns; one that never returns is rebalanced away and goes Offline"
    )
    func restartHonesty() async throws {
        try await withFederation { federation in
            let arguments = ["--rebalance-after", "2", "--offline-after", "4"]
            var (hub, port) = try await federation.startHub(heartbeatInterval: 1, extraArguments: arguments)
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            var agents: [String: ManagedProcess] = [:]
            for name in ["stays", "leaves"] {
                agents[name] = try federation.startAgent(
                    name: "agent-\(name)", bundle: try federation.issueBundle(cluster: name, hubPort: port),
                    extraArguments: ["--backoff-initial", "0.2", "--backoff-max", "1"]
                )
            }
            // Present first: a jsonpath wait on a Cluster its agent has not made yet fails at once.
            // One name per wait: kubectl 1.32 gives up at once when several are all missing.
            for name in ["stays", "leaves"] {
                try await hubctl.succeed(["wait", "--for=create", "clusters/\(name)", "--timeout=30s"], within: .seconds(40))
            }
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.phase}=Ready", "clusters/stays", "clusters/leaves", "--timeout=30s"])
            _ = await agents["leaves"]?.stop()
            _ = await hub.stop()
            (hub, port) = try await federation.startHub(heartbeatInterval: 1, agentListen: "127.0.0.1:\(port)", extraArguments: arguments)
            // Ready comes back for the agent that returns; the other waits, honestly.
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.phase}=Ready", "clusters/stays", "--timeout=30s"])
            let waiting = try await hubctl.succeed([
                "get", "cluster", "leaves", "-o", "jsonpath={.status.phase} {.status.conditions[?(@.type==\"Ready\")].reason}",
            ])
            #expect(waiting.hasPrefix("NotReady WaitingForAgent") || waiting.hasPrefix("Offline"), "\(waiting)")
            try await hub.waitForEvent("federation.rebalanced_away", within: .seconds(15)) { $0["tether.cluster"] == "leaves" }
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.phase}=Offline", "clusters/leaves", "--timeout=30s"])
            #expect(!hub.lines.contains { $0.event == "federation.rebalanced_away" && $0["tether.cluster"] == "stays" })
        }
    }
}
