import Foundation
import Testing
import TetherJSON
import TetherLocal
import TetherModel
import TetherSecurity
import TetherTestSupport

@Suite("join and unjoin", .timeLimit(.minutes(3)))
struct JoinTests {
    @Test(
        "only joined clusters are admitted; join labels the Cluster and writes bundle and manifests; unjoin prunes and refuses, --orphan leaves objects"
    )
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
                let join = try await run(
                    "tetherctl",
                    [
                        "join", name, "--dir", dir, "--out", federation.root + "/join-\(name)", "--label", "region=\(name == "m1" ? "eu" : "us")",
                        "--emit-manifests",
                    ])
                #expect(join.status == 0, "\(join.output)")
                let (_, directory) = try await federation.startSimcluster(name, nodes: 2, readyAfter: "1s")
                members[name] = try Kubectl(.modern, kubeconfig: directory + "/kubeconfig", home: directory + "/home")
                agents[name] = try federation.startAgent(
                    bundle: AgentBundle(path: federation.root + "/join-\(name)"),
                    kubeconfig: directory + "/kubeconfig",
                    extraArguments: ["--state-dir", federation.root + "/state-\(name)"]
                )
            }
            // Each join adds the member's context through the hub to D/kubeconfig, keeping the rest.
            let kubeconfig = try String(contentsOfFile: federation.directory.kubeconfigPath, encoding: .utf8)
            #expect(kubeconfig.contains("- name: federation\n"), "\(kubeconfig)")
            for name in ["m1", "m2"] {
                #expect(kubeconfig.contains("- name: \(name)-via-hub\n") && kubeconfig.contains("/clusters/\(name)/proxy\n"), "\(kubeconfig)")
            }
            let again = try await run("tetherctl", ["join", "m1", "--dir", dir, "--out", federation.root + "/again"])
            #expect(again.status != 0 && again.output.contains("already joined"), "\(again.output)")
            let manifests = try String(contentsOfFile: federation.root + "/join-m1/manifests.yaml", encoding: .utf8)
            for kind in [
                "kind: Namespace", "kind: ServiceAccount", "kind: ClusterRole", "kind: ClusterRoleBinding", "kind: Secret", "kind: Deployment",
                "--in-cluster",
            ] {
                #expect(manifests.contains(kind), "\(kind)")
            }
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.phase}=Ready", "clusters/m1", "clusters/m2", "--timeout=30s"])
            #expect(
                try await hubctl.succeed(["get", "clusters", "-l", "region=eu", "-o", "name"]).trimmingCharacters(in: .whitespacesAndNewlines)
                    == "cluster.core.tether.io/m1")

            try await hubctl.succeed(["apply", "-f", "-"], stdin: frontendReplicaSet)
            let m1 = try #require(members["m1"])
            let m2 = try #require(members["m2"])
            try await m1.succeed(["wait", "--for=jsonpath={.spec.replicas}=3", "rs/frontend", "--timeout=30s"])
            try await m2.succeed(["wait", "--for=jsonpath={.spec.replicas}=2", "rs/frontend", "--timeout=30s"])

            // Unjoin m1: its agent prunes, the hub drops and then refuses it, the rest moves to m2.
            let unjoin = try await run("tetherctl", ["unjoin", "m1", "--dir", dir])
            #expect(unjoin.status == 0, "\(unjoin.output)")
            let afterUnjoin = try String(contentsOfFile: federation.directory.kubeconfigPath, encoding: .utf8)
            #expect(!afterUnjoin.contains("m1-via-hub") && afterUnjoin.contains("- name: m2-via-hub\n"), "\(afterUnjoin)")
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
            #expect(
                (refusal["tether.reason"] ?? "").contains("cluster/m1") && (refusal["tether.reason"] ?? "").contains("unjoined"), "\(refusal.raw)")
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

