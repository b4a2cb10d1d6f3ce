import Crypto
import Foundation
import Testing
import TetherSecurity
import TetherTestSupport
import X509

/// A federation directory in a scratch folder.
private func federation() throws -> (FederationDirectory, ScratchDirectory) {
    let scratch = try ScratchDirectory("tether-lifecycle")
    let directory = FederationDirectory(path: scratch.file("fed"))
    try directory.initialize(trustDomain: "tether.test")
    return (directory, scratch)
}

@Suite("Certificate renewal over the session")
struct RenewalTests {
    @Test("the hub signs a request for the session's own identity, with the lifetime of the certificate it replaces")
    func signsOwnIdentity() throws {
        let (directory, scratch) = try federation()
        let identity = try TetherIdentity.cluster("eu-1", trustDomain: "tether.test")
        let bundle = try directory.issueAgentBundle(cluster: "eu-1", to: scratch.file("b"), hubAddresses: ["h:1"], validity: .seconds(600))
        let current = try PEMFiles.readCertificates(at: bundle.certificatePath)[0]
        let (key, csr) = try CertificateRenewal.request(for: identity)
        let issued = try CertificateRenewal.sign(
            csr, for: identity, current: CertificateSummary(current), authority: try directory.loadAuthority(), maximumLifetime: .days(365)
        )
        #expect(try TetherIdentity(certificate: issued) == identity)
        #expect(issued.publicKey == Certificate.PublicKey(key.publicKey))
        #expect(abs(CertificateAuthority.lifetime(of: issued) - 600) < 2)
        #expect(abs(CertificateAuthority.issuedAt(issued).timeIntervalSinceNow) < 5)

        // The maximum caps it.
        let capped = try CertificateRenewal.sign(
            csr, for: identity, current: CertificateSummary(current), authority: try directory.loadAuthority(), maximumLifetime: .seconds(100))
        #expect(abs(CertificateAuthority.lifetime(of: capped) - 100) < 2)
    }

    @Test("a request naming another identity, or none, is a security event; a malformed one is not")
    func refusesOthers() throws {
        let (directory, scratch) = try federation()
        let identity = try TetherIdentity.cluster("eu-1", trustDomain: "tether.test")
        let bundle = try directory.issueAgentBundle(cluster: "eu-1", to: scratch.file("b"), hubAddresses: ["h:1"])
        let current = try PEMFiles.readCertificates(at: bundle.certificatePath)[0]
        let authority = try directory.loadAuthority()
        for other in [try TetherIdentity.cluster("us-1", trustDomain: "tether.test"), try TetherIdentity.hub(trustDomain: "tether.test")] {
            let (_, csr) = try CertificateRenewal.request(for: other)
            let refusal = #expect(throws: CertificateRenewal.Refusal.self) {
                try CertificateRenewal.sign(csr, for: identity, current: CertificateSummary(current), authority: authority, maximumLifetime: .days(1))
            }
            #expect(refusal?.isSecurityEvent == true)
            #expect(refusal?.reason.contains(other.uri) == true)
        }
        let malformed = #expect(throws: CertificateRenewal.Refusal.self) {
            try CertificateRenewal.sign(
                "garbage", for: identity, current: CertificateSummary(current), authority: authority, maximumLifetime: .days(1))
        }
        #expect(malformed?.isSecurityEvent == false)
    }

    @Test("short lifetimes are backdated by a tenth, long ones by a minute; issuedAt and lifetime read them back")
    func backdate() throws {
        let authority = try CertificateAuthority.create(trustDomain: "tether.test")
        let identity = try TetherIdentity.cluster("eu-1", trustDomain: "tether.test")
        for (lifetime, backdate) in [(30.0, 3.0), (86_400.0, 60.0)] {
            let now = Date()
            let issued = try authority.issue(for: identity, usage: .client, validity: .seconds(lifetime), now: now).certificate
            #expect(abs(now.timeIntervalSince(issued.notValidBefore) - backdate) < 1)
            #expect(abs(CertificateAuthority.lifetime(of: issued) - lifetime) < 1)
            #expect(abs(CertificateAuthority.issuedAt(issued).timeIntervalSince(now)) < 1)
        }
    }
}

@Suite("Renewed pairs on disk")
struct BundleRenewalTests {
    private func renewed(_ bundle: AgentBundle, _ directory: FederationDirectory) throws -> KeyedCertificate {
        try directory.loadAuthority().issue(for: .cluster("eu-1", trustDomain: "tether.test"), usage: .client)
    }

