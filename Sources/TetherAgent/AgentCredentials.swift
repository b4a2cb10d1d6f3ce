import Crypto
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import TetherSecurity
import TetherWire
import UnixSignals
import X509

/// The agent's certificate, key and CA bundle over time: reloaded when the bundle's files
/// change (or on SIGHUP), renewed over the session before the certificate grows old, and
/// replaced when the hub sends a new CA bundle (a CA rollover), after which the agent renews
/// onto the new CA.
///
/// One task per agent process; it sleeps until the next renewal time or the next event (a
/// file change, a message from the hub, a session coming up). Whatever happens, the connector
/// keeps the last good material: a half-written or mismatched file is logged and ignored.
public actor AgentCredentials: Service {
    public struct Settings: Sendable {
        /// Renew once this fraction of the certificate's lifetime has passed.
        public var renewAt: Double
        /// How long to wait for the hub's answer, and before trying again after a refusal.
        public var answerTimeout: Duration
        public var retryAfter: Duration

        public init(renewAt: Double = 2.0 / 3.0, answerTimeout: Duration = .seconds(30), retryAfter: Duration = .seconds(30)) {
            self.renewAt = renewAt
            self.answerTimeout = answerTimeout
            self.retryAfter = retryAfter
        }
    }

    private enum Event: Sendable {
        case files(Set<String>)
        case signal
        case message(WireMessage)
        case sessionUp
        case due(generation: Int)
    }

    private let bundle: AgentBundle
    private let connector: AgentConnector
    private let link: HubLink
    private let settings: Settings
    private let logger: Logger
    private let events: AsyncStream<Event>
    private nonisolated let inbox: AsyncStream<Event>.Continuation

    /// The key of the request in flight, and when it was sent.
    private var pending: (key: P256.Signing.PrivateKey, sentAt: ContinuousClock.Instant)?
    /// Bumped whenever the schedule changes, so a stale timer's `due` is ignored.
    private var generation = 0
    private var timer: Task<Void, Never>?
    /// Not before this instant: set after a refusal or a timeout.
    private var backoffUntil: ContinuousClock.Instant?
    private var loadedFingerprint: String

    public init(bundle: AgentBundle, connector: AgentConnector, link: HubLink, settings: Settings = Settings(), logger: Logger) {
        self.bundle = bundle
        self.connector = connector
        self.link = link
        self.settings = settings
        self.logger = logger
        (events, inbox) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .bufferingNewest(256))
        loadedFingerprint = connector.material.fingerprint
    }

    /// A `certificate` or `trust` message from the hub (the session hook).
    public nonisolated func received(_ message: WireMessage) {
        inbox.yield(.message(message))
    }

    /// A session came up: a renewal that was due waits for one.
    public nonisolated func sessionEstablished() {
        inbox.yield(.sessionUp)
    }

    public func run() async throws {
        let watcher: FileWatcher?
        do {
            watcher = try FileWatcher(directories: [bundle.path])
        } catch {
            watcher = nil
            logger.warning(
                "cannot watch the bundle; certificates reload on SIGHUP only",
                metadata: ["tether.event": "certificates.watch_failed", "tether.reason": "\(error)"]
            )
        }
        let signals = await UnixSignalsSequence(trapping: .sighup)
        let inbox = self.inbox
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await _ in signals { inbox.yield(.signal) }
            }
            if let watcher {
                group.addTask {
                    for await paths in watcher.changes { inbox.yield(.files(paths)) }
                }
            }
            await cancelWhenGracefulShutdown {
                await self.consume()
            }
            watcher?.stop()
            inbox.finish()
            group.cancelAll()
        }
        timer?.cancel()
    }

    private func consume() async {
        schedule()
        for await event in events {
            logger.trace("credentials event", metadata: ["tether.credentials_event": "\(event)"])
            switch event {
            case .files(let paths):
                let watched: Set<String> = [bundle.certificatePath, bundle.keyPath, bundle.caBundlePath]
                guard !paths.isDisjoint(with: watched) else { continue }
                try? await Task.sleep(for: .milliseconds(250))
                reloadFromDisk(forced: false)
            case .signal:
                reloadFromDisk(forced: true)
            case .message(.certificate(let answer)):
                await take(answer)
            case .message(.trust(let trust)):
                takeTrust(trust)
            case .message:
                break
            case .sessionUp, .due:
                if case .due(let stamp) = event, stamp != generation { continue }
                await renewIfDue()
            }
        }
    }

    // MARK: Schedule

    /// When the current certificate should be renewed: at `renewAt` of its lifetime, or now if a
    /// CA other than the bundle's signing one (the first) issued it.
    private func renewalDate() -> Date {
        let material = connector.material
        let leaf = material.leaf
        if let signing = material.trustRoots.first, leaf.issuer != signing.subject { return .distantPast }
        return CertificateAuthority.issuedAt(leaf).addingTimeInterval(CertificateAuthority.lifetime(of: leaf) * settings.renewAt)
    }

    private var renewalDue: Bool { renewalDate() <= Date() }

    /// Arms one timer for the next thing to do: the renewal time, the end of a backoff, or the
    /// deadline of a request in flight.
    private func schedule() {
        generation += 1
        timer?.cancel()
        var at = ContinuousClock.now + .milliseconds(Int64(max(0, renewalDate().timeIntervalSinceNow) * 1000))
        if let backoffUntil, backoffUntil > at { at = backoffUntil }
        if let pending { at = pending.sentAt + settings.answerTimeout }
        let (stamp, inbox) = (generation, inbox)
        timer = Task {
            try? await Task.sleep(until: at, clock: .continuous)
            if !Task.isCancelled { inbox.yield(.due(generation: stamp)) }
        }
    }

    private func renewIfDue() async {
        logger.debug(
            "renewal check",
            metadata: [
                "tether.pending": "\(pending != nil)", "tether.established": "\(link.isEstablished)",
                "tether.due_at": "\(renewalDate().formatted(.iso8601))",
            ]
        )
        if let sent = pending {
            guard ContinuousClock.now >= sent.sentAt + settings.answerTimeout else { return schedule() }
            logger.warning(
                "the hub did not answer the renewal request; trying again later",
                metadata: ["tether.event": "certificates.renewal_timeout"]
            )
            pending = nil
            backoffUntil = .now + settings.retryAfter
            return schedule()
        }
        if let backoffUntil, ContinuousClock.now < backoffUntil { return schedule() }
        guard renewalDue else { return schedule() }
        guard link.isEstablished else { return }  // `sessionUp` brings us back
        let identity = connector.material.identity
        do {
            let (key, csr) = try CertificateRenewal.request(for: identity)
            pending = (key, .now)
            guard await link.send(.renew(RenewRequest(csr: csr))) else {
                pending = nil
                return
            }
            logger.info(
                "renewing this agent's certificate",
                metadata: [
                    "tether.event": "certificates.renewal_requested",
                    "tether.not_after": "\(connector.material.leaf.notValidAfter.formatted(.iso8601))",
                ]
            )
        } catch {
            logger.error("cannot build a renewal request", metadata: ["tether.event": "certificates.renewal_failed", "tether.reason": "\(error)"])
            backoffUntil = .now + settings.retryAfter
        }
        schedule()
    }

    // MARK: Answers from the hub

    private func take(_ answer: CertificateIssued) async {
        guard let request = pending else {
            logger.warning("a certificate arrived that this agent did not ask for; ignored", metadata: ["tether.event": "certificates.unrequested"])
            return
        }
        pending = nil
        do {
            guard let pem = answer.certificate else {
                throw SecurityError(.issuingFailed, "the hub refused: \(answer.error ?? "no reason given")")
            }
            let certificate = try PEMFiles.certificates(inPEM: pem, source: "the hub's certificate")[0]
            let keyed = try KeyedCertificate(certificate: certificate, privateKey: request.key)
            let current = connector.material
            let roots = try answer.caBundle.map(Self.certificates(in:)) ?? current.trustRoots
            let renewed = try TLSMaterial(chain: [certificate], privateKey: request.key, trustRoots: roots)
            guard renewed.identity == current.identity else {
                throw SecurityError(.noIdentity, "the hub signed \(renewed.identity), but this agent is \(current.identity)")
            }
            do {
                if let caBundle = answer.caBundle { try bundle.replaceTrustBundle(caBundle) }
                try bundle.replaceCredentials(keyed)
            } catch {
                // A read-only bundle (a mounted Secret): the new pair serves until the agent restarts,
                // and the old one, still valid, is renewed again after a restart.
                logger.warning(
                    "the renewed certificate cannot be written to the bundle; it is used from memory",
                    metadata: ["tether.event": "certificates.renewed_in_memory", "tether.reason": "\(error)"]
                )
            }
            try connector.reload(renewed)
            loadedFingerprint = renewed.fingerprint
            backoffUntil = nil
            Counter(label: "tether_agent_certificate_renewals_total").increment()
            let summary = CertificateSummary(certificate)
            logger.notice(
                "certificate renewed; the next handshake uses it",
                metadata: [
                    "tether.event": "certificates.renewed", "tether.serial": "\(summary.serial)",
                    "tether.issuer": "\(summary.issuer)", "tether.not_after": "\(summary.notAfter.formatted(.iso8601))",
                ]
            )
        } catch {
            backoffUntil = .now + settings.retryAfter
            logger.warning(
                "certificate not renewed; the current one stays in use",
                metadata: ["tether.event": "certificates.renewal_refused", "tether.reason": "\(error)"]
            )
        }
        schedule()
    }

    private func takeTrust(_ trust: TrustBundle) {
        do {
            let roots = try Self.certificates(in: trust.caBundle)
            let material = connector.material
            let onDisk = (try? PEMFiles.readCertificates(at: bundle.caBundlePath)) ?? []
            guard roots != material.trustRoots || roots != onDisk else { return }
            let updated = try TLSMaterial(chain: material.chain, privateKey: material.privateKey, trustRoots: roots)
            try bundle.replaceTrustBundle(trust.caBundle)
            try connector.reload(updated)
            loadedFingerprint = updated.fingerprint
            logger.notice(
                "the hub sent a new CA bundle",
                metadata: [
                    "tether.event": "certificates.trust_updated", "tether.cas": "\(roots.count)",
                    "tether.signing_ca": "\(roots[0].subject)",
                ]
            )
        } catch {
            logger.error(
                "the hub's CA bundle was not taken; the current one stays in use",
                metadata: ["tether.event": "certificates.trust_refused", "tether.reason": "\(error)"]
            )
        }
        // A certificate from a retiring CA is renewed at once.
        schedule()
    }

    // MARK: Files

    private func reloadFromDisk(forced: Bool) {
        do {
            try bundle.recoverInterruptedRenewal()
            let material = try bundle.loadMaterial()
            try material.requireValid(describing: bundle.certificatePath)
            let fingerprint = material.fingerprint
            guard forced || fingerprint != loadedFingerprint else { return }
            try connector.reload(material)
            loadedFingerprint = fingerprint
            logger.notice(
                "agent certificates reloaded; the next handshake uses them",
                metadata: ["tether.event": "certificates.reloaded", "tether.serial": "\(CertificateSummary(material.leaf).serial)"]
            )
            schedule()
        } catch {
            logger.error(
                "agent certificates not reloaded; the previous ones stay in use",
                metadata: ["tether.event": "certificates.reload_refused", "tether.reason": "\(error)"]
            )
        }
    }

    private static func certificates(in pem: String) throws(SecurityError) -> [Certificate] {
        try PEMFiles.certificates(inPEM: pem, source: "the hub's CA bundle")
    }
}
