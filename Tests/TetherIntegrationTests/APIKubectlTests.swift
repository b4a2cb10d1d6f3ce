import Foundation
import Testing
import TetherLocal
import TetherSecurity
import TetherTestSupport

let workloads = """
    apiVersion: v1
    kind: Namespace
    metadata:
      name: shop
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: settings
      namespace: shop
      labels: {app: web}
    data:
      mode: fast
    ---
    apiVersion: v1
    kind: Secret
    metadata:
      name: token
      namespace: shop
    stringData:
      key: s3cr3t
    ---
    apiVersion: v1
    kind: Service
    metadata:
      name: web
      namespace: shop
      labels: {app: web}
    spec:
      type: LoadBalancer
      selector: {app: web}
      ports: [{port: 80, targetPort: 8080}]
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: web
      namespace: shop
      labels: {app: web}
    spec:
      replicas: 3
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec:
          containers: [{name: web, image: "nginx:1.27"}]
    ---
    apiVersion: apps/v1
    kind: ReplicaSet
    metadata:
      name: frontend
      namespace: shop
      labels: {app: frontend}
    spec:
      replicas: 1000
      selector: {matchLabels: {app: frontend}}
      template:
        metadata: {labels: {app: frontend}}
        spec:
          containers: [{name: php, image: "php:8"}]
    """

func replicaSetManifest(replicas: Int) -> String {
    """
    apiVersion: apps/v1
    kind: ReplicaSet
    metadata:
      name: api
      namespace: shop
    spec:
      replicas: \(replicas)
      selector: {matchLabels: {app: api}}
      template:
        metadata: {labels: {app: api}}
        spec:
          containers: [{name: api, image: "api:1"}]
    """
}

