import Foundation
import Logging
import Metrics
import TetherSecurity
import TetherWire
import X509

/// Signs agents' renewal requests with the federation CA (`D/ca.crt`, `D/ca.key`, read at each
/// request so a CA rollover takes effect at once), for the requesting session's identity only.
public struct RenewalSigner: Sendable {
    public let directory: FederationDirectory
    /// The longest lifetime a renewed certificate gets; otherwise it keeps the one it replaces.
    public let maximumLifetime: Duration
    /// Where each signed certificate is recorded with what it renews, so revoking a serial revokes its renewals.
    public let ledger: RenewalLedger?
    private let logger: Logger

    public init(directory: FederationDirectory, maximumLifetime: Duration = .days(365), ledger: RenewalLedger? = nil, logger: Logger) {
        self.directory = directory
        self.maximumLifetime = maximumLifetime
        self.ledger = ledger
        self.logger = logger
    }

    func sign(_ request: RenewRequest, cluster: String, current: CertificateSummary?) async -> (CertificateIssued, Certificate?) {
        do {
            let config = try directory.loadConfig()
            let identity = try TetherIdentity.cluster(cluster, trustDomain: config.trustDomain)
            guard let current else { return (CertificateIssued(error: "the session presented no certificate"), nil) }
            let authority = try directory.loadAuthority()
            let issued: Certificate
            do {
                issued = try CertificateRenewal.sign(
                    request.csr, for: identity, current: current, authority: authority, maximumLifetime: maximumLifetime
                )
            } catch {
                Counter(label: "tether_hub_renewals_refused_total", dimensions: [("cluster", cluster)]).increment()
                if error.isSecurityEvent {
                    logger.warning(
                        "SECURITY: certificate request refused",
                        metadata: [
                            "tether.event": "certificates.csr_refused", "tether.security": "true", "tether.cluster": "\(cluster)",
                            "tether.reason": "\(error.reason)",
                        ]
                    )
                } else {
                    logger.warning(
                        "certificate request refused",
                        metadata: ["tether.event": "certificates.csr_invalid", "tether.cluster": "\(cluster)", "tether.reason": "\(error.reason)"]
                    )
                }
                return (CertificateIssued(error: error.reason), nil)
            }
            let bundle = try PEMFiles.readText(at: directory.caCertificatePath)
            let summary = CertificateSummary(issued)
            // Recorded before it is handed out: a renewal the ledger does not know would escape
            // a revocation of the certificate it replaces.
            try ledger?.record(
                serial: summary.serial, renewing: current.serial, identity: identity.uri, notAfter: summary.notAfter
            )
            Counter(label: "tether_hub_renewals_signed_total", dimensions: [("cluster", cluster)]).increment()
            logger.notice(
                "agent certificate renewed",
                metadata: [
                    "tether.event": "certificates.signed", "tether.cluster": "\(cluster)", "tether.serial": "\(summary.serial)",
                    "tether.not_after": "\(summary.notAfter.formatted(.iso8601))",
                ]
            )
            return (CertificateIssued(certificate: try PEMFiles.pem(of: issued), caBundle: bundle), issued)
        } catch {
            logger.error(
                "cannot sign an agent's renewal",
                metadata: ["tether.event": "certificates.sign_failed", "tether.cluster": "\(cluster)", "tether.reason": "\(error)"]
            )
            return (CertificateIssued(error: "the hub cannot sign now: \(error); it will be retried"), nil)
        }
    }
}
