import Foundation
import Logging
import NIOCore
import NIOSSL
import NIOTLS
import TetherSecurity
import TetherWire
import X509

/// Events the connector delivers to the live session from outside its event loop.
enum AgentSessionEvent: Sendable {
    case shutdown
    case resync(String)
}

/// What the rest of the agent plugs into its sessions: the applier and the cluster prober.
public struct AgentSessionHooks: Sendable {
    /// The revision `hello` announces as applied.
    public var lastRevision: @Sendable () async -> UInt64?
    /// The hub's digest of that revision, which `hello` announces with it.
    public var lastDigest: @Sendable () async -> String? = { nil }
    /// Takes a `snapshot` or `delta`, in order, on the session's event loop, with the session's
    /// `welcome` (who sent it); false ends the session.
    public var offer: @Sendable (WireMessage, Welcome?) -> Bool
    /// A session was established (after `link` holds it).
    public var established: @Sendable () async -> Void
    /// The member's health for the next heartbeat.
    public var clusterHealth: @Sendable () -> Heartbeat.ClusterHealth?
    public var link: HubLink
    /// The hub unjoined this cluster: stop managing, leave every object in place.
    public var unjoined: @Sendable () async -> Void = {}
    /// A `certificate` (the answer to a renewal) or a `trust` bundle from the hub, on the
    /// session's event loop: hand it elsewhere and return.
    public var credentials: @Sendable (WireMessage) -> Void = { _ in }
    /// Answers the hub's requests for the member's API; without it each is reset.
    public var tunnel: AgentTunnel?

    public init(
        lastRevision: @escaping @Sendable () async -> UInt64? = { nil },
        offer: @escaping @Sendable (WireMessage, Welcome?) -> Bool = { _, _ in true },
        established: @escaping @Sendable () async -> Void = {},
        clusterHealth: @escaping @Sendable () -> Heartbeat.ClusterHealth? = { nil },
        link: HubLink = HubLink()
    ) {
        self.lastRevision = lastRevision
        self.offer = offer
        self.established = established
        self.clusterHealth = clusterHealth
        self.link = link
    }
}

/// Runs one agent session on its channel: performs what ``AgentSessionStateMachine`` decides,
/// and reports how the session ended through `ended`.
final class AgentSessionHandler: ChannelInboundHandler {
    typealias InboundIn = WireMessage
    typealias OutboundOut = WireMessage

    struct Timing: Sendable {
        var welcomeTimeout: TimeAmount
        var missedHeartbeatsAllowed: Int = 3
        /// Heartbeats go out after a random fraction of the interval between 1 - jitter and 1.
        var heartbeatJitter: Double = 0.25
    }

    private var machine: AgentSessionStateMachine
    private let timing: Timing
    private let ended: EventLoopPromise<(SessionEnd, wasEstablished: Bool)>
    private let onEstablished: @Sendable (String) -> Void
    private let hooks: AgentSessionHooks
    private var logger: Logger
    private var handshakeError: String?
    private var heartbeatTimer: Scheduled<Void>?
    private var heartbeatInterval = TimeAmount.zero
    private var readDeadline: ReadDeadline?
    private var lastWrite: EventLoopFuture<Void>?

    init(
        machine: AgentSessionStateMachine,
        timing: Timing,
        ended: EventLoopPromise<(SessionEnd, wasEstablished: Bool)>,
        logger: Logger,
        hooks: AgentSessionHooks = AgentSessionHooks(),
        onEstablished: @escaping @Sendable (String) -> Void
    ) {
        self.hooks = hooks
        self.machine = machine
        self.timing = timing
        self.ended = ended
        self.logger = logger
        self.onEstablished = onEstablished
    }

    /// A hub that accepts the connection and then says nothing (stopped, or behind a black hole)
    /// must not hold the agent: the handshake and `welcome` together get the welcome timeout.
    func channelActive(context: ChannelHandlerContext) {
        armReadDeadline(timing.welcomeTimeout, context: context)
        context.fireChannelActive()
    }

