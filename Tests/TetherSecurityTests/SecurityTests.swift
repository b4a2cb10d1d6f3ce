import Foundation
import Testing
import TetherSecurity
import TetherTestSupport
import X509

@Suite("Identities")
struct IdentityTests {
    @Test(
        "SPIFFE URIs parse into roles",
        arguments: [
            ("spiffe://tether.local/hub", TetherIdentity.Role.hub), ("spiffe://tether.local/cluster/eu-1", .cluster("eu-1")),
            ("spiffe://tether.local/user/admin", .user("admin")),
        ]
    )
    func parses(uri: String, role: TetherIdentity.Role) throws {
        let identity = try #require(TetherIdentity(uri: uri))
        #expect(identity.role == role)
        #expect(identity.trustDomain == "tether.local")
        #expect(identity.uri == uri)
    }

    @Test(
        "malformed identities are rejected",
        arguments: [
            "https://tether.local/hub", "spiffe://tether.local/cluster/EU_1", "spiffe://tether.local/cluster/",
            "spiffe://tether.local/cluster/a/b", "spiffe://Tether.Local/hub", "spiffe://tether.local/robot/x",
            "spiffe:///hub", "spiffe://tether.local/cluster/-eu",
        ]
    )
    func rejects(uri: String) {
        #expect(TetherIdentity(uri: uri) == nil)
    }

    @Test("cluster names must be DNS labels, and the error says so")
    func clusterNames() {
        #expect(throws: Never.self) { try TetherIdentity.validateClusterName("eu-west-1") }
        let error = #expect(throws: SecurityError.self) { try TetherIdentity.validateClusterName(String(repeating: "a", count: 64)) }
        #expect(error?.code == .invalidName)
        #expect(error?.message.contains("DNS label") == true)
    }
}

@Suite("Issuing and verifying")
struct VerificationTests {
    @Test("an agent certificate carries its identity as a URI SAN and verifies against its CA")
    func trusted() async throws {
        let pki = try TestPKI()
        let agent = try pki.agentMaterial(cluster: "eu-1")
        let summary = CertificateSummary(agent.leaf)
        #expect(summary.uris == ["spiffe://tether.test/cluster/eu-1"])
        #expect(summary.identity == "spiffe://tether.test/cluster/eu-1")
        let verdict = await PeerVerifier(trustRoots: pki.trustRoots, trustDomain: pki.trustDomain).verify(chain: agent.chain)
        #expect(verdict == .trusted(try .cluster("eu-1", trustDomain: "tether.test")))
    }

    @Test("the hub certificate has DNS and IP SANs and serves both TLS roles")
    func hubSANs() throws {
        let hub = try TestPKI().hubMaterial(hosts: ["hub.example"], ips: ["127.0.0.1", "::1"])
        let summary = CertificateSummary(hub.leaf)
        #expect(summary.dnsNames == ["hub.example"])
        #expect(summary.ipAddresses == ["127.0.0.1", "0:0:0:0:0:0:0:1"])
        #expect(summary.identity == "spiffe://tether.test/hub")
        #expect(!summary.isCertificateAuthority)
    }

    @Test("an expired certificate is refused with its expiry time and what to do")
    func expired() async throws {
        let pki = try TestPKI()
        let agent = try pki.agentMaterial(
            cluster: "eu-1",
            notBefore: Date().addingTimeInterval(-7200),
            notAfter: Date().addingTimeInterval(-3600)
        )
        let verdict = await PeerVerifier(trustRoots: pki.trustRoots, trustDomain: pki.trustDomain).verify(chain: agent.chain)
        guard case .refused(let refusal) = verdict else {
            Issue.record("expired certificate accepted")
            return
        }
        #expect(refusal.code == .expired)
        #expect(refusal.reason.contains("expired at"))
        #expect(refusal.reason.contains("tetherctl certs issue"))
    }

    @Test("a certificate that is not yet valid is refused as such")
    func notYetValid() async throws {
        let pki = try TestPKI()
        let agent = try pki.agentMaterial(
            cluster: "eu-1",
            notBefore: Date().addingTimeInterval(3600),
            notAfter: Date().addingTimeInterval(7200)
        )
        let verdict = await PeerVerifier(trustRoots: pki.trustRoots, trustDomain: pki.trustDomain).verify(chain: agent.chain)
        guard case .refused(let refusal) = verdict else {
            Issue.record("future certificate accepted")
            return
        }
        #expect(refusal.code == .notYetValid)
    }

    @Test("a certificate from another CA is refused as an untrusted issuer, even an expired one")
    func otherCA() async throws {
        let ours = try TestPKI()
        let theirs = try TestPKI()
        let verifier = PeerVerifier(trustRoots: ours.trustRoots, trustDomain: ours.trustDomain)
        for material in [
            try theirs.agentMaterial(cluster: "eu-1"),
            try theirs.agentMaterial(cluster: "eu-1", notBefore: Date().addingTimeInterval(-7200), notAfter: Date().addingTimeInterval(-3600)),
        ] {
            guard case .refused(let refusal) = await verifier.verify(chain: material.chain) else {
                Issue.record("foreign certificate accepted")
                continue
            }
            #expect(refusal.code == .untrustedIssuer)
        }
    }

