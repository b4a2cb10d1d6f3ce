import Crypto
import Foundation
import SwiftASN1
import X509

/// A certificate and the ECDSA P-256 key that belongs to it, with their PEM forms.
public struct KeyedCertificate: Sendable {
    public let certificate: Certificate
    public let privateKey: P256.Signing.PrivateKey

    public init(certificate: Certificate, privateKey: P256.Signing.PrivateKey) throws(SecurityError) {
        guard certificate.publicKey == Certificate.PublicKey(privateKey.publicKey) else {
            throw SecurityError(.keyMismatch, "the private key does not belong to certificate '\(certificate.subject)'")
        }
        self.certificate = certificate
        self.privateKey = privateKey
    }

    public var certificatePEM: String {
        get throws(SecurityError) { try PEMFiles.pem(of: certificate) }
    }

    /// PKCS#8 PEM, as OpenSSL and NIOSSL read it.
    public var privateKeyPEM: String { privateKey.pemRepresentation }
}

/// What a newly issued certificate is for.
public enum CertificateUsage: Sendable, Hashable {
    /// TLS server and client: the hub, which also dials nothing but serves both listeners.
    case server
    /// TLS client only: agents and API users.
    case client
}

/// A federation's certificate authority: issues the hub's, agents' and users' certificates.
public struct CertificateAuthority: Sendable {
    public let keyed: KeyedCertificate

    public var certificate: Certificate { keyed.certificate }

    public init(_ keyed: KeyedCertificate) {
        self.keyed = keyed
    }