    /// Added to a channel already active: above a proxy's tunnel, once CONNECT succeeded.
    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { armReadDeadline(timing.welcomeTimeout, context: context) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        hooks.link.detach(context.channel)
        hooks.tunnel?.sessionEnded(context.channel)
        heartbeatTimer?.cancel()
        readDeadline?.cancel()
        machine.connectionClosed(handshakeError: handshakeError)
        ended.succeed((machine.end ?? .connectionLost, machine.wasEstablished))
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // A channel torn down before it ever became active still owes the connector an answer.
        ended.succeed((machine.end ?? .connectionLost, machine.wasEstablished))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case TLSUserEvent.handshakeCompleted:
            // By name: above an https:// proxy, the first TLS handler in the pipeline is the proxy's.
            let hubTLS = try? context.pipeline.syncOperations.context(name: AgentConnector.hubTLSHandlerName).handler
            let leaf: Certificate? =
                if let openSSL = hubTLS as? OpenSSLHandler {
                    openSSL.peerChain.first
                } else {
                    (hubTLS as? NIOSSLHandler)?.peerCertificate.flatMap { try? TetherTLS.certificate(from: $0) }
                }
            let identity = leaf.flatMap { try? TetherIdentity(certificate: $0) }
            perform(machine.handshakeCompleted(peerIdentity: identity), context: context)
        case AgentSessionEvent.shutdown:
            perform(machine.shutdown(), context: context)
        case AgentSessionEvent.resync(let reason):
            perform(machine.resync(reason), context: context)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        readDeadline?.noteRead()
        perform(machine.received(Self.unwrapInboundIn(data)), context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let wireError = error as? WireError {
            // The wire layer answers with an `error` frame and closes once it is written.
            perform(machine.wireViolation(wireError), context: context)
            return
        }
        if case .connecting = machine.state { handshakeError = "\(error)" }
        context.close(promise: nil)
    }

    private func perform(_ action: AgentSessionStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .sendHello(let hello):
            write(.hello(hello), context: context)
            armReadDeadline(timing.welcomeTimeout, context: context)
        case .established(let sessionID, let intervalMilliseconds):
            heartbeatInterval = .milliseconds(Int64(intervalMilliseconds))
            armReadDeadline(heartbeatInterval * Int64(timing.missedHeartbeatsAllowed), context: context)
            scheduleHeartbeat(context: context)
            hooks.link.attach(context.channel)
            onEstablished(sessionID)
        case .sendHeartbeat:
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            write(.heartbeat(Heartbeat(sentAtMilliseconds: now, cluster: hooks.clusterHealth())), context: context)
            scheduleHeartbeat(context: context)
        case .credentials(let message):
            hooks.credentials(message)
        case .tunnel(let message):
            if let tunnel = hooks.tunnel {
                tunnel.received(message, on: context.channel)
            } else if case .streamOpen(let open) = message {
                let reason = "this agent has no member API to answer from (started without --kubeconfig)"
                write(.streamReset(StreamReset(stream: open.stream, reason: reason)), context: context)
            }
        case .deliver(let message):
            if !hooks.offer(message, machine.welcome) {
                perform(machine.resync("more desired-state messages are waiting than the applier holds"), context: context)
            }
        case .sendAndClose(let message, _):
            write(message, context: context)
            closeAfterWrites(context: context)
        case .close:
            closeAfterWrites(context: context)
        }
    }

    private func write(_ message: WireMessage, context: ChannelHandlerContext) {
        lastWrite = context.writeAndFlush(Self.wrapOutboundOut(message))
    }

    /// Closes once every frame already handed to the channel is written, so the hub never sees half a frame.
    private func closeAfterWrites(context: ChannelHandlerContext) {
        heartbeatTimer?.cancel()
        guard let pending = lastWrite else {
            context.close(promise: nil)
            return
        }
        pending.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    private func scheduleHeartbeat(context: ChannelHandlerContext) {
        let fraction = 1 - Double.random(in: 0...timing.heartbeatJitter)
        let delay = TimeAmount.nanoseconds(Int64(Double(heartbeatInterval.nanoseconds) * fraction))
        heartbeatTimer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
            perform(machine.heartbeatDue(), context: context)
        }
    }

    private func armReadDeadline(_ timeout: TimeAmount, context: ChannelHandlerContext) {
        if readDeadline == nil { readDeadline = ReadDeadline(loop: context.eventLoop) }
        readDeadline?.arm(timeout) { [self] in
            perform(machine.readTimedOut(), context: context)
        }
    }
}
