import Foundation
import NIOCore
import NIOSSL
import NIOTLS
import TetherWire

/// Opens a tunnel through an HTTP proxy: sends `CONNECT host:port` once the channel is active
/// (after the TLS handshake with an `https://` proxy), reads the proxy's answer and fulfils
/// `established` on a 2xx, or fails it with what the proxy said. The connector then removes it
/// and puts the hub's TLS and the wire protocol above; until then nothing else is written.
final class HTTPConnectHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// A proxy's answer to CONNECT has a status line and a few headers; more is not a proxy.
    static let maximumResponseBytes = 16 * 1024

    private let target: HostAndPort
    private let proxy: String
    private let authorization: String?
    private let established: EventLoopPromise<Void>
    private var response: ByteBuffer?
    private var sent = false
    private var done = false

    init(target: HostAndPort, proxy: String, authorization: String?, established: EventLoopPromise<Void>) {
        self.target = target
        self.proxy = proxy
        self.authorization = authorization
        self.established = established
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { sendRequest(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        sendRequest(context: context)
        context.fireChannelActive()
    }

    /// The proxy did not answer CONNECT in time.
    struct Timeout: Sendable {
        var after: TimeAmount
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let timeout as Timeout:
            fail(context, "the proxy \(proxy) did not answer CONNECT to \(target) within \(timeout.after.nanoseconds / 1_000_000) ms")
        case TLSUserEvent.handshakeCompleted:
            // The proxy's own TLS handshake; the hub's comes later, above this handler's place.
            return
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    private func sendRequest(context: ChannelHandlerContext) {
        guard !sent else { return }
        sent = true
        let authority = target.host.contains(":") ? "[\(target.host)]:\(target.port)" : "\(target.host):\(target.port)"
        var request = "CONNECT \(authority) HTTP/1.1\r\nHost: \(authority)\r\nUser-Agent: tether-agent\r\nProxy-Connection: keep-alive\r\n"
        if let authorization { request += "Proxy-Authorization: \(authorization)\r\n" }
        request += "\r\n"
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: request)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        guard !done else { return }
        if response == nil { response = context.channel.allocator.buffer(capacity: bytes.readableBytes) }
        response!.writeBuffer(&bytes)
        let view = response!.readableBytesView
        guard let end = view.firstRange(of: [13, 10, 13, 10]) else {
            if view.count > Self.maximumResponseBytes {
                fail(
                    context, "the proxy \(proxy) answered CONNECT with more than \(Self.maximumResponseBytes) bytes of headers; is it an HTTP proxy?")
            }
            return
        }
        let head = String(decoding: view[view.startIndex..<end.lowerBound], as: UTF8.self)
        let trailing = view.distance(from: end.upperBound, to: view.endIndex)
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusLine = lines.first.map(String.init) ?? ""
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let code = Int(parts[1]) else {
            fail(context, "the proxy \(proxy) did not answer CONNECT as an HTTP proxy does (first line: \(statusLine.prefix(80).debugDescription))")
            return
        }
        switch code {
        case 200..<300:
            guard trailing == 0 else {
                fail(context, "the proxy \(proxy) sent \(trailing) bytes before the tunnel to \(target) was used")
                return
            }
            done = true
            established.succeed(())
        case 407, 401:
            // 407 is the proxy's own; tinyproxy, among others, answers a bad Proxy-Authorization with 401.
            let challenge =
                lines.first { $0.lowercased().hasPrefix("proxy-authenticate:") }.map { " (\($0.trimmingCharacters(in: .whitespaces)))" } ?? ""
            fail(
                context,
                authorization == nil
                    ? "the proxy \(proxy) requires authentication (\(code))\(challenge); give user:password in --proxy-credentials-file"
                    : "the proxy \(proxy) refused the credentials (\(code))\(challenge); check --proxy-credentials-file")
        default:
            fail(context, "the proxy \(proxy) refused CONNECT to \(target): \(statusLine); allow that host and port in the proxy's configuration")
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(context, "the proxy \(proxy) closed the connection before answering CONNECT to \(target)")
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context, "the connection to the proxy \(proxy) failed: \(error)")
    }

    private func fail(_ context: ChannelHandlerContext, _ message: String) {
        guard !done else { return }
        done = true
        established.fail(ProxyError(message))
        context.close(promise: nil)
    }
}
