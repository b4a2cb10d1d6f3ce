import BuiltinPlugins
import Foundation
import Logging
import Synchronization
import Testing
import TetherAgent
import TetherJSON
import TetherLocal
import TetherModel
import TetherTestSupport
import TetherWire

/// One applier in this process driving a real `tether-simcluster` over HTTPS, with every event
/// it reports numbered so a test can wait for what happens after a point.
final class ApplierUnderTest: Sendable {
    let applier: Applier
    let client: KubernetesClient
    let events = Inbox<(sequence: Int, event: ApplierEvent)>()
    private let running: Task<Void, any Error>
    private let collecting: Task<Void, Never>

    init(cluster: String, kubeconfig: String, stateDirectory: String) throws {
        var clientSettings = KubernetesClientSettings()
        clientSettings.attempts = 3
        clientSettings.retryBackoff = Backoff(initial: .milliseconds(50), maximum: .seconds(5))
        let logger = Logger(label: "test.applier")
        client = try KubernetesClient(endpoint: try .kubeconfig(at: kubeconfig), settings: clientSettings, logger: logger)
        var settings = ApplierSettings(cluster: cluster, origin: "spiffe://tether.test/hub", stateDirectory: stateDirectory)
        settings.retryBackoff = Backoff(initial: .milliseconds(200), maximum: .seconds(1))
        applier = Applier(settings: settings, client: client, registry: BuiltinPlugins.agent, link: HubLink(), logger: logger)
        let applier = applier
        let events = events
        running = Task { try await applier.run() }
        collecting = Task {
            var sequence = 0
            for await event in applier.events {
                sequence += 1
                events.append((sequence, event))
            }
        }
    }

    /// The number of the last event so far: wait for what comes after it.
    var mark: Int { events.items.last?.sequence ?? 0 }

    @discardableResult
    func waitForStatus(
        of name: String,
        kind: String,
        after mark: Int = 0,
        within timeout: Duration = .seconds(30),
        where predicate: @escaping @Sendable (StatusReport.ObjectStatus) -> Bool
    ) async throws -> StatusReport.ObjectStatus {
        let found = try await events.waitFor("status of \(kind) \(name)", within: timeout) { item in
            guard item.sequence > mark, case .status(let status) = item.event else { return false }
            return status.object.name == name && status.object.kind == kind && predicate(status)
        }
        guard case .status(let status) = found.event else { throw DeadlineExceeded(description: "not a status") }
        return status
    }

    @discardableResult
    func waitForAck(_ revision: UInt64, within timeout: Duration = .seconds(30)) async throws -> Ack {
        let found = try await events.waitFor("ack of revision \(revision)", within: timeout) { item in
            guard case .ack(let ack) = item.event else { return false }
            return ack.revision == revision
        }
        guard case .ack(let ack) = found.event else { throw DeadlineExceeded(description: "not an ack") }
        return ack
    }

    func stop() async {
        await applier.stop()
        _ = await running.result
        await collecting.value
        await client.shutdown()
    }
}

func object(_ yaml: String) throws -> JSONValue { try YAMLDocument.decode(yaml) }

let shopNamespace = try! object("{apiVersion: v1, kind: Namespace, metadata: {name: shop}}")
let shopSettings = try! object("{apiVersion: v1, kind: ConfigMap, metadata: {name: settings, namespace: shop}, data: {color: blue}}")

