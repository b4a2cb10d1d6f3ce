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
    @Test("a ReplicaSet created at the hub is divided over two members, applied by their agents, and reported back")
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

            // Deleting at the hub deletes in every member.
            try await hubctl.succeed(["delete", "rs", "frontend"])
            for member in members.values {
                try await member.succeed(["wait", "--for=delete", "rs/frontend", "--timeout=30s"])
            }
        }
    }
}
