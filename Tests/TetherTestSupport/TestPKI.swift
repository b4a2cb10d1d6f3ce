import Foundation
import TetherSecurity
import X509

/// A federation's PKI made in memory for one test: no key ever touches the repository.
public struct TestPKI: Sendable {
    public let trustDomain: String
    public let authority: CertificateAuthority

    public init(trustDomain: String = "tether.test") throws {
        self.trustDomain = trustDomain
        self.authority = try CertificateAuthority.create(trustDomain: trustDomain)
    }

    public var trustRoots: [Certificate] { [authority.certificate] }

    public func hubMaterial(hosts: [String] = ["localhost"], ips: [String] = ["127.0.0.1", "::1"]) throws -> TLSMaterial {
        let keyed = try authority.issue(for: .hub(trustDomain: trustDomain), usage: .server, dnsNames: hosts, ipAddresses: ips)
        return try TLSMaterial(keyed, trustRoots: trustRoots)
    }

    /// An agent's material for `cluster`; pass past dates to get an expired certificate.
    public func agentMaterial(cluster: String, notBefore: Date? = nil, notAfter: Date? = nil) throws -> TLSMaterial {
        let keyed = try authority.issue(
            for: .cluster(cluster, trustDomain: trustDomain),
            usage: .client,
            notBefore: notBefore,
            notAfter: notAfter
        )
        return try TLSMaterial(keyed, trustRoots: trustRoots)
    }

    public func userMaterial(_ name: String) throws -> TLSMaterial {
        let keyed = try authority.issue(for: .user(name, trustDomain: trustDomain), usage: .client)
        return try TLSMaterial(keyed, trustRoots: trustRoots)
    }

    /// Material whose certificate comes from this CA but which trusts `roots` (to dial a hub of another federation).
    public func agentMaterial(cluster: String, trusting roots: [Certificate]) throws -> TLSMaterial {
        let keyed = try authority.issue(for: .cluster(cluster, trustDomain: trustDomain), usage: .client)
        return try TLSMaterial(keyed, trustRoots: roots)
    }
}

/// A temporary directory removed when the test is done with it.
public final class ScratchDirectory: Sendable {
    public let path: String

    public init(_ label: String = "tether-test") throws {
        let base = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("\(label)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        self.path = base.path
    }

    public func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}