@Suite("emitted agent manifests", .timeLimit(.minutes(2)))
struct AgentManifestTests {
    /// The manifests `tetherctl join --emit-manifests` writes, one JSON value per YAML document.
    static func manifests(_ federation: LocalFederation, cluster: String, flags: [String]) async throws -> [JSONValue] {
        // join registers the Cluster at the hub, so one runs.
        if try federation.directory.readPorts()?.api == nil { _ = try await federation.startHub(autoJoin: false) }
        let out = federation.root + "/join-\(cluster)"
        let join = try await run("tetherctl", ["join", cluster, "--dir", federation.directory.path, "--out", out, "--emit-manifests"] + flags)
        try #require(join.status == 0, "\(join.output)")
        let text = try String(contentsOfFile: out + "/manifests.yaml", encoding: .utf8)
        return try text.components(separatedBy: "\n---\n").map { try YAMLDocument.decode($0) }.filter { $0 != .null }
    }

    /// Every (group, resource, verb) the manifests' roles grant, with the role's name.
    static func grants(_ documents: [JSONValue]) -> Set<String> {
        var grants = Set<String>()
        for document in documents where ["ClusterRole", "Role"].contains(document["kind"]?.stringValue ?? "") {
            let role = document["metadata"]?["name"]?.stringValue ?? "?"
            for rule in document["rules"]?.arrayElements ?? [] {
                for group in rule["apiGroups"]?.arrayElements ?? [] {
                    for resource in rule["resources"]?.arrayElements ?? [] {
                        for verb in rule["verbs"]?.arrayElements ?? [] {
                            grants.insert("\(role) \(group.stringValue ?? "?")/\(resource.stringValue ?? "?") \(verb.stringValue ?? "?")")
                        }
                    }
                }
            }
        }
        return grants
    }

    @Test("the RBAC grants exactly the allow-list: its kinds, in its namespaces, plus reading Nodes; the state is on a persistent volume")
    func rbacFollowsAllowList() async throws {
        try await withFederation { federation in
            let documents = try await Self.manifests(
                federation, cluster: "shop-1", flags: ["--allow-kind", "/ConfigMap", "--allow-kind", "apps/Deployment", "--allow-namespace", "shop"]
            )
            let write = ["get", "list", "watch", "create", "update", "patch", "delete"]
            let expected = Set(
                ["get", "list", "watch"].map { "tether-agent-cluster /nodes \($0)" }
                    + write.map { "tether-agent /configmaps \($0)" } + write.map { "tether-agent apps/deployments \($0)" }
            )
            #expect(Self.grants(documents) == expected)
            // Namespaced rights are bound in the allowed namespace only.
            let bindings = documents.filter { ["RoleBinding", "ClusterRoleBinding"].contains($0["kind"]?.stringValue ?? "") }
            let bound = bindings.map {
                "\($0["kind"]?.stringValue ?? "") \($0["metadata"]?["namespace"]?.stringValue ?? "-") \($0["roleRef"]?["name"]?.stringValue ?? "")"
            }
            #expect(Set(bound) == ["ClusterRoleBinding - tether-agent-cluster", "RoleBinding shop tether-agent"])
            let deployment = try #require(documents.first { $0["kind"]?.stringValue == "Deployment" })
            let volumes = deployment["spec"]?["template"]?["spec"]?["volumes"]?.arrayElements ?? []
            #expect(volumes.contains { $0["persistentVolumeClaim"]?["claimName"]?.stringValue == "tether-agent-state" })
            #expect(documents.contains { $0["kind"]?.stringValue == "PersistentVolumeClaim" })
        }
    }

    @Test("by default the agent may write the built-in kinds, never RBAC, admission webhooks or Nodes")
    func defaultRBACIsBounded() async throws {
        try await withFederation { federation in
            let grants = Self.grants(try await Self.manifests(federation, cluster: "plain-1", flags: []))
            #expect(!grants.isEmpty)
            for grant in grants {
                #expect(!grant.contains("rbac.authorization.k8s.io/") && !grant.contains("admissionregistration.k8s.io/"), "\(grant)")
                if grant.contains(" /nodes ") {
                    #expect(grant.hasSuffix(" get") || grant.hasSuffix(" list") || grant.hasSuffix(" watch"), "\(grant)")
                }
            }
            #expect(grants.contains("tether-agent apps/replicasets create"))
            #expect(grants.contains("tether-agent /serviceaccounts create") && grants.contains("tether-agent policy/poddisruptionbudgets create"))
        }
    }

