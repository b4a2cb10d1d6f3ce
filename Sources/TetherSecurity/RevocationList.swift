import Foundation
import X509

/// The certificates the hub refuses although they chain to its CA: `D/revoked.json`, written
/// by `tetherctl certs revoke` and `tetherctl unjoin`, read (and watched) by the hub.
///
/// An entry names one certificate by serial, or every certificate of an identity issued up to
/// the moment of revocation (when it was issued is read from its validity period, to the
/// second; see ``CertificateAuthority/issuedAt(_:)``), so joining the cluster again a few
/// seconds later works.
public struct RevocationList: Codable, Sendable, Hashable {
    public struct Entry: Codable, Sendable, Hashable {
        /// Hex, as `tetherctl certs inspect` prints it.
        public var serial: String?
        /// `spiffe://...`: every certificate of this identity issued by `revokedAt`.
        public var identity: String?
        public var revokedAt: Date
        public var reason: String

        public init(serial: String? = nil, identity: String? = nil, revokedAt: Date = Date(), reason: String) {
            self.serial = serial?.uppercased()
            self.identity = identity
            // Whole seconds, rounded up, as the file keeps them (see `covers`).
            self.revokedAt = Date(timeIntervalSince1970: revokedAt.timeIntervalSince1970.rounded(.up))
            self.reason = reason
        }

        func covers(_ certificate: CertificateSummary, ancestors: [String]) -> Bool {
            if let serial, certificate.serial == serial || ancestors.contains(serial) { return true }
            if let identity, certificate.identity == identity {
                // Certificate times are rounded to whole seconds and `revokedAt` is rounded up, so
                // "at or before" covers every certificate issued before the revocation; one issued
                // more than 1.5 s after it is valid.
                return certificate.issuedAt <= revokedAt
            }
            return false
        }
    }

    public var entries: [Entry]

    public init(entries: [Entry] = []) {
        self.entries = entries
    }

    /// The entry that revokes `certificate`, if any: by its serial, by the serial of a certificate
    /// it was renewed from (`ancestors`, from the ``RenewalLedger``), or by its identity.
    public func revocation(of certificate: Certificate, ancestors: [String] = []) -> Entry? {
        revocation(of: CertificateSummary(certificate), ancestors: ancestors)
    }

    /// The same, for a certificate a session keeps only the summary of.
    public func revocation(of certificate: CertificateSummary, ancestors: [String] = []) -> Entry? {
        entries.first { $0.covers(certificate, ancestors: ancestors) }
    }

    /// The list at `path`; an absent file is an empty list, a malformed one an error.
    public static func load(from path: String) throws(SecurityError) -> RevocationList {
        guard FileManager.default.fileExists(atPath: path) else { return RevocationList() }
        return try PEMFiles.readJSON(RevocationList.self, from: path)
    }

    public func save(to path: String) throws(SecurityError) {
        try PEMFiles.writeJSON(self, to: path)
    }
}
