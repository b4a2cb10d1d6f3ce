import Foundation
import Testing
import TetherLocal
import TetherSecurity
import TetherTestSupport
import TetherWire

/// The agent port on each TLS library the hub can run it on (decision 61), against clients of
/// other stacks: OpenSSL's `s_client`, Python's `ssl`, the in-process client on swift-nio-ssl,
/// and the agent on the other library. Each refusal is checked for the reason the hub logs.
@Suite("The agent port on swift-nio-ssl and on the system's OpenSSL", .timeLimit(.minutes(4)))
struct AgentPortTLSTests {
    static let probe = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Scripts/agent-port-probe.py")

    static func startHub(_ federation: LocalFederation, _ tls: AgentPortTLS, heartbeat: Double = 10) async throws -> (ManagedProcess, Int) {
        try await federation.startHub(heartbeatInterval: heartbeat, extraArguments: ["--agent-tls", tls.rawValue])
    }

    /// `openssl s_client` against the hub with `arguments` added; it runs until the hub closes.
    static func sClient(_ federation: LocalFederation, port: Int, _ arguments: [String]) throws -> ManagedProcess {
        try federation.launch(
            name: "s_client",
            executable: URL(fileURLWithPath: "/usr/bin/openssl"),
            arguments: ["s_client", "-connect", "127.0.0.1:\(port)", "-CAfile", federation.directory.caCertificatePath] + arguments,
            keepStandardInputOpen: true
        )
    }

    /// The in-process client (swift-nio-ssl) with `material`, saying hello as `cluster`; returns once the hub closed it.
    static func wireClient(port: Int, material: TLSMaterial, cluster: String) async throws -> WireTestClient {
        let client = try await WireTestClient.connect(
            port: port, material: material, hello: Hello(protocolVersions: [1], agentVersion: "test", cluster: cluster))
        try await client.waitForClose()
        return client
    }

    @Test("every refused peer is refused before any message, with the reason the hub logs", arguments: AgentPortTLS.allCases)
    func refusals(tls: AgentPortTLS) async throws {
        try await withFederation { federation in
            let (hub, port) = try await Self.startHub(federation, tls)
            let valid = try federation.issueBundle(cluster: "valid", hubPort: port)

            /// What the hub logged (`event`) about the client `start` made.
            func refusal(_ what: String, event: String = "session.refused", _ start: () async throws -> Void) async throws -> LogLine {
                let mark = hub.mark
                try await start()
                let line = try await hub.waitForEvent(event, after: mark, within: .seconds(20))
                #expect(!hub.lines.dropFirst(mark).contains { $0.event == "session.established" }, "\(what) on \(tls) got a session")
                return line
            }
            func reason(_ line: LogLine) -> String {
                (line["tether.reason"] ?? "").lowercased().replacingOccurrences(of: "_", with: " ")
            }

            let noCertificate = try await refusal("no certificate") {
                _ = try Self.sClient(federation, port: port, ["-tls1_3", "-alpn", "tether/1"])
            }
            #expect(reason(noCertificate).contains("peer did not return a certificate"), "\(tls): \(noCertificate.raw)")

            let other = FederationDirectory(path: federation.root + "/other")
            try other.initialize(trustDomain: "tether.test")
            let stranger = try other.issueAgentBundle(cluster: "eu-1", to: federation.root + "/stranger")
            let otherCA = try await refusal("another CA") {
                _ = try Self.sClient(
                    federation, port: port, ["-tls1_3", "-alpn", "tether/1", "-cert", stranger.certificatePath, "-key", stranger.keyPath])
            }
            #expect(otherCA["tether.refusal"] == "untrusted-issuer", "\(tls): \(otherCA.raw)")
            #expect(reason(otherCA).contains("not in the trusted ca bundle"), "\(tls): \(otherCA.raw)")

            let expiredMaterial = try federation.material(
                for: federation.identity(cluster: "eu-1"), notBefore: Date().addingTimeInterval(-7200), notAfter: Date().addingTimeInterval(-60))
            let expired = try await refusal("expired") {
                let client = try await Self.wireClient(port: port, material: expiredMaterial, cluster: "eu-1")
                #expect(!client.events.items.contains { $0.message != nil }, "no message may reach a refused client")
            }
            #expect(expired["tether.refusal"] == "expired", "\(tls): \(expired.raw)")
            #expect(reason(expired).contains("expired at"), "\(tls): \(expired.raw)")

            let futureMaterial = try federation.material(
                for: federation.identity(cluster: "eu-1"), notBefore: Date().addingTimeInterval(3600), notAfter: Date().addingTimeInterval(7200))
            let notYetValid = try await refusal("not yet valid") {
                _ = try await Self.wireClient(port: port, material: futureMaterial, cluster: "eu-1")
            }
            #expect(notYetValid["tether.refusal"] == "not-yet-valid", "\(tls): \(notYetValid.raw)")

            let elsewhere = try federation.material(for: .cluster("eu-1", trustDomain: "elsewhere.test"))
            let wrongDomain = try await refusal("another trust domain") {
                _ = try await Self.wireClient(port: port, material: elsewhere, cluster: "eu-1")
            }
            #expect(wrongDomain["tether.refusal"] == "wrong-trust-domain", "\(tls): \(wrongDomain.raw)")

            let tls12 = try await refusal("TLS 1.2") {
                _ = try Self.sClient(
                    federation, port: port, ["-tls1_2", "-alpn", "tether/1", "-cert", valid.certificatePath, "-key", valid.keyPath])
            }
            #expect(reason(tls12).contains("protocol"), "\(tls): \(tls12.raw)")

            let noALPN = try await refusal("no ALPN") {
                _ = try Self.sClient(federation, port: port, ["-tls1_3", "-cert", valid.certificatePath, "-key", valid.keyPath])
            }
            #expect(reason(noALPN).contains("alpn tether/1"), "\(tls): \(noALPN.raw)")

            let validMaterial = try TLSMaterial.load(
                certificate: valid.certificatePath, key: valid.keyPath, trustBundle: federation.directory.caCertificatePath)
            let mismatch = try await refusal("identity mismatch", event: "session.rejected") {
                let client = try await Self.wireClient(port: port, material: validMaterial, cluster: "us-1")
                #expect(client.events.items.contains { if case .message(.reject(let body)) = $0 { body.code == .identityMismatch } else { false } })
            }
            #expect(reason(mismatch).contains("us-1"), "\(tls): \(mismatch.raw)")

            let revoke = try await run(
                "tetherctl", ["certs", "revoke", "--dir", federation.directory.path, "--cluster", "valid", "--reason", "test"])
            #expect(revoke.status == 0, "\(revoke.output)")
            try await hub.waitForEvent("certificates.revocations_loaded", within: .seconds(10))
            let revoked = try await refusal("revoked") {
                _ = try await Self.wireClient(port: port, material: validMaterial, cluster: "valid")
            }
            #expect(revoked["tether.refusal"] == "revoked", "\(tls): \(revoked.raw)")
        }
    }