    @Test("an allow-list that names RBAC grants bind and escalate on it, as Kubernetes requires to write grants the agent does not hold")
    func rbacWhenAllowed() async throws {
        try await withFederation { federation in
            let grants = Self.grants(
                try await Self.manifests(
                    federation, cluster: "rbac-1",
                    flags: ["--allow-kind", "rbac.authorization.k8s.io/Role", "--allow-kind", "rbac.authorization.k8s.io/RoleBinding"]))
            for verb in ["create", "bind", "escalate"] {
                #expect(grants.contains("tether-agent rbac.authorization.k8s.io/roles \(verb)"), "\(grants.sorted())")
            }
            #expect(!grants.contains { $0.contains("clusterroles") }, "\(grants.sorted())")
        }
    }

    @Test(
        "with a proxy: HTTPS_PROXY and NO_PROXY, the credentials and CA in a Secret of their own; probes, non-root, read-only root; accepted by kubectl apply --dry-run=server"
    )
    func proxyProbesAndDryRun() async throws {
        try await withFederation { federation in
            let credentials = federation.root + "/proxy-credentials"
            try "tether:s3cret\n".write(toFile: credentials, atomically: true, encoding: .utf8)
            let documents = try await Self.manifests(
                federation, cluster: "edge-1",
                flags: [
                    "--proxy", "https://proxy.corp.example:3129", "--no-proxy", ".corp.example,10.0.0.0/8", "--proxy-credentials-file", credentials,
                    "--proxy-ca", federation.directory.caCertificatePath,
                ])
            let deployment = try #require(documents.first { $0["kind"]?.stringValue == "Deployment" })
            let pod = try #require(deployment["spec"]?["template"]?["spec"])
            let container = try #require(pod["containers"]?.arrayElements.first)
            let environment = (container["env"]?.arrayElements ?? []).map { "\($0["name"]?.stringValue ?? "")=\($0["value"]?.stringValue ?? "")" }
            #expect(environment == ["HTTPS_PROXY=https://proxy.corp.example:3129", "NO_PROXY=.corp.example,10.0.0.0/8"])
            let arguments = (container["args"]?.arrayElements ?? []).compactMap(\.stringValue)
            #expect(
                arguments.contains("--proxy-credentials-file") && arguments.contains("/etc/tether/proxy/ca.crt")
                    && arguments.contains("--metrics-listen"))
            #expect(container["readinessProbe"]?["httpGet"]?["path"]?.stringValue == "/readyz")
            #expect(container["livenessProbe"]?["httpGet"]?["path"]?.stringValue == "/healthz")
            #expect(container["securityContext"]?["readOnlyRootFilesystem"] == .bool(true))
            #expect(pod["securityContext"]?["runAsNonRoot"] == .bool(true))
            let secret = try #require(documents.first { $0["metadata"]?["name"]?.stringValue == "tether-agent-proxy" })
            #expect(secret["data"]?["credentials"]?.stringValue == Data("tether:s3cret".utf8).base64EncodedString())
            let text = try String(contentsOfFile: federation.root + "/join-edge-1/manifests.yaml", encoding: .utf8)
            #expect(!text.contains("s3cret"), "credentials only base64 in the Secret")

            // A member's API server accepts every document as written (dry run: nothing is made).
            let (_, directory) = try await federation.startSimcluster("edge-1", nodes: 1, readyAfter: "1s")
            let member = try Kubectl(.modern, kubeconfig: directory + "/kubeconfig", home: directory + "/home")
            try await member.succeed(["create", "namespace", "tether-system"])
            let applied = try await member.succeed(["apply", "--dry-run=server", "-f", federation.root + "/join-edge-1/manifests.yaml"])
            for object in ["serviceaccount/tether-agent", "secret/tether-agent-bundle", "secret/tether-agent-proxy", "deployment.apps/tether-agent"] {
                #expect(applied.contains(object), "\(applied)")
            }
            #expect(try await member.run(["get", "deployment", "tether-agent", "-n", "tether-system"]).status != 0, "a dry run makes nothing")
        }
    }
}
