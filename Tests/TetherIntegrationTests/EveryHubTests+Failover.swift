import Foundation
import Testing
import TetherJSON
import TetherLocal
import TetherSecurity
import TetherTestSupport

extension EveryHubTests {
    /// `addresses` in the order whose first pick (the agent starts at its cluster's hash) is `first`.
    static func listing(_ first: String, then other: String, for cluster: String) -> [String] {
        var hash = StableHash()
        hash.combine(cluster)
        return hash.value % 2 == 0 ? [first, other] : [other, first]
    }

    @Test(
        "SIGKILL of a hub holding a session: its agent is served by the other hub within a bound, the member's objects stay; SIGKILL of the leader: the other hub leads, releases the dead hub's sessions, and its outage timer rebalances a member whose agent stays away, until it returns"
    )
    func hubsDie() async throws {
        let server = try await PostgresServer.shared()
        let store = server.url(database: try await server.createDatabase("everyhubdie"))
        try await withFederation { federation in
            let common = ["--store", store, "--agent-sessions", "every-hub", "--rebalance-after", "2", "--offline-after", "3600"]
            var (hubA, portA) = try await federation.startHub(heartbeatInterval: 1, extraArguments: common)
            try await hubA.waitForEvent("federation.leading", within: .seconds(10))
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            var hubB = try await Self.startSecondHub(federation, name: "hub-b", arguments: common)
            let (addressA, addressB) = ("127.0.0.1:\(portA)", "127.0.0.1:\(hubB.agentPort)")

            // m1 starts on B and may go to A; m2 knows only A.
            let (_, m1Directory) = try await federation.startSimcluster("m1", nodes: 1, readyAfter: "1s")
            let m1Bundle = try federation.directory.issueAgentBundle(
                cluster: "m1", to: federation.root + "/bundles/m1", hubAddresses: Self.listing(addressB, then: addressA, for: "m1"))
            let m1Agent = try federation.startAgent(
                name: "agent-m1", bundle: m1Bundle, kubeconfig: m1Directory + "/kubeconfig",
                extraArguments: ["--state-dir", federation.root + "/state-m1", "--backoff-initial", "0.1", "--backoff-max", "0.5"])
            let m1 = try Kubectl(.modern, kubeconfig: m1Directory + "/kubeconfig", home: m1Directory + "/home")
            let m2 = try await Self.startMember(federation, "m2", ports: [portA])
            let first = try await m1Agent.waitForEvent("session.established", within: .seconds(30))
            #expect(first["tether.hub"] == addressB, "\(first)")
            for cluster in ["m1", "m2"] {
                try await hubctl.succeed(["wait", "--for=create", "clusters/\(cluster)", "--timeout=30s"], within: .seconds(40))
                try await hubctl.succeed(
                    ["wait", "--for=jsonpath={.status.phase}=Ready", "clusters/\(cluster)", "--timeout=30s"], within: .seconds(40))
            }
            try await hubctl.succeed(["create", "deployment", "web", "--image=nginx:1.27", "--replicas=4"])
            for member in [m1, m2.kubectl] {
                try await member.succeed(["wait", "--for=create", "deployment/web", "--timeout=30s"], within: .seconds(40))
                try await member.succeed(
                    ["wait", "--for=jsonpath={.status.readyReplicas}=2", "deployment/web", "--timeout=30s"], within: .seconds(40))
            }
            let uid = try await m1.succeed(["get", "deployment", "web", "-o", "jsonpath={.metadata.uid}"])

            // B dies holding m1's session: m1's agent goes to A at once, and nothing in m1 is replaced.
            var mark = m1Agent.mark
            var killed = ContinuousClock.now
            hubB.process.send(SIGKILL)
            let moved = try await m1Agent.waitForEvent("session.established", after: mark, within: .seconds(30))
            let served = ContinuousClock.now - killed
            #expect(moved["tether.hub"] == addressA, "\(moved)")
            #expect(served < .seconds(5), "m1's agent was served again after \(served)")
            print("agents on every hub: m1's agent served by the other hub \(served) after SIGKILL of the hub holding it")
            try await hubctl.succeed(["scale", "deployment/web", "--replicas=6"])
            try await m1.succeed(["wait", "--for=jsonpath={.spec.replicas}=3", "deployment/web", "--timeout=30s"], within: .seconds(40))
            #expect(try await m1.succeed(["get", "deployment", "web", "-o", "jsonpath={.metadata.uid}"]) == uid)
            #expect(m1Agent.lines.filter { $0.event == "applier.pruned" }.isEmpty, "m1's agent pruned something when its hub died")

            // B comes back (a follower); then the leader A dies holding both sessions: B leads,
            // m1's agent comes to it, and m2's (which knows only A) stays away: B releases m2's
            // session, and after the grace moves its replicas to m1.
            hubB = try await Self.startSecondHub(federation, name: "hub-b2", port: hubB.agentPort, arguments: common)
            mark = m1Agent.mark
            let leadMark = hubB.process.mark
            killed = ContinuousClock.now
            hubA.send(SIGKILL)
            try await hubB.process.waitForEvent("federation.leading", after: leadMark, within: .seconds(30))
            let led = ContinuousClock.now - killed
            let back = try await m1Agent.waitForEvent("session.established", after: mark, within: .seconds(30))
            #expect(back["tether.hub"] == "127.0.0.1:\(hubB.agentPort)", "\(back)")
            try await hubB.process.waitForEvent("federation.session_orphaned", within: .seconds(30)) { $0["tether.cluster"] == "m2" }
            try await hubB.hubctl.succeed(["wait", "--for=condition=ReplicasMovedAway", "clusters/m2", "--timeout=30s"], within: .seconds(40))
            let rebalanced = ContinuousClock.now - killed
            try await m1.succeed(["wait", "--for=jsonpath={.spec.replicas}=6", "deployment/web", "--timeout=30s"], within: .seconds(40))
            print("agents on every hub: B led \(led) after SIGKILL of the leader; m2 rebalanced away \(rebalanced) after it (grace 2 s)")
            #expect(try await m1.succeed(["get", "deployment", "web", "-o", "jsonpath={.metadata.uid}"]) == uid)
            // m2 kept its last share meanwhile: a hub outage never deletes in a member.
            #expect(try await m2.kubectl.succeed(["get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"]) == "3")

            // A comes back: m2's agent returns to it, and the replicas are divided again.
            (hubA, portA) = try await federation.startHub(heartbeatInterval: 1, agentListen: addressA, extraArguments: common)
            try await hubB.hubctl.succeed(["wait", "--for=condition=ReplicasMovedAway=false", "clusters/m2", "--timeout=30s"], within: .seconds(40))
            for member in [m1, m2.kubectl] {
                try await member.succeed(["wait", "--for=jsonpath={.spec.replicas}=3", "deployment/web", "--timeout=30s"], within: .seconds(40))
            }
            #expect(!hubA.lines.contains { $0.event == "federation.leading" }, "the restarted hub leads beside B")
        }
    }
}