    @Test("a renewal cut short after either rename is completed at start; one cut before is discarded")
    func recovery() throws {
        let (directory, scratch) = try federation()
        let bundle = try directory.issueAgentBundle(cluster: "eu-1", to: scratch.file("b"), hubAddresses: ["h:1"])
        let original = try bundle.loadMaterial()

        // Both new files written, nothing renamed: completed.
        let first = try renewed(bundle, directory)
        try PEMFiles.writeAtomically(first.privateKeyPEM, to: bundle.keyPath + ".next", mode: 0o600)
        try PEMFiles.writeAtomically(try first.certificatePEM, to: bundle.certificatePath + ".next", mode: 0o644)
        #expect(try bundle.recoverInterruptedRenewal() == "completed an interrupted renewal")
        #expect(try bundle.loadMaterial().leaf == first.certificate)

        // The key renamed, the certificate not: completed (the new key matches the waiting certificate).
        let second = try renewed(bundle, directory)
        try PEMFiles.writeAtomically(second.privateKeyPEM, to: bundle.keyPath, mode: 0o600)
        try PEMFiles.writeAtomically(try second.certificatePEM, to: bundle.certificatePath + ".next", mode: 0o644)
        #expect(try bundle.recoverInterruptedRenewal() == "completed an interrupted renewal")
        #expect(try bundle.loadMaterial().leaf == second.certificate)

        // Only a new key, its certificate never arrived: discarded, the pair in place stays.
        try PEMFiles.writeAtomically(P256.Signing.PrivateKey().pemRepresentation, to: bundle.keyPath + ".next", mode: 0o600)
        #expect(try bundle.recoverInterruptedRenewal() == "discarded a renewed key whose certificate never arrived")
        #expect(try bundle.loadMaterial().leaf == second.certificate)
        #expect(try bundle.recoverInterruptedRenewal() == nil)
        #expect(original.leaf != second.certificate)
    }

    @Test("replaceCredentials leaves a matching pair and no leftovers")
    func replace() throws {
        let (directory, scratch) = try federation()
        let bundle = try directory.issueAgentBundle(cluster: "eu-1", to: scratch.file("b"), hubAddresses: ["h:1"])
        let next = try renewed(bundle, directory)
        try bundle.replaceCredentials(next)
        #expect(try bundle.loadMaterial().leaf == next.certificate)
        let left = try FileManager.default.contentsOfDirectory(atPath: bundle.path).filter { $0.contains(".next") || $0.contains(".tmp") }
        #expect(left.isEmpty, "\(left)")
    }
}

@Suite("Revocation and CA rollover in the federation directory")
struct RolloverTests {
    @Test("a revocation by serial covers that certificate only; by identity every one issued until then")
    func revocationList() async throws {
        let (directory, scratch) = try federation()
        let first = try directory.issueAgentBundle(cluster: "eu-1", to: scratch.file("a"), hubAddresses: ["h:1"])
        let other = try directory.issueAgentBundle(cluster: "us-1", to: scratch.file("b"), hubAddresses: ["h:1"])
        let firstLeaf = try first.loadMaterial().leaf
        let otherLeaf = try other.loadMaterial().leaf
        let bySerial = RevocationList(entries: [.init(serial: CertificateSummary(otherLeaf).serial.lowercased(), reason: "lost")])
        #expect(bySerial.revocation(of: otherLeaf)?.reason == "lost")
        #expect(bySerial.revocation(of: firstLeaf) == nil)

        let identity = try TetherIdentity.cluster("eu-1", trustDomain: "tether.test")
        let byIdentity = RevocationList(entries: [.init(identity: identity.uri, revokedAt: Date().addingTimeInterval(1), reason: "unjoined")])
        #expect(byIdentity.revocation(of: firstLeaf) != nil)
        let later = try directory.loadAuthority().issue(for: identity, usage: .client, now: Date().addingTimeInterval(5)).certificate
        #expect(byIdentity.revocation(of: later) == nil, "a bundle issued after the revocation is valid")

        // The boundary: certificate times are rounded to whole seconds. Every certificate issued
        // before a revocation is covered, whatever its fraction of a second; one issued more than
        // 1.5 s after it is valid.
        let authority = try directory.loadAuthority()
        for revokedAt in [Date(timeIntervalSince1970: 1_800_000_000.4), Date(timeIntervalSince1970: 1_800_000_000.8)] {
            let boundary = RevocationList(entries: [.init(identity: identity.uri, revokedAt: revokedAt, reason: "unjoined")])
            let justBefore = try authority.issue(for: identity, usage: .client, now: revokedAt.addingTimeInterval(-0.1)).certificate
            let after = try authority.issue(for: identity, usage: .client, now: revokedAt.addingTimeInterval(1.6)).certificate
            #expect(boundary.revocation(of: justBefore) != nil, "\(revokedAt.timeIntervalSince1970)")
            #expect(boundary.revocation(of: after) == nil, "\(revokedAt.timeIntervalSince1970)")
        }

        try directory.revoke(.init(identity: identity.uri, reason: "unjoined"))
        try directory.revoke(.init(serial: "ABCD", reason: "lost"))
        let loaded = try RevocationList.load(from: directory.revocationListPath)
        #expect(loaded.entries.map(\.reason) == ["unjoined", "lost"])
        let text = try PEMFiles.readText(at: directory.revocationListPath)
        #expect(text.contains("\"revokedAt\" : \"20"), "dates are ISO 8601 for people and scripts: \(text)")

        let verifier = PeerVerifier(trustRoots: try directory.loadTrustBundle(), trustDomain: "tether.test", revocations: loaded)
        guard case .refused(let refusal) = await verifier.verify(chain: [firstLeaf]) else {
            Issue.record("a revoked certificate was trusted")
            return
        }
        #expect(refusal.code == .revoked && refusal.reason.contains("unjoined"))
    }

