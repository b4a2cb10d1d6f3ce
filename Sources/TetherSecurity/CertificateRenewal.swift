import Crypto
import Foundation
import SwiftASN1
import X509

/// The two ends of an agent's renewal over its session: the agent's request (a new key and a
/// PKCS #10 CSR naming its own identity) and the hub's signature, for that identity only.
public enum CertificateRenewal {
    /// A new key and a PEM CSR for `identity` (its URI in the subject alternative names).
    public static func request(for identity: TetherIdentity) throws(SecurityError) -> (key: P256.Signing.PrivateKey, csr: String) {
        let key = P256.Signing.PrivateKey()
        do {
            let extensions = try Certificate.Extensions {
                SubjectAlternativeNames([.uniformResourceIdentifier(identity.uri)])
            }
            let csr = try CertificateSigningRequest(
                version: .v1,
                subject: try DistinguishedName { CommonName(CertificateAuthority.commonName(for: identity)) },
                privateKey: Certificate.PrivateKey(key),
                attributes: CertificateSigningRequest.Attributes([try .init(ExtensionRequest(extensions: extensions))]),
                signatureAlgorithm: .ecdsaWithSHA256
            )
            return (key, try csr.serializeAsPEM().pemString)
        } catch {
            throw SecurityError(.issuingFailed, "cannot build a certificate request for \(identity): \(error)")
        }
    }

    /// Why a request is refused: the operator-facing reason, and whether it is a security event
    /// (a request for another identity) rather than a malformed one.
    public struct Refusal: Error, Sendable, CustomStringConvertible {
        public var reason: String
        public var isSecurityEvent: Bool
        public var description: String { reason }
    }

    /// Signs `csrPEM` for `identity` with `authority`, with the lifetime of the certificate the
    /// agent holds now (`current`), at most `maximumLifetime`.
    ///
    /// The request must carry a valid signature (proof the requester holds the key) and name
    /// exactly `identity` among its URIs; anything else is refused.
    public static func sign(
        _ csrPEM: String,
        for identity: TetherIdentity,
        current: CertificateSummary,
        authority: CertificateAuthority,
        maximumLifetime: Duration,
        now: Date = Date()
    ) throws(Refusal) -> Certificate {
        let csr: CertificateSigningRequest
        do {
            csr = try CertificateSigningRequest(pemEncoded: csrPEM)
        } catch {
            throw Refusal(reason: "the certificate request is not a PEM PKCS #10 request: \(error)", isSecurityEvent: false)
        }
        guard csr.publicKey.isValidSignature(csr.signature, for: csr) else {
            throw Refusal(reason: "the certificate request's signature does not verify", isSecurityEvent: true)
        }
        var uris: [String] = []
        do {
            for name in try csr.attributes.extensionRequest?.extensions.subjectAlternativeNames ?? SubjectAlternativeNames([]) {
                switch name {
                case .uniformResourceIdentifier(let uri): uris.append(uri)
                default: uris.append("\(name)")
                }
            }
        } catch {
            throw Refusal(reason: "the certificate request's extensions cannot be read: \(error)", isSecurityEvent: false)
        }
        guard uris == [identity.uri] else {
            throw Refusal(
                reason: "the certificate request names \(uris.isEmpty ? "no identity" : uris.joined(separator: ", ")), "
                    + "but the session is \(identity.uri); an agent may renew only its own identity",
                isSecurityEvent: true
            )
        }
        let lifetime = min(max(current.lifetime, 10), maximumLifetime.seconds)
        do {
            return try authority.issue(
                for: identity, publicKey: csr.publicKey, usage: .client, validity: .seconds(lifetime), now: now
            )
        } catch {
            throw Refusal(reason: "cannot sign: \(error.message)", isSecurityEvent: false)
        }
    }
}
