import Crypto
import Foundation
import Testing
import TetherLocal
import TetherSecurity
import TetherTestSupport
import TetherWire
import X509

// The certificate lifecycle with real processes: a hub, agents, rotation scripts run with the
// system openssl, `tetherctl`, and `openssl s_client` reading what the hub presents. Every wait
// has a deadline; nothing sleeps to let things settle.

/// The repository root, where `Certs/` lives.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

extension LocalFederation {
    /// The serial (hex, upper case, no leading zeros) of the certificate a server presents to a
    /// new handshake, as `openssl s_client` reads it.
    func presentedSerial(port: Int, alpn: String = "tether/1", client: AgentBundle, caFile: String? = nil) async throws -> String {
        let shell = try launch(
            name: "s_client",
            executable: URL(fileURLWithPath: "/bin/sh"),
            arguments: [
                "-c",
                "openssl s_client -connect 127.0.0.1:\(port) -alpn \(alpn) -CAfile \(caFile ?? directory.caCertificatePath) "
                    + "-cert \(client.certificatePath) -key \(client.keyPath) </dev/null 2>/dev/null | openssl x509 -noout -serial",
            ]
        )
        let line = try await shell.waitForLine(within: .seconds(20), "the serial") { $0.raw.hasPrefix("serial=") }
        return normalizedSerial(String(line.raw.dropFirst("serial=".count)))
    }

    /// Runs a program to its end and returns its exit status and output.
    func run(_ executable: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
        let process = try launch(name: (executable as NSString).lastPathComponent, executable: URL(fileURLWithPath: executable), arguments: arguments)
        guard let status = await process.waitForExit(within: .seconds(60)) else {
            throw KubectlError(description: "\(executable) \(arguments) did not finish: \(process.tail())")
        }
        return (status, process.lines.map(\.raw).joined(separator: "\n"))
    }

    /// An agent bundle whose certificate lives `validity`.
    func issueBundle(cluster: String, hubPort: Int, validity: Duration = .days(365), issuedAt now: Date = Date()) throws -> AgentBundle {
        try directory.issueAgentBundle(
            cluster: cluster, to: (root as NSString).appendingPathComponent("bundles/\(cluster)"),
            hubAddresses: ["127.0.0.1:\(hubPort)"], validity: validity, now: now
        )
    }
}

func normalizedSerial(_ serial: String) -> String { String(serial.uppercased().drop { $0 == "0" }) }

