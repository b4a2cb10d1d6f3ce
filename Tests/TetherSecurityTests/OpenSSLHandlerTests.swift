import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOTLS
import Testing
import TetherLocal
import TetherSecurity
import TetherTestSupport
import X509

/// The OpenSSL handler between two real sockets on loopback: handshake, records, resumption,
/// ticket-key rotation, and refusals with the verifier's words.
@Suite("TLS on the system's OpenSSL")
struct OpenSSLHandlerTests {
    /// What one side of a connection saw.
    final class Observer: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        struct Seen: Sendable {
            var bytes: [UInt8] = []
            var protocolChosen: String?
            var errors: [String] = []
            var closed = false
        }
        let seen = NIOLockedValueBox(Seen())
        /// Each change of `seen`, for waiting on a condition instead of polling it.
        let changes = Inbox<Seen>()
        let echo: Bool
        let handshake: EventLoopPromise<String?>

        init(echo: Bool, loop: any EventLoop) {
            self.echo = echo
            self.handshake = loop.makePromise()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = Self.unwrapInboundIn(data)
            changes.append(
                seen.withLockedValue {
                    $0.bytes += Array(buffer.readableBytesView)
                    return $0
                })
            if echo { context.writeAndFlush(data, promise: nil) }
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case TLSUserEvent.handshakeCompleted(let chosen) = event {
                seen.withLockedValue { $0.protocolChosen = chosen }
                handshake.succeed(chosen)
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            changes.append(
                seen.withLockedValue {
                    $0.errors.append("\(error)")
                    return $0
                })
            handshake.fail(error)
        }

        func channelInactive(context: ChannelHandlerContext) {
            changes.append(
                seen.withLockedValue {
                    $0.closed = true
                    return $0
                })
            handshake.fail(ChannelError.ioOnClosedChannel)
        }
    }

    /// A server on loopback whose context can be replaced, as the hub's listener does.
    final class Server: Sendable {
        let channel: any Channel
        let context: NIOLockedValueBox<OpenSSLContext>
        let observers = NIOLockedValueBox<[Observer]>([])