    /// A new self-signed CA for `trustDomain`, valid from `now` (less a minute of clock skew) for `validity`.
    public static func create(
        trustDomain: String,
        validity: Duration = .days(3650),
        now: Date = Date()
    ) throws(SecurityError) -> CertificateAuthority {
        try TetherIdentity.validateTrustDomain(trustDomain)
        let key = P256.Signing.PrivateKey()
        let privateKey = Certificate.PrivateKey(key)
        do {
            let name = try DistinguishedName {
                OrganizationName("Tether")
                CommonName("Tether CA \(trustDomain) \(Self.stamp(now))")
            }
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: privateKey.publicKey)
            }
            let certificate = try Certificate(
                version: .v3,
                serialNumber: Certificate.SerialNumber(),
                publicKey: privateKey.publicKey,
                notValidBefore: now.addingTimeInterval(-60),
                notValidAfter: now.addingTimeInterval(validity.seconds),
                issuer: name,
                subject: name,
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: extensions,
                issuerPrivateKey: privateKey
            )
            return CertificateAuthority(try KeyedCertificate(certificate: certificate, privateKey: key))
        } catch let error as SecurityError {
            throw error
        } catch {
            throw SecurityError(.issuingFailed, "cannot create a CA for trust domain \(trustDomain): \(error)")
        }
    }

    /// Issues a certificate for `identity` with a new key.
    ///
    /// `dnsNames` and `ipAddresses` go into the SANs beside the identity URI (the hub needs them
    /// so clients can verify its host name). `notBefore` and `notAfter` default to a minute ago and
    /// `validity` from now; tests pass past dates to make expired certificates.
    public func issue(
        for identity: TetherIdentity,
        usage: CertificateUsage,
        dnsNames: [String] = [],
        ipAddresses: [String] = [],
        validity: Duration = .days(365),
        notBefore: Date? = nil,
        notAfter: Date? = nil,
        now: Date = Date()
    ) throws(SecurityError) -> KeyedCertificate {
        let key = P256.Signing.PrivateKey()
        let issued = try issue(
            for: identity, publicKey: Certificate.PublicKey(key.publicKey), usage: usage, dnsNames: dnsNames,
            ipAddresses: ipAddresses, validity: validity, notBefore: notBefore, notAfter: notAfter, now: now
        )
        return try KeyedCertificate(certificate: issued, privateKey: key)
    }

    /// Signs a certificate for `identity` over a key someone else holds (an agent's renewal).
    ///
    /// `notValidBefore` is backdated by a minute for clock skew between machines.
    public func issue(
        for identity: TetherIdentity,
        publicKey: Certificate.PublicKey,
        usage: CertificateUsage,
        dnsNames: [String] = [],
        ipAddresses: [String] = [],
        validity: Duration = .days(365),
        notBefore: Date? = nil,
        notAfter: Date? = nil,
        now: Date = Date()
    ) throws(SecurityError) -> Certificate {
        var names: [GeneralName] = [.uniformResourceIdentifier(identity.uri)]
        names += dnsNames.map { .dnsName($0) }
        for address in ipAddresses {
            guard let bytes = IPAddressBytes.parse(address) else {
                throw SecurityError(.invalidName, "'\(address)' is not an IPv4 or IPv6 address")
            }
            names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes))))
        }
        do {
            let authorityKeyID = try self.certificate.extensions.subjectKeyIdentifier?.keyIdentifier
            let subject = try DistinguishedName {
                OrganizationName("Tether")
                OrganizationalUnitName(identity.trustDomain)
                CommonName(Self.commonName(for: identity))
            }
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage(usage == .server ? [.serverAuth, .clientAuth] : [.clientAuth])
                SubjectAlternativeNames(names)
                SubjectKeyIdentifier(hash: publicKey)
                AuthorityKeyIdentifier(keyIdentifier: authorityKeyID)
            }
            return try Certificate(
                version: .v3,
                serialNumber: Certificate.SerialNumber(),
                publicKey: publicKey,
                notValidBefore: notBefore ?? now.addingTimeInterval(-Self.backdate(forLifetime: validity.seconds)),
                notValidAfter: notAfter ?? now.addingTimeInterval(validity.seconds),
                issuer: self.certificate.subject,
                subject: subject,
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: extensions,
                issuerPrivateKey: Certificate.PrivateKey(keyed.privateKey)
            )
        } catch let error as SecurityError {
            throw error
        } catch {
            throw SecurityError(.issuingFailed, "cannot issue a certificate for \(identity): \(error)")
        }
    }

    /// How far `notValidBefore` is set before the moment of issue, for clock skew between
    /// machines: a minute, or a tenth of a short lifetime (so a 30 s certificate is not mostly past).
    public static func backdate(forLifetime lifetime: TimeInterval) -> TimeInterval {
        min(60, lifetime / 10)
    }

    /// The lifetime a certificate was issued with, not counting the backdate (for one of ours;
    /// for another CA's, nearly so).
    public static func lifetime(of certificate: Certificate) -> TimeInterval {
        lifetime(notBefore: certificate.notValidBefore, notAfter: certificate.notValidAfter)
    }

    static func lifetime(notBefore: Date, notAfter: Date) -> TimeInterval {
        let total = notAfter.timeIntervalSince(notBefore)
        return total >= 660 ? total - 60 : total / 1.1
    }

    /// When a certificate was issued: `notValidBefore` plus the backdate.
    public static func issuedAt(_ certificate: Certificate) -> Date {
        certificate.notValidAfter.addingTimeInterval(-lifetime(of: certificate))
    }

    static func commonName(for identity: TetherIdentity) -> String {
        switch identity.role {
        case .hub: "tether-hub"
        case .cluster(let name): "cluster:\(name)"
        case .user(let name): name
        }
    }

    /// Seconds since 1970 and a random suffix: two CAs of one trust domain (a rollover) never
    /// share a subject, which issuer checks rely on.
    private static func stamp(_ date: Date) -> String {
        "\(Int64(date.timeIntervalSince1970))-\(String(UInt16.random(in: .min ... .max), radix: 16))"
    }
}

extension Duration {
    public static func days(_ count: Int) -> Duration { .seconds(count * 86_400) }

    /// Whole and fractional seconds, as `TimeInterval`.
    public var seconds: TimeInterval {
        let (whole, attoseconds) = self.components
        return TimeInterval(whole) + TimeInterval(attoseconds) / 1e18
    }
}

extension SubjectKeyIdentifier {
    /// RFC 5280's method 1: the SHA-1 of the subject public key bits.
    init(hash publicKey: Certificate.PublicKey) {
        self.init(keyIdentifier: ArraySlice(Insecure.SHA1.hash(data: publicKey.subjectPublicKeyInfoBytes)))
    }
}

/// The network-order bytes of a textual IP address (4 for IPv4, 16 for IPv6), or nil.
public enum IPAddressBytes {
    public static func parse(_ text: String) -> [UInt8]? {
        if let bytes = parseIPv4(text) { return bytes }
        return parseIPv6(text)
    }

    private static func parseIPv4(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCIIDigit), let value = UInt8(part) else {
                return nil
            }
            bytes.append(value)
        }
        return bytes
    }

    private static func parseIPv6(_ text: String) -> [UInt8]? {
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            var values: [UInt16] = []
            for group in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard (1...4).contains(group.count), let value = UInt16(group, radix: 16) else { return nil }
                values.append(value)
            }
            return values
        }
        guard let head = groups(halves[0]) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count < 8 else { return nil }
            all += Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard all.count == 8 else { return nil }
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
