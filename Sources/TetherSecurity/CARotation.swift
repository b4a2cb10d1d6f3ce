import Foundation
import X509

/// A CA rollover in progress, as `D/ca-rotation.json` records it (written by `tetherctl certs
/// rotate-ca` or `Certs/rotate-ca.sh`).
public struct CARotation: Codable, Sendable, Hashable {
    public var startedAt: Date
    /// The serial of the CA that signs from now on.
    public var signingSerial: String
    /// The serials of the CAs still trusted until `rotate-ca --finish`.
    public var retiringSerials: [String]
}

extension FederationDirectory {
    public var revocationListPath: String { (path as NSString).appendingPathComponent("revoked.json") }
    /// The retired CA's key, kept until the rollover finishes (then deleted).
    public var previousCAKeyPath: String { (path as NSString).appendingPathComponent("ca.previous.key") }
    public var caRotationPath: String { (path as NSString).appendingPathComponent("ca-rotation.json") }

    /// The rollover in progress, or nil.
    public func loadCARotation() throws(SecurityError) -> CARotation? {
        guard FileManager.default.fileExists(atPath: caRotationPath) else { return nil }
        return try PEMFiles.readJSON(CARotation.self, from: caRotationPath)
    }

    /// Starts a CA rollover: a new CA signs from now on, and the bundle trusts it and every
    /// current CA, so certificates from either are accepted while agents renew onto the new one.
    ///
    /// Re-issues the hub's certificate and the admin's (and `D/kubeconfig`) from the new CA. The
    /// hub reloads the bundle and its certificate from disk and sends the bundle to every agent,
    /// which then renews. `finishCARotation()` drops the old CAs.
    @discardableResult
    public func rotateCA(validity: Duration = .days(3650), now: Date = Date()) throws(SecurityError) -> CARotation {
        if let rotation = try loadCARotation() {
            throw SecurityError(
                .alreadyInitialized,
                "a CA rollover started at \(rotation.startedAt.formatted(.iso8601)) is not finished; run "
                    + "`tetherctl certs rotate-ca --dir \(path) --finish` once every agent has renewed"
            )
        }
        let config = try loadConfig()
        let current = try loadAuthority()
        let bundle = try loadTrustBundle()
        let next = try CertificateAuthority.create(trustDomain: config.trustDomain, validity: validity, now: now)
        let server = try kubeconfigServer()

        try PEMFiles.writeAtomically(current.keyed.privateKeyPEM, to: previousCAKeyPath, mode: PEMFiles.privateKeyMode)
        let rotation = CARotation(
            startedAt: now, signingSerial: CertificateSummary(next.certificate).serial,
            retiringSerials: bundle.map { CertificateSummary($0).serial }
        )
        try PEMFiles.writeJSON(rotation, to: caRotationPath)
        // The bundle (trusting both) goes first, then the key, so a reader never meets a signing
        // key whose certificate it does not trust.
        try writeTrustBundle([next.certificate] + bundle)
        try PEMFiles.writeAtomically(next.keyed.privateKeyPEM, to: caKeyPath, mode: PEMFiles.privateKeyMode)
        _ = try renewHubCertificate(now: now)
        try renewAdminCertificate(server: server, now: now)
        return rotation
    }

    /// Ends the rollover: the bundle keeps only the signing CA and the old CA's key is deleted.
    /// Refuses while the hub's or the admin's certificate is still from an old CA.
    @discardableResult
    public func finishCARotation() throws(SecurityError) -> [CertificateSummary] {
        guard try loadCARotation() != nil else {
            throw SecurityError(.unreadableFile, "no CA rollover is in progress in \(path); start one with `tetherctl certs rotate-ca`")
        }
        let signing = try loadAuthority().certificate
        for (name, file) in [("hub", hubCertificatePath), ("admin", adminCertificatePath)] {
            let certificate = try PEMFiles.readCertificates(at: file)[0]
            guard certificate.issuer == signing.subject, signing.publicKey.isValidSignature(certificate.signature, for: certificate) else {
                throw SecurityError(
                    .issuingFailed,
                    "the \(name) certificate (\(file)) is still from '\(certificate.issuer)'; renew it with "
                        + "`tetherctl certs renew --dir \(path) --hub` before finishing"
                )
            }
        }
        let bundle = try loadTrustBundle()
        let retired = bundle.filter { $0 != signing }
        let server = try kubeconfigServer()
        try writeTrustBundle([signing])
        try writeKubeconfig(server: server, to: kubeconfigPath)
        unlink(previousCAKeyPath)
        unlink(caRotationPath)
        return retired.map(CertificateSummary.init)
    }

    /// Re-issues `admin.crt` from the signing CA and rewrites `D/kubeconfig` for `server`.
    public func renewAdminCertificate(server: String, validity: Duration = .days(365), now: Date = Date()) throws(SecurityError) {
        let config = try loadConfig()
        let admin = try loadAuthority().issue(for: .user("admin", trustDomain: config.trustDomain), usage: .client, validity: validity, now: now)
        try PEMFiles.writeAtomically(admin.privateKeyPEM, to: adminKeyPath, mode: PEMFiles.privateKeyMode)
        try PEMFiles.writeAtomically(try admin.certificatePEM, to: adminCertificatePath, mode: PEMFiles.certificateMode)
        try writeKubeconfig(server: server, to: kubeconfigPath)
    }

    /// `ca.crt` as written: every CA in order, the signing one first.
    public func writeTrustBundle(_ authorities: [Certificate]) throws(SecurityError) {
        var text = ""
        for authority in authorities { text += try PEMFiles.pem(of: authority) }
        try PEMFiles.writeAtomically(text, to: caCertificatePath, mode: PEMFiles.certificateMode)
    }

    /// Adds an entry to the hub's revocation list (`D/revoked.json`); the hub reloads it at once.
    public func revoke(_ entry: RevocationList.Entry) throws(SecurityError) {
        var list = try RevocationList.load(from: revocationListPath)
        list.entries.append(entry)
        try list.save(to: revocationListPath)
    }

    /// The API server in `D/kubeconfig`, or the default one.
    func kubeconfigServer() throws(SecurityError) -> String {
        let fallback = "https://\(HubHostNames(try loadConfig().hubHosts).urlHost):\(Self.defaultAPIPort)"
        guard let text = try? PEMFiles.readText(at: kubeconfigPath) else { return fallback }
        for line in text.split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("server:") {
                return trimmed.dropFirst("server:".count).trimmingCharacters(in: CharacterSet(charactersIn: " \"'"))
            }
        }
        return fallback
    }
}
