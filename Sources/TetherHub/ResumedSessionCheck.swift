import NIOCore
import NIOSSL
import NIOTLS
import TetherSecurity
import X509

/// Checks the peer of a session BoringSSL resumed, before anything above it sees the session.
///
/// swift-nio-ssl's server issues TLS 1.3 tickets and resumes them, and a resumed handshake
/// skips the verification callback: the hub's verdict would be missing (and the session
/// refused for it, fail-closed, on every reconnect of an agent that keeps tickets, such as one
/// on OpenSSL). So when the handshake completes with no verdict, this handler holds the
/// completion and the reads behind it, judges the leaf the session carries as a full
/// handshake's chain is judged (identity, trust domain, expiry, revocation), and then lets the
/// session go on or fails it with the refusal. Reads stay paused meanwhile, so what it holds
/// is at most what the socket had already given.
final class ResumedSessionCheck: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias InboundOut = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    /// Why a resumed session was refused; the session handler logs the verdict's reason.
    struct Refused: Error, CustomStringConvertible {
        var refusal: PeerVerifier.Refusal
        var description: String { refusal.reason }
    }

    private enum State {
        case handshaking
        case checking(held: [NIOAny], readRequested: Bool)
        case passing
    }

    private let hasVerdict: @Sendable () -> Bool
    private let judge: @Sendable ([Certificate]) async -> PeerVerifier.Verdict
    private var state = State.handshaking
    /// Whether the session was resumed (and so checked here).
    private(set) var resumed = false

    /// - Parameters:
    ///   - hasVerdict: whether the TLS layer's verification callback already judged this handshake.
    ///   - judge: the hub's verdict on a chain, recorded as the callback's is.
    init(hasVerdict: @escaping @Sendable () -> Bool, judge: @escaping @Sendable ([Certificate]) async -> PeerVerifier.Verdict) {
        self.hasVerdict = hasVerdict
        self.judge = judge
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case .handshaking = state, case TLSUserEvent.handshakeCompleted = event else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        if hasVerdict() {
            state = .passing
            context.fireUserInboundEventTriggered(event)
            return
        }
        resumed = true
        state = .checking(held: [], readRequested: false)
        let leaf = (try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self))?.peerCertificate
        guard let leaf, let parsed = try? TetherTLS.certificate(from: leaf) else {
            fail(.init(code: .noIdentity, reason: "the resumed session carries no certificate that can be parsed"), context)
            return
        }
        let judge = self.judge
        let decided = context.eventLoop.makePromise(of: PeerVerifier.Verdict.self)
        decided.completeWithTask { await judge([parsed]) }
        decided.futureResult.assumeIsolated().whenSuccess { [self] verdict in
            guard case .checking(let held, let readRequested) = state else { return }
            switch verdict {
            case .trusted:
                state = .passing
                context.fireUserInboundEventTriggered(event)
                for data in held { context.fireChannelRead(data) }
                if !held.isEmpty { context.fireChannelReadComplete() }
                if readRequested { context.read() }
            case .refused(let refusal):
                fail(refusal, context)
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .checking(var held, let readRequested) = state {
            held.append(data)
            state = .checking(held: held, readRequested: readRequested)
        } else {
            context.fireChannelRead(data)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if case .checking = state { return }
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if case .checking(let held, _) = state {
            state = .checking(held: held, readRequested: true)
            return
        }
        context.read()
    }

    private func fail(_ refusal: PeerVerifier.Refusal, _ context: ChannelHandlerContext) {
        state = .passing
        context.fireErrorCaught(Refused(refusal: refusal))
        context.close(promise: nil)
    }
}
