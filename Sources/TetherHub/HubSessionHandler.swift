import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import NIOTLS
import TetherSecurity
import TetherWire
import X509

/// What the hub's sessions offer agents for their certificates: the CA bundle to trust, and
/// signing renewals.
struct SessionCredentials: Sendable {
    /// The CA bundle (PEM) sent after `welcome`; nil sends none.
    var trustBundle: @Sendable () -> String? = { nil }
    /// Signs a renewal for `cluster`, whose session presented `certificate`; nil refuses renewals.
    var sign: (@Sendable (RenewRequest, _ cluster: String, _ certificate: CertificateSummary?) async -> (CertificateIssued, Certificate?))?
}

/// Runs one agent connection at the hub: performs what ``HubSessionStateMachine`` decides.
///
/// Holds no task and no thread: between messages a session is this object, its channel, and
/// one scheduled deadline check per timeout period.
final class HubSessionHandler: ChannelInboundHandler {
    typealias InboundIn = WireMessage
    typealias OutboundOut = WireMessage

    struct Settings: Sendable {
        var helloTimeout: TimeAmount
        var heartbeatInterval: TimeAmount
        var drainReconnectAfter: TimeAmount
        /// Heartbeat intervals of silence after which a session is closed.
        var missedHeartbeatsAllowed: Int = 3
        /// How long the agent's outbound side may stay full (it reads nothing) before the session
        /// is closed; meanwhile nothing more is read from it.
        var writeStallTimeout: TimeAmount = .seconds(60)
        var tunnel: TunnelLimits = .default
    }

    private var machine: HubSessionStateMachine
    private let registry: SessionRegistry
    private let observer: (any HubSessionObserver)?
    private var established: HubSessionStateMachine.Established?
    /// The member tunnel over this session, once established.
    private var tunnel: HubTunnel?
    private let verdict: NIOLockedValueBox<PeerVerifier.Verdict?>
    /// The leaf certificate the peer presented, as the verification callback saw it.
    private let presented: NIOLockedValueBox<CertificateSummary?>
    private let credentials: SessionCredentials
    private let settings: Settings
    private let gate: ConnectionGate?
    /// Shared by the listener's sessions: refusals and faults are logged within it.
    private let refusalLogs: LogBudget
    private var logger: Logger
    private var handshakeCompleted = false
    private var closeLogged = false

    private var readDeadline: ReadDeadline?
    /// The read deadline's timeout while it is suspended because the outbound side is full.
    private var suspendedReadTimeout: TimeAmount?
    private var writeStall: Scheduled<Void>?

    init(
        settings: Settings,
        hubVersion: String,
        federation: String? = nil,
        epoch: String? = nil,
        run: HubRun? = nil,
        registry: SessionRegistry,
        observer: (any HubSessionObserver)? = nil,
        verdict: NIOLockedValueBox<PeerVerifier.Verdict?>,
        presented: NIOLockedValueBox<CertificateSummary?> = NIOLockedValueBox(nil),
        credentials: SessionCredentials = SessionCredentials(),
        gate: ConnectionGate? = nil,
        refusalLogs: LogBudget = LogBudget(),
        logger: Logger
    ) {
        self.gate = gate
        self.refusalLogs = refusalLogs
        self.presented = presented
        self.credentials = credentials
        self.observer = observer
        self.settings = settings
        self.registry = registry
        self.verdict = verdict
        self.logger = logger
        self.machine = HubSessionStateMachine(
            heartbeatIntervalMilliseconds: Int(settings.heartbeatInterval.nanoseconds / 1_000_000),
            hubVersion: hubVersion,
            federation: federation,
            epoch: epoch,
            run: run,
            makeSessionID: { UUID().uuidString.lowercased() }
        )
    }

    func channelActive(context: ChannelHandlerContext) {
        if let peer = context.channel.remoteAddress, let ip = peer.ipAddress, let port = peer.port {
            logger[metadataKey: "tether.peer"] = "\(ip):\(port)"
        }
        registry.track(context.channel)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        readDeadline?.cancel()
        writeStall?.cancel()
        registry.untrack(context.channel)
        tunnel?.sessionEnded("the connection closed")
        if let session = established {
            let (cluster, sessionID) = (session.cluster, session.sessionID)
            registry.release(cluster: cluster, sessionID: sessionID)
            observer?.sessionEnded(cluster: cluster, sessionID: sessionID)
            Self.activeSessions.decrement()
            if !closeLogged {
                logger.info("agent disconnected", metadata: ["tether.event": "session.disconnected"])
            }
        }
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case TLSUserEvent.handshakeCompleted(let negotiatedProtocol):
            handshakeCompleted = true
            guard case .trusted(let identity) = verdict.withLockedValue({ $0 }) else {
                // The verification callback decides every handshake; reaching here untrusted is a bug, so fail closed.
                perform(.close(event: .refused, reason: "handshake completed without a trusted identity"), context: context)
                return
            }
            logger[metadataKey: "tether.identity"] = "\(identity)"
            perform(machine.handshakeCompleted(identity: identity, negotiatedProtocol: negotiatedProtocol), context: context)
        case HubSessionEvent.replaced(let newer):
            perform(machine.replaced(by: newer), context: context)
        case HubSessionEvent.drain(let reconnectAfter):
            perform(machine.drain(reconnectAfterMilliseconds: reconnectAfter), context: context)
        case HubSessionEvent.revoked(let reason):
            perform(machine.revoked(reason), context: context)
        case HubSessionEvent.renewalAnswered:
            machine.renewalFinished()
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        readDeadline?.noteRead()
        perform(machine.received(Self.unwrapInboundIn(data)), context: context)
    }