        init(material: TLSMaterial, tickets: TLSTicketKeys) async throws {
            let context = NIOLockedValueBox(try OpenSSLContext.agentListener(material, tickets: tickets))
            let verifier = PeerVerifier(trustRoots: material.trustRoots, trustDomain: material.identity.trustDomain)
            let observers = self.observers
            self.context = context
            channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handler = OpenSSLHandler(
                            context: context.withLockedValue { $0 },
                            explain: { leaf, code, description in verifier.explain(openSSLError: code, description: description, leaf: leaf) },
                            verify: { chain, _ in await verifier.verify(chain: chain) })
                        let observer = Observer(echo: true, loop: channel.eventLoop)
                        observers.withLockedValue { $0.append(observer) }
                        try channel.pipeline.syncOperations.addHandlers([handler, observer])
                    }
                }
                .bind(host: "127.0.0.1", port: 0).get()
        }

        var port: Int { channel.localAddress?.port ?? 0 }
    }

    /// Connects a client with `context`; returns its channel, observer and handler.
    func connect(_ context: OpenSSLContext, to port: Int, trustRoots: [Certificate], trustDomain: String) async throws -> (
        any Channel, Observer
    ) {
        let verifier = PeerVerifier(trustRoots: trustRoots, trustDomain: trustDomain)
        let made = NIOLockedValueBox<Observer?>(nil)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = OpenSSLHandler(
                        context: context, serverName: "127.0.0.1",
                        explain: { leaf, code, description in verifier.explain(openSSLError: code, description: description, leaf: leaf) },
                        verify: { chain, _ in await verifier.verify(chain: chain) })
                    let observer = Observer(echo: false, loop: channel.eventLoop)
                    made.withLockedValue { $0 = observer }
                    try channel.pipeline.syncOperations.addHandlers([handler, observer])
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        let observer = try #require(made.withLockedValue { $0 })
        return (channel, observer)
    }

    /// Waits until what `observer` saw satisfies `condition`.
    func eventually(_ what: String, _ observer: Observer, _ condition: @escaping @Sendable (Observer.Seen) -> Bool) async throws {
        _ = try await observer.changes.waitFor(what, within: .seconds(10), where: condition)
    }

    @Test("both sides verify, ALPN is tether/1, a megabyte crosses in records both ways, and close_notify ends it cleanly")
    func handshakeAndRecords() async throws {
        let pki = try TestPKI()
        let server = try await Server(material: try pki.hubMaterial(), tickets: .fresh())
        let (channel, observer) = try await connect(
            try OpenSSLContext.agentDialer(try pki.agentMaterial(cluster: "eu-1")), to: server.port, trustRoots: pki.trustRoots,
            trustDomain: pki.trustDomain)
        #expect(try await observer.handshake.futureResult.get() == "tether/1")
        var payload = ByteBuffer()
        for index in 0..<(1 << 20) { payload.writeInteger(UInt8(truncatingIfNeeded: index * 7)) }
        try await channel.writeAndFlush(payload)
        try await eventually("the echo", observer) { $0.bytes.count == 1 << 20 }
        #expect(observer.seen.withLockedValue { $0.bytes } == Array(payload.readableBytesView))
        try await channel.close()
        let serverSide = try #require(server.observers.withLockedValue { $0.first })
        try await eventually("the server's close", serverSide) { $0.closed }
        #expect(serverSide.seen.withLockedValue { $0.errors }.isEmpty, "a clean close_notify, no error")
        try await server.channel.close()
    }

    @Test("a client resumes with its ticket; after one key rotation too, not after two; a new client context starts afresh")
    func resumptionAndRotation() async throws {
        let pki = try TestPKI()
        let hub = try pki.hubMaterial()
        var tickets = TLSTicketKeys.fresh()
        let server = try await Server(material: hub, tickets: tickets)
        let agent = try OpenSSLContext.agentDialer(try pki.agentMaterial(cluster: "eu-1"))
        func session(_ context: OpenSSLContext) async throws -> Bool {
            let (channel, observer) = try await connect(context, to: server.port, trustRoots: pki.trustRoots, trustDomain: pki.trustDomain)
            _ = try await observer.handshake.futureResult.get()
            // The ticket follows the handshake: a round trip makes sure it was read.
            try await channel.writeAndFlush(ByteBuffer(string: "ping"))
            try await eventually("the echo", observer) { $0.bytes.count == 4 }
            let resumed = try await channel.eventLoop.submit {
                try channel.pipeline.syncOperations.handler(type: OpenSSLHandler.self).resumed
            }.get()
            try await channel.close()
            return resumed
        }
        #expect(try await session(agent) == false)
        #expect(try await session(agent) == true)
        #expect(try await session(agent) == true, "each resumption brings a new ticket")
        tickets = tickets.rotated()
        server.context.withLockedValue { $0 = try! OpenSSLContext.agentListener(hub, tickets: tickets) }
        #expect(try await session(agent) == true, "a ticket under the previous key still resumes")
        tickets = tickets.rotated().rotated()
        server.context.withLockedValue { $0 = try! OpenSSLContext.agentListener(hub, tickets: tickets) }
        #expect(try await session(agent) == false, "two rotations later it does not")
        let renewed = try OpenSSLContext.agentDialer(try pki.agentMaterial(cluster: "eu-1"))
        #expect(try await session(renewed) == false, "a renewed certificate never resumes an old session")
        try await server.channel.close()
    }

    @Test("a client from another CA is refused during the handshake, in the verifier's words, and gets an alert")
    func foreignClientRefused() async throws {
        let pki = try TestPKI()
        let foreign = try TestPKI()
        let server = try await Server(material: try pki.hubMaterial(), tickets: .fresh())
        let (_, observer) = try await connect(
            try OpenSSLContext.agentDialer(try foreign.agentMaterial(cluster: "eu-1", trusting: pki.trustRoots)), to: server.port,
            trustRoots: pki.trustRoots, trustDomain: pki.trustDomain)
        // In TLS 1.3 the client's handshake ends before the server has read its certificate, so
        // the refusal reaches it as an alert and a close just after.
        // The client learns of it (an alert, a close), and by then the server has said why.
        try await eventually("the client's error", observer) { !$0.errors.isEmpty || $0.closed }
        let serverSide = try #require(server.observers.withLockedValue { $0.first })
        try await eventually("the server's refusal", serverSide) { !$0.errors.isEmpty }
        #expect(serverSide.seen.withLockedValue { $0.errors }.first?.contains("which is not in the trusted CA bundle") == true)
        try await server.channel.close()
    }
}