func webDeployment(replicas: Int, failing: Bool = false, name: String = "web") throws -> JSONValue {
    try object(
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: \(name)
          namespace: shop
          \(failing ? "annotations: {sim.tether.io/fail: \"true\"}" : "")
        spec:
          replicas: \(replicas)
          selector: {matchLabels: {app: \(name)}}
          template:
            metadata: {labels: {app: \(name)}}
            spec: {containers: [{name: web, image: "nginx:1.27"}]}
        """
    )
}

/// Runs `body` with a simulated member, kubectl for it, and an applier for cluster `m1`.
func withApplier(
    _ body: (LocalFederation, Kubectl, ApplierUnderTest, String) async throws -> Void
) async throws {
    try await withFederation { federation in
        let (_, simDirectory) = try await federation.startSimcluster("m1", nodes: 2, readyAfter: "1s")
        let kubectl = try Kubectl(.modern, kubeconfig: simDirectory + "/kubeconfig", home: simDirectory + "/home")
        let state = federation.root + "/agent-state"
        let applier = try ApplierUnderTest(cluster: "m1", kubeconfig: simDirectory + "/kubeconfig", stateDirectory: state)
        do {
            try await body(federation, kubectl, applier, simDirectory)
            await applier.stop()
        } catch {
            await applier.stop()
            throw error
        }
    }
}

@Suite("agent applier against a simulated member over HTTPS", .timeLimit(.minutes(3)))
struct ApplierTests {
    @Test("apply a set, update it, prune what left it, re-create what was deleted, repair a hand edit")
    func lifecycle() async throws {
        try await withApplier { _, kubectl, member, _ in
            #expect(member.applier.offer(.snapshot(Snapshot(revision: 1, objects: [try webDeployment(replicas: 2), shopSettings, shopNamespace]))))
            let first = try await member.waitForAck(1)
            #expect(first.failures.isEmpty, "\(first)")
            let labels = try await kubectl.succeed(["get", "deploy", "web", "-n", "shop", "-o", "jsonpath={.metadata.labels}"])
            #expect(labels.contains(#""tether.io/managed-by":"m1""#), "\(labels)")
            let origin = try await kubectl.succeed([
                "get", "cm", "settings", "-n", "shop", "-o", "jsonpath={.metadata.annotations.tether\\.io/origin}",
            ])
            #expect(origin == "spiffe://tether.test/hub")
            try await member.waitForStatus(of: "web", kind: "Deployment") { $0.health == .healthy && $0.summary["readyReplicas"] == 2 }

            // Update: the new replica count reaches the member and the summary follows.
            var mark = member.mark
            #expect(member.applier.offer(.delta(Delta(fromRevision: 1, toRevision: 2, upserts: [try webDeployment(replicas: 3)], deletes: []))))
            try await member.waitForAck(2)
            try await member.waitForStatus(of: "web", kind: "Deployment", after: mark) { $0.health == .healthy && $0.summary["readyReplicas"] == 3 }

            // Removed from the set: pruned.
            mark = member.mark
            let settingsReference = ObjectReference(apiVersion: "v1", kind: "ConfigMap", namespace: "shop", name: "settings")
            #expect(member.applier.offer(.delta(Delta(fromRevision: 2, toRevision: 3, upserts: [], deletes: [settingsReference]))))
            try await member.waitForStatus(of: "settings", kind: "ConfigMap", after: mark) { $0.state == .pruned }
            let gone = try await kubectl.run(["get", "cm", "settings", "-n", "shop"])
            #expect(gone.status != 0 && gone.stderr.contains("NotFound"), "\(gone)")

            // Deleted behind the agent's back: re-created (a new uid), and healthy again.
            let oldUID = try await kubectl.succeed(["get", "deploy", "web", "-n", "shop", "-o", "jsonpath={.metadata.uid}"])
            mark = member.mark
            try await kubectl.succeed(["delete", "deploy", "web", "-n", "shop", "--wait=false"])
            try await member.waitForStatus(of: "web", kind: "Deployment", after: mark) { $0.health == .progressing }
            try await member.waitForStatus(of: "web", kind: "Deployment", after: mark) { $0.health == .healthy }
            let newUID = try await kubectl.succeed(["get", "deploy", "web", "-n", "shop", "-o", "jsonpath={.metadata.uid}"])
            #expect(!newUID.isEmpty && newUID != oldUID)

            // A managed field edited by hand: set back.
            try await kubectl.succeed(["scale", "deploy", "web", "-n", "shop", "--replicas=7"])
            try await kubectl.succeed(["wait", "--for=jsonpath={.spec.replicas}=3", "deploy/web", "-n", "shop", "--timeout=30s"])
            // ...while a label someone else added (a field Tether does not set) stays.
            try await kubectl.succeed(["label", "deploy", "web", "-n", "shop", "team=payments"])
            mark = member.mark
            #expect(member.applier.offer(.delta(Delta(fromRevision: 3, toRevision: 4, upserts: [shopNamespace], deletes: []))))
            try await member.waitForAck(4)
            let team = try await kubectl.succeed(["get", "deploy", "web", "-n", "shop", "-o", "jsonpath={.metadata.labels.team}"])
            #expect(team == "payments")
        }
    }

    @Test("an unmanaged object of the same name is reported as a conflict and left untouched; a failing workload is Degraded")
    func conflictAndDegraded() async throws {
        try await withApplier { _, kubectl, member, _ in
            #expect(member.applier.offer(.snapshot(Snapshot(revision: 1, objects: [shopNamespace]))))
            try await member.waitForAck(1)
            // Someone else's ConfigMap, made with kubectl before Tether gets there.
            try await kubectl.succeed(
                ["apply", "-f", "-"],
                stdin: """
                    apiVersion: v1
                    kind: ConfigMap
                    metadata: {name: settings, namespace: shop}
                    data: {owner: someone-else}
                    """
            )
            let upserts = [shopSettings, try webDeployment(replicas: 2, failing: true, name: "broken")]
            #expect(member.applier.offer(.delta(Delta(fromRevision: 1, toRevision: 2, upserts: upserts, deletes: []))))
            let ack = try await member.waitForAck(2)
            #expect(ack.failures.map(\.object.name) == ["settings"], "\(ack)")
            let conflict = try await member.waitForStatus(of: "settings", kind: "ConfigMap") { $0.state == .failed }
            #expect(conflict.message?.contains("not managed by Tether") == true, "\(conflict)")
            let data = try await kubectl.succeed(["get", "cm", "settings", "-n", "shop", "-o", "jsonpath={.data}"])
            #expect(data.contains("someone-else") && !data.contains("blue"), "\(data)")
            let labels = try await kubectl.succeed(["get", "cm", "settings", "-n", "shop", "-o", "jsonpath={.metadata.labels}"])
            #expect(!labels.contains("tether.io"))

            let broken = try await member.waitForStatus(of: "broken", kind: "Deployment") { $0.health == .degraded }
            #expect(broken.state == .applied)
            #expect(broken.message?.contains("simulated failure") == true, "\(broken)")
        }
    }

    @Test("while the member API answers 503 the agent keeps retrying, and converges once it recovers")
    func memberOutage() async throws {
        try await withApplier { federation, kubectl, member, simDirectory in
            #expect(member.applier.offer(.snapshot(Snapshot(revision: 1, objects: [shopNamespace]))))
            try await member.waitForAck(1)
            let url = try #require(
                (try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: simDirectory + "/simcluster.json"))) as? [String: Any])?[
                    "url"] as? String
            )
            let credentials = ["--cacert", simDirectory + "/ca.crt", "--cert", simDirectory + "/admin.crt", "--key", simDirectory + "/admin.key"]
            let on = try await curl(
                credentials + [
                    "-X", "PUT", "-H", "Content-Type: application/json", "-d", #"{"status": 503, "seconds": 120}"#, url + "/debug/faults",
                ],
                in: federation
            )
            #expect(on.contains(#""active":true"#), "\(on)")

            #expect(member.applier.offer(.delta(Delta(fromRevision: 1, toRevision: 2, upserts: [shopSettings], deletes: []))))
            let failed = try await member.waitForStatus(of: "settings", kind: "ConfigMap") { $0.state == .failed }
            #expect(failed.message?.contains("503") == true, "\(failed)")
            let ack = try await member.waitForAck(2)
            #expect(ack.failures.count == 1)

            _ = try await curl(credentials + ["-X", "DELETE", url + "/debug/faults"], in: federation)
            try await member.waitForStatus(of: "settings", kind: "ConfigMap") { $0.state == .applied && $0.health == .healthy }
            try await kubectl.succeed(["get", "cm", "settings", "-n", "shop"])
        }
    }

    @Test("a restarted agent with no hub reconciles from its persisted desired state, in-process and as tether-agent")
    func restartWithoutHub() async throws {
        try await withFederation { federation in
            let (_, simDirectory) = try await federation.startSimcluster("m1", nodes: 2, readyAfter: "1s")
            let kubeconfig = simDirectory + "/kubeconfig"
            let kubectl = try Kubectl(.modern, kubeconfig: kubeconfig, home: simDirectory + "/home")
            let state = federation.root + "/agent-state"

            let first = try ApplierUnderTest(cluster: "m1", kubeconfig: kubeconfig, stateDirectory: state)
            #expect(first.applier.offer(.snapshot(Snapshot(revision: 7, objects: [shopNamespace, shopSettings, try webDeployment(replicas: 2)]))))
            try await first.waitForAck(7)
            await first.stop()
            let saved = try #require(try PersistedDesiredState.load(from: state, cluster: "m1"))
            #expect(saved.revision == 7 && saved.objects.count == 3)
            #expect(throws: (any Error).self) { try PersistedDesiredState.load(from: state, cluster: "other") }

            // While no agent runs, someone deletes a managed object.
            try await kubectl.succeed(["delete", "cm", "settings", "-n", "shop"])
            let second = try ApplierUnderTest(cluster: "m1", kubeconfig: kubeconfig, stateDirectory: state)
            try await second.waitForStatus(of: "settings", kind: "ConfigMap") { $0.state == .applied }
            try await kubectl.succeed(["get", "cm", "settings", "-n", "shop"])
            await second.stop()

            // The real binary, whose hub address refuses connections, does the same.
            try await kubectl.succeed(["delete", "cm", "settings", "-n", "shop"])
            let bundle = try federation.issueBundle(cluster: "m1", hubPort: 1)
            let agent = try federation.startAgent(
                bundle: bundle,
                kubeconfig: kubeconfig,
                extraArguments: ["--state-dir", state, "--backoff-initial", "0.2", "--backoff-max", "1"]
            )
            try await agent.waitForEvent("applier.resumed", within: .seconds(30)) { $0["tether.revision"] == "7" }
            try await agent.waitForEvent("applier.applied", within: .seconds(30)) { ($0["tether.object"] ?? "").contains("settings") }
            try await kubectl.succeed(["get", "cm", "settings", "-n", "shop"])
            try await agent.waitForEvent("session.ended", within: .seconds(30))
        }
    }
}

@Suite("Kubernetes driver credentials against a simulated member", .timeLimit(.minutes(3)))
struct DriverCredentialTests {
    @Test("client certificate (inline and files), bearer token, token file and in-cluster configuration all reach the member")
    func credentials() async throws {
        try await withFederation { federation in
            let (_, dir) = try await federation.startSimcluster("m1", nodes: 2, readyAfter: "1s")
            let server = try #require(
                (try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/simcluster.json"))) as? [String: Any])?["url"]
                    as? String
            )
            let files = dir + "/kubeconfig-files"
            try """
            apiVersion: v1
            kind: Config
            current-context: files
            contexts: [{name: files, context: {cluster: sim, user: admin}}, {name: other, context: {cluster: sim, user: nobody}}]
            clusters: [{name: sim, cluster: {server: "\(server)", certificate-authority: ca.crt}}]
            users: [{name: admin, user: {client-certificate: admin.crt, client-key: admin.key}}, {name: nobody, user: {}}]
            """.write(toFile: files, atomically: true, encoding: .utf8)
            let tokenFile = dir + "/kubeconfig-tokenfile"
            try """
            apiVersion: v1
            kind: Config
            current-context: tf
            contexts: [{name: tf, context: {cluster: sim, user: sa}}]
            clusters: [{name: sim, cluster: {server: "\(server)", certificate-authority: ca.crt}}]
            users: [{name: sa, user: {tokenFile: serviceaccount/token}}]
            """.write(toFile: tokenFile, atomically: true, encoding: .utf8)
            let port = try #require(URL(string: server)?.port)
            let endpoints: [(String, KubernetesEndpoint)] = [
                ("inline certificate", try .kubeconfig(at: dir + "/kubeconfig")),
                ("certificate files", try .kubeconfig(at: files)),
                ("bearer token", try .kubeconfig(at: dir + "/kubeconfig-token")),
                ("token file", try .kubeconfig(at: tokenFile)),
                (
                    "in-cluster",
                    try .inCluster(
                        environment: ["KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "\(port)"],
                        directory: dir + "/serviceaccount"
                    )
                ),
            ]
            for (label, endpoint) in endpoints {
                let client = try KubernetesClient(endpoint: endpoint, logger: Logger(label: "test.driver"))
                do {
                    let version = try await client.serverVersion()
                    #expect(!version.isEmpty, "\(label)")
                    let served = try await client.discover()
                    let configMaps = try #require(served["v1/ConfigMap"], "\(label)")
                    #expect(served["apps/v1/Deployment"]?.namespaced == true && served["v1/Namespace"]?.namespaced == false)
                    let name = "from-" + label.replacingOccurrences(of: " ", with: "-")
                    let applied = try await client.apply(
                        try object("{apiVersion: v1, kind: ConfigMap, metadata: {name: \(name), namespace: default}, data: {a: b}}"),
                        as: configMaps,
                        fieldManager: "tether-agent"
                    )
                    #expect(applied.name == name, "\(label)")
                    let read = try await client.get(configMaps, namespace: "default", name: name)
                    #expect(read?.value(at: "data", "a") == "b", "\(label)")
                    try await client.delete(configMaps, namespace: "default", name: name)
                    #expect(try await client.get(configMaps, namespace: "default", name: name) == nil, "\(label)")
                } catch {
                    Issue.record("\(label): \(error)")
                }
                await client.shutdown()
            }

            // No credentials: 401 comes back at once, not retried as if transient.
            // What the client logs tells whether it retried; a time bound cannot under load (a
            // loaded CI run took 5.2 s for the one refused request).
            let events = RecordedEvents()
            let anonymous = try KubernetesClient(
                endpoint: try .kubeconfig(at: files, context: "other"), logger: Logger(label: "test.driver") { _ in events.handler })
            do {
                _ = try await anonymous.discover()
                Issue.record("an anonymous client was let in")
            } catch {
                let failure = error as? KubernetesError
                #expect(failure?.status == 401 && failure?.isTransient == false, "\(error)")
            }
            #expect(!events.names.contains("kubernetes.retry"), "\(events.names)")
            await anonymous.shutdown()

            #expect { try KubernetesEndpoint.kubeconfig(at: files, context: "missing") } throws: { error in
                "\(error)".contains("no context named missing") && "\(error)".contains("files")
            }
            #expect { try KubernetesEndpoint.inCluster(environment: [:], directory: dir) } throws: { error in
                "\(error)".contains("KUBERNETES_SERVICE_HOST")
            }
        }
    }
}

/// The `tether.event` of every line logged through ``handler``.
final class RecordedEvents: Sendable {
    private let recorded = Mutex<[String]>([])
    var names: [String] { recorded.withLock { $0 } }

    var handler: any LogHandler { Handler(events: self) }

    private struct Handler: LogHandler {
        let events: RecordedEvents
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            guard let name = event.metadata?["tether.event"] ?? metadata["tether.event"] else { return }
            events.recorded.withLock { $0.append("\(name)") }
        }
    }
}
