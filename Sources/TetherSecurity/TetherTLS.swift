import Crypto
import Foundation
import NIOCore
import NIOSSL
import SwiftASN1
import X509

/// One side's TLS credentials: its certificate chain and key, the CAs it trusts, and its identity.
public struct TLSMaterial: Sendable {
    public let chain: [Certificate]
    public let privateKey: P256.Signing.PrivateKey
    /// Every CA in the bundle; during a CA rollover there are two.
    public let trustRoots: [Certificate]
    public let identity: TetherIdentity

    public init(chain: [Certificate], privateKey: P256.Signing.PrivateKey, trustRoots: [Certificate]) throws(SecurityError) {
        guard let leaf = chain.first else { throw SecurityError(.unreadableFile, "an empty certificate chain") }
        _ = try KeyedCertificate(certificate: leaf, privateKey: privateKey)
        guard !trustRoots.isEmpty else { throw SecurityError(.unreadableFile, "an empty CA bundle") }
        self.chain = chain
        self.privateKey = privateKey
        self.trustRoots = trustRoots
        self.identity = try TetherIdentity(certificate: leaf)
    }

    public init(_ keyed: KeyedCertificate, trustRoots: [Certificate]) throws(SecurityError) {
        try self.init(chain: [keyed.certificate], privateKey: keyed.privateKey, trustRoots: trustRoots)
    }

    public static func load(certificate: String, key: String, trustBundle: String) throws(SecurityError) -> TLSMaterial {
        let (chain, keyed) = try PEMFiles.readKeyedCertificate(certificate: certificate, key: key)
        return try TLSMaterial(chain: chain, privateKey: keyed.privateKey, trustRoots: PEMFiles.readCertificates(at: trustBundle))
    }

    public var leaf: Certificate { chain[0] }

    /// Throws unless the certificate is within its validity period at `now`: a reload must
    /// never swap in material that every handshake would refuse.
    public func requireValid(at now: Date = Date(), describing what: String = "the new certificate") throws(SecurityError) {
        guard leaf.notValidBefore <= now, now < leaf.notValidAfter else {
            throw SecurityError(
                .unreadableFile,
                "\(what) is not valid now (valid \(leaf.notValidBefore.formatted(.iso8601)) to \(leaf.notValidAfter.formatted(.iso8601)))"
            )
        }
    }

    /// The serials of the certificate and of every trusted CA: equal for material that presents
    /// and trusts the same certificates, so a reload of unchanged files can be told apart.
    public var fingerprint: String {
        ([leaf] + trustRoots).map { CertificateSummary($0).serial }.joined(separator: "/")
    }
}

/// The TLS settings of the agent protocol: TLS 1.3 only, both sides verified, ALPN `tether/1`.
///
/// swift-nio-ssl's defaults are permissive (TLS 1.0, no client certificate, the system trust
/// store), so every setting that matters is stated here rather than inherited.
public enum TetherTLS {
    public static let applicationProtocol = "tether/1"

    /// The hub's agent listener: a client certificate is required; the hub's ``PeerVerifier``
    /// (installed as the verification callback) decides whether it is trusted.
    public static func agentListenerContext(_ material: TLSMaterial) throws(SecurityError) -> NIOSSLContext {
        var configuration = try serverConfiguration(material)
        configuration.minimumTLSVersion = .tlsv13
        configuration.maximumTLSVersion = .tlsv13
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .certificates(try sslCertificates(material.trustRoots))
        configuration.applicationProtocols = [applicationProtocol]
        return try context(configuration)
    }

