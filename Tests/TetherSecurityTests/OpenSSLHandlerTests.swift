import Crypto
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
            /// Every byte read, counted and summed (FNV-1a), kept or not.
            var count = 0
            var checksum = Checksum()
            var protocolChosen: String?
            var errors: [String] = []
            var closed = false
            /// Whether the peer's close_notify had arrived when the connection closed.
            var closeNotify = false
        }
        let seen = NIOLockedValueBox(Seen())
        /// Each change of `seen`, for waiting on a condition instead of polling it.
        let changes = Inbox<Seen>()
        let echo: Bool
        let keepBytes: Bool
        let handshake: EventLoopPromise<String?>

        init(echo: Bool, keepBytes: Bool = true, loop: any EventLoop) {
            self.echo = echo
            self.keepBytes = keepBytes
            self.handshake = loop.makePromise()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = Self.unwrapInboundIn(data)
            changes.append(
                seen.withLockedValue {
                    if keepBytes { $0.bytes += Array(buffer.readableBytesView) }
                    $0.count += buffer.readableBytes
                    $0.checksum.add(buffer)
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
            let closeNotify = (try? context.pipeline.syncOperations.handler(type: OpenSSLHandler.self))?.peerSentCloseNotify ?? false
            changes.append(
                seen.withLockedValue {
                    $0.closeNotify = closeNotify
                    $0.closed = true
                    return $0
                })
            handshake.fail(ChannelError.ioOnClosedChannel)
        }
    }

    /// SHA-256 of every byte read, in order: a lost, repeated or reordered record changes it.
    struct Checksum: Sendable {
        var hasher = SHA256()
        mutating func add(_ buffer: ByteBuffer) {
            buffer.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
        }
        var digest: [UInt8] { Array(hasher.finalize()) }
    }

    /// Sits between a client's socket and its TLS handler and, once armed, damages the next
    /// ciphertext the client sends: cuts it short and closes the connection, or flips a byte.
    final class Tap: ChannelOutboundHandler, Sendable {
        typealias OutboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        enum Damage: Sendable {
            case none
            case cutAndClose(keeping: Int)
            case flip(at: Int)
        }
        let damage = NIOLockedValueBox(Damage.none)

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            var ciphertext = Self.unwrapOutboundIn(data)
            let armed = damage.withLockedValue { current in
                defer { current = .none }
                return current
            }
            switch armed {
            case .none:
                context.write(data, promise: promise)
            case .cutAndClose(let keeping):
                context.writeAndFlush(Self.wrapOutboundOut(ciphertext.getSlice(at: ciphertext.readerIndex, length: keeping)!), promise: promise)
                context.close(promise: nil)
            case .flip(let offset):
                let index = ciphertext.readerIndex + offset
                ciphertext.setInteger(ciphertext.getInteger(at: index, as: UInt8.self)! ^ 0xFF, at: index)
                context.write(Self.wrapOutboundOut(ciphertext), promise: promise)
            }
        }
    }

    /// A server on loopback whose context can be replaced, as the hub's listener does.
    final class Server: Sendable {
        let channel: any Channel
        let context: NIOLockedValueBox<OpenSSLContext>
        let observers = NIOLockedValueBox<[Observer]>([])
        let children = NIOLockedValueBox<[any Channel]>([])

        init(material: TLSMaterial, tickets: TLSTicketKeys, echo: Bool = true, keepBytes: Bool = true) async throws {
            let context = NIOLockedValueBox(try OpenSSLContext.agentListener(material, tickets: tickets))
            let verifier = PeerVerifier(trustRoots: material.trustRoots, trustDomain: material.identity.trustDomain)
            let (observers, children) = (self.observers, self.children)
            self.context = context
            channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handler = OpenSSLHandler(
                            context: context.withLockedValue { $0 },
                            explain: { leaf, code, description in verifier.explain(openSSLError: code, description: description, leaf: leaf) },
                            verify: { chain, _ in await verifier.verify(chain: chain) })
                        let observer = Observer(echo: echo, keepBytes: keepBytes, loop: channel.eventLoop)
                        observers.withLockedValue { $0.append(observer) }
                        children.withLockedValue { $0.append(channel) }
                        try channel.pipeline.syncOperations.addHandlers([handler, observer])
                    }
                }
                .bind(host: "127.0.0.1", port: 0).get()
        }

        var port: Int { channel.localAddress?.port ?? 0 }
    }

    /// Connects a client with `context`; returns its channel, observer and handler.
    func connect(_ context: OpenSSLContext, to port: Int, trustRoots: [Certificate], trustDomain: String, tap: Tap? = nil) async throws -> (
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
                    if let tap { try channel.pipeline.syncOperations.addHandler(tap) }
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

    /// A client connected to a fresh server on one CA, with its handshake done.
    func connected(echo: Bool = true, keepBytes: Bool = true, tap: Tap? = nil) async throws -> (
        server: Server, channel: any Channel, client: Observer
    ) {
        let pki = try TestPKI()
        let server = try await Server(material: try pki.hubMaterial(), tickets: .fresh(), echo: echo, keepBytes: keepBytes)
        let (channel, observer) = try await connect(
            try OpenSSLContext.agentDialer(try pki.agentMaterial(cluster: "eu-1")), to: server.port, trustRoots: pki.trustRoots,
            trustDomain: pki.trustDomain, tap: tap)
        _ = try await observer.handshake.futureResult.get()
        // The client's handshake ends with its Finished sent; the server's once it has read it.
        // A tap armed before then could cut the Finished rather than the records after it.
        let serverSide = try #require(server.observers.withLockedValue { $0.first }, "the server accepted before the client's handshake ended")
        _ = try await serverSide.handshake.futureResult.get()
        return (server, channel, observer)
    }

    func handler(of channel: any Channel) async throws -> (resumed: Bool, closeNotify: Bool) {
        try await channel.eventLoop.submit {
            let handler = try channel.pipeline.syncOperations.handler(type: OpenSSLHandler.self)
            return (handler.resumed, handler.peerSentCloseNotify)
        }.get()
    }

    @Test("a 16 MiB frame written at once crosses as some thousand records and arrives whole")
    func sixteenMebibytes() async throws {
        let (server, channel, _) = try await connected(echo: false, keepBytes: false)
        let size = 16 << 20
        // A frame header, then a body whose every 4 KiB block carries its number.
        var payload = ByteBuffer(repeating: 0x5A, count: size)
        payload.setInteger(UInt32(size - 4), at: 0)
        for block in 1..<(size / 4096) { payload.setInteger(UInt32(block), at: block * 4096) }
        var expected = Checksum()
        expected.add(payload)
        try await channel.writeAndFlush(payload)
        let serverSide = try #require(server.observers.withLockedValue { $0.first })
        _ = try await serverSide.changes.waitFor("16 MiB", within: .seconds(60)) { $0.count >= size }
        let seen = serverSide.seen.withLockedValue { $0 }
        #expect(seen.count == size)
        #expect(seen.checksum.digest == expected.digest)
        #expect(seen.errors.isEmpty)
        try await channel.close()
        try await server.channel.close()
    }

    @Test("close_notify goes both ways: the side that did not close learns its peer ended the session cleanly, and neither reports an error")
    func closeNotifyBothWays() async throws {
        for serverCloses in [false, true] {
            let (server, channel, client) = try await connected()
            try await channel.writeAndFlush(ByteBuffer(string: "ping"))
            try await eventually("the echo", client) { $0.bytes.count == 4 }
            let serverSide = try #require(server.observers.withLockedValue { $0.first })
            let (closing, closed) = serverCloses ? (serverSide, client) : (client, serverSide)
            if serverCloses {
                try await #require(server.children.withLockedValue { $0.first }).close()
            } else {
                try await channel.close()
            }
            try await eventually("the other side's close", closed) { $0.closed }
            try await eventually("the closing side's close", closing) { $0.closed }
            let seen = closed.seen.withLockedValue { $0 }
            #expect(seen.closeNotify, "the \(serverCloses ? "server" : "client")'s close_notify arrived")
            #expect(seen.errors.isEmpty, "\(seen.errors)")
            #expect(closing.seen.withLockedValue { $0.errors }.isEmpty)
            try await server.channel.close()
        }
    }

    @Test("a record cut short by a peer that closes is never passed up, and the reader says why")
    func truncatedRecord() async throws {
        let tap = Tap()
        let (server, channel, _) = try await connected(tap: tap)
        tap.damage.withLockedValue { $0 = .cutAndClose(keeping: 100) }
        try await channel.writeAndFlush(ByteBuffer(repeating: 0x41, count: 4000))
        let serverSide = try #require(server.observers.withLockedValue { $0.first })
        try await eventually("the server's close", serverSide) { $0.closed }
        let seen = serverSide.seen.withLockedValue { $0 }
        #expect(seen.count == 0, "no byte of a record that never ended")
        #expect(seen.errors.contains { $0.contains("in the middle of a record") }, "\(seen.errors)")
        try await server.channel.close()
    }

    @Test("a record altered on the way fails its authentication: nothing of it is passed up and the session closes")
    func alteredRecord() async throws {
        let tap = Tap()
        let (server, channel, client) = try await connected(tap: tap)
        tap.damage.withLockedValue { $0 = .flip(at: 20) }
        try await channel.writeAndFlush(ByteBuffer(repeating: 0x42, count: 1000))
        let serverSide = try #require(server.observers.withLockedValue { $0.first })
        try await eventually("the server's refusal", serverSide) { !$0.errors.isEmpty && $0.closed }
        let seen = serverSide.seen.withLockedValue { $0 }
        #expect(seen.count == 0)
        #expect(seen.errors.first?.contains("TLS record error") == true, "\(seen.errors)")
        // The server's alert and close reach the client.
        try await eventually("the client's close", client) { $0.closed }
        try await server.channel.close()
    }
}