    @Test(
        "Python's ssl module completes mutual TLS 1.3 with ALPN tether/1 and gets welcome; offering TLS 1.2 or no ALPN gets no session",
        arguments: AgentPortTLS.allCases)
    func pythonClient(tls: AgentPortTLS) async throws {
        try await withFederation { federation in
            let (hub, port) = try await Self.startHub(federation, tls)
            let bundle = try federation.issueBundle(cluster: "py-1", hubPort: port)
            func probe(_ flags: [String]) async throws -> [String: String] {
                let process = try federation.launch(
                    name: "python-ssl", executable: URL(fileURLWithPath: try PythonClientTests.python()),
                    arguments: [Self.probe.path, "\(port)", federation.directory.caCertificatePath, bundle.certificatePath, bundle.keyPath, "py-1"]
                        + flags)
                _ = await process.waitForExit(within: .seconds(30))
                var said: [String: String] = [:]
                for line in process.lines.map(\.raw) {
                    guard let colon = line.range(of: ": ") else { continue }
                    said[String(line[..<colon.lowerBound])] = String(line[colon.upperBound...])
                }
                return said
            }
            let accepted = try await probe([])
            #expect(accepted["tls"] == "TLSv1.3", "\(tls): \(accepted)")
            #expect(accepted["alpn"] == "tether/1", "\(tls): \(accepted)")
            #expect(accepted["answer"] == "\(WireMessage.Kind.welcome.rawValue)", "\(tls): \(accepted)")
            try await hub.waitForEvent("session.established", within: .seconds(10), where: isCluster("py-1"))

            let old = try await probe(["--tls1.2"])
            #expect(old["error"] != nil && old["answer"] == nil, "\(tls): \(old)")
            let silent = try await probe(["--no-alpn"])
            #expect(silent["answer"] == nil, "\(tls): \(silent)")
            #expect(silent["alpn"] == "None", "\(tls): \(silent)")
        }
    }

    @Test(
        "an agent on one TLS library serves a member through a hub on the other: a 400 KB object arrives, a reconnect comes back",
        arguments: [(AgentPortTLS.boringSSL, AgentPortTLS.openSSL), (.openSSL, .boringSSL)])
    func crossLibrary(hubTLS: AgentPortTLS, agentTLS: AgentPortTLS) async throws {
        try await withFederation { federation in
            let (hub, port) = try await Self.startHub(federation, hubTLS, heartbeat: 0.5)
            let member = try await federation.startMember(
                "x-1", hub: hub, hubPort: port, agentArguments: ["--tls", agentTLS.rawValue, "--backoff-initial", "0.1", "--backoff-max", "0.3"])
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            // Many TLS records each way: the desired state down, its status up.
            let payload = String(repeating: "0123456789abcdef", count: 25_000)
            let file = federation.root + "/big.txt"
            try payload.write(toFile: file, atomically: true, encoding: .utf8)
            try await hubctl.succeed(["create", "configmap", "big", "--from-file=payload=\(file)"])
            try await member.kubectl.succeed(["wait", "--for=create", "configmap/big", "--timeout=60s"], within: .seconds(70))
            let arrived = try await member.kubectl.succeed(["get", "configmap", "big", "-o", "jsonpath={.data.payload}"])
            #expect(arrived == payload, "\(hubTLS) hub, \(agentTLS) agent: \(arrived.count) of \(payload.count) bytes")

            // The hub stops reading the agent's heartbeats; the agent leaves and comes back.
            let mark = hub.mark
            member.agent.send(SIGSTOP)
            try await hub.waitForEvent("session.heartbeat_missed", after: mark, within: .seconds(10), where: isCluster("x-1"))
            member.agent.send(SIGCONT)
            let back = try await hub.waitForEvent("session.established", after: mark, within: .seconds(20), where: isCluster("x-1"))
            // Only an agent on OpenSSL keeps tickets; either hub resumes its session and checks it again.
            #expect(back["tether.tls_resumed"] == (agentTLS == .openSSL ? "true" : "false"), "\(hubTLS) hub, \(agentTLS) agent: \(back.raw)")
        }
    }
}