    @Test("a bundle with two CAs trusts certificates from either (CA rollover)")
    func twoCAs() async throws {
        let old = try TestPKI()
        let new = try TestPKI()
        let verifier = PeerVerifier(trustRoots: old.trustRoots + new.trustRoots, trustDomain: old.trustDomain)
        for pki in [old, new] {
            let verdict = await verifier.verify(chain: try pki.agentMaterial(cluster: "eu-1").chain)
            #expect(verdict == .trusted(try .cluster("eu-1", trustDomain: "tether.test")))
        }
    }

    @Test("an identity from another trust domain is refused even from a trusted CA")
    func wrongTrustDomain() async throws {
        let pki = try TestPKI(trustDomain: "tether.test")
        let stranger = try pki.authority.issue(for: .cluster("eu-1", trustDomain: "elsewhere.test"), usage: .client)
        let verdict = await PeerVerifier(trustRoots: pki.trustRoots, trustDomain: "tether.test").verify(chain: [stranger.certificate])
        guard case .refused(let refusal) = verdict else {
            Issue.record("foreign trust domain accepted")
            return
        }
        #expect(refusal.code == .wrongTrustDomain)
    }

    @Test("a key that does not belong to the certificate is refused")
    func keyMismatch() throws {
        let pki = try TestPKI()
        let one = try pki.authority.issue(for: .cluster("a", trustDomain: "tether.test"), usage: .client)
        let two = try pki.authority.issue(for: .cluster("b", trustDomain: "tether.test"), usage: .client)
        let error = #expect(throws: SecurityError.self) { try KeyedCertificate(certificate: one.certificate, privateKey: two.privateKey) }
        #expect(error?.code == .keyMismatch)
    }
}

@Suite("Federation directory and bundles")
struct FederationDirectoryTests {
    @Test("init writes the documented files, keys readable by the owner only, and refuses to overwrite")
    func initialize() throws {
        let scratch = try ScratchDirectory()
        let directory = FederationDirectory(path: scratch.file("fed"))
        try directory.initialize(trustDomain: "tether.test", hubHosts: ["localhost", "127.0.0.1"])
        for (path, mode) in [
            (directory.caCertificatePath, 0o644), (directory.caKeyPath, 0o600), (directory.hubCertificatePath, 0o644),
            (directory.hubKeyPath, 0o600), (directory.adminCertificatePath, 0o644), (directory.adminKeyPath, 0o600),
            (directory.kubeconfigPath, 0o600), (directory.configPath, 0o644),
        ] {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            #expect((attributes[.posixPermissions] as? Int) == mode, "\(path)")
        }
        let kubeconfig = try String(contentsOfFile: directory.kubeconfigPath, encoding: .utf8)
        #expect(kubeconfig.contains("current-context: federation"))
        #expect(kubeconfig.contains("server: https://127.0.0.1:6443"))
        let hub = try PEMFiles.readCertificates(at: directory.hubCertificatePath)[0]
        #expect(CertificateSummary(hub).identity == "spiffe://tether.test/hub")
        let admin = try PEMFiles.readCertificates(at: directory.adminCertificatePath)[0]
        #expect(CertificateSummary(admin).identity == "spiffe://tether.test/user/admin")

        let error = #expect(throws: SecurityError.self) { try directory.initialize(trustDomain: "tether.test") }
        #expect(error?.code == .alreadyInitialized)
    }

    @Test("an issued bundle loads, names the hub from hub.ports.json, and its identity matches agent.json")
    func bundle() throws {
        let scratch = try ScratchDirectory()
        let directory = FederationDirectory(path: scratch.file("fed"))
        try directory.initialize(trustDomain: "tether.test")
        try directory.writePorts(HubPorts(agent: 40_123))
        let bundle = try directory.issueAgentBundle(cluster: "eu-1", to: scratch.file("b"))
        #expect(try bundle.loadManifest() == AgentManifest(cluster: "eu-1", trustDomain: "tether.test", hubAddresses: ["127.0.0.1:40123"]))
        let material = try bundle.loadMaterial()
        #expect(material.identity == (try .cluster("eu-1", trustDomain: "tether.test")))
        let keyMode = try FileManager.default.attributesOfItem(atPath: bundle.keyPath)[.posixPermissions] as? Int
        #expect(keyMode == 0o600)

        // A bundle whose agent.json names another cluster than its certificate is refused on load.
        var manifest = try bundle.loadManifest()
        manifest.cluster = "us-1"
        try PEMFiles.writeJSON(manifest, to: bundle.manifestPath)
        let error = #expect(throws: SecurityError.self) { try bundle.loadMaterial() }
        #expect(error?.code == .noIdentity)
    }

    @Test("unreadable or non-PEM files give a clear error naming the file")
    func badFiles() throws {
        let scratch = try ScratchDirectory()
        try "not a certificate".write(toFile: scratch.file("x.crt"), atomically: true, encoding: .utf8)
        let error = #expect(throws: SecurityError.self) { try PEMFiles.readCertificates(at: scratch.file("x.crt")) }
        #expect(error?.message.contains("x.crt") == true)
        let missing = #expect(throws: SecurityError.self) { try PEMFiles.readPrivateKey(at: scratch.file("none.key")) }
        #expect(missing?.code == .unreadableFile)
        let notFederation = #expect(throws: SecurityError.self) { try FederationDirectory(path: scratch.path).loadConfig() }
        #expect(notFederation?.message.contains("tetherctl init") == true)
    }
}