    /// The agent's outbound side filled up (it reads slower than the hub writes) or drained.
    /// While it is full nothing more is read (a ``BackPressureHandler`` holds reads), so the read
    /// deadline is suspended and the write-stall deadline runs instead: an agent that never reads
    /// is closed after it, and never makes the hub buffer more than one push.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            writeStall?.cancel()
            writeStall = nil
            if let timeout = suspendedReadTimeout {
                suspendedReadTimeout = nil
                armReadDeadline(timeout, context: context)
            }
        } else if writeStall == nil {
            if let deadline = readDeadline, let timeout = deadline.timeoutIfArmed {
                deadline.cancel()
                suspendedReadTimeout = timeout
            }
            let timeout = settings.writeStallTimeout
            writeStall = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
                writeStall = nil
                log(event: .writeStalled, reason: "the agent read nothing for \(timeout.nanoseconds / 1_000_000_000) s while the hub had data for it")
                context.close(promise: nil)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let wireError = error as? WireError {
            perform(machine.wireViolation(wireError), context: context)
            return
        }
        if !handshakeCompleted {
            let reason: String
            if case .refused(let refusal) = verdict.withLockedValue({ $0 }) {
                reason = refusal.reason
                logger[metadataKey: "tether.refusal"] = "\(refusal.code.rawValue)"
                if tlsResumed(context) {
                    // A resumed session is checked again as a full handshake is.
                    logger[metadataKey: "tether.tls_resumed"] = "true"
                }
            } else {
                reason = "TLS handshake failed: \(error)"
            }
            perform(.close(event: .refused, reason: reason), context: context)
            return
        }
        logger.debug("connection error", metadata: ["tether.error": "\(error)"])
        context.close(promise: nil)
    }

    /// Whether the TLS handshake resumed an earlier session, on either library.
    private func tlsResumed(_ context: ChannelHandlerContext) -> Bool {
        let pipeline = context.pipeline.syncOperations
        if let openSSL = try? pipeline.handler(type: OpenSSLHandler.self) { return openSSL.resumed }
        return (try? pipeline.handler(type: ResumedSessionCheck.self))?.resumed ?? false
    }

    private func perform(_ action: HubSessionStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .awaitHello:
            armReadDeadline(settings.helloTimeout, context: context)
        case .establish(let session, let welcome):
            if let refusal = observer?.refusal(cluster: session.cluster) {
                let reject = Reject(code: .notJoined, reason: refusal, retryAfterMilliseconds: 60_000)
                log(event: .rejected, reason: refusal)
                context.writeAndFlush(Self.wrapOutboundOut(.reject(reject))).assumeIsolated().whenComplete { _ in
                    context.close(promise: nil)
                }
                return
            }
            logger[metadataKey: "tether.cluster"] = "\(session.cluster)"
            logger[metadataKey: "tether.session"] = "\(session.sessionID)"
            let certificate = presented.withLockedValue { $0 }
            if let certificate, let refusal = registry.refusal(of: certificate) {
                // Revoked between its handshake and its hello.
                perform(machine.revoked(refusal.reason), context: context)
                return
            }
            gate?.authenticated(context.channel)
            let tunnel = HubTunnel(cluster: session.cluster, channel: context.channel, limits: settings.tunnel, logger: logger)
            self.tunnel = tunnel
            registry.claim(
                cluster: session.cluster, sessionID: session.sessionID, channel: context.channel, certificate: certificate, tunnel: tunnel)
            context.write(Self.wrapOutboundOut(.welcome(welcome)), promise: nil)
            if let bundle = credentials.trustBundle() {
                context.write(Self.wrapOutboundOut(.trust(TrustBundle(caBundle: bundle))), promise: nil)
            }
            context.flush()
            armReadDeadline(settings.heartbeatInterval * Int64(settings.missedHeartbeatsAllowed), context: context)
            Self.activeSessions.increment()
            Self.accepted.increment()
            logger.info(
                "agent session established",
                metadata: [
                    "tether.event": "session.established", "tether.protocol": "\(session.protocolVersion)",
                    "tether.tls_resumed": "\(tlsResumed(context))",
                    "tether.last_applied": "\(session.lastAppliedRevision.map(String.init) ?? "none")",
                ]
            )
            established = session
            observer?.sessionEstablished(
                cluster: session.cluster,
                sessionID: session.sessionID,
                hello: Hello(
                    protocolVersions: [session.protocolVersion],
                    agentVersion: session.agentVersion,
                    cluster: session.cluster,
                    kinds: session.kinds,
                    lastAppliedRevision: session.lastAppliedRevision,
                    lastAppliedDigest: session.lastAppliedDigest,
                    proxy: session.proxy
                ),
                channel: context.channel
            )
            if let certificate {
                observer?.certificateHeld(cluster: session.cluster, sessionID: session.sessionID, certificate: certificate)
            }
        case .tunnel(let message):
            tunnel?.received(message)
        case .renew(let request, let cluster):
            renew(request, cluster: cluster, context: context)
        case .send(let message):
            context.writeAndFlush(Self.wrapOutboundOut(message), promise: nil)
        case .answerHeartbeat(let heartbeat):
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            context.writeAndFlush(Self.wrapOutboundOut(.heartbeat(Heartbeat(sentAtMilliseconds: now))), promise: nil)
            if let session = established, heartbeat.cluster != nil {
                observer?.received(.heartbeat(heartbeat), cluster: session.cluster, sessionID: session.sessionID)
            }
        case .deliver(let message):
            if let session = established { observer?.received(message, cluster: session.cluster, sessionID: session.sessionID) }
        case .sendAndClose(let message, let event, let reason):
            log(event: event, reason: reason)
            context.writeAndFlush(Self.wrapOutboundOut(message)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        case .close(let event, let reason):
            log(event: event, reason: reason)
            context.close(promise: nil)
        case .ended(let event, let reason):
            log(event: event, reason: reason)
        }
    }

    /// Signs the agent's request off the event loop and answers on the session.
    private func renew(_ request: RenewRequest, cluster: String, context: ChannelHandlerContext) {
        guard let sign = credentials.sign, let session = established else {
            let refusal = CertificateIssued(error: "this hub does not sign renewals; renew with `tetherctl certs renew`")
            context.writeAndFlush(Self.wrapOutboundOut(.certificate(refusal)), promise: nil)
            machine.renewalFinished()
            return
        }
        let (channel, observer, certificate) = (context.channel, observer, presented.withLockedValue { $0 })
        if let certificate, let refusal = registry.refusal(of: certificate) {
            perform(machine.revoked(refusal.reason), context: context)
            return
        }
        Task {
            let (answer, issued) = await sign(request, cluster, certificate)
            // Both go through the event loop in this order: the session takes another renewal
            // before the agent can read this answer and send one.
            channel.pipeline.fireUserInboundEventTriggered(HubSessionEvent.renewalAnswered)
            try? await channel.writeAndFlush(WireMessage.certificate(answer))
            if let issued {
                observer?.certificateHeld(cluster: cluster, sessionID: session.sessionID, certificate: CertificateSummary(issued))
            }
        }
    }

    private func log(event: HubSessionStateMachine.SessionEnd, reason: String) {
        closeLogged = true
        var metadata: Logger.Metadata = ["tether.event": "\(event.rawValue)", "tether.reason": "\(reason)"]
        if event.isOrderly {
            logger.info("agent session ended", metadata: metadata)
        } else if event.isSecurityEvent {
            metadata["tether.security"] = "true"
            Counter(label: "tether_hub_security_events_total", dimensions: [("event", event.rawValue)]).increment()
            Counter(label: "tether_hub_sessions_refused_total", dimensions: [("event", event.rawValue)]).increment()
            logger.warning("SECURITY: agent session closed", metadata: metadata)
        } else {
            Counter(label: "tether_hub_sessions_refused_total", dimensions: [("event", event.rawValue)]).increment()
            // Strangers (never established) are logged within a budget: a flood of failed
            // handshakes is a flood of connections, which must not become one of log lines too.
            if established == nil {
                let (allowed, leftOut) = refusalLogs.take()
                guard allowed else { return }
                if leftOut > 0 { metadata["tether.not_logged"] = "\(leftOut)" }
            }
            logger.warning("agent session refused or closed", metadata: metadata)
        }
    }

    /// Closes the session when nothing is read for `timeout`; one timer per period, however many messages arrive.
    private func armReadDeadline(_ timeout: TimeAmount, context: ChannelHandlerContext) {
        if readDeadline == nil { readDeadline = ReadDeadline(loop: context.eventLoop) }
        readDeadline?.arm(timeout) { [self] in
            perform(machine.readTimedOut(), context: context)
        }
    }

    private static let activeSessions = Meter(label: "tether_hub_sessions_active")
    private static let accepted = Counter(label: "tether_hub_sessions_established_total")
}
