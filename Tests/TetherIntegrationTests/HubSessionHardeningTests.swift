import Foundation
import Testing
import TetherJSON
import TetherLocal
import TetherModel
import TetherSecurity
import TetherTestSupport
import TetherWire
import X509

/// The hub's agent port and listeners tried as a hostile agent or a flood would: each attack
/// from issue #15 against the real hub process, which stays up and keeps serving.
@Suite("the hub's agent port under hostile peers", .timeLimit(.minutes(10)))
struct HubSessionHardeningTests {
    /// A client of `cluster` with an established session (the hub is run with `--auto-join`).
    static func session(_ cluster: String, port: Int, federation: LocalFederation, kinds: [String] = []) async throws -> WireTestClient {
        let client = try await WireTestClient.connect(
            port: port, material: federation.material(for: federation.identity(cluster: cluster)),
            hello: Hello(protocolVersions: [1], agentVersion: "test", cluster: cluster, kinds: kinds))
        // Generous: with the suite running 16 tests at once on two cores, the event loop can lag.
        try await client.waitForMessage(within: .seconds(30), "welcome") { if case .welcome = $0 { true } else { false } }
        return client
    }

    static func megabyte(_ index: Int) -> String {
        // Random text, so compression does not hide the size.
        RandomText.alphanumeric(count: 1_000_000) + "\(index)"
    }

