import Foundation
import Testing
import TetherLocal
import TetherTestSupport

/// Server-side apply with field ownership, as kubectl sees it at the hub.
@Suite("server-side apply", .timeLimit(.minutes(3)))
struct ServerSideApplyTests {
    /// Deployment `web`; `containers` (YAML flow style) replaces its one container `web` of `image`.
    static func manifest(replicas: Int?, image: String = "nginx:1.27", label: Bool = true, containers: String? = nil) -> String {
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web\(label ? ", labels: {team: a}" : "")}
        spec:
        \(replicas.map { "  replicas: \($0)\n" } ?? "")  selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec:
              containers: \(containers ?? "[{name: web, image: \"\(image)\"}]")
        """
    }

    /// A hub of its own, with kubectl 1.32 for it.
    private func withHub(_ body: @escaping @Sendable (Kubectl) async throws -> Void) async throws {
        try await withFederation { federation in
            _ = try await federation.startHub(heartbeatInterval: 1)
            try await body(try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home"))
        }
    }

    @Test(
        "kubectl create, label and scale record their managers as Update entries (scale under its subresource), as kube-apiserver does, at the hub and on a simulated member"
    )
    func updatesRecordTheirManagers() async throws {
        try await withFederation { federation in
            _ = try await federation.startHub(heartbeatInterval: 1)
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            let (_, simDirectory) = try await federation.startSimcluster("m1", nodes: 1, readyAfter: "1s")
            let member = try Kubectl(.modern, kubeconfig: simDirectory + "/kubeconfig", home: simDirectory + "/home")
            for kubectl in [hubctl, member] {
                // A generator command sends protobuf; a create -f sends JSON.
                try await kubectl.succeed(["create", "deployment", "web", "--image=nginx:1.27"])
                try await kubectl.succeed(
                    ["create", "-f", "-"],
                    stdin: "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c1\"},\"data\":{\"k\":\"v\"}}")
                try await kubectl.succeed(["label", "deployment", "web", "tier=front"])
                try await kubectl.succeed(["scale", "deployment", "web", "--replicas=3"])
                let entries = try await kubectl.succeed([
                    "get", "deployment", "web", "--show-managed-fields", "-o",
                    "jsonpath={range .metadata.managedFields[*]}{.manager}/{.operation}/{.subresource};{end}",
                ])
                #expect(entries.contains("kubectl-create/Update/;") && entries.contains("kubectl-label/Update/;"), "\(entries)")
                let labelled = try await kubectl.succeed([
                    "get", "deployment", "web", "--show-managed-fields", "-o",
                    "jsonpath={.metadata.managedFields[?(@.manager==\"kubectl-label\")].fieldsV1}",
                ])
                #expect(labelled.contains("f:tier"), "\(labelled)")
                let configMap = try await kubectl.succeed(["get", "--raw", "/api/v1/namespaces/default/configmaps/c1"])
                #expect(!configMap.contains("null") && configMap.contains("\"manager\":\"kubectl-create\""), "\(configMap)")
                // kubectl scale's write is its own, through the scale subresource (kubectl 1.32 names no
                // field manager there, so it is its user agent's, "kubectl"); an apply that sets other
                // replicas conflicts with it, as on kube-apiserver.
                #expect(entries.contains("kubectl/Update/scale;"), "\(entries)")
                let refused = try await kubectl.run(
                    ["apply", "--server-side", "--field-manager=alice", "-f", "-"], stdin: Self.manifest(replicas: 5, image: "nginx:1.27"))
                #expect(
                    refused.status != 0 && refused.stderr.contains("conflict with \"kubectl\" with subresource \"scale\"")
                        && refused.stderr.contains(".spec.replicas"), "\(refused)")
                // A status write is recorded under the status subresource, for the fields it changed.
                try await kubectl.succeed([
                    "patch", "deployment", "web", "--subresource=status", "--type=merge", "-p", #"{"status": {"collisionCount": 2}}"#,
                ])
                let statusWriter = try await kubectl.succeed([
                    "get", "deployment", "web", "--show-managed-fields", "-o",
                    "jsonpath={.metadata.managedFields[?(@.subresource==\"status\")].manager} {.metadata.managedFields[?(@.subresource==\"status\")].fieldsV1}",
                ])
                #expect(statusWriter.hasPrefix("kubectl-patch ") && statusWriter.contains("f:collisionCount"), "\(statusWriter)")
            }
        }
    }

    @Test(
        "a second manager's change to a field is a 409 naming the field and its manager; forcing takes it; an applier's dropped field goes; diff shows the change"
    )
    func ownership() async throws {
        try await withHub { kubectl in
            func apply(_ manager: String, _ manifest: String, force: Bool = false) async throws -> Kubectl.Result {
                try await kubectl.run(
                    ["apply", "--server-side", "--field-manager=\(manager)", "-f", "-"] + (force ? ["--force-conflicts"] : []), stdin: manifest)
            }
            #expect(try await apply("alice", Self.manifest(replicas: 2)).status == 0)
            let version = try await kubectl.succeed(["get", "deploy", "web", "-o", "jsonpath={.metadata.resourceVersion}"])
            #expect(try await apply("alice", Self.manifest(replicas: 2)).status == 0)
            #expect(
                try await kubectl.succeed(["get", "deploy", "web", "-o", "jsonpath={.metadata.resourceVersion}"]) == version,
                "a repeated apply writes nothing")

            let refused = try await apply("bob", Self.manifest(replicas: 5))
            #expect(
                refused.status != 0 && refused.stderr.contains("conflict with \"alice\"") && refused.stderr.contains(".spec.replicas"), "\(refused)")
            #expect(try await kubectl.succeed(["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]) == "2")
            // The same value is shared, not a conflict.
            #expect(try await apply("bob", Self.manifest(replicas: 2)).status == 0)
            #expect(try await apply("bob", Self.manifest(replicas: 5), force: true).status == 0)
            #expect(try await kubectl.succeed(["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]) == "5")
            let managers = try await kubectl.succeed([
                "get", "deploy", "web", "--show-managed-fields", "-o", "jsonpath={.metadata.managedFields[*].manager}",
            ])
            #expect(managers == "alice bob", "\(managers)")

            // A label only alice applied goes when she stops applying it; one bob also applies stays.
            #expect(try await apply("alice", Self.manifest(replicas: nil, label: false)).status == 0)
            #expect(try await kubectl.succeed(["get", "deploy", "web", "-o", "jsonpath={.metadata.labels.team}"]) == "a")
            #expect(try await apply("bob", Self.manifest(replicas: 5, label: false)).status == 0)
            #expect(try await kubectl.succeed(["get", "deploy", "web", "-o", "jsonpath={.metadata.labels}"]) == "", "the emptied map goes too")

            let diff = try await kubectl.run(
                ["diff", "--server-side", "--field-manager=bob", "--force-conflicts", "-f", "-"],
                stdin: Self.manifest(replicas: 5, image: "nginx:1.28", label: false))
            #expect(
                diff.status == 1 && diff.stdout.contains("-      - image: nginx:1.27") && diff.stdout.contains("+      - image: nginx:1.28"),
                "\(diff)")
            #expect(!diff.stdout.contains("replicas"), "only the change: \(diff.stdout)")
        }
    }

    @Test(
        "two managers each own a container of one Deployment: each apply keeps the other's, and one that stops applying its container removes only that"
    )
    func listElementsByManager() async throws {
        try await withHub { kubectl in
            func containers() async throws -> String {
                try await kubectl.succeed(["get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[*].name}"])
            }
            func apply(_ manager: String, _ manifest: String) async throws -> Kubectl.Result {
                try await kubectl.run(["apply", "--server-side", "--field-manager=\(manager)", "-f", "-"], stdin: manifest)
            }
            let sidecar = #"[{name: log, image: "busybox:1.36"}]"#
            #expect(try await apply("alice", Self.manifest(replicas: 2)).status == 0)
            #expect(try await apply("mesh", Self.manifest(replicas: nil, label: false, containers: sidecar)).status == 0)
            #expect(try await containers() == "web log")
            #expect(try await apply("alice", Self.manifest(replicas: 3, image: "nginx:1.28")).status == 0)
            #expect(try await containers() == "web log")
            #expect(try await kubectl.succeed(["get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"]) == "nginx:1.28")
            // A different image for alice's container is a conflict for mesh, naming the field.
            let both = #"[{name: log, image: "busybox:1.36"}, {name: web, image: "nginx:1.29"}]"#
            let refused = try await apply("mesh", Self.manifest(replicas: nil, label: false, containers: both))
            #expect(refused.status != 0 && refused.stderr.contains("conflict with \"alice\""), "\(refused)")
            // mesh stops applying its container: it goes, alice's stays.
            #expect(try await apply("mesh", Self.manifest(replicas: nil, label: false, containers: "[]")).status == 0)
            #expect(try await containers() == "web")
        }
    }
}
