import Foundation
import TetherLocal
import TetherTestSupport
import Testing

let frontendReplicaSet = """
    apiVersion: apps/v1
    kind: ReplicaSet
    metadata: {name: frontend, namespace: default}
    spec:
      replicas: 5
      selector: {matchLabels: {app: frontend}}
      template:
        metadata: {labels: {app: frontend}}
        spec: {containers: [{name: web, image: "nginx:1.27"}]}
    """

@Suite("hub to agent to member, end to end", .timeLimit(.minutes(3)))
struct FederationEndToEndTests {
    @Test("a ReplicaSet created at the hub is divided over two members, reweighed and overridden by policies, reported back; Service addresses aggregate; deletion reaches every member")
    func replicaSetRoundTrip() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 1)
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            var members: [String: Kubectl] = [:]
            for name in ["m1", "m2"] {
                let (_, directory) = try await federation.startSimcluster(name, nodes: 2, readyAfter: "1s")
                members[name] = try Kubectl(.modern, kubeconfig: directory + "/kubeconfig", home: directory + "/home")
                _ = try federation.startAgent(
                    bundle: try federation.issueBundle(cluster: name, hubPort: port),
                    kubeconfig: directory + "/kubeconfig",
                    extraArguments: ["--state-dir", federation.root + "/state-\(name)"]
                )
            }
            for name in ["m1", "m2"] {
                try await hub.waitForEvent("federation.cluster_added", within: .seconds(30)) { $0["tether.cluster"] == name }
            }
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.phase}=Ready", "clusters/m1", "clusters/m2", "--timeout=30s"])
            // Heartbeats carry the member's health into its Cluster object.
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.nodeCount}=2", "clusters/m1", "--timeout=30s"])
            let health = try await hubctl.succeed(["get", "cluster", "m1", "-o", "jsonpath={.status.apiReachable} {.status.kubernetesVersion} {.status.allocatable.cpu}"])
            #expect(health.hasPrefix("true v") && health.hasSuffix(" 8000"), "\(health)")

            try await hubctl.succeed(["apply", "-f", "-"], stdin: frontendReplicaSet)
            // 5 over two equal clusters: 3 to m1 (the tie goes to the first name), 2 to m2; each becomes ready.
            for (name, share) in [("m1", 3), ("m2", 2)] {
                let member = try #require(members[name])
                try await member.succeed(["wait", "--for=jsonpath={.status.readyReplicas}=\(share)", "rs/frontend", "--timeout=30s"])
                let labels = try await member.succeed(["get", "rs", "frontend", "-o", "jsonpath={.metadata.labels}"])
                #expect(labels.contains(#""tether.io/managed-by":"\#(name)""#), "\(labels)")
            }
            // The hub sums the members' reports.
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.readyReplicas}=5", "rs/frontend", "--timeout=30s"])
            let table = try await hubctl.succeed(["get", "rs", "frontend"])
            #expect(table.split(separator: "\n").last?.split(separator: " ", omittingEmptySubsequences: true).prefix(4).joined(separator: " ") == "frontend 5 5 5", "\(table)")
            let clusters = try await hubctl.succeed(["get", "rs", "frontend", "-o", "jsonpath={.status.clusters[*].name}"])
            #expect(clusters == "m1 m2")

            // A PropagationPolicy weighs m1 3:1 (8 replicas: 6/2); an OverridePolicy changes the image in m2 only.
            try await hubctl.succeed(
                ["apply", "-f", "-"],
                stdin: """
                    apiVersion: core.tether.io/v1alpha1
                    kind: PropagationPolicy
                    metadata: {name: frontend, namespace: default}
                    spec:
                      resourceSelectors: [{apiVersion: apps/v1, kind: ReplicaSet, name: frontend}]
                      replicaScheduling: {type: Divided, weights: {m1: 3, m2: 1}}
                    ---
                    apiVersion: core.tether.io/v1alpha1
                    kind: OverridePolicy
                    metadata: {name: canary, namespace: default}
                    spec:
                      resourceSelectors: [{kind: ReplicaSet}]
                      overrides: [{clusterNames: [m2], image: "nginx:1.28-canary"}]
                    """
            )
            try await hubctl.succeed(["scale", "rs", "frontend", "--replicas=8"])
            let m1 = try #require(members["m1"]), m2 = try #require(members["m2"])
            try await m1.succeed(["wait", "--for=jsonpath={.spec.replicas}=6", "rs/frontend", "--timeout=30s"])
            try await m2.succeed(["wait", "--for=jsonpath={.spec.replicas}=2", "rs/frontend", "--timeout=30s"])
            try await m2.succeed(["wait", "--for=jsonpath={.spec.template.spec.containers[0].image}=nginx:1.28-canary", "rs/frontend", "--timeout=30s"])
            #expect(try await m1.succeed(["get", "rs", "frontend", "-o", "jsonpath={.spec.template.spec.containers[0].image}"]) == "nginx:1.27")
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.readyReplicas}=8", "rs/frontend", "--timeout=30s"])

            // A LoadBalancer Service: the hub lists both members' addresses.
            try await hubctl.succeed(
                ["apply", "-f", "-"],
                stdin: """
                    apiVersion: v1
                    kind: Service
                    metadata: {name: frontend, namespace: default}
                    spec: {type: LoadBalancer, selector: {app: frontend}, ports: [{port: 80}]}
                    """
            )
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.loadBalancer.ingress[1].ip}", "svc/frontend", "--timeout=30s"])
            let addresses = try await hubctl.succeed(["get", "svc", "frontend", "-o", "jsonpath={.status.loadBalancer.ingress[*].ip}"])
            let memberAddresses = [
                try await m1.succeed(["get", "svc", "frontend", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"]),
                try await m2.succeed(["get", "svc", "frontend", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"]),
            ]
            #expect(addresses == memberAddresses.joined(separator: " "), "\(addresses) vs \(memberAddresses)")

            // Deleting at the hub deletes in every member.
            try await hubctl.succeed(["delete", "rs", "frontend"])
            for member in members.values {
                try await member.succeed(["wait", "--for=delete", "rs/frontend", "--timeout=30s"])
            }
        }
    }

    @Test("a member whose agent stops turns NotReady, its replicas move to the other and come back; a restarted hub resumes agents without a resend")
    func rebalanceAndHubRestart() async throws {
        try await withFederation { federation in
            var (hub, port) = try await federation.startHub(heartbeatInterval: 1, extraArguments: ["--rebalance-after", "2"])
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            var members: [String: Kubectl] = [:]
            var kubeconfigs: [String: String] = [:]
            var agents: [String: ManagedProcess] = [:]
            func startAgent(_ name: String) throws -> ManagedProcess {
                try federation.startAgent(
                    name: "agent-\(name)-\(UUID().uuidString.prefix(4))",
                    bundle: try federation.issueBundle(cluster: name, hubPort: port),
                    kubeconfig: kubeconfigs[name],
                    extraArguments: ["--state-dir", federation.root + "/state-\(name)", "--backoff-initial", "0.2", "--backoff-max", "1"]
                )
            }
            for name in ["m1", "m2"] {
                let (_, directory) = try await federation.startSimcluster(name, nodes: 2, readyAfter: "1s")
                members[name] = try Kubectl(.modern, kubeconfig: directory + "/kubeconfig", home: directory + "/home")
                kubeconfigs[name] = directory + "/kubeconfig"
                agents[name] = try startAgent(name)
            }
            try await hubctl.succeed(["apply", "-f", "-"], stdin: frontendReplicaSet.replacingOccurrences(of: "replicas: 5", with: "replicas: 4"))
            let m1 = try #require(members["m1"]), m2 = try #require(members["m2"])
            try await m1.succeed(["wait", "--for=jsonpath={.status.readyReplicas}=2", "rs/frontend", "--timeout=30s"])
            try await m2.succeed(["wait", "--for=jsonpath={.status.readyReplicas}=2", "rs/frontend", "--timeout=30s"])

            // m2's agent stops: NotReady at once, and after the 2 s grace all 4 replicas run in m1.
            _ = await agents["m2"]?.stop()
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.phase}=NotReady", "clusters/m2", "--timeout=30s"])
            try await m1.succeed(["wait", "--for=jsonpath={.spec.replicas}=4", "rs/frontend", "--timeout=30s"])
            // A hub outage never deletes in the member: m2 still runs its last share.
            #expect(try await m2.succeed(["get", "rs", "frontend", "-o", "jsonpath={.spec.replicas}"]) == "2")

            // It comes back: the replicas are divided again.
            agents["m2"] = try startAgent("m2")
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.phase}=Ready", "clusters/m2", "--timeout=30s"])
            try await m1.succeed(["wait", "--for=jsonpath={.spec.replicas}=2", "rs/frontend", "--timeout=30s"])
            try await m2.succeed(["wait", "--for=jsonpath={.spec.replicas}=2", "rs/frontend", "--timeout=30s"])
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.readyReplicas}=4", "rs/frontend", "--timeout=30s"])

            // The hub restarts on the same agent port: clusters and objects are still there, and
            // agents holding the current revision get nothing resent.
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.clusters[1].revision}", "rs/frontend", "--timeout=30s"])
            let received = { (name: String) in agents[name]?.lines.filter { $0.event == "applier.desired" }.count ?? 0 }
            let before = ["m1": received("m1"), "m2": received("m2")]
            _ = await hub.stop()
            (hub, port) = try await federation.startHub(heartbeatInterval: 1, agentListen: "127.0.0.1:\(port)", extraArguments: ["--rebalance-after", "2"])
            for name in ["m1", "m2"] {
                try await hub.waitForEvent("federation.resumed", within: .seconds(30)) { $0["tether.cluster"] == name }
            }
            let clusters = try await hubctl.succeed(["get", "clusters", "-o", "name"])
            #expect(clusters.split(separator: "\n").sorted() == ["cluster.core.tether.io/m1", "cluster.core.tether.io/m2"], "\(clusters)")
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.readyReplicas}=4", "rs/frontend", "--timeout=30s"])
            #expect(["m1": received("m1"), "m2": received("m2")] == before, "an agent received desired state again after the hub restarted")
        }
    }
}
