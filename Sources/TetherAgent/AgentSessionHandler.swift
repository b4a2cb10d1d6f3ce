import Foundation
import Logging
import NIOCore
import NIOSSL
import NIOTLS
import TetherSecurity
import TetherWire

/// Events the connector delivers to the live session from outside its event loop.
enum AgentSessionEvent: Sendable {
    case shutdown
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
        onEstablished: @escaping @Sendable (String) -> Void
    ) {
        self.machine = machine
        self.timing = timing
        self.ended = ended
        self.logger = logger
        self.onEstablished = onEstablished
    }

    func channelInactive(context: ChannelHandlerContext) {
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
            let peer = try? context.pipeline.syncOperations.nioSSL_peerCertificate()
            let identity = peer.flatMap { try? TetherTLS.certificate(from: $0) }.flatMap { try? TetherIdentity(certificate: $0) }
            perform(machine.handshakeCompleted(peerIdentity: identity), context: context)
        case AgentSessionEvent.shutdown:
            perform(machine.shutdown(), context: context)
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
            onEstablished(sessionID)
        case .sendHeartbeat:
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            write(.heartbeat(Heartbeat(sentAtMilliseconds: now)), context: context)
            scheduleHeartbeat(context: context)
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
