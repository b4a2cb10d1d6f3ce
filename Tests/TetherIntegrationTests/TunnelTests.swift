import Foundation
import Testing
import TetherLocal
import TetherSecurity
import TetherTestSupport

/// The hub reaching a member's API through the agent's own session: the member listens on its
/// network namespace's loopback, and the namespace may open connections only to the hub's agent
/// port, so the test reaches it through the hub or not at all. Real kubectl, real processes.
/// Needs root for the namespace (CI runs as root), as the proxy tests do.
// A guard against a hang: 26 s alone, and past 300 s once under the whole first phase's load.
@Suite("The member tunnel", .timeLimit(.minutes(10)))
struct TunnelTests {
    @Test("get, get -w and create through the hub; a viewer refused a write, a grant honoured; the agent's allow-list; pushes keep their latency")
    func throughTheHub() async throws {
        try await NetworkLab.withFederation(members: ["m1"], label: "tether-tunnel") { lab, federation, scratch in
            try await run(lab: lab, federation: federation, scratch: scratch)
        }
    }

    private func run(lab: NetworkLab, federation: LocalFederation, scratch: ScratchDirectory) async throws {
        let access = AccessPolicy(
            users: ["admin": .admin],
            tokens: [
                .init(token: "viewer-token-0123456789", user: "ci", role: .viewer),
                .init(token: "ops-token-0123456789", user: "ops", role: .viewer),
            ],
            clusters: ["m1": ["ops": .admin]])
        try access.save(to: federation.directory.accessPolicyPath)
        let (hub, hubPort) = try await federation.startHub(
            heartbeatInterval: 1, agentListen: "\(lab.hubAddress):0", extraArguments: ["--log-level", "debug"])
        try await lab.allowOnlyOutbound(toPort: hubPort)
        let apiPort = try #require(try federation.directory.readPorts()?.api)
        let hubURL = "https://127.0.0.1:\(apiPort)"

        let namespace = lab.members["m1"]!.namespace
        let (_, simulated) = try await federation.startSimcluster("m1", nodes: 1, readyAfter: "1s", networkNamespace: namespace)
        let member = try Kubectl(.modern, kubeconfig: simulated + "/kubeconfig", home: scratch.file("home-m1"), networkNamespace: namespace)
        let outside = try Kubectl(.modern, kubeconfig: simulated + "/kubeconfig", home: scratch.file("home-outside"))
        let unreachable = try await outside.run(["get", "configmaps", "--request-timeout=3s"], within: .seconds(20))
        #expect(unreachable.status != 0, "the member must be unreachable from the test but through the hub: \(unreachable)")

        let bundle = try federation.issueBundle(cluster: "m1", hubPort: hubPort, hubHost: lab.hubAddress)
        let agent = try federation.startAgent(
            bundle: bundle, kubeconfig: simulated + "/kubeconfig", extraArguments: ["--tunnel", "write", "--backoff-max", "1"],
            networkNamespace: namespace)
        try await agent.waitForEvent("session.established", within: .seconds(20))
        try await hub.waitForEvent("federation.cluster_added", within: .seconds(20)) { $0["tether.cluster"] == "m1" }

        // The kubeconfig tetherctl writes: `federation` and `m1-via-hub`, the admin's certificate.
        let viaHubConfig = scratch.file("kubeconfig-via-hub")
        try federation.directory.writeKubeconfig(server: hubURL, to: viaHubConfig, members: ["m1"])
        let admin = try Kubectl(.modern, kubeconfig: viaHubConfig, home: scratch.file("home-admin"))
        let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: scratch.file("home-hub"))

        // get: an object only the member has.
        try await member.succeed(["create", "configmap", "member-only", "--from-literal=k=v"])
        #expect(try await admin.succeed(["--context", "m1-via-hub", "get", "configmap", "member-only", "-o", "jsonpath={.data.k}"]) == "v")
        let hubSide = try await hubctl.run(["get", "configmap", "member-only"])
        #expect(hubSide.status != 0, "member-only exists in the member, not at the hub")
        // kubectl top through the hub: Pods' metrics are readable by default, nodes' are not.
        try await member.succeed(["run", "probe", "--image=nginx:1.27"])
        try await member.succeed(["wait", "--for=condition=Ready", "pod/probe", "--timeout=30s"], within: .seconds(40))
        let top = try await admin.succeed(["--context", "m1-via-hub", "top", "pod", "probe", "--no-headers"])
        #expect(top.split(whereSeparator: \.isWhitespace) == ["probe", "1m", "8Mi"], "\(top)")
        let nodes = try await admin.run(["--context", "m1-via-hub", "top", "nodes"])
        #expect(nodes.status != 0 && nodes.stderr.contains("kind metrics.k8s.io/NodeMetrics is not in this agent's allow-list"), "\(nodes.stderr)")

