import Foundation
import Testing
import TetherJSON
import TetherLocal
import TetherModel
import TetherSecurity
import TetherTestSupport

extension FederationEndToEndTests {
    @Test(
        "tetherctl get lists what every member runs as one table (CLUSTER first), by label, by cluster, or as a JSON List; a member's refusal is reported and the exit status says so"
    )
    func multiClusterGet() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 1)
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            var members: [Kubectl] = []
            for name in ["m1", "m2"] { members.append(try await federation.startMember(name, hub: hub, hubPort: port).kubectl) }
            try await hubctl.succeed(["create", "deployment", "web", "--image=nginx:1.27", "--replicas=4"])
            for member in members {
                try await member.succeed(["wait", "--for=create", "deployment/web", "--timeout=30s"], within: .seconds(40))
                try await member.succeed(["rollout", "status", "deployment/web", "--timeout=30s"], within: .seconds(40))
            }
            let directory = federation.directory.path

            let pods = try await run("tetherctl", ["get", "pods", "-l", "app=web", "--dir", directory])
            #expect(pods.status == 0, "\(pods.output)")
            let lines = pods.output.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
            #expect(lines.first == ["CLUSTER", "NAME", "READY", "STATUS", "RESTARTS", "AGE"], "\(pods.output)")
            let rows = lines.dropFirst()
            #expect(rows.count == 4 && rows.allSatisfy { $0.count == 6 && $0[2] == "1/1" && $0[3] == "Running" }, "\(pods.output)")
            #expect(rows.map { $0[0] }.sorted() == ["m1", "m1", "m2", "m2"], "\(pods.output)")

            let one = try await run("tetherctl", ["get", "deploy", "web", "--cluster", "m2", "--dir", directory])
            let deployRows = one.output.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
            #expect(one.status == 0 && deployRows.count == 2 && deployRows[1].prefix(3) == ["m2", "web", "2/2"], "\(one.output)")

            let json = try await run("tetherctl", ["get", "pods", "-l", "app=web", "-o", "json", "--dir", directory])
            let list = try JSONValue(parsing: Array(json.output.utf8))
            #expect(list["kind"] == "List", "\(json.output.prefix(200))")
            let clusters = (list["items"]?.arrayElements ?? []).compactMap { $0.annotations["tether.io/cluster"] }.sorted()
            #expect(clusters == ["m1", "m1", "m2", "m2"], "\(json.output.prefix(400))")

            let nothing = try await run("tetherctl", ["get", "pods", "-l", "app=none", "--dir", directory])
            #expect(nothing.status == 0 && nothing.output.contains("No resources found in any member."), "\(nothing.output)")
            // The agents' default allow-list reaches no Node through the tunnel: each says so.
            let nodes = try await run("tetherctl", ["get", "nodes", "--dir", directory])
            #expect(
                nodes.status == 1 && nodes.output.contains("error: cluster m1: refused by cluster m1's agent")
                    && nodes.output.contains("error: cluster m2:"), "\(nodes.output)")
            let unknown = try await run("tetherctl", ["get", "widgets", "--dir", directory])
            #expect(unknown.status != 0 && unknown.output.contains("the server doesn't have a resource type \"widgets\""), "\(unknown.output)")
            let missing = try await run("tetherctl", ["get", "pods", "--cluster", "m9", "--dir", directory])
            #expect(missing.status == 1 && missing.output.contains("error: cluster m9:"), "\(missing.output)")
        }
    }
}
