import Foundation
import Testing
import TetherLocal
import TetherSecurity
import TetherTestSupport
import TetherWire

// These tests run the real tether-hub and tether-agent executables on loopback, and talk to the
// hub with real clients: the agent, an in-process client on the same TLS and wire code, and
// OpenSSL's s_client. Every wait ends at a deadline; none sleeps to let things settle.

func isCluster(_ name: String) -> @Sendable (LogLine) -> Bool {
    { $0["tether.cluster"] == name }
}

@Suite("Hub and agent sessions over mutual TLS", .timeLimit(.minutes(3)))
struct SessionIntegrationTests {
    @Test("a valid agent connects, gets welcome, and keeps its session alive with heartbeats")
    func validAgentConnects() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 0.3)
            let agent = try federation.startAgent(bundle: try federation.issueBundle(cluster: "eu-1", hubPort: port))
            let established = try await hub.waitForEvent("session.established", within: .seconds(20), where: isCluster("eu-1"))
            #expect(established["tether.identity"] == "spiffe://tether.test/cluster/eu-1")
            try await agent.waitForEvent("session.established", within: .seconds(10))

            // A client that goes silent after hello is closed for missed heartbeats; by the time
            // that happens (three intervals), the agent must still hold its session.
            let silent = try await WireTestClient.connect(
                port: port, material: federation.material(for: federation.identity(cluster: "us-1")),
                hello: Hello(protocolVersions: [1], agentVersion: "test", cluster: "us-1"))
            try await silent.waitForMessage("welcome") { if case .welcome = $0 { true } else { false } }
            try await hub.waitForEvent("session.heartbeat_missed", within: .seconds(10), where: isCluster("us-1"))
            try await silent.waitForClose()
            // Nothing ended eu-1's session: the only events about it are its start and the federation registering it.
            #expect(
                !hub.lines.contains {
                    $0["tether.cluster"] == "eu-1" && $0.event != "session.established" && $0.event != nil
                        && !($0.event ?? "").hasPrefix("federation.")
                }
            )
            #expect(!agent.lines.contains { $0.event == "session.ended" })
        }
    }

    @Test("the hub answers heartbeats and reports the interval in welcome")
    func heartbeatRoundTrip() async throws {
        try await withFederation { federation in
            // Long enough that a test process starved of CPU (the suite runs in parallel on two
            // cores) still sends its heartbeat within the three intervals the hub allows.
            let (_, port) = try await federation.startHub(heartbeatInterval: 5)
            let client = try await WireTestClient.connect(
                port: port, material: federation.material(for: federation.identity(cluster: "eu-1")),
                hello: Hello(protocolVersions: [1], agentVersion: "test", cluster: "eu-1"))
            let welcome = try await client.waitForMessage("welcome") { if case .welcome = $0 { true } else { false } }
            guard case .welcome(let body) = welcome else { return }
            #expect(body.heartbeatIntervalMilliseconds == 5000)
            #expect(body.protocolVersion == 1)
            try await client.send(.heartbeat(Heartbeat(sentAtMilliseconds: 1)))
            try await client.waitForMessage("heartbeat reply") { if case .heartbeat = $0 { true } else { false } }
            await client.close()
        }
    }

    @Test("openssl s_client without a client certificate is refused, and the hub logs why")
    func opensslWithoutCertificate() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub()
            let client = try federation.launch(
                name: "s_client",
                executable: URL(fileURLWithPath: "/usr/bin/openssl"),
                arguments: [
                    "s_client", "-connect", "127.0.0.1:\(port)", "-tls1_3", "-alpn", "tether/1",
                    "-CAfile", federation.directory.caCertificatePath,
                ],
                keepStandardInputOpen: true
            )
            let refused = try await hub.waitForEvent("session.refused", within: .seconds(20))
            // BoringSSL says PEER_DID_NOT_RETURN_A_CERTIFICATE, OpenSSL "peer did not return a certificate".
            let reason = (refused["tether.reason"] ?? "").lowercased().replacingOccurrences(of: "_", with: " ")
            #expect(reason.contains("peer did not return a certificate"), "\(refused.raw)")
            let status = await client.waitForExit(within: .seconds(20))
            #expect(status != nil && status != 0, "s_client must fail: \(client.tail())")
            #expect(client.lines.contains { $0.raw.contains("alert certificate required") }, "\(client.tail())")
        }
    }

    @Test("openssl s_client with a certificate from another CA is refused as an untrusted issuer")
    func opensslWrongCA() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub()
            let other = FederationDirectory(path: federation.root + "/other")
            try other.initialize(trustDomain: "tether.test")
            let stranger = try other.issueAgentBundle(cluster: "eu-1", to: federation.root + "/stranger")
            let client = try federation.launch(
                name: "s_client",
                executable: URL(fileURLWithPath: "/usr/bin/openssl"),
                arguments: [
                    "s_client", "-connect", "127.0.0.1:\(port)", "-tls1_3", "-alpn", "tether/1",
                    "-CAfile", federation.directory.caCertificatePath, "-cert", stranger.certificatePath, "-key", stranger.keyPath,
                ],
                keepStandardInputOpen: true
            )
            let refused = try await hub.waitForEvent("session.refused", within: .seconds(20))
            #expect(refused["tether.refusal"] == "untrusted-issuer")
            #expect(refused["tether.reason"]?.contains("not in the trusted CA bundle") == true)
            let status = await client.waitForExit(within: .seconds(20))
            #expect(status != nil && status != 0, "s_client must fail: \(client.tail())")
            #expect(client.lines.contains { $0.raw.contains("alert") }, "\(client.tail())")
        }
    }

    @Test("an expired certificate is refused before any session, with its expiry in the log")
    func expiredCertificate() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub()
            let expired = try federation.material(
                for: federation.identity(cluster: "eu-1"),
                notBefore: Date().addingTimeInterval(-7200),
                notAfter: Date().addingTimeInterval(-60)
            )
            let client = try await WireTestClient.connect(
                port: port, material: expired, hello: Hello(protocolVersions: [1], agentVersion: "test", cluster: "eu-1"))
            try await client.waitForClose()
            #expect(!client.events.items.contains { $0.message != nil }, "no message may reach a refused client")
            let refused = try await hub.waitForEvent("session.refused", within: .seconds(10))
            #expect(refused["tether.refusal"] == "expired")
            #expect(refused["tether.reason"]?.contains("expired at") == true)
        }
    }

    @Test("a certificate from another CA is refused for the in-process client too")
    func otherCAClient() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub()
            let foreign = try TestPKI(trustDomain: "tether.test").agentMaterial(
                cluster: "eu-1",
                trusting: try federation.directory.loadTrustBundle()
            )
            let client = try await WireTestClient.connect(
                port: port, material: foreign, hello: Hello(protocolVersions: [1], agentVersion: "test", cluster: "eu-1"))
            try await client.waitForClose()
            #expect(!client.events.items.contains { $0.message != nil })
            let refused = try await hub.waitForEvent("session.refused", within: .seconds(10))
            #expect(refused["tether.refusal"] == "untrusted-issuer")
        }
    }

    @Test("a valid certificate whose identity differs from hello is rejected with identity-mismatch")
    func identityMismatch() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub()
            let client = try await WireTestClient.connect(
                port: port, material: federation.material(for: federation.identity(cluster: "eu-1")),
                hello: Hello(protocolVersions: [1], agentVersion: "test", cluster: "us-1"))
            let answer = try await client.waitForMessage("reject") { if case .reject = $0 { true } else { false } }
            guard case .reject(let reject) = answer else { return }
            #expect(reject.code == .identityMismatch)
            try await client.waitForClose()
            let logged = try await hub.waitForEvent("session.rejected", within: .seconds(10))
            #expect(logged["tether.reason"]?.contains("us-1") == true)
            #expect(!client.events.items.contains { if case .message(.welcome) = $0 { true } else { false } })
        }
    }

    @Test("the admin's user certificate is not an agent identity")
    func userCertificateIsNotAnAgent() async throws {
        try await withFederation { federation in
            let (_, port) = try await federation.startHub()
            let admin = try TLSMaterial.load(
                certificate: federation.directory.adminCertificatePath,
                key: federation.directory.adminKeyPath,
                trustBundle: federation.directory.caCertificatePath
            )
            let client = try await WireTestClient.connect(port: port, material: admin)
            let answer = try await client.waitForMessage("reject") { if case .reject = $0 { true } else { false } }
            guard case .reject(let reject) = answer else { return }
            #expect(reject.code == .notAnAgent)
            try await client.waitForClose()
        }
    }

    @Test(
        "malformed frames over real TLS get an error frame and a close",
        arguments: [
            ("unknown type", [0, 0, 0, 4, 99, 0, 0x7B, 0x7D] as [UInt8], WireError.Code.unknownMessageType),
            ("oversized length", [0x7F, 0xFF, 0xFF, 0xFF, 1, 0], .frameTooLarge),
            ("invalid JSON", [0, 0, 0, 5, 8, 0, 0x7B, 0x7B, 0x7B], .malformedPayload),
        ]
    )
    func malformedFrames(name: String, bytes: [UInt8], code: WireError.Code) async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub()
            let client = try await WireTestClient.connect(
                port: port, material: federation.material(for: federation.identity(cluster: "eu-1")),
                hello: Hello(protocolVersions: [1], agentVersion: "test", cluster: "eu-1"))
            try await client.waitForMessage("welcome") { if case .welcome = $0 { true } else { false } }
            try await client.sendRaw(bytes)
            let notice = try await client.waitForMessage("error frame") { if case .error = $0 { true } else { false } }
            guard case .error(let body) = notice else { return }
            #expect(body.code == code, "\(name)")
            try await client.waitForClose()
            try await hub.waitForEvent("session.protocol_violation", within: .seconds(10), where: isCluster("eu-1"))
        }
    }

    @Test("a hub killed and restarted on the same port gets its agent back within the backoff bound")
    func hubRestart() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 0.5)
            let agent = try federation.startAgent(
                bundle: try federation.issueBundle(cluster: "eu-1", hubPort: port),
                extraArguments: ["--backoff-initial", "0.1", "--backoff-max", "1"]
            )
            let first = try await agent.waitForEvent("session.established", within: .seconds(20))
            hub.send(SIGKILL)
            _ = await hub.waitForExit(within: .seconds(10))
            try await agent.waitForEvent("session.ended", within: .seconds(10))

            let (restarted, _) = try await federation.startHub(heartbeatInterval: 0.5, agentListen: "127.0.0.1:\(port)")
            let ready = ContinuousClock.now
            try await restarted.waitForEvent("session.established", within: .seconds(10), where: isCluster("eu-1"))
            let back = ContinuousClock.now - ready
            // The agent's next attempt starts at most --backoff-max (1 s) after the hub is back.
            #expect(back < .seconds(3), "agent took \(back) to return")
            try await agent.waitForEvent("session.established", within: .seconds(5)) {
                $0["tether.session"] != first["tether.session"]
            }
        }
    }

    @Test("a second agent with the same identity replaces the first, which receives goaway")
    func replacement() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub()
            let bundle = try federation.issueBundle(cluster: "eu-1", hubPort: port)
            let first = try federation.startAgent(name: "first", bundle: bundle)
            let firstSession = try await first.waitForEvent("session.established", within: .seconds(20))
            let second = try federation.startAgent(name: "second", bundle: bundle)
            let secondSession = try await second.waitForEvent("session.established", within: .seconds(20))
            let ended = try await first.waitForEvent("session.ended", within: .seconds(10))
            #expect(ended["tether.reason"]?.contains("replaced") == true)
            #expect(ended["tether.retry_in_ms"].flatMap(Int.init).map { $0 >= 30_000 } == true, "the hub's long hint is honoured")
            let replaced = try await hub.waitForEvent("session.replaced", within: .seconds(10))
            #expect(replaced["tether.session"] == firstSession["tether.session"])
            #expect(firstSession["tether.session"] != secondSession["tether.session"])
        }
    }

    @Test("an agent notices a hub that stops answering (half-open connection) by missed heartbeats")
    func deadHubDetected() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 0.4)
            let agent = try federation.startAgent(bundle: try federation.issueBundle(cluster: "eu-1", hubPort: port))
            try await agent.waitForEvent("session.established", within: .seconds(20))
            // A stopped process keeps its sockets open but answers nothing: the TCP connection stays up.
            hub.send(SIGSTOP)
            defer { hub.send(SIGCONT) }
            let ended = try await agent.waitForEvent("session.ended", within: .seconds(10))
            #expect(ended["tether.reason"]?.contains("unresponsive") == true)
        }
    }

    @Test("the agent refuses a hub whose certificate does not name the address it dialled")
    func hubHostnameVerified() async throws {
        try await withFederation { federation in
            // The hub certificate names localhost, 127.0.0.1 and ::1; 127.0.0.2 is loopback too, but not in its SANs.
            let (hub, port) = try await federation.startHub(agentListen: "127.0.0.2:0")
            let agent = try federation.startAgent(
                bundle: try federation.directory.issueAgentBundle(
                    cluster: "eu-1",
                    to: federation.root + "/bundles/eu-1",
                    hubAddresses: ["127.0.0.2:\(port)"]
                )
            )
            let ended = try await agent.waitForEvent("session.ended", within: .seconds(20))
            #expect(ended["tether.reason"]?.contains("TLS handshake failed") == true, "\(ended)")
            #expect(!agent.lines.contains { $0.event == "session.established" })
            #expect(!hub.lines.contains { $0.event == "session.established" })
        }
    }

    @Test("SIGHUP reloads the hub's certificate: sessions go on, new handshakes get the new one, a bad file is refused")
    func certificateReload() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 0.3)
            let first = try federation.startAgent(bundle: try federation.issueBundle(cluster: "eu-1", hubPort: port))
            try await first.waitForEvent("session.established", within: .seconds(20))
            let probe = try federation.issueBundle(cluster: "probe", hubPort: port)

            /// The serial of the certificate the hub presents to a new handshake, as OpenSSL reads it.
            func presentedSerial() async throws -> String {
                let shell = try federation.launch(
                    name: "s_client",
                    executable: URL(fileURLWithPath: "/bin/sh"),
                    arguments: [
                        "-c",
                        "openssl s_client -connect 127.0.0.1:\(port) -tls1_3 -alpn tether/1 -CAfile \(federation.directory.caCertificatePath) "
                            + "-cert \(probe.certificatePath) -key \(probe.keyPath) </dev/null 2>/dev/null | openssl x509 -noout -serial",
                    ]
                )
                let line = try await shell.waitForLine(within: .seconds(20), "the serial") { $0.raw.hasPrefix("serial=") }
                return String(line.raw.dropFirst("serial=".count)).uppercased()
            }
            @Sendable func normalized(_ serial: String) -> String { String(serial.drop { $0 == "0" }) }

            let before = try await presentedSerial()
            let renewed = CertificateSummary(try federation.directory.renewHubCertificate().certificate).serial
            #expect(normalized(before) != normalized(renewed))
            hub.send(SIGHUP)
            try await hub.waitForEvent("certificates.reloaded", within: .seconds(10)) { normalized($0["tether.serial"] ?? "") == normalized(renewed) }
            #expect(normalized(try await presentedSerial()) == normalized(renewed))

            // A garbage certificate file is refused and the renewed certificate stays in use.
            try PEMFiles.writeAtomically("not a certificate", to: federation.directory.hubCertificatePath, mode: PEMFiles.certificateMode)
            hub.send(SIGHUP)
            try await hub.waitForEvent("certificates.reload_refused", within: .seconds(10))
            #expect(normalized(try await presentedSerial()) == normalized(renewed))
            let late = try federation.startAgent(bundle: try federation.issueBundle(cluster: "us-1", hubPort: port))
            try await late.waitForEvent("session.established", within: .seconds(20))

            #expect(!first.lines.contains { $0.event == "session.ended" }, "the first session went on through both reloads")
        }
    }

    @Test("SIGTERM stops an agent cleanly, and a draining hub sends goaway to its agents")
    func cleanShutdown() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub()
            let leaving = try federation.startAgent(bundle: try federation.issueBundle(cluster: "eu-1", hubPort: port))
            let staying = try federation.startAgent(bundle: try federation.issueBundle(cluster: "us-1", hubPort: port))
            try await leaving.waitForEvent("session.established", within: .seconds(20))
            try await staying.waitForEvent("session.established", within: .seconds(20))

            leaving.send(SIGTERM)
            #expect(await leaving.waitForExit(within: .seconds(10)) == 0)
            try await leaving.waitForEvent("agent.stopped", within: .seconds(1))
            try await hub.waitForEvent("session.disconnected", within: .seconds(10), where: isCluster("eu-1"))
            #expect(!hub.lines.contains { $0.event == "session.protocol_violation" }, "nothing half-written")

            hub.send(SIGTERM)
            #expect(await hub.waitForExit(within: .seconds(15)) == 0)
            let ended = try await staying.waitForEvent("session.ended", within: .seconds(10))
            #expect(ended["tether.reason"]?.contains("draining") == true)
        }
    }

    @Test(
        "an agent on the system's OpenSSL resumes its TLS session with a hub on either library; a resumed session is checked again and refused once revoked; openssl s_client resumes",
        arguments: AgentPortTLS.allCases
    )
    func resumption(hubTLS: AgentPortTLS) async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 0.3, extraArguments: ["--agent-tls", hubTLS.rawValue])
            let agent = try federation.startAgent(
                bundle: try federation.issueBundle(cluster: "eu-1", hubPort: port),
                extraArguments: ["--tls", "openssl", "--backoff-initial", "0.1", "--backoff-max", "0.2"])
            let first = try await hub.waitForEvent("session.established", within: .seconds(20)) { $0["tether.cluster"] == "eu-1" }
            #expect(first["tether.tls_resumed"] == "false", "\(first.raw)")

            // The agent falls silent; the hub closes its session after three heartbeats, and the
            // agent comes back with the ticket the hub gave it.
            let mark = hub.mark
            agent.send(SIGSTOP)
            try await hub.waitForEvent("session.heartbeat_missed", after: mark, within: .seconds(10)) { $0["tether.cluster"] == "eu-1" }
            agent.send(SIGCONT)
            let again = try await hub.waitForEvent("session.established", after: mark, within: .seconds(20)) { $0["tether.cluster"] == "eu-1" }
            #expect(again["tether.tls_resumed"] == "true", "\(again.raw)")

            // A real client: the ticket of one connection resumes the next.
            let probe = try federation.issueBundle(cluster: "probe", hubPort: port)
            let ticket = federation.root + "/probe.session"
            // s_client says hello, so the hub writes (BoringSSL sends its ticket with its first write).
            let helloFrame = federation.root + "/hello.frame"
            let hello = Array(#"{"protocolVersions":[1],"agentVersion":"s_client","cluster":"probe","kinds":[]}"#.utf8)
            try Data(withUnsafeBytes(of: UInt32(hello.count + 2).bigEndian, Array.init) + [WireMessage.Kind.hello.rawValue, 0] + hello)
                .write(to: URL(fileURLWithPath: helloFrame))
            func sClient(_ session: [String]) async throws -> String {
                let shell = try federation.launch(
                    name: "s_client",
                    executable: URL(fileURLWithPath: "/bin/sh"),
                    arguments: [
                        "-c",
                        "(cat \(helloFrame); sleep 1) | openssl s_client -connect 127.0.0.1:\(port) -tls1_3 -alpn tether/1 -CAfile \(federation.directory.caCertificatePath) "
                            + "-cert \(probe.certificatePath) -key \(probe.keyPath) \(session.joined(separator: " ")) 2>&1",
                    ]
                )
                _ = await shell.waitForExit(within: .seconds(20))
                return shell.lines.map(\.raw).joined(separator: "\n")
            }
            let full = try await sClient(["-sess_out", ticket])
            #expect(full.contains("New, TLSv1.3"), "\(full)")
            let resumed = try await sClient(["-sess_in", ticket])
            #expect(resumed.contains("Reused, TLSv1.3"), "\(resumed)")

            // Revoked: the same ticket still resumes at the TLS layer, and the hub refuses it as it
            // refuses a full handshake.
            let revoked = try await run(
                "tetherctl", ["certs", "revoke", "--dir", federation.directory.path, "--cluster", "probe", "--reason", "test"])
            #expect(revoked.status == 0, "\(revoked.output)")
            try await hub.waitForEvent("certificates.revocations_loaded", within: .seconds(10))
            let refusedMark = hub.mark
            _ = try await sClient(["-sess_in", ticket])
            let refusal = try await hub.waitForEvent("session.refused", after: refusedMark, within: .seconds(20)) {
                $0["tether.refusal"] == "revoked"
            }
            #expect(refusal["tether.tls_resumed"] == "true", "\(refusal.raw)")
        }
    }

}
