import Foundation
import X509

/// A bundle `tetherctl certs issue` wrote, recorded in `D/issued.json` so later checks can find it.
public struct IssuedBundle: Codable, Sendable, Hashable {
    public var cluster: String
    /// The bundle directory, absolute.
    public var path: String
    public var serial: String
    public var notAfter: Date
}

/// One certificate's expiry, as `tetherctl certs check` reports it.
public struct CertificateExpiry: Codable, Sendable, Hashable {
    /// The file, with `#N` for the Nth certificate of a bundle file.
    public var file: String
    public var subject: String
    public var identity: String?
    public var serial: String
    public var notAfter: Date
    /// Seconds from the check to `notAfter`; negative once expired.
    public var secondsLeft: Int64
    /// Whether it expires within the window checked.
    public var expiring: Bool
}

extension FederationDirectory {
    public var issuedBundlesPath: String { (path as NSString).appendingPathComponent("issued.json") }

    /// The bundles issued from this directory, newest record per bundle path.
    public func issuedBundles() throws(SecurityError) -> [IssuedBundle] {
        guard FileManager.default.fileExists(atPath: issuedBundlesPath) else { return [] }
        return try PEMFiles.readJSON([IssuedBundle].self, from: issuedBundlesPath)
    }

    func recordIssued(_ bundle: IssuedBundle) throws(SecurityError) {
        var all = try issuedBundles().filter { $0.path != bundle.path }
        all.append(bundle)
        try PEMFiles.writeJSON(all, to: issuedBundlesPath)
    }

    /// Every certificate the directory and its issued bundles hold, with how long each has left.
    ///
    /// Bundles whose files are gone (moved to their cluster) are checked from the record.
    public func checkExpiry(within window: Duration, now: Date = Date()) throws(SecurityError) -> [CertificateExpiry] {
        var files: [(String, [Certificate])] = []
        for file in [caCertificatePath, hubCertificatePath, adminCertificatePath] {
            files.append((file, try PEMFiles.readCertificates(at: file)))
        }
        var results: [CertificateExpiry] = []
        for bundle in try issuedBundles() {
            let certificatePath = AgentBundle(path: bundle.path).certificatePath
            if FileManager.default.fileExists(atPath: certificatePath) {
                files.append((certificatePath, try PEMFiles.readCertificates(at: certificatePath)))
            } else {
                results.append(
                    CertificateExpiry(
                        file: certificatePath, subject: "cluster:\(bundle.cluster) (file not here; from issued.json)",
                        identity: nil, serial: bundle.serial, notAfter: bundle.notAfter,
                        secondsLeft: Int64(bundle.notAfter.timeIntervalSince(now)),
                        expiring: bundle.notAfter.timeIntervalSince(now) <= window.seconds
                    )
                )
            }
        }
        for (file, certificates) in files {
            for (index, certificate) in certificates.enumerated() {
                let summary = CertificateSummary(certificate)
                let left = certificate.notValidAfter.timeIntervalSince(now)
                results.append(
                    CertificateExpiry(
                        file: certificates.count > 1 ? "\(file)#\(index + 1)" : file, subject: summary.subject,
                        identity: summary.identity, serial: summary.serial, notAfter: summary.notAfter,
                        secondsLeft: Int64(left), expiring: left <= window.seconds
                    )
                )
            }
        }
        return results
    }

    /// Re-issues the hub's certificate and key (same hosts), replacing the files atomically.
    public func renewHubCertificate(validity: Duration = .days(365), now: Date = Date()) throws(SecurityError) -> KeyedCertificate {
        let config = try loadConfig()
        let hosts = HubHostNames(config.hubHosts)
        let hub = try loadAuthority().issue(
            for: .hub(trustDomain: config.trustDomain),
            usage: .server,
            dnsNames: hosts.dnsNames,
            ipAddresses: hosts.ipAddresses,
            validity: validity,
            now: now
        )
        // Key first: a reader that sees the new certificate finds its key already in place.
        try PEMFiles.writeAtomically(hub.privateKeyPEM, to: hubKeyPath, mode: PEMFiles.privateKeyMode)
        try PEMFiles.writeAtomically(try hub.certificatePEM, to: hubCertificatePath, mode: PEMFiles.certificateMode)
        return hub
    }
}
