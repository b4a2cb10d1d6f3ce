import Crypto
import Foundation
import X509

/// What `agent.json` in an agent bundle says: which cluster, which federation, where the hub is.
public struct AgentManifest: Codable, Sendable, Hashable {
    public var cluster: String
    public var trustDomain: String
    /// `host:port` addresses of the hub's agent listener, tried in order.
    public var hubAddresses: [String]
    /// What the agent may write (`group/Kind`, the core group empty: `/ConfigMap`); nil: the kinds
    /// of its built-in plugins. `--allow-kind` overrides it.
    public var allowKinds: [String]?
    /// Namespaces it may write; nil: every one not denied.
    public var allowNamespaces: [String]?
    /// Namespaces it never writes; nil: the system namespaces (kube-system, kube-public, kube-node-lease).
    public var denyNamespaces: [String]?

    public init(
        cluster: String, trustDomain: String, hubAddresses: [String], allowKinds: [String]? = nil, allowNamespaces: [String]? = nil,
        denyNamespaces: [String]? = nil
    ) {
        self.cluster = cluster
        self.trustDomain = trustDomain
        self.hubAddresses = hubAddresses
        self.allowKinds = allowKinds
        self.allowNamespaces = allowNamespaces
        self.denyNamespaces = denyNamespaces
    }
}

/// An agent bundle `B` (DESIGN.md section 10): `tls.crt`, `tls.key`, `ca.crt` and `agent.json`.
public struct AgentBundle: Sendable {
    public let path: String

    public init(path: String) {
        self.path = (path as NSString).standardizingPath
    }

    public var certificatePath: String { file("tls.crt") }
    public var keyPath: String { file("tls.key") }
    public var caBundlePath: String { file("ca.crt") }
    public var manifestPath: String { file("agent.json") }

    private func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    /// Writes the bundle; the key is written first and readable by its owner only.
    public func write(
        certificate: KeyedCertificate,
        trustBundle: [Certificate],
        manifest: AgentManifest
    ) throws(SecurityError) {
        try PEMFiles.makeDirectory(path)
        try PEMFiles.writeAtomically(certificate.privateKeyPEM, to: keyPath, mode: PEMFiles.privateKeyMode)
        try PEMFiles.writeAtomically(try certificate.certificatePEM, to: certificatePath, mode: PEMFiles.certificateMode)
        var bundle = ""
        for authority in trustBundle { bundle += try PEMFiles.pem(of: authority) + "\n" }
        try PEMFiles.writeAtomically(bundle, to: caBundlePath, mode: PEMFiles.certificateMode)
        try PEMFiles.writeJSON(manifest, to: manifestPath)
    }

    public func loadManifest() throws(SecurityError) -> AgentManifest {
        guard FileManager.default.fileExists(atPath: manifestPath) else {
            throw SecurityError(
                .unreadableFile,
                "\(path) is not an agent bundle (no agent.json); create one with "
                    + "`tetherctl certs issue --dir D --cluster NAME --out \(path)`"
            )
        }
        return try PEMFiles.readJSON(AgentManifest.self, from: manifestPath)
    }

    /// The agent's TLS material, checked: the key matches, the certificate names the manifest's cluster.
    public func loadMaterial() throws(SecurityError) -> TLSMaterial {
        let manifest = try loadManifest()
        let material = try TLSMaterial.load(certificate: certificatePath, key: keyPath, trustBundle: caBundlePath)
        let expected = try TetherIdentity.cluster(manifest.cluster, trustDomain: manifest.trustDomain)
        guard material.identity == expected else {
            throw SecurityError(
                .noIdentity,
                "\(certificatePath) is for \(material.identity), but agent.json names \(expected.uri)"
            )
        }
        return material
    }
}

extension AgentBundle {
    var pendingKeyPath: String { keyPath + ".next" }
    var pendingCertificatePath: String { certificatePath + ".next" }

    /// Replaces the key and certificate with a renewed pair so that a crash at any moment leaves
    /// a usable pair: both new files are written (and synced) beside the old ones, then renamed
    /// over them, key first. ``recoverInterruptedRenewal()`` finishes a rename cut short.
    public func replaceCredentials(_ renewed: KeyedCertificate) throws(SecurityError) {
        try PEMFiles.writeAtomically(renewed.privateKeyPEM, to: pendingKeyPath, mode: PEMFiles.privateKeyMode)
        try PEMFiles.writeAtomically(try renewed.certificatePEM, to: pendingCertificatePath, mode: PEMFiles.certificateMode)
        try commitPending()
    }

    /// Finishes a renewal interrupted between writing the new pair and renaming it into place,
    /// or discards a new pair that was never completed. Returns what it did, for the log.
    @discardableResult
    public func recoverInterruptedRenewal() throws(SecurityError) -> String? {
        let manager = FileManager.default
        guard manager.fileExists(atPath: pendingCertificatePath) else {
            if manager.fileExists(atPath: pendingKeyPath) {
                unlink(pendingKeyPath)
                return "discarded a renewed key whose certificate never arrived"
            }
            return nil
        }
        let certificate = try? PEMFiles.readCertificates(at: pendingCertificatePath)[0]
        let pendingKey = try? PEMFiles.readPrivateKey(at: pendingKeyPath)
        let currentKey = try? PEMFiles.readPrivateKey(at: keyPath)
        func matches(_ key: P256.Signing.PrivateKey?) -> Bool {
            guard let key, let certificate else { return false }
            return (try? KeyedCertificate(certificate: certificate, privateKey: key)) != nil
        }
        if matches(pendingKey) || matches(currentKey) {
            try commitPending()
            return "completed an interrupted renewal"
        }
        unlink(pendingKeyPath)
        unlink(pendingCertificatePath)
        return "discarded an unusable renewed pair"
    }

    private func commitPending() throws(SecurityError) {
        if FileManager.default.fileExists(atPath: pendingKeyPath), rename(pendingKeyPath, keyPath) != 0 {
            throw SecurityError(.unwritableFile, "cannot move \(pendingKeyPath) into place: \(String(cString: strerror(errno)))")
        }
        guard rename(pendingCertificatePath, certificatePath) == 0 else {
            throw SecurityError(.unwritableFile, "cannot move \(pendingCertificatePath) into place: \(String(cString: strerror(errno)))")
        }
    }

    /// Replaces `ca.crt` with the bundle the hub sent.
    public func replaceTrustBundle(_ pem: String) throws(SecurityError) {
        try PEMFiles.writeAtomically(pem, to: caBundlePath, mode: PEMFiles.certificateMode)
    }
}
