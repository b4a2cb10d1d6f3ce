import CTetherOpenSSL
import NIOCore
import NIOTLS
import X509

/// Why a connection's TLS failed, in words for the log.
public enum OpenSSLHandshakeError: Error, Sendable, CustomStringConvertible {
    /// OpenSSL refused the handshake (protocol, version, cipher, a bad record).
    case handshakeFailed(String)
    /// The handshake completed, and the peer's certificate was refused.
    case refused(PeerVerifier.Refusal)
    /// The connection closed before the handshake completed.
    case closedDuringHandshake
    /// A record after the handshake could not be read.
    case recordFailed(String)

    public var description: String {
        switch self {
        case .handshakeFailed(let reason): "OpenSSL: \(reason)"
        case .refused(let refusal): refusal.reason
        case .closedDuringHandshake: "the connection closed during the TLS handshake"
        case .recordFailed(let reason): "TLS record error: \(reason)"
        }
    }
}

/// TLS over the system's OpenSSL, with memory BIOs: NIO owns the socket, OpenSSL only turns
/// bytes into records and back.
///
/// OpenSSL verifies the peer's chain against the CA bundle (and, for a client, the hub's name or
/// address) during the handshake; when it refuses, `verify` says why in the hub's words. After
/// the handshake `verify` decides again on the rest (identity, trust domain, revocation).
/// Until it says yes, nothing the peer sent is read and nothing written is sent; then the
/// handler fires `TLSUserEvent.handshakeCompleted`, as NIOSSL's handlers do. It holds no
/// buffer of its own beyond writes made during the handshake: ciphertext goes out as each
/// write is encrypted, plaintext up as each record is read.
public final class OpenSSLHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    /// Decides on the peer's chain (leaf first), which OpenSSL verified; `chainError` is
    /// OpenSSL's own verdict on it, nil when it verified.
    public typealias Verify = @Sendable (_ chain: [Certificate], _ chainError: String?) async -> PeerVerifier.Verdict
    /// Says why OpenSSL refused the peer's leaf (its `X509_V_ERR_*` code and text).
    public typealias Explain = @Sendable (_ leaf: Certificate, _ code: Int32, _ description: String) -> PeerVerifier.Refusal

    private enum State {
        case idle, handshaking, verifying, active, closed
    }

    private let context: OpenSSLContext
    private let serverName: String?
    private let verify: Verify
    private let explain: Explain
    private var ssl: OpaquePointer?
    private var readBIO: OpaquePointer?
    private var writeBIO: OpaquePointer?
    private var state = State.idle
    private var pendingWrites: [(ByteBuffer, EventLoopPromise<Void>?)] = []
    private var flushPending = false

    /// The peer's certificate chain, leaf first, while `TLSUserEvent.handshakeCompleted` is
    /// delivered (read it then: it is not kept for the session's life).
    public private(set) var peerChain: [Certificate] = []
    /// The ALPN protocol both sides chose, if any.
    public private(set) var negotiatedProtocol: String?
    /// Whether the handshake resumed an earlier session.
    public private(set) var resumed = false
    /// Whether the peer ended the session with close_notify (not a bare close of the connection).
    public private(set) var peerSentCloseNotify = false

    /// - Parameter serverName: for a client, the hub's host name (SNI and a host-name check); nil for an address.
    public init(context: OpenSSLContext, serverName: String? = nil, explain: @escaping Explain, verify: @escaping Verify) {
        self.context = context
        self.serverName = serverName
        self.explain = explain
        self.verify = verify
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        release()
    }

    deinit {
        release()
    }

    public func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        let was = state
        state = .closed
        let writes = pendingWrites
        pendingWrites = []
        for (_, promise) in writes { promise?.fail(ChannelError.ioOnClosedChannel) }
        if was == .handshaking || was == .verifying { context.fireErrorCaught(OpenSSLHandshakeError.closedDuringHandshake) }
        if was == .active, let ssl, let readBIO, tether_bio_pending(readBIO) > 0 || SSL_has_pending(ssl) == 1 {
            // Part of a record never came: nothing of it was passed up, and the reader should know why.
            context.fireErrorCaught(OpenSSLHandshakeError.recordFailed("the peer closed the connection in the middle of a record"))
        }
        release()
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard state != .closed, let readBIO else { return }
        let ciphertext = Self.unwrapInboundIn(data)
        ciphertext.withUnsafeReadableBytes { bytes in
            _ = BIO_write(readBIO, bytes.baseAddress, Int32(bytes.count))
        }
        switch state {
        case .handshaking: advanceHandshake(context)
        case .active: readPlaintext(context)
        case .idle, .verifying, .closed: break  // kept in the BIO until the peer is verified
        }
        releaseIdleBuffers()
    }

    /// A memory BIO keeps room for the most it ever held (a snapshot's records, a socket read of
    /// 64 KiB, the handshake's certificate flight); an idle session must not. Each emptied BIO
    /// that holds any room is replaced: a fresh one costs a small allocation at the next read or
    /// write, and an idle session keeps none (kept up to 4 KiB, they were 3.9 KB of each idle
    /// session's heap, measured with heaptrack).
    private func releaseIdleBuffers() {
        guard let ssl else { return }
        if let readBIO, tether_bio_pending(readBIO) == 0, tether_bio_capacity(readBIO) > Self.keptBIOCapacity, let fresh = BIO_new(BIO_s_mem()) {
            SSL_set0_rbio(ssl, fresh)
            self.readBIO = fresh
        }
        if let writeBIO, tether_bio_pending(writeBIO) == 0, tether_bio_capacity(writeBIO) > Self.keptBIOCapacity, let fresh = BIO_new(BIO_s_mem()) {
            SSL_set0_wbio(ssl, fresh)
            self.writeBIO = fresh
        }
    }

    private static let keptBIOCapacity = 0

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let plaintext = Self.unwrapOutboundIn(data)
        switch state {
        case .active:
            encrypt(plaintext, promise: promise, context: context)
        case .idle, .handshaking, .verifying:
            pendingWrites.append((plaintext, promise))
        case .closed:
            promise?.fail(ChannelError.ioOnClosedChannel)
        }
    }

    public func flush(context: ChannelHandlerContext) {
        if state == .active {
            context.flush()
        } else {
            flushPending = true
        }
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if let ssl, state == .active || state == .verifying, mode != .input {
            // close_notify, without waiting for the peer's: the session has already ended.
            _ = SSL_shutdown(ssl)
            sendCiphertext(context)
        }
        if mode == .all { state = .closed }
        context.close(mode: mode, promise: promise)
    }

    // MARK: Handshake

    private func start(_ context: ChannelHandlerContext) {
        guard state == .idle else { return }
        guard let ssl = SSL_new(self.context.pointer), let readBIO = BIO_new(BIO_s_mem()), let writeBIO = BIO_new(BIO_s_mem()) else {
            context.fireErrorCaught(OpenSSLHandshakeError.handshakeFailed("OpenSSL could not make a connection: \(OpenSSLErrors.drain())"))
            context.close(promise: nil)
            return
        }
        SSL_set_bio(ssl, readBIO, writeBIO)
        self.ssl = ssl
        self.readBIO = readBIO
        self.writeBIO = writeBIO
        state = .handshaking
        switch self.context.role {
        case .server:
            SSL_set_accept_state(ssl)
        case .client:
            SSL_set_connect_state(ssl)
            tether_ssl_offer_kept_session(ssl)
            if let serverName {
                if IPAddressBytes.parse(serverName) != nil {
                    _ = tether_ssl_set_ip_check(ssl, serverName)
                } else {
                    _ = tether_ssl_set_server_name(ssl, serverName)
                    _ = SSL_set1_host(ssl, serverName)
                }
            }
            advanceHandshake(context)
        }
    }

    private func advanceHandshake(_ context: ChannelHandlerContext) {
        guard let ssl else { return }
        ERR_clear_error()
        let result = SSL_do_handshake(ssl)
        sendCiphertext(context)
        if result == 1 {
            handshakeCompleted(context)
            return
        }
        let error = SSL_get_error(ssl, result)
        if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE { return }
        let reason = OpenSSLErrors.drain()
        guard let refused = tether_ssl_take_refused_leaf(ssl) else {
            fail(OpenSSLHandshakeError.handshakeFailed(reason), context)
            return
        }
        // OpenSSL refused the peer's chain (and sent its alert): say why in the verifier's words.
        let leaf = OpenSSLContext.certificate(refused)
        X509_free(refused)
        let code = Int32(SSL_get_verify_result(ssl))
        let description = String(cString: X509_verify_cert_error_string(Int(code)))
        guard let leaf else {
            fail(OpenSSLHandshakeError.refused(.init(code: .noIdentity, reason: "the peer's certificate cannot be parsed (\(description))")), context)
            return
        }
        fail(OpenSSLHandshakeError.refused(explain(leaf, code, description)), context)
    }

    private func handshakeCompleted(_ context: ChannelHandlerContext) {
        guard let ssl else { return }
        state = .verifying
        resumed = SSL_session_reused(ssl) == 1
        var chain: [Certificate] = []
        if let leaf = SSL_get0_peer_certificate(ssl), let parsed = OpenSSLContext.certificate(leaf) { chain.append(parsed) }
        let presented = SSL_get_peer_cert_chain(ssl)
        for index in 0..<tether_chain_count(presented) {
            if let x509 = tether_chain_at(presented, index), let parsed = OpenSSLContext.certificate(x509), parsed != chain.first {
                chain.append(parsed)
            }
        }
        peerChain = chain
        var selected: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &selected, &length)
        if let selected, length > 0 {
            negotiatedProtocol = String(decoding: UnsafeBufferPointer(start: selected, count: Int(length)), as: UTF8.self)
        }
        let result = SSL_get_verify_result(ssl)
        let chainError = result == X509_V_OK ? nil : String(cString: X509_verify_cert_error_string(result))
        let (verify, presentedChain) = (self.verify, chain)
        let decided = context.eventLoop.makePromise(of: PeerVerifier.Verdict.self)
        decided.completeWithTask { await verify(presentedChain, chainError) }
        decided.futureResult.assumeIsolated().whenSuccess { [self] verdict in
            guard state == .verifying else { return }
            switch verdict {
            case .trusted:
                state = .active
                context.fireUserInboundEventTriggered(TLSUserEvent.handshakeCompleted(negotiatedProtocol: negotiatedProtocol))
                // Read by the handlers above during that event; an idle session keeps none of it.
                peerChain = []
                let writes = pendingWrites
                pendingWrites = []
                for (plaintext, promise) in writes { encrypt(plaintext, promise: promise, context: context) }
                if flushPending || !writes.isEmpty {
                    flushPending = false
                    context.flush()
                }
                readPlaintext(context)
            case .refused(let refusal):
                fail(OpenSSLHandshakeError.refused(refusal), context)
            }
        }
    }

    // MARK: Records

    private func readPlaintext(_ context: ChannelHandlerContext) {
        guard let ssl else { return }
        while state == .active {
            ERR_clear_error()
            var buffer = context.channel.allocator.buffer(capacity: 16 * 1024)
            var status: Int32 = 0
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 16 * 1024) { space in
                var read = 0
                status = SSL_read_ex(ssl, space.baseAddress, space.count, &read)
                return status == 1 ? read : 0
            }
            if status == 1 {
                context.fireChannelRead(Self.wrapInboundOut(buffer))
                continue
            }
            let error = SSL_get_error(ssl, status)
            sendCiphertext(context)  // what reading produced: key updates, alerts
            switch error {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
                return
            case SSL_ERROR_ZERO_RETURN:
                // The peer's close_notify: answer with ours and close.
                peerSentCloseNotify = true
                close(context: context, mode: .all, promise: nil)
                return
            default:
                fail(OpenSSLHandshakeError.recordFailed(OpenSSLErrors.drain()), context)
                return
            }
        }
    }

    private func encrypt(_ plaintext: ByteBuffer, promise: EventLoopPromise<Void>?, context: ChannelHandlerContext) {
        guard let ssl, let writeBIO else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        if plaintext.readableBytes > 0 {
            ERR_clear_error()
            var written = 0
            let status = plaintext.withUnsafeReadableBytes { bytes in SSL_write_ex(ssl, bytes.baseAddress, bytes.count, &written) }
            guard status == 1 else {
                let reason = OpenSSLErrors.drain()
                promise?.fail(OpenSSLHandshakeError.recordFailed(reason))
                fail(OpenSSLHandshakeError.recordFailed(reason), context)
                return
            }
        }
        let pending = tether_bio_pending(writeBIO)
        guard pending > 0 else {
            promise?.succeed()
            return
        }
        context.write(Self.wrapOutboundOut(drain(writeBIO, bytes: pending, allocator: context.channel.allocator)), promise: promise)
        releaseIdleBuffers()
    }

    /// Sends what OpenSSL wrote outside `encrypt`: handshake messages, tickets, alerts, close_notify.
    private func sendCiphertext(_ context: ChannelHandlerContext) {
        guard let writeBIO else { return }
        let pending = tether_bio_pending(writeBIO)
        guard pending > 0 else { return }
        context.writeAndFlush(Self.wrapOutboundOut(drain(writeBIO, bytes: pending, allocator: context.channel.allocator)), promise: nil)
    }

    private func drain(_ bio: OpaquePointer, bytes: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: bytes)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: bytes) { space in
            Int(max(0, BIO_read(bio, space.baseAddress, Int32(bytes))))
        }
        return buffer
    }

    private func fail(_ error: OpenSSLHandshakeError, _ context: ChannelHandlerContext) {
        guard state != .closed else { return }
        state = .closed
        let writes = pendingWrites
        pendingWrites = []
        for (_, promise) in writes { promise?.fail(error) }
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }

    private func release() {
        if let ssl {
            if let kept = tether_ssl_take_refused_leaf(ssl) { X509_free(kept) }
            SSL_free(ssl)  // frees both BIOs too
        }
        ssl = nil
        readBIO = nil
        writeBIO = nil
    }
}