@Suite("certificate lifecycle: reload, renewal, CA rollover, revocation", .timeLimit(.minutes(3)))
struct CertificateLifecycleTests {
    @Test("Certs/rotate-hub-cert.sh (system openssl) replaces the hub's certificate: no session drops, new handshakes on both ports see it")
    func rotateHubCertificateWithScript() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 2)
            var agents: [ManagedProcess] = []
            for name in ["eu-1", "us-1"] {
                let agent = try federation.startAgent(bundle: try federation.issueBundle(cluster: name, hubPort: port))
                try await agent.waitForEvent("session.established", within: .seconds(20))
                agents.append(agent)
            }
            let probe = try federation.issueBundle(cluster: "probe", hubPort: port)
            let apiPort = try #require(try federation.directory.readPorts()?.api)
            let before = try await federation.presentedSerial(port: port, client: probe)
            #expect(try await federation.presentedSerial(port: apiPort, alpn: "http/1.1", client: probe) == before)

            let script = try await federation.run("/bin/sh", [repositoryRoot + "/Certs/rotate-hub-cert.sh", federation.directory.path])
            #expect(script.status == 0, "\(script.output)")
            #expect(script.output.contains("hub certificate replaced"), "\(script.output)")
            let replaced = normalizedSerial(CertificateSummary(try PEMFiles.readCertificates(at: federation.directory.hubCertificatePath)[0]).serial)
            #expect(replaced != before)
            // The hub notices the files by itself: no signal is sent.
            try await hub.waitForEvent("certificates.reloaded", within: .seconds(10)) { normalizedSerial($0["tether.serial"] ?? "") == replaced }
            #expect(try await federation.presentedSerial(port: port, client: probe) == replaced)
            #expect(try await federation.presentedSerial(port: apiPort, alpn: "http/1.1", client: probe) == replaced)
            let late = try federation.startAgent(bundle: try federation.issueBundle(cluster: "ap-1", hubPort: port))
            try await late.waitForEvent("session.established", within: .seconds(20))
            for agent in agents {
                #expect(!agent.lines.contains { $0.event == "session.ended" }, "\(agent.tail())")
            }

            // A mismatched CA key makes the script refuse and change nothing.
            try P256.Signing.PrivateKey().pemRepresentation.write(toFile: federation.directory.caKeyPath, atomically: true, encoding: .utf8)
            let refused = try await federation.run("/bin/sh", [repositoryRoot + "/Certs/rotate-hub-cert.sh", federation.directory.path])
            #expect(refused.status != 0 && refused.output.contains("refusing to run"), "\(refused.output)")
            #expect(
                normalizedSerial(CertificateSummary(try PEMFiles.readCertificates(at: federation.directory.hubCertificatePath)[0]).serial) == replaced
            )
        }
    }

    @Test("an agent with a 12 s certificate renews it over its session, three times, without losing the session; the renewed pair survives a restart")
    func agentRenewsRepeatedly() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 2)
            let bundle = try federation.issueBundle(cluster: "eu-1", hubPort: port, validity: .seconds(12))
            let agent = try federation.startAgent(bundle: bundle)
            try await agent.waitForEvent("session.established", within: .seconds(20))
            var serials: [String] = []
            for round in 1...3 {
                let seen = serials
                let renewed = try await agent.waitForLine(within: .seconds(30), "renewal \(round)") { line in
                    line.event == "certificates.renewed" && !seen.contains(line["tether.serial"] ?? "")
                }
                serials.append(renewed["tether.serial"] ?? "")
            }
            #expect(Set(serials).count == 3)
            let latest = serials[2]
            try await hub.waitForEvent("certificates.signed", within: .seconds(5)) { $0["tether.serial"] == latest }
            #expect(!agent.lines.contains { $0.event == "session.ended" }, "\(agent.tail())")
            // Renewed at two thirds of 12 s: the session has outlived the first certificate, and the bundle holds the latest.
            #expect(
                normalizedSerial(CertificateSummary(try PEMFiles.readCertificates(at: bundle.certificatePath)[0]).serial)
                    == normalizedSerial(serials[2]))

            // The Cluster shows the certificate the agent holds.
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.certificate.serial}=\(serials[2])", "cluster/eu-1", "--timeout=20s"])
            let condition = try await hubctl.succeed([
                "get", "cluster", "eu-1", "-o", #"jsonpath={.status.conditions[?(@.type=="CertificateExpiring")].status}"#,
            ])
            #expect(condition == "False")

            // A restarted agent handshakes with the renewed pair (the one it started with has expired).
            agent.send(SIGTERM)
            _ = await agent.waitForExit(within: .seconds(10))
            let again = try federation.startAgent(name: "agent-eu-1-again", bundle: bundle)
            try await again.waitForEvent("session.established", within: .seconds(20))
        }
    }

    @Test("a certificate request for another cluster's identity is refused and logged as a security event")
    func foreignRenewalRefused() async throws {
        try await withFederation { federation in
            // The test client sends no heartbeats: a long interval keeps the hub from closing it.
            let (hub, port) = try await federation.startHub(heartbeatInterval: 30)
            let client = try await WireTestClient.connect(
                port: port, material: federation.material(for: federation.identity(cluster: "eu-1")),
                hello: Hello(protocolVersions: [1], agentVersion: "test", cluster: "eu-1"))
            try await client.waitForMessage("welcome") { if case .welcome = $0 { true } else { false } }
            let (_, foreign) = try CertificateRenewal.request(for: try federation.identity(cluster: "us-1"))
            try await client.send(.renew(RenewRequest(csr: foreign)))
            let answer = try await client.waitForMessage("certificate") { if case .certificate = $0 { true } else { false } }
            guard case .certificate(let issued) = answer else { return }
            #expect(issued.certificate == nil)
            #expect(issued.error?.contains("may renew only its own identity") == true, "\(issued)")
            let logged = try await hub.waitForEvent("certificates.csr_refused", within: .seconds(10))
            #expect(logged["tether.security"] == "true" && logged["tether.cluster"] == "eu-1")

            // Its own identity is signed; garbage is refused without a security event.
            let (key, own) = try CertificateRenewal.request(for: try federation.identity(cluster: "eu-1"))
            try await client.send(.renew(RenewRequest(csr: own)))
            let signed = try await client.waitForMessage("signed") { if case .certificate(let c) = $0 { c.certificate != nil } else { false } }
            guard case .certificate(let body) = signed, let pem = body.certificate else { return }
            let certificate = try PEMFiles.certificates(inPEM: pem)[0]
            #expect(try KeyedCertificate(certificate: certificate, privateKey: key).certificate == certificate)
            #expect(try TetherIdentity(certificate: certificate) == federation.identity(cluster: "eu-1"))
            try await client.send(.renew(RenewRequest(csr: "not a request")))
            try await hub.waitForEvent("certificates.csr_invalid", within: .seconds(10))
            await client.close()
        }
    }

    @Test(
        "a CA rollover with three agents: rotate-ca, every agent renews onto the new CA over its session, --finish drops the old one; nobody reconnects"
    )
    func caRollover() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 2)
            let names = ["eu-1", "us-1", "ap-1"]
            var agents: [String: ManagedProcess] = [:]
            for name in names {
                agents[name] = try federation.startAgent(bundle: try federation.issueBundle(cluster: name, hubPort: port))
                try await agents[name]?.waitForEvent("session.established", within: .seconds(20))
            }
            let oldCA = try federation.directory.loadAuthority().certificate

            let started = try await run("tetherctl", ["certs", "rotate-ca", "--dir", federation.directory.path, "--output", "json"])
            #expect(started.status == 0, "\(started.output)")
            let newCA = try federation.directory.loadAuthority().certificate
            #expect(newCA != oldCA)
            #expect(try federation.directory.loadTrustBundle() == [newCA, oldCA])
            try await hub.waitForEvent("certificates.reloaded", within: .seconds(10)) { $0["tether.cas"] == "2" }
            var renewedSerials: [String: String] = [:]
            for name in names {
                let renewed = try await agents[name]?.waitForEvent("certificates.renewed", within: .seconds(20)) {
                    $0["tether.issuer"] == newCA.subject.description
                }
                renewedSerials[name] = renewed?["tether.serial"]
            }
            // Finishing is refused nowhere now: the hub and admin certificates were re-issued by rotate-ca.
            let finished = try await run("tetherctl", ["certs", "rotate-ca", "--dir", federation.directory.path, "--finish"])
            #expect(finished.status == 0, "\(finished.output)")
            #expect(try federation.directory.loadTrustBundle() == [newCA])
            #expect(!FileManager.default.fileExists(atPath: federation.directory.previousCAKeyPath))
            for name in names {
                try await agents[name]?.waitForEvent("certificates.trust_updated", within: .seconds(20)) { $0["tether.cas"] == "1" }
                let bundle = AgentBundle(path: federation.root + "/bundles/\(name)")
                #expect(try PEMFiles.readCertificates(at: bundle.certificatePath)[0].issuer == newCA.subject)
                #expect(try PEMFiles.readCertificates(at: bundle.caBundlePath) == [newCA])
                #expect(!(agents[name]?.lines.contains { $0.event == "session.ended" } ?? true), "\(name) kept its session")
            }
            // New handshakes both ways on the new chain alone: an agent restarts, kubectl uses the rewritten admin pair.
            let leaving = try #require(agents["eu-1"])
            leaving.send(SIGTERM)
            _ = await leaving.waitForExit(within: .seconds(10))
            let back = try federation.startAgent(name: "agent-eu-1-back", bundle: AgentBundle(path: federation.root + "/bundles/eu-1"))
            try await back.waitForEvent("session.established", within: .seconds(20))
            let apiPort = try #require(try federation.directory.readPorts()?.api)
            try federation.directory.writeKubeconfig(server: "https://127.0.0.1:\(apiPort)", to: federation.kubeconfigPath)
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-rotated")
            for name in names where name != "eu-1" {
                let serial = try #require(renewedSerials[name])
                try await hubctl.succeed(["wait", "--for=jsonpath={.status.certificate.serial}=\(serial)", "cluster/\(name)", "--timeout=20s"])
            }
            let again = try await run("tetherctl", ["certs", "rotate-ca", "--dir", federation.directory.path, "--finish"])
            #expect(again.status != 0 && again.output.contains("no CA rollover is in progress"), "\(again.output)")
        }
    }

    @Test("revoking a connected cluster cuts its session within a second and it cannot reconnect; revocation by serial too; others go on")
    func revocation() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 2)
            var agents: [String: ManagedProcess] = [:]
            for name in ["eu-1", "us-1", "ap-1"] {
                agents[name] = try federation.startAgent(
                    bundle: try federation.issueBundle(cluster: name, hubPort: port),
                    extraArguments: ["--backoff-initial", "0.2", "--backoff-max", "0.5"]
                )
                try await agents[name]?.waitForEvent("session.established", within: .seconds(20))
            }
            let revoked = try await run(
                "tetherctl", ["certs", "revoke", "--dir", federation.directory.path, "--cluster", "eu-1", "--reason", "test"])
            #expect(revoked.status == 0, "\(revoked.output)")
            let cutAt = ContinuousClock.now
            try await hub.waitForEvent("session.revoked", within: .seconds(1)) { $0["tether.cluster"] == "eu-1" }
            try await agents["eu-1"]?.waitForEvent("agent.revoked", within: .seconds(1))
            #expect(ContinuousClock.now - cutAt < .seconds(1))

            // Its next handshake is refused as revoked (the agent retries after the hub's hint; a new process retries at once).
            agents["eu-1"]?.send(SIGTERM)
            _ = await agents["eu-1"]?.waitForExit(within: .seconds(10))
            let retry = try federation.startAgent(name: "agent-eu-1-retry", bundle: AgentBundle(path: federation.root + "/bundles/eu-1"))
            let refusal = try await hub.waitForEvent("session.refused", within: .seconds(20)) { $0["tether.refusal"] == "revoked" }
            #expect(refusal["tether.reason"]?.contains("was revoked") == true)
            #expect(!retry.lines.contains { $0.event == "session.established" })

            // By serial: only that certificate.
            let serial = CertificateSummary(try PEMFiles.readCertificates(at: federation.root + "/bundles/us-1/tls.crt")[0]).serial
            let bySerial = try await run("tetherctl", ["certs", "revoke", "--dir", federation.directory.path, "--serial", serial])
            #expect(bySerial.status == 0, "\(bySerial.output)")
            try await hub.waitForEvent("session.revoked", within: .seconds(1)) { $0["tether.cluster"] == "us-1" }
            #expect(!(agents["ap-1"]?.lines.contains { $0.event == "session.ended" } ?? true))

            // Joining the name again gives a bundle the revocation does not cover: one issued more
            // than 1.5 s after it (the certificate's clock reads 2 s ahead; it is backdated a minute,
            // so it is valid now).
            let fresh = try federation.issueBundle(cluster: "eu-1", hubPort: port, issuedAt: Date().addingTimeInterval(2))
            let rejoined = try federation.startAgent(name: "agent-eu-1-new", bundle: fresh)
            try await rejoined.waitForEvent("session.established", within: .seconds(20))
            let list = try RevocationList.load(from: federation.directory.revocationListPath)
            #expect(list.entries.count == 2)
        }
    }

    @Test("garbage, a truncated file or a mismatched key in the watched files changes nothing and is logged, at the hub and at the agent")
    func badFilesRefused() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 2)
            let bundle = try federation.issueBundle(cluster: "eu-1", hubPort: port)
            let agent = try federation.startAgent(bundle: bundle)
            try await agent.waitForEvent("session.established", within: .seconds(20))
            let probe = try federation.issueBundle(cluster: "probe", hubPort: port)
            // The probe trusts a copy of the bundle: one case below garbles the bundle itself.
            let trusted = federation.root + "/trusted-ca.crt"
            try FileManager.default.copyItem(atPath: federation.directory.caCertificatePath, toPath: trusted)
            let serial = try await federation.presentedSerial(port: port, client: probe, caFile: trusted)
            let directory = federation.directory
            let goodKey = try PEMFiles.readText(at: directory.hubKeyPath)
            let goodCertificate = try PEMFiles.readText(at: directory.hubCertificatePath)

            let cases: [(String, String, String)] = [
                ("garbage certificate", directory.hubCertificatePath, "this is not PEM"),
                ("truncated key", directory.hubKeyPath, String(goodKey.prefix(goodKey.count / 2))),
                ("mismatched key", directory.hubKeyPath, P256.Signing.PrivateKey().pemRepresentation),
                ("truncated CA bundle", directory.caCertificatePath, String(try PEMFiles.readText(at: directory.caCertificatePath).prefix(100))),
            ]
            var refusals = 0
            for (name, path, contents) in cases {
                let original = try PEMFiles.readText(at: path)
                try PEMFiles.writeAtomically(contents, to: path, mode: 0o600)
                refusals += 1
                try await hub.waitForEvent("certificates.reload_refused", occurrence: refusals, within: .seconds(10))
                #expect(try await federation.presentedSerial(port: port, client: probe, caFile: trusted) == serial, "\(name)")
                try PEMFiles.writeAtomically(original, to: path, mode: 0o600)
            }
            #expect(try PEMFiles.readText(at: directory.hubCertificatePath) == goodCertificate)
            let revocations = directory.revocationListPath
            try "{ not json".write(toFile: revocations, atomically: true, encoding: .utf8)
            try await hub.waitForEvent("certificates.revocations_refused", within: .seconds(10))

            // The agent: a foreign key, then garbage, in its bundle are refused; its session goes on.
            let agentKey = try PEMFiles.readText(at: bundle.keyPath)
            let agentCertificate = try PEMFiles.readText(at: bundle.certificatePath)
            try PEMFiles.writeAtomically(P256.Signing.PrivateKey().pemRepresentation, to: bundle.keyPath, mode: 0o600)
            let refused = try await agent.waitForEvent("certificates.reload_refused", within: .seconds(10))
            #expect(refused["tether.reason"]?.contains("not the private key") == true, "\(refused)")
            try PEMFiles.writeAtomically(agentKey, to: bundle.keyPath, mode: 0o600)
            try PEMFiles.writeAtomically("-----BEGIN CERTIFICATE-----\ngarbage", to: bundle.certificatePath, mode: 0o644)
            try await agent.waitForEvent("certificates.reload_refused", occurrence: 2, within: .seconds(10))
            try PEMFiles.writeAtomically(agentCertificate, to: bundle.certificatePath, mode: 0o644)
            #expect(!agent.lines.contains { $0.event == "certificates.reloaded" }, "no bad set was ever taken")
            #expect(!agent.lines.contains { $0.event == "session.ended" })
            #expect(!hub.lines.contains { $0.event == "certificates.reloaded" }, "no bad set was ever taken")
        }
    }
}
