import CTetherOpenSSL
import Foundation
@_spi(DisableValidityCheck) @_spi(FixedExpiryValidationTime) import X509

/// Decides whether a peer's certificate chain is trusted, and says why not in words an operator can act on.
///
/// The hub uses it as the TLS verification callback for agent connections, so a refusal is
/// logged with its cause ("expired at ...", "issued by an unknown CA") instead of a bare TLS alert.
public struct PeerVerifier: Sendable {
    public enum Verdict: Sendable, Hashable {
        case trusted(TetherIdentity)
        case refused(Refusal)
    }

    public struct Refusal: Sendable, Hashable, CustomStringConvertible {
        public enum Code: String, Sendable, Hashable {
            case expired
            case notYetValid = "not-yet-valid"
            case untrustedIssuer = "untrusted-issuer"
            case noIdentity = "no-identity"
            case wrongTrustDomain = "wrong-trust-domain"
            case revoked
        }

        public var code: Code
        public var reason: String

        public init(code: Code, reason: String) {
            self.code = code
            self.reason = reason
        }

        public var description: String { reason }
    }

    public let trustRoots: [Certificate]
    public let trustDomain: String
    public let revocations: RevocationList
    /// Where renewed certificates' ancestry is read, so a revoked serial covers its renewals.
    public let ledger: RenewalLedger?

    public init(trustRoots: [Certificate], trustDomain: String, revocations: RevocationList = RevocationList(), ledger: RenewalLedger? = nil) {
        self.trustRoots = trustRoots
        self.trustDomain = trustDomain
        self.revocations = revocations
        self.ledger = ledger
    }

    /// The entry that revokes `certificate` (or a certificate it was renewed from), if any.
    public func revocation(of certificate: Certificate) -> RevocationList.Entry? {
        revocation(of: CertificateSummary(certificate))
    }

    /// The same, for a certificate a session keeps only the summary of.
    public func revocation(of certificate: CertificateSummary) -> RevocationList.Entry? {
        revocations.revocation(of: certificate, ancestors: ledger?.ancestors(of: certificate.serial) ?? [])
    }

    /// Verifies `chain` (leaf first, as presented in the handshake) at `now`.
    public func verify(chain: [Certificate], now: Date = Date()) async -> Verdict {
        guard let leaf = chain.first else {
            return .refused(Refusal(code: .noIdentity, reason: "the peer presented no certificate"))
        }
        let subject = "certificate '\(leaf.subject)'"
        let identity: TetherIdentity
        do {
            identity = try TetherIdentity(certificate: leaf)
        } catch {
            return .refused(Refusal(code: .noIdentity, reason: error.message))
        }
        let intermediates = Array(chain.dropFirst())
        if await chains(leaf, intermediates: intermediates, at: now) {
            guard identity.trustDomain == trustDomain else {
                return .refused(
                    Refusal(
                        code: .wrongTrustDomain,
                        reason: "\(subject) is for \(identity), outside trust domain \(trustDomain)"
                    )
                )
            }
            if let revocation = revocation(of: leaf) {
                return .refused(Self.revoked(leaf, identity: identity, by: revocation))
            }
            return .trusted(identity)
        }
        // The chain fails now. If it holds when validity periods are ignored, time is the only problem.
        if await chains(leaf, intermediates: intermediates, at: nil) {
            return .refused(timeRefusal(leaf, identity: identity, intermediates: intermediates, now: now))
        }
        return .refused(untrustedIssuer(leaf, identity: identity))
    }

    /// Why OpenSSL refused `leaf` during a handshake (its `X509_V_ERR_*` code), in the same
    /// words as ``verify(chain:now:)``, without waiting: the connection is already failing.
    public func explain(openSSLError code: Int32, description: String, leaf: Certificate, now: Date = Date()) -> Refusal {
        let identity: TetherIdentity
        do {
            identity = try TetherIdentity(certificate: leaf)
        } catch {
            return Refusal(code: .noIdentity, reason: error.message)
        }
        switch code {
        case X509_V_ERR_CERT_HAS_EXPIRED, X509_V_ERR_CERT_NOT_YET_VALID:
            return timeRefusal(leaf, identity: identity, intermediates: [], now: now)
        case X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH:
            return Refusal(
                code: .noIdentity, reason: "certificate '\(leaf.subject)' for \(identity) does not name the address dialled (\(description))")
        default:
            return untrustedIssuer(leaf, identity: identity, detail: description)
        }
    }

    private func timeRefusal(_ leaf: Certificate, identity: TetherIdentity, intermediates: [Certificate], now: Date) -> Refusal {
        let subject = "certificate '\(leaf.subject)'"
        if now > leaf.notValidAfter {
            return Refusal(
                code: .expired,
                reason: "\(subject) for \(identity) expired at \(leaf.notValidAfter.formatted(.iso8601)); issue a "
                    + "new one with `tetherctl certs issue` (or let the agent renew before expiry)"
            )
        }
        if now < leaf.notValidBefore {
            return Refusal(
                code: .notYetValid,
                reason: "\(subject) for \(identity) is not valid before "
                    + "\(leaf.notValidBefore.formatted(.iso8601)); check the clocks of both machines"
            )
        }
        let lapsed = (trustRoots + intermediates).filter { now > $0.notValidAfter || now < $0.notValidBefore }
        return Refusal(
            code: .expired,
            reason: "\(subject) for \(identity) chains to a CA outside its validity period ("
                + lapsed.map { "'\($0.subject)' valid until \($0.notValidAfter.formatted(.iso8601))" }
                .joined(separator: ", ") + "); rotate the CA with `tetherctl certs rotate-ca`"
        )
    }

    private func untrustedIssuer(_ leaf: Certificate, identity: TetherIdentity, detail: String? = nil) -> Refusal {
        let trusted = trustRoots.map { "'\($0.subject)'" }.joined(separator: ", ")
        return Refusal(
            code: .untrustedIssuer,
            reason: "certificate '\(leaf.subject)' for \(identity) is issued by '\(leaf.issuer)', which is not in the trusted "
                + "CA bundle (\(trusted))\(detail.map { " (\($0))" } ?? ""); issue it from this federation's CA"
        )
    }

    /// The refusal of a revoked certificate, saying when, why and what to do.
    public static func revoked(_ leaf: Certificate, identity: TetherIdentity, by entry: RevocationList.Entry) -> Refusal {
        revoked(CertificateSummary(leaf), identity: identity, by: entry)
    }

    public static func revoked(_ leaf: CertificateSummary, identity: TetherIdentity, by entry: RevocationList.Entry) -> Refusal {
        Refusal(
            code: .revoked,
            reason: "certificate serial \(leaf.serial) for \(identity) was revoked at "
                + "\(entry.revokedAt.formatted(.iso8601)) (\(entry.reason)); join the cluster again or issue a new bundle "
                + "with `tetherctl certs issue`"
        )
    }

    /// Whether `leaf` chains to a trusted root, checking validity periods at `time`, or not at all when nil.
    private func chains(_ leaf: Certificate, intermediates: [Certificate], at time: Date?) async -> Bool {
        var verifier = Verifier(rootCertificates: CertificateStore(trustRoots)) {
            time.map { RFC5280Policy(fixedExpiryValidationTime: $0) } ?? RFC5280Policy.withValidityCheckDisabled()
        }
        let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore(intermediates))
        if case .validCertificate = result { return true }
        return false
    }
}
