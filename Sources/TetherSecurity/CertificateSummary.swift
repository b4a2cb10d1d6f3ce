import Foundation
import SwiftASN1
import X509

/// What `tetherctl certs inspect` reports of a certificate: the facts scripts act on.
public struct CertificateSummary: Codable, Sendable, Hashable {
    public var subject: String
    public var issuer: String
    /// Hex, colon-free, as OpenSSL prints it without separators.
    public var serial: String
    public var notBefore: Date
    public var notAfter: Date
    public var isCertificateAuthority: Bool
    public var dnsNames: [String]
    public var ipAddresses: [String]
    public var uris: [String]
    /// The Tether identity (`spiffe://...`), or nil when the certificate carries none (a CA).
    public var identity: String?

    public init(_ certificate: Certificate) {
        subject = certificate.subject.description
        issuer = certificate.issuer.description
        serial = certificate.serialNumber.bytes.map { byte in
            let hex = String(byte, radix: 16, uppercase: true)
            return hex.count == 1 ? "0" + hex : hex
        }.joined()
        notBefore = certificate.notValidBefore
        notAfter = certificate.notValidAfter
        if case .isCertificateAuthority = try? certificate.extensions.basicConstraints {
            isCertificateAuthority = true
        } else {
            isCertificateAuthority = false
        }
        var dnsNames: [String] = []
        var ipAddresses: [String] = []
        var uris: [String] = []
        for name in (try? certificate.extensions.subjectAlternativeNames) ?? SubjectAlternativeNames([]) {
            switch name {
            case .dnsName(let value): dnsNames.append(value)
            case .uniformResourceIdentifier(let value): uris.append(value)
            case .ipAddress(let octets): ipAddresses.append(Self.format(ip: Array(octets.bytes)))
            default: break
            }
        }
        self.dnsNames = dnsNames
        self.ipAddresses = ipAddresses
        self.uris = uris
        identity = (try? TetherIdentity(certificate: certificate))?.uri
    }

    /// The lifetime the certificate was issued with (see ``CertificateAuthority/lifetime(of:)``).
    public var lifetime: TimeInterval { CertificateAuthority.lifetime(notBefore: notBefore, notAfter: notAfter) }

    /// When the certificate was issued (see ``CertificateAuthority/issuedAt(_:)``).
    public var issuedAt: Date { notAfter.addingTimeInterval(-lifetime) }

    private static func format(ip bytes: [UInt8]) -> String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        guard bytes.count == 16 else { return bytes.map { String($0, radix: 16) }.joined(separator: ":") }
        return stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            .joined(separator: ":")
    }
}
