import Logging
import ServiceLifecycle
import TetherSecurity
import UnixSignals

/// Reloads the hub's certificate, key and CA bundle on SIGHUP, for rotation scripts that
/// replace the files and signal the hub.
///
/// A half-written or mismatched set (unparsable PEM, a key that does not match, an expired
/// certificate) is refused with a log line naming the problem, and the previous material stays
/// in use. Established sessions are never touched; new handshakes use the new material.
public struct CertificateReloader: Service {
    private let directory: FederationDirectory
    private let listener: AgentListener
    private let logger: Logger

    public init(directory: FederationDirectory, listener: AgentListener, logger: Logger) {
        self.directory = directory
        self.listener = listener
        self.logger = logger
    }

    public func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in signals { reload() }
        }
    }

    /// Reads the files and hands them to the listener, or keeps the old material and says why.
    public func reload() {
        do {
            let material = try TLSMaterial.load(
                certificate: directory.hubCertificatePath,
                key: directory.hubKeyPath,
                trustBundle: directory.caCertificatePath
            )
            try listener.reload(material)
            logger.notice(
                "hub certificates reloaded; new handshakes use them",
                metadata: [
                    "tether.event": "certificates.reloaded", "tether.serial": "\(CertificateSummary(material.leaf).serial)",
                    "tether.cas": "\(material.trustRoots.count)",
                ]
            )
        } catch {
            logger.error(
                "hub certificates not reloaded; the previous ones stay in use",
                metadata: ["tether.event": "certificates.reload_refused", "tether.reason": "\(error)"]
            )
        }
    }
}