        // get -w: a change in the member arrives through the open stream.
        let watch = try federation.launch(
            name: "kubectl-watch", executable: URL(fileURLWithPath: "/usr/bin/env"),
            arguments: [
                "HOME=\(scratch.file("home-admin"))", "kubectl", "--kubeconfig", viaHubConfig, "--context", "m1-via-hub", "get", "configmaps", "-w",
                "--output-watch-events",
            ])
        try await watch.waitForLine(within: .seconds(20), "the watch lists member-only") { $0.raw.contains("member-only") }
        try await member.succeed(["create", "configmap", "seen-by-watch", "--from-literal=k=v"])
        try await watch.waitForLine(within: .seconds(20), "the watch sees seen-by-watch") {
            $0.raw.contains("ADDED") && $0.raw.contains("seen-by-watch")
        }
        _ = await watch.stop()
        try await hub.waitForEvent("tunnel.request", within: .seconds(20)) { $0["tether.path"]?.contains("watch=true") == true }

        // create: the admin writes in the member through the hub.
        try await admin.succeed(["--context", "m1-via-hub", "create", "configmap", "via-hub", "--from-literal=k=v"])
        try await member.succeed(["get", "configmap", "via-hub"])

        // A viewer reads but may not write; a per-cluster grant makes another viewer an admin of m1.
        let viewerConfig = scratch.file("kubeconfig-viewer")
        let opsConfig = scratch.file("kubeconfig-ops")
        let ca = try String(contentsOfFile: federation.directory.caCertificatePath, encoding: .utf8)
        let server = Kubeconfig.viaHubServer(hub: hubURL, cluster: "m1")
        try Kubeconfig.bearerToken(server: server, caPEM: ca, token: "viewer-token-0123456789", contextName: "m1-via-hub")
            .write(toFile: viewerConfig, atomically: true, encoding: .utf8)
        try Kubeconfig.bearerToken(server: server, caPEM: ca, token: "ops-token-0123456789", contextName: "m1-via-hub")
            .write(toFile: opsConfig, atomically: true, encoding: .utf8)
        let viewer = try Kubectl(.modern, kubeconfig: viewerConfig, home: scratch.file("home-viewer"))
        let ops = try Kubectl(.modern, kubeconfig: opsConfig, home: scratch.file("home-ops"))
        #expect(try await viewer.succeed(["get", "configmap", "via-hub", "-o", "name"]).contains("configmap/via-hub"))
        let refused = try await viewer.run(["create", "configmap", "by-viewer", "--from-literal=k=v"])
        #expect(refused.status != 0 && refused.stderr.contains("may only read cluster m1"), "\(refused)")
        try await ops.succeed(["create", "configmap", "by-ops", "--from-literal=k=v"])
        try await member.succeed(["get", "configmap", "by-ops"])
        try await hub.waitForEvent("tunnel.request", within: .seconds(10)) {
            $0["tether.user"] == "ci" && $0["tether.method"] == "POST" && $0["tether.status"] == "403" && $0["tether.refused_by"] == "hub"
        }

        // The agent's allow-list: RBAC kinds are not in it, so the agent refuses them, read or write.
        let role = try await admin.run(["--context", "m1-via-hub", "get", "roles"])
        #expect(role.status != 0 && role.stderr.contains("rbac.authorization.k8s.io/Role is not in this agent's allow-list"), "\(role)")
        let system = try await admin.run(["--context", "m1-via-hub", "-n", "kube-system", "get", "configmaps"])
        #expect(system.status != 0 && system.stderr.contains("namespace kube-system is denied"), "\(system)")
        try await agent.waitForEvent("tunnel.request", within: .seconds(10)) { $0["tether.status"] == "403" && $0["tether.user"] == "admin" }