/// Starts a hub and returns a kubectl of `flavor` pointed at its API as the admin.
func kubectl(_ flavor: Kubectl.Flavor, for federation: LocalFederation) async throws -> (Kubectl, ManagedProcess) {
    let (hub, _) = try await federation.startHub()
    let client = try Kubectl(flavor, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-\(flavor)")
    return (client, hub)
}

/// A kubeconfig for `server` that authenticates with a bearer `token` (user `ci`); returns its path.
func tokenKubeconfig(server: String, token: String, for federation: LocalFederation) throws -> String {
    let path = federation.root + "/token-\(token.prefix(8)).kubeconfig"
    try """
    apiVersion: v1
    kind: Config
    clusters: [{name: f, cluster: {server: "\(server)", certificate-authority: "\(federation.directory.caCertificatePath)"}}]
    users: [{name: ci, user: {token: "\(token)"}}]
    contexts: [{name: f, context: {cluster: f, user: ci}}]
    current-context: f
    """.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

@Suite("kubectl against the hub's API", .timeLimit(.minutes(10)))
struct APIKubectlTests {
    @Test("create, get in every output, apply, label, annotate, patch, scale, edit and delete", arguments: Kubectl.Flavor.allCases)
    func workflow(flavor: Kubectl.Flavor) async throws {
        try await withFederation { federation in
            let (kubectl, _) = try await kubectl(flavor, for: federation)
            let created = try await kubectl.succeed(["create", "-f", "-"], stdin: workloads)
            for line in [
                "namespace/shop created", "configmap/settings created", "secret/token created", "service/web created",
                "deployment.apps/web created", "replicaset.apps/frontend created",
            ] {
                #expect(created.contains(line), "\(created)")
            }

            let table = try await kubectl.succeed(["-n", "shop", "get", "rs"])
            #expect(table.contains("DESIRED") && table.contains("CURRENT") && table.contains("READY") && table.contains("AGE"))
            #expect(table.split(separator: "\n").contains { $0.hasPrefix("frontend") && $0.contains("1000") })
            let yaml = try await kubectl.succeed(["-n", "shop", "get", "rs", "frontend", "-o", "yaml"])
            #expect(yaml.contains("replicas: 1000") && yaml.contains("uid:"))
            let json = try await kubectl.succeed(["-n", "shop", "get", "deploy", "web", "-o", "json"])
            let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
            #expect((object?["spec"] as? [String: Any])?["replicas"] as? Int == 3)
            let path = try await kubectl.succeed(["-n", "shop", "get", "rs", "frontend", "-o", "jsonpath={.spec.replicas}"])
            #expect(path == "1000")

            // apply twice: the second is a no-op; a change bumps the generation.
            try await kubectl.succeed(["apply", "-f", "-"], stdin: replicaSetManifest(replicas: 4))
            let first = try await kubectl.succeed([
                "-n", "shop", "get", "rs", "api", "-o", "jsonpath={.metadata.generation}/{.metadata.resourceVersion}",
            ])
            let again = try await kubectl.succeed(["apply", "-f", "-"], stdin: replicaSetManifest(replicas: 4))
            #expect(again.contains("unchanged"))
            let second = try await kubectl.succeed([
                "-n", "shop", "get", "rs", "api", "-o", "jsonpath={.metadata.generation}/{.metadata.resourceVersion}",
            ])
            #expect(first == second)
            try await kubectl.succeed(["apply", "-f", "-"], stdin: replicaSetManifest(replicas: 6))
            #expect(try await kubectl.succeed(["-n", "shop", "get", "rs", "api", "-o", "jsonpath={.metadata.generation} {.spec.replicas}"]) == "2 6")

            try await kubectl.succeed(["-n", "shop", "label", "rs", "api", "tier=backend"])
            try await kubectl.succeed(["-n", "shop", "annotate", "rs", "api", "owner=team-a"])
            try await kubectl.succeed(["-n", "shop", "patch", "rs", "api", "--type=merge", "-p", #"{"spec":{"replicas":7}}"#])
            #expect(try await kubectl.succeed(["-n", "shop", "get", "rs", "api", "-o", "jsonpath={.spec.replicas}"]) == "7")
            try await kubectl.succeed([
                "-n", "shop", "patch", "rs", "api", "--type=json", "-p", #"[{"op":"replace","path":"/spec/replicas","value":8}]"#,
            ])
            #expect(try await kubectl.succeed(["-n", "shop", "get", "rs", "api", "-o", "jsonpath={.spec.replicas}"]) == "8")
            try await kubectl.succeed([
                "-n", "shop", "patch", "rs", "api", "--type=strategic", "-p",
                #"{"spec":{"template":{"spec":{"containers":[{"name":"api","image":"api:2"}]}}}}"#,
            ])
            try await kubectl.succeed(["-n", "shop", "scale", "rs", "api", "--replicas=9"])
            let state = try await kubectl.succeed([
                "-n", "shop", "get", "rs", "api", "-o",
                "jsonpath={.spec.replicas} {.metadata.labels.tier} {.metadata.annotations.owner} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].name}",
            ])
            #expect(state == "9 backend team-a api:2 api")

            try await kubectl.succeed(["-n", "shop", "edit", "rs", "api"], environment: ["KUBE_EDITOR": "sed -i s/replicas:\\ 9/replicas:\\ 11/"])
            #expect(try await kubectl.succeed(["-n", "shop", "get", "rs", "api", "-o", "jsonpath={.spec.replicas}"]) == "11")

            try await kubectl.succeed(["-n", "shop", "delete", "cm", "settings"])
            try await kubectl.succeed(["-n", "shop", "delete", "rs,deploy,svc", "-l", "app in (web,frontend)"])
            let left = try await kubectl.succeed(["-n", "shop", "get", "rs,deploy,svc,cm", "-o", "name"])
            #expect(left.trimmingCharacters(in: .whitespacesAndNewlines) == "replicaset.apps/api", "\(left)")

            let clusters = try await kubectl.run(["get", "clusters"])
            #expect(clusters.status == 0 && clusters.stderr.contains("No resources found"))
            let resources = try await kubectl.succeed(["api-resources"])
            for name in ["clusters", "propagationpolicies", "overridepolicies", "replicasets", "ingresses", "namespaces"] {
                #expect(resources.contains(name), "\(name)")
            }
        }
    }

    @Test("objects and the resource version counter survive a hub killed with SIGKILL")
    func durableAcrossRestart() async throws {
        try await withFederation { federation in
            let (kubectl, hub) = try await kubectl(.modern, for: federation)
            try await kubectl.succeed(["create", "-f", "-"], stdin: workloads)
            let before = try await kubectl.succeed([
                "-n", "shop", "get", "rs", "frontend", "-o", "jsonpath={.metadata.uid} {.metadata.resourceVersion}",
            ])
            hub.send(SIGKILL)
            _ = await hub.waitForExit(within: .seconds(10))

            _ = try await federation.startHub()
            let after = try await kubectl.succeed([
                "-n", "shop", "get", "rs", "frontend", "-o", "jsonpath={.metadata.uid} {.metadata.resourceVersion}",
            ])
            #expect(after == before)
            let names = try await kubectl.succeed(["-n", "shop", "get", "cm,secret,svc,deploy,rs", "-o", "name"])
            // Five objects, and the Deployment's first revision (a ReplicaSet it controls).
            let lines = names.split(separator: "\n")
            #expect(lines.count == 6 && lines.contains { $0.hasPrefix("replicaset.apps/web-") }, "\(names)")
            try await kubectl.succeed(["-n", "shop", "label", "rs", "frontend", "after=restart"])
            let next = try await kubectl.succeed(["-n", "shop", "get", "rs", "frontend", "-o", "jsonpath={.metadata.resourceVersion}"])
            let previous = UInt64(before.split(separator: " ").last ?? "") ?? 0
            #expect((UInt64(next) ?? 0) > previous, "the counter continues after the restart")
        }
    }

    @Test(
        "server-side apply creates, then updates, and kubectl apply --server-side reports it; another manager's change conflicts until forced",
        arguments: Kubectl.Flavor.allCases)
    func serverSideApply(flavor: Kubectl.Flavor) async throws {
        try await withFederation { federation in
            let (kubectl, _) = try await kubectl(flavor, for: federation)
            try await kubectl.succeed(["create", "-f", "-"], stdin: "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n")
            #expect(
                try await kubectl.succeed(["apply", "--server-side", "-f", "-"], stdin: replicaSetManifest(replicas: 3)).contains(
                    "serverside-applied"))
            try await kubectl.succeed(["apply", "--server-side", "-f", "-"], stdin: replicaSetManifest(replicas: 4))
            let conflicting = try await kubectl.run(
                ["apply", "--server-side", "--field-manager=ci", "-f", "-"], stdin: replicaSetManifest(replicas: 5))
            #expect(conflicting.status != 0 && conflicting.stderr.contains(".spec.replicas"), "\(conflicting)")
            try await kubectl.succeed(
                ["apply", "--server-side", "--field-manager=ci", "--force-conflicts", "-f", "-"], stdin: replicaSetManifest(replicas: 5))
            #expect(try await kubectl.succeed(["-n", "shop", "get", "rs", "api", "-o", "jsonpath={.spec.replicas} {.metadata.generation}"]) == "5 3")
        }
    }

    @Test("get -w receives an event for a change", arguments: Kubectl.Flavor.allCases)
    func watch(flavor: Kubectl.Flavor) async throws {
        try await withFederation { federation in
            let (kubectl, _) = try await kubectl(flavor, for: federation)
            try await kubectl.succeed(["create", "-f", "-"], stdin: "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n")
            try await kubectl.succeed(["apply", "-f", "-"], stdin: replicaSetManifest(replicas: 2))
            let watcher = try federation.launch(
                name: "watch",
                executable: kubectl.executable,
                arguments: kubectl.prefix + [
                    "--kubeconfig", kubectl.kubeconfig, "--cache-dir", kubectl.home + "/cache", "-n", "shop", "get", "rs", "-w",
                ]
            )
            try await watcher.waitForLine(within: .seconds(30), "the initial row") { $0.raw.hasPrefix("api ") && $0.raw.contains(" 2 ") }
            try await kubectl.succeed(["-n", "shop", "scale", "rs", "api", "--replicas=5"])
            try await watcher.waitForLine(within: .seconds(30), "the scaled row") { $0.raw.hasPrefix("api ") && $0.raw.contains(" 5 ") }
        }
    }

    @Test(
        "a misspelled field is refused before anything is stored: by kubectl 1.20 from /openapi/v2, by the server for 1.32 (fieldValidation=Strict); warn stores it with a warning; a wrong type is always refused",
        arguments: Kubectl.Flavor.allCases)
    func schemaValidation(flavor: Kubectl.Flavor) async throws {
        try await withFederation { federation in
            let (kubectl, _) = try await kubectl(flavor, for: federation)
            try await kubectl.succeed(["create", "-f", "-"], stdin: "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n")
            let misspelled = replicaSetManifest(replicas: 3).replacingOccurrences(of: "  replicas: 3", with: "  replicas: 3\n  replica: 3")
            #expect(misspelled.contains("replica: 3"))
            let refused = try await kubectl.run(["create", "-f", "-"], stdin: misspelled)
            #expect(refused.status != 0, "\(refused)")
            if flavor == .legacy {
                // kubectl's own validation, from the protobuf schema: the request is never sent.
                #expect(refused.stderr.contains(#"unknown field "replica""#) && refused.stderr.contains("ValidationError"), "\(refused.stderr)")
            } else {
                #expect(refused.stderr.contains(#"strict decoding error: unknown field "spec.replica""#), "\(refused.stderr)")
            }
            #expect(try await kubectl.run(["-n", "shop", "get", "rs", "api"]).status != 0, "nothing was stored")

            // Without client validation the server's default (Warn) stores it and says why.
            let skipping = flavor == .legacy ? "--validate=false" : "--validate=warn"
            let warned = try await kubectl.run(["create", skipping, "-f", "-"], stdin: misspelled)
            #expect(warned.status == 0 && warned.stderr.contains(#"unknown field "spec.replica""#), "\(warned)")
            try await kubectl.succeed(["-n", "shop", "delete", "rs", "api"])

            let wrongType = replicaSetManifest(replicas: 3).replacingOccurrences(of: "replicas: 3", with: "replicas: three")
            for flags in [["--validate=false"], []] {
                let answer = try await kubectl.run(["create"] + flags + ["-f", "-"], stdin: wrongType)
                #expect(answer.status != 0 && answer.stderr.contains("replicas"), "\(flags): \(answer)")
            }
            #expect(try await kubectl.run(["-n", "shop", "get", "rs", "api"]).status != 0, "nothing was stored")

            // Tether's own kinds say what each field means (OpenAPI v2 in protobuf for kubectl 1.20, v3 after).
            let described = try await kubectl.succeed(["explain", "propagationpolicies.spec.replicaScheduling"])
            #expect(described.contains("Divided (the default)") && described.contains("by cluster name (1 when absent)"), "\(described)")
            if flavor.minor >= 27 {
                // `explain` reads the OpenAPI v3 schemas; discovery is aggregated: /api and /apis only.
                let explained = try await kubectl.succeed(["explain", "propagationpolicies.spec.replicaScheduling"])
                #expect(explained.contains("weights") && explained.contains("core.tether.io"), "\(explained)")
                try? FileManager.default.removeItem(atPath: kubectl.home + "/cache")
                let discovery = try await kubectl.run(["api-resources", "-v=6"])
                // `] GET https://...` (kubectl 1.27 to 1.32), `"Response" verb="GET"` (1.33).
                let requests = discovery.stderr.split(separator: "\n").filter {
                    $0.contains(" GET https://") || ($0.contains(#""Response" verb="GET""#))
                }
                #expect(requests.count == 2 && discovery.stdout.contains("propagationpolicies"), "\(requests)")
            }
        }
    }

    @Test(
        "kubectl's generator commands: create namespace, configmap, secret and deployment (protobuf bodies with kubectl 1.32) work",
        arguments: Kubectl.Flavor.allCases)
    func generatorCommands(flavor: Kubectl.Flavor) async throws {
        try await withFederation { federation in
            let (kubectl, _) = try await kubectl(flavor, for: federation)
            try await kubectl.succeed(["create", "namespace", "shop"])
            try await kubectl.succeed(["-n", "shop", "create", "configmap", "settings", "--from-literal=colour=blue", "--from-literal=size=9"])
            try await kubectl.succeed(["-n", "shop", "create", "secret", "generic", "token", "--from-literal=password=hunter2"])
            let stored = try await kubectl.succeed([
                "-n", "shop", "get", "cm/settings", "secret/token", "-o",
                "jsonpath={.items[0].data.colour} {.items[0].data.size} {.items[1].data.password} {.items[1].type}",
            ])
            #expect(stored == "blue 9 aHVudGVyMg== Opaque", "\(stored)")
            #expect(try await kubectl.succeed(["get", "namespace", "shop", "-o", "jsonpath={.status.phase}{.metadata.name}"]).hasSuffix("shop"))
            // kubectl 1.32 sends a Deployment as protobuf, decoded from the kind's schema; 1.20 sends JSON.
            try await kubectl.succeed(["-n", "shop", "create", "deployment", "web", "--image=nginx", "--replicas=2"])
            let deployment = try await kubectl.succeed([
                "-n", "shop", "get", "deploy", "web", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image}",
            ])
            #expect(deployment == "2 nginx", "\(deployment)")
        }
    }

    @Test("no credentials are refused; a viewer can read but not create", arguments: Kubectl.Flavor.allCases)
    func authorization(flavor: Kubectl.Flavor) async throws {
        try await withFederation { federation in
            let token = UUID().uuidString
            let policy = """
                {"users": {"admin": "admin"}, "tokens": [{"token": "\(token)", "user": "ci", "role": "viewer"}]}
                """
            try policy.write(toFile: federation.directory.accessPolicyPath, atomically: true, encoding: .utf8)
            let (admin, _) = try await kubectl(flavor, for: federation)
            let server = try await admin.succeed(["config", "view", "--raw", "-o", "jsonpath={.clusters[0].cluster.server}"])
            let ca = federation.directory.caCertificatePath

            // No credentials at all: kubectl answers a 401 with a password prompt, so curl asks instead.
            let anonymous = try await curl(["--cacert", ca, server + "/api/v1/namespaces"], in: federation)
            #expect(anonymous.contains(#""code":401"#) && anonymous.contains("Unauthorized"), "\(anonymous)")

            let viewerConfig = try tokenKubeconfig(server: server, token: token, for: federation)
            let viewer = try Kubectl(flavor, kubeconfig: viewerConfig, home: federation.root + "/home-viewer")
            #expect(try await viewer.succeed(["get", "namespaces", "-o", "name"]).contains("namespace/default"))
            let forbidden = try await viewer.run(["create", "namespace", "nope"])
            #expect(forbidden.status != 0)
            #expect(forbidden.stderr.contains("forbidden") && forbidden.stderr.contains("\"ci\""), "\(forbidden)")
            #expect(try await admin.run(["get", "namespace", "nope"]).status != 0, "the refused create wrote nothing")

            let badToken = try Kubectl(flavor, kubeconfig: viewerConfig, home: federation.root + "/home-bad")
            let wrong = try await badToken.run(["--token", "not-a-token", "get", "namespaces"])
            #expect(wrong.status != 0, "\(wrong)")
            #expect(wrong.stderr.contains("Unauthorized") || wrong.stderr.contains("provide credentials"), "\(wrong)")
        }
    }
}

/// Runs curl (an independent HTTP client) and returns what it printed.
func curl(_ arguments: [String], in federation: LocalFederation) async throws -> String {
    let process = try federation.launch(
        name: "curl",
        executable: URL(fileURLWithPath: "/usr/bin/curl"),
        arguments: ["--silent", "--show-error", "--max-time", "20"] + arguments
    )
    guard await process.waitForExit(within: .seconds(30)) != nil else {
        throw KubectlError(description: "curl \(arguments) did not finish")
    }
    return process.lines.map(\.raw).joined(separator: "\n")
}