    @Test("an agent that floods heartbeats and never reads is closed as rate-limited; hub memory stays flat")
    func heartbeatFlood() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 5)
            let before = try #require(ProcessProbe.residentBytes(of: hub.processIdentifier))
            let client = try await Self.session("eu-1", port: port, federation: federation)
            try await client.stopReading()
            for _ in 0..<200_000 { client.sendWithoutWaiting(.heartbeat(Heartbeat(sentAtMilliseconds: 1))) }
            let closed = try await hub.waitForEvent("session.rate_limited", within: .seconds(30), where: isCluster("eu-1"))
            #expect(closed["tether.security"] == "true")
            let after = try #require(ProcessProbe.residentBytes(of: hub.processIdentifier))
            print("heartbeat flood: hub RSS \(before / 1_048_576) -> \(after / 1_048_576) MiB")
            #expect(after - before < 64 * 1_048_576)
            await client.close()
        }
    }

    @Test("an agent that never reads its desired state is closed at the write-stall deadline; the hub buffers no more than one chunk")
    func neverReads() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 30, extraArguments: ["--write-stall-timeout", "2"])
            let client = try APIClient(federation)
            for index in 0..<20 {
                let body = #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big-\#(index)"},"data":{"v":"\#(Self.megabyte(index))"}}"#
                #expect(try await client.request("POST", "/api/v1/namespaces/default/configmaps", body: body).code == 201)
            }
            let before = try #require(ProcessProbe.residentBytes(of: hub.processIdentifier))
            // It reads until it is welcome, then never again: the snapshot piles up behind it.
            let reader = try await Self.session("eu-1", port: port, federation: federation)
            try await reader.stopReading()
            var peak = before
            let stalled = Task { try await hub.waitForEvent("session.write_stalled", within: .seconds(60), where: isCluster("eu-1")) }
            let deadline = ContinuousClock.now + .seconds(60)
            while !(hub.lines.contains { $0.event == "session.write_stalled" }), ContinuousClock.now < deadline {
                peak = max(peak, ProcessProbe.residentBytes(of: hub.processIdentifier) ?? 0)
                try await Task.sleep(for: .milliseconds(100))  // the interval between memory samples, not a wait for a condition
            }
            _ = try await stalled.value
            print("never-reading agent: hub RSS \(before / 1_048_576) -> peak \(peak / 1_048_576) MiB while a 20 MB desired set was pushed")
            #expect(peak - before < 100 * 1_048_576, "the hub grew \((peak - before) / 1_048_576) MiB")
            #expect(hub.exitStatus == nil)
        }
    }

    @Test("a status report for an object not placed on the reporting cluster is refused as a security event and changes nothing")
    func spoofedStatus() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 30)
            let kubectl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home")
            let a = try await Self.session("a", port: port, federation: federation)
            let b = try await Self.session("b", port: port, federation: federation)
            try await kubectl.succeed(
                ["apply", "-f", "-"],
                stdin: """
                    apiVersion: core.tether.io/v1alpha1
                    kind: PropagationPolicy
                    metadata: {name: only-b, namespace: default}
                    spec:
                      resourceSelectors: [{apiVersion: v1, kind: ConfigMap, name: only-b}]
                      placement: {clusterNames: [b]}
                    """
            )
            try await kubectl.succeed(["create", "configmap", "only-b", "--from-literal=k=v"])
            try await b.waitForMessage("only-b placed on b") { message in
                switch message {
                case .delta(let delta): delta.upserts.contains { $0.name == "only-b" }
                case .snapshot(let snapshot): snapshot.objects.contains { $0.name == "only-b" }
                default: false
                }
            }
            let reference = ObjectReference(apiVersion: "v1", kind: "ConfigMap", namespace: "default", name: "only-b")
            try await a.send(.status(StatusReport(objects: [.init(object: reference, state: .applied, health: .degraded, message: "spoofed")])))
            let refused = try await hub.waitForEvent("federation.report_refused", within: .seconds(10), where: isCluster("a"))
            #expect(refused["tether.security"] == "true" && refused["tether.refusal"] == "status.not_placed")
            // b's own report counts; a's never appears.
            try await b.send(.status(StatusReport(objects: [.init(object: reference, state: .applied, health: .healthy)])))
            try await kubectl.succeed(["wait", "--for=jsonpath={.status.healthy}=1", "propagation/configmap.default.only-b", "--timeout=20s"])
            let clusters = try await kubectl.succeed([
                "get", "propagation", "configmap.default.only-b", "-o", "jsonpath={.status.clusters[*].name} {.status.clusters[*].health}",
            ])
            #expect(clusters == "b Healthy", "\(clusters)")
            let events = try await kubectl.succeed([
                "get", "events", "--field-selector", "involvedObject.name=only-b", "-o", "jsonpath={.items[*].message}",
            ])
            #expect(!events.contains("spoofed") && !events.contains("cluster a"), "\(events)")
            await a.close()
            await b.close()
        }
    }

    @Test("an oversized hello is rejected with invalid-hello and nothing is stored on any Cluster")
    func oversizedHello() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 30)
            let client = try await WireTestClient.connect(port: port, material: federation.material(for: federation.identity(cluster: "huge")))
            try await client.send(
                .hello(Hello(protocolVersions: [1], agentVersion: "test", cluster: "huge", kinds: (0..<100_000).map { "example.com/v1/Kind\($0)" })))
            // Generous: decoding 100,000 kinds takes the hub a while when the suite loads both cores.
            let answer = try await client.waitForMessage(within: .seconds(30), "reject") { if case .reject = $0 { true } else { false } }
            guard case .reject(let reject) = answer else { return }
            #expect(reject.code == .invalidHello)
            try await client.waitForClose()
            try await hub.waitForEvent("session.invalid_report", within: .seconds(5))
            let kubectl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home")
            #expect(try await kubectl.run(["get", "cluster", "huge"]).status != 0, "no Cluster was registered")
        }
    }

    @Test("300 renewals on one session: at most the burst of three is signed, each recorded; the session is closed as rate-limited")
    func renewalFlood() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 30)
            let client = try await Self.session("eu-1", port: port, federation: federation)
            let (_, csr) = try CertificateRenewal.request(for: try federation.identity(cluster: "eu-1"))
            for _ in 0..<300 { client.sendWithoutWaiting(.renew(RenewRequest(csr: csr))) }
            try await hub.waitForEvent("session.rate_limited", within: .seconds(20), where: isCluster("eu-1"))
            try await client.waitForClose()
            // One is signed at a time and the burst is three (docs/limits.md): usually the flood's
            // second and third arrive while the first is signed and get an error answer, but on a
            // loaded machine the first may be answered before the second is read (seen once: 2).
            let serials = hub.lines.filter { $0.event == "certificates.signed" }.compactMap { $0["tether.serial"] }
            #expect(serials.count <= 3, "\(serials.count) certificates signed")
            let ledger = try RenewalLedger(path: federation.directory.renewalLedgerPath)
            for serial in serials {
                #expect(!ledger.ancestors(of: serial).isEmpty, "the renewal \(serial) is recorded with what it renews")
            }
        }
    }

    @Test("revoking a certificate cuts a connection that has not sent hello, and every renewal made from it")
    func revocationReachesStrangersAndRenewals() async throws {
        try await withFederation { federation in
            // A long handshake timeout, so only the revocation can close the quiet connection in time.
            let (hub, port) = try await federation.startHub(heartbeatInterval: 30, extraArguments: ["--handshake-timeout", "60"])
            let tetherctl = federation.binaries.url("tetherctl").path

            // A connection past its handshake that never says hello.
            let quietMaterial = try federation.material(for: federation.identity(cluster: "quiet"))
            let quiet = try await WireTestClient.connect(port: port, material: quietMaterial)
            try await quiet.events.waitFor("handshake", within: .seconds(10)) { if case .handshakeCompleted = $0 { true } else { false } }
            let started = ContinuousClock.now
            let serial = CertificateSummary(quietMaterial.leaf).serial
            let revoke = try federation.launch(
                name: "revoke-quiet", executable: URL(fileURLWithPath: tetherctl),
                arguments: ["certs", "revoke", "--dir", federation.directory.path, "--serial", serial])
            #expect(await revoke.waitForExit(within: .seconds(20)) == 0)
            try await quiet.waitForClose(within: .seconds(30))
            #expect(ContinuousClock.now - started < .seconds(30), "closed by the revocation, not by a timeout")
            try await hub.waitForEvent("session.revoked", within: .seconds(5))

            // A renewed certificate is revoked with the one it was renewed from.
            let original = try federation.material(for: federation.identity(cluster: "renewer"))
            let client = try await WireTestClient.connect(
                port: port, material: original, hello: Hello(protocolVersions: [1], agentVersion: "test", cluster: "renewer"))
            // Generous: with the suite running 16 tests at once on two cores, the event loop can lag.
            try await client.waitForMessage(within: .seconds(30), "welcome") { if case .welcome = $0 { true } else { false } }
            let (key, csr) = try CertificateRenewal.request(for: try federation.identity(cluster: "renewer"))
            try await client.send(.renew(RenewRequest(csr: csr)))
            let answer = try await client.waitForMessage(within: .seconds(30), "signed") {
                if case .certificate(let c) = $0 { c.certificate != nil } else { false }
            }
            guard case .certificate(let issued) = answer, let pem = issued.certificate else { return }
            let renewed = try TLSMaterial(
                KeyedCertificate(certificate: try PEMFiles.certificates(inPEM: pem)[0], privateKey: key),
                trustRoots: federation.directory.loadTrustBundle()
            )
            await client.close()
            let revokeOriginal = try federation.launch(
                name: "revoke-original", executable: URL(fileURLWithPath: tetherctl),
                arguments: ["certs", "revoke", "--dir", federation.directory.path, "--serial", CertificateSummary(original.leaf).serial]
            )
            #expect(await revokeOriginal.waitForExit(within: .seconds(20)) == 0)
            try await hub.waitForEvent("certificates.revocations_loaded", occurrence: 2, within: .seconds(10))
            let thief = try await WireTestClient.connect(
                port: port, material: renewed, hello: Hello(protocolVersions: [1], agentVersion: "test", cluster: "renewer"))
            try await thief.waitForClose(within: .seconds(10))
            let refusal = try await hub.waitForEvent("session.refused", within: .seconds(10)) { $0["tether.refusal"] == "revoked" }
            #expect(refusal["tether.reason"]?.contains("was revoked") == true)
        }
    }

    @Test("floods of idle connections on both ports, with 256 descriptors: shed and timed out; kubectl, /healthz and a new agent keep working")
    func connectionFloods() async throws {
        try await withFederation { federation in
            let (hub, agentPort) = try await federation.startHub(
                heartbeatInterval: 5, descriptorLimit: 256, extraArguments: ["--handshake-timeout", "3"])
            let apiPort = try #require(try federation.directory.readPorts()?.api)
            let kubectl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home")
            func timedGet() async throws -> Duration {
                let started = ContinuousClock.now
                #expect(try await kubectl.succeed(["get", "namespaces", "-o", "name"]).contains("namespace/default"))
                return ContinuousClock.now - started
            }
            var baseline = Duration.zero
            for _ in 0..<3 { baseline = max(baseline, try await timedGet()) }
            let idleMemory = try #require(ProcessProbe.residentBytes(of: hub.processIdentifier))

            let apiFlood = await TCPFlood.open(count: 1_000, port: apiPort)
            let agentFlood = await TCPFlood.open(count: 1_000, port: agentPort)
            var during = Duration.zero
            for _ in 0..<3 { during = max(during, try await timedGet()) }
            let health = try await curl(["--cacert", federation.directory.caCertificatePath, "https://127.0.0.1:\(apiPort)/healthz"], in: federation)
            #expect(health.contains("ok"))
            let agent = try federation.startAgent(bundle: try federation.issueBundle(cluster: "eu-1", hubPort: agentPort))
            try await agent.waitForEvent("session.established", within: .seconds(30))
            let floodMemory = try #require(ProcessProbe.residentBytes(of: hub.processIdentifier))
            let descriptors = ProcessProbe.openDescriptors(of: hub.processIdentifier) ?? 0
            try await hub.waitForEvent("listener.shed", within: .seconds(10))
            print(
                "connection floods (1,000 idle per port, 256 descriptors): kubectl get \(baseline) idle -> \(during) during; hub RSS \(idleMemory / 1_048_576) -> \(floodMemory / 1_048_576) MiB; \(descriptors) descriptors open; still open: api \(apiFlood.stillOpen), agent \(agentFlood.stillOpen)"
            )
            #expect(descriptors < 256)
            #expect(during < baseline + .seconds(3), "kubectl took \(during) during the floods, \(baseline) before")
            #expect(floodMemory - idleMemory < 64 * 1_048_576)
            // Whatever was not shed at once is closed at the handshake timeout.
            let deadline = ContinuousClock.now + .seconds(20)
            while apiFlood.stillOpen + agentFlood.stillOpen > 0, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))  // polling socket state the flood's own channels report
            }
            #expect(apiFlood.stillOpen == 0 && agentFlood.stillOpen == 0)
            #expect(hub.exitStatus == nil)
            await apiFlood.close()
            await agentFlood.close()
        }
    }
}