    @Test("rotate-ca: the new CA signs, the bundle trusts both, hub and admin re-issued; finish keeps only the new CA")
    func rotation() async throws {
        let (directory, scratch) = try federation()
        let old = try directory.loadAuthority().certificate
        let agent = try directory.issueAgentBundle(cluster: "eu-1", to: scratch.file("b"), hubAddresses: ["h:1"])
        let rotation = try directory.rotateCA()
        let new = try directory.loadAuthority().certificate
        #expect(rotation.signingSerial == CertificateSummary(new).serial)
        #expect(rotation.retiringSerials == [CertificateSummary(old).serial])
        #expect(try directory.loadTrustBundle() == [new, old])
        for file in [directory.hubCertificatePath, directory.adminCertificatePath] {
            #expect(try PEMFiles.readCertificates(at: file)[0].issuer == new.subject)
        }
        #expect(try PEMFiles.readText(at: directory.kubeconfigPath).contains("certificate-authority-data"))
        #expect(FileManager.default.fileExists(atPath: directory.previousCAKeyPath))
        #expect(throws: SecurityError.self) { try directory.rotateCA() }

        // An agent certificate from the old CA still verifies during the overlap.
        let overlap = PeerVerifier(trustRoots: try directory.loadTrustBundle(), trustDomain: "tether.test")
        let leaf = try agent.loadMaterial().leaf
        #expect(await overlap.verify(chain: [leaf]) == .trusted(try TetherIdentity.cluster("eu-1", trustDomain: "tether.test")))

        let retired = try directory.finishCARotation()
        #expect(retired.map(\.serial) == [CertificateSummary(old).serial])
        #expect(try directory.loadTrustBundle() == [new])
        #expect(!FileManager.default.fileExists(atPath: directory.previousCAKeyPath))
        #expect(throws: SecurityError.self) { try directory.finishCARotation() }
        let after = PeerVerifier(trustRoots: try directory.loadTrustBundle(), trustDomain: "tether.test")
        guard case .refused(let refusal) = await after.verify(chain: [leaf]) else {
            Issue.record("a certificate from the retired CA was trusted")
            return
        }
        #expect(refusal.code == .untrustedIssuer)
    }

    @Test("finishing is refused while the hub's certificate is still from the old CA")
    func finishRefused() throws {
        let (directory, scratch) = try federation()
        defer { withExtendedLifetime(scratch) {} }
        let oldHub = try PEMFiles.readText(at: directory.hubCertificatePath)
        let oldHubKey = try PEMFiles.readText(at: directory.hubKeyPath)
        try directory.rotateCA()
        try PEMFiles.writeAtomically(oldHubKey, to: directory.hubKeyPath, mode: 0o600)
        try PEMFiles.writeAtomically(oldHub, to: directory.hubCertificatePath, mode: 0o644)
        let error = #expect(throws: SecurityError.self) { try directory.finishCARotation() }
        #expect(error?.message.contains("hub certificate") == true, "\(String(describing: error))")
        #expect(try directory.loadTrustBundle().count == 2, "nothing changed")
    }
}

@Suite("File watcher", .timeLimit(.minutes(1)))
struct FileWatcherTests {
    @Test("an atomic replace, an in-place write and a removal are each reported with the file's path")
    func reportsChanges() async throws {
        let scratch = try ScratchDirectory("tether-watch")
        let watcher = try FileWatcher(directories: [scratch.path])
        var changes = watcher.changes.makeAsyncIterator()
        let target = scratch.file("hub.crt")

        try PEMFiles.writeAtomically("one", to: target, mode: 0o644)
        var seen = Set<String>()
        while !seen.contains(target), let batch = await changes.next() { seen.formUnion(batch) }

        seen = []
        let handle = try #require(FileHandle(forWritingAtPath: target))
        try handle.write(contentsOf: Data("two".utf8))
        try handle.close()
        while !seen.contains(target), let batch = await changes.next() { seen.formUnion(batch) }

        seen = []
        try FileManager.default.removeItem(atPath: target)
        while !seen.contains(target), let batch = await changes.next() { seen.formUnion(batch) }
        #expect(seen.contains(target))

        watcher.stop()
        while await changes.next() != nil {}
    }

    @Test("watching a directory that does not exist fails with the path in the error")
    func missingDirectory() {
        let error = #expect(throws: SecurityError.self) { try FileWatcher(directories: ["/nonexistent/tether"]) }
        #expect(error?.message.contains("/nonexistent/tether") == true)
    }
}