        // Figures: 1,000 objects of 1 KiB in the member, read directly and through the hub, and
        // desired-state pushes with and without such lists streaming on the same session.
        try await seed(member, namespace: "bulk", count: 1_000)
        let direct = try await medianMilliseconds(5) { try await member.succeed(["get", "configmap", "member-only", "-o", "json"]) }
        let tunnelled = try await medianMilliseconds(5) {
            try await admin.succeed(["--context", "m1-via-hub", "get", "configmap", "member-only", "-o", "json"])
        }
        let directList = try await medianMilliseconds(5) { try await member.succeed(["-n", "bulk", "get", "configmaps", "-o", "json"]) }
        var listed = ""
        let tunnelledList = try await medianMilliseconds(5) {
            listed = try await admin.succeed(["--context", "m1-via-hub", "-n", "bulk", "get", "configmaps", "-o", "json"])
        }
        #expect(listed.components(separatedBy: "\"kind\": \"ConfigMap\"").count - 1 == 1_000, "the whole list came through")

        let idle = try await pushMilliseconds(hub: hub, hubctl: hubctl, prefix: "idle", count: 7)
        let beforeLoad = hub.mark
        let streaming = Task {
            await withTaskGroup(of: Int.self) { group in
                for _ in 0..<2 {
                    group.addTask {
                        var lists = 0
                        while !Task.isCancelled {
                            let result = try? await admin.run(
                                ["--context", "m1-via-hub", "-n", "bulk", "get", "configmaps", "-o", "json"], within: .seconds(60))
                            if result?.status == 0 { lists += 1 }
                        }
                        return lists
                    }
                }
                return await group.reduce(0, +)
            }
        }
        // Measured once lists are streaming: the first has ended and others are under way.
        try await hub.waitForEvent("tunnel.request", after: beforeLoad, within: .seconds(30)) {
            $0["tether.path"]?.contains("/namespaces/bulk/") == true && $0["tether.status"] == "200"
        }
        let loaded = try await pushMilliseconds(hub: hub, hubctl: hubctl, prefix: "loaded", count: 7)
        streaming.cancel()
        let lists = await streaming.value
        print(
            "tunnel figures (median of 5 kubectl runs, kubectl's own start in each): get \(direct) ms direct, \(tunnelled) ms through the hub; "
                + "list of 1,000 (\(listed.utf8.count / 1024) KiB of JSON) \(directList) ms direct, \(tunnelledList) ms through the hub. "
                + "Desired-state push to ack (median of 7, hub's log): \(idle) ms idle, \(loaded) ms while \(lists) lists of 1,000 streamed")
        #expect(lists >= 1, "lists streamed while the pushes were measured")
        #expect(loaded <= idle * 3 + 250, "pushes wait behind proxied lists: \(loaded) ms against \(idle) ms idle")
    }

    /// `count` ConfigMaps of 1 KiB each in `namespace`, created in one `kubectl apply`.
    private func seed(_ member: Kubectl, namespace: String, count: Int) async throws {
        try await member.succeed(["create", "namespace", namespace])
        let value = String(repeating: "x", count: 1024)
        var items: [String] = []
        for index in 0..<count {
            items.append(
                #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"bulk-\#(index)","namespace":"\#(namespace)"},"data":{"v":"\#(value)"}}"#)
        }
        let list = #"{"apiVersion":"v1","kind":"List","items":["# + items.joined(separator: ",") + "]}"
        try await member.succeed(["apply", "-f", "-"], stdin: list, within: .seconds(240))
    }

    private func medianMilliseconds(_ runs: Int, _ body: () async throws -> Void) async throws -> Int {
        var samples: [Double] = []
        for _ in 0..<runs {
            let started = ContinuousClock.now
            try await body()
            let elapsed = ContinuousClock.now - started
            samples.append(Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
        }
        return Int(samples.sorted()[runs / 2])
    }

    /// Median milliseconds from the hub writing a revision to m1's session to m1's ack of it, from the hub's own log.
    private func pushMilliseconds(hub: ManagedProcess, hubctl: Kubectl, prefix: String, count: Int) async throws -> Int {
        var samples: [Double] = []
        for index in 0..<count {
            let mark = hub.mark
            try await hubctl.succeed(["create", "configmap", "\(prefix)-\(index)", "--from-literal=k=v"])
            let pushed = try await hub.waitForEvent("federation.pushed", after: mark, within: .seconds(20)) { $0["tether.cluster"] == "m1" }
            let revision = pushed["tether.revision"]
            let acked = try await hub.waitForEvent("federation.acked", after: mark, within: .seconds(30)) {
                $0["tether.cluster"] == "m1" && $0["tether.revision"] == revision
            }
            samples.append(DNSPublishingTests.time(of: acked).timeIntervalSince(DNSPublishingTests.time(of: pushed)) * 1000)
        }
        return Int(samples.sorted()[count / 2])
    }
}