    /// An agent dialling the hub: the hub's certificate must chain to the bundle and match the
    /// host name (or IP address) dialled.
    public static func agentDialerContext(_ material: TLSMaterial) throws(SecurityError) -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        configuration.maximumTLSVersion = .tlsv13
        configuration.certificateVerification = .fullVerification
        configuration.trustRoots = .certificates(try sslCertificates(material.trustRoots))
        configuration.certificateChain = try sslCertificates(material.chain).map { .certificate($0) }
        configuration.privateKey = .privateKey(try sslPrivateKey(material.privateKey))
        configuration.applicationProtocols = [applicationProtocol]
        return try context(configuration)
    }

    /// One hub calling another's API with its own certificate (a member-proxy request sent on
    /// to the hub that holds the cluster's session): TLS 1.3, the peer verified against the bundle.
    public static func hubToHubConfiguration(_ material: TLSMaterial) throws(SecurityError) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        configuration.certificateVerification = .fullVerification
        configuration.trustRoots = .certificates(try sslCertificates(material.trustRoots))
        configuration.certificateChain = try sslCertificates(material.chain).map { .certificate($0) }
        configuration.privateKey = .privateKey(try sslPrivateKey(material.privateKey))
        return configuration
    }

    /// The hub's Kubernetes API: TLS 1.2 or 1.3 (kubectl generations differ), HTTP/1.1.
    ///
    /// A client certificate is optional, because bearer-token clients present none; one that is
    /// presented must pass the ``PeerVerifier`` installed as the verification callback.
    public static func apiServerConfiguration(_ material: TLSMaterial) throws(SecurityError) -> TLSConfiguration {
        var configuration = try serverConfiguration(material)
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .optionalVerification
        configuration.trustRoots = .certificates(try sslCertificates(material.trustRoots))
        configuration.applicationProtocols = ["http/1.1"]
        return configuration
    }

    /// What a server presents, as a per-handshake override: a listener that swaps certificates
    /// without restarting hands this to `TLSConfiguration.sslContextCallback`.
    public static func presentedCredentials(_ material: TLSMaterial) throws(SecurityError) -> NIOSSLContextConfigurationOverride {
        var override = NIOSSLContextConfigurationOverride()
        override.certificateChain = try sslCertificates(material.chain).map { .certificate($0) }
        override.privateKey = .privateKey(try sslPrivateKey(material.privateKey))
        return override
    }

    /// A server presenting `material`'s chain; callers set versions, verification and ALPN explicitly.
    private static func serverConfiguration(_ material: TLSMaterial) throws(SecurityError) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try sslCertificates(material.chain).map { .certificate($0) },
            privateKey: .privateKey(try sslPrivateKey(material.privateKey))
        )
        // How long a closing connection waits for the peer's close_notify. Clients that hang up
        // without one (an HTTP client pool at its own shutdown) held a stopping server for the
        // default 5 s; nothing is lost by waiting less, since the server has already finished.
        configuration.shutdownTimeout = serverShutdownTimeout
        return configuration
    }

    /// See ``serverConfiguration(_:)``.
    public static let serverShutdownTimeout = TimeAmount.milliseconds(500)

    /// The swift-certificates form of a certificate NIOSSL handed over.
    public static func certificate(from sslCertificate: NIOSSLCertificate) throws(SecurityError) -> Certificate {
        do {
            return try Certificate(derEncoded: sslCertificate.toDERBytes())
        } catch {
            throw SecurityError(.unreadableFile, "the peer's certificate cannot be parsed: \(error)")
        }
    }

    static func sslCertificates(_ certificates: [Certificate]) throws(SecurityError) -> [NIOSSLCertificate] {
        do {
            return try certificates.map { certificate in
                var serializer = DER.Serializer()
                try serializer.serialize(certificate)
                return try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der)
            }
        } catch {
            throw SecurityError(.tlsConfiguration, "cannot hand certificates to TLS: \(error)")
        }
    }

    static func sslPrivateKey(_ key: P256.Signing.PrivateKey) throws(SecurityError) -> NIOSSLPrivateKey {
        do {
            return try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem)
        } catch {
            throw SecurityError(.tlsConfiguration, "cannot hand the private key to TLS: \(error)")
        }
    }

    private static func context(_ configuration: TLSConfiguration) throws(SecurityError) -> NIOSSLContext {
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw SecurityError(.tlsConfiguration, "TLS refused the configuration: \(error)")
        }
    }
}

extension FederationDirectory {
    /// TLS for a client of the hub's API acting as the federation's admin (`admin.crt`,
    /// trusting `ca.crt`): what `tetherctl` and the benchmarks use.
    public func adminClientTLS() throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caCertificatePath))
        tls.certificateChain = try NIOSSLCertificate.fromPEMFile(adminCertificatePath).map { .certificate($0) }
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: adminKeyPath, format: .pem))
        return tls
    }
}
