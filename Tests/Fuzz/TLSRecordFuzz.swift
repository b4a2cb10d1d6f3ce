import Dispatch
import NIOCore
import NIOEmbedded
import NIOTLS
import TetherSecurity

/// The agent port's TLS on the system's OpenSSL (`OpenSSLHandler`), fed what a stranger sends.
/// The input's first byte picks where its bytes arrive: even, at a server still in its
/// handshake (ClientHello parsing, alerts, early garbage); odd, at a server whose handshake with
/// a real client has completed (records: headers, lengths, authentication, a close mid-record).
/// Either way the handler must fail closed: no crash, no plaintext from bytes that were not
/// sealed by the peer, and no buffer that outgrows what arrived.
enum TLSRecordFuzz {
    private struct Contexts: @unchecked Sendable {
        // @unchecked: OpenSSL contexts are immutable once built and shared by connections.
        let server: OpenSSLContext
        let client: OpenSSLContext
        let identity: TetherIdentity
    }

    private static let contexts: Contexts = {
        do {
            let authority = try CertificateAuthority.create(trustDomain: "fuzz.test")
            let hub = try authority.issue(for: .hub(trustDomain: "fuzz.test"), usage: .server, dnsNames: ["localhost"], ipAddresses: [])
            let identity = try TetherIdentity.cluster("eu-1", trustDomain: "fuzz.test")
            let agent = try authority.issue(for: identity, usage: .client)
            return Contexts(
                server: try OpenSSLContext.agentListener(TLSMaterial(hub, trustRoots: [authority.certificate]), tickets: .fresh()),
                client: try OpenSSLContext.agentDialer(TLSMaterial(agent, trustRoots: [authority.certificate])),
                identity: identity)
        } catch {
            fatalError("the fuzz harness cannot make its TLS contexts: \(error)")
        }
    }()

    /// Counts what the handler passes up.
    private final class Sink: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        var handshakeCompleted = false
        var plaintext = 0
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { plaintext += Self.unwrapInboundIn(data).readableBytes }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case TLSUserEvent.handshakeCompleted = event { handshakeCompleted = true }
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) {}
    }

    static func run(_ bytes: UnsafeRawBufferPointer) {
        let input = Array(bytes)
        let done = DispatchSemaphore(value: 0)
        Task {
            await feed(input)
            done.signal()
        }
        done.wait()
    }

    private static func handler(_ context: OpenSSLContext, serverName: String? = nil) -> OpenSSLHandler {
        let identity = contexts.identity
        return OpenSSLHandler(
            context: context, serverName: serverName,
            explain: { _, _, description in .init(code: .untrustedIssuer, reason: description) },
            verify: { _, _ in .trusted(identity) })
    }

    /// A testing channel with the TLS handler `handler` makes, and `sink` above it.
    private static func channel(handler: @escaping @Sendable () -> OpenSSLHandler, sink: Sink) async throws -> NIOAsyncTestingChannel {
        try await NIOAsyncTestingChannel { channel in
            try channel.pipeline.syncOperations.addHandlers([handler(), sink])
        }
    }

    private static func feed(_ input: [UInt8]) async {
        guard let mode = input.first else { return }
        let body = input.dropFirst()
        let serverSink = Sink()
        guard let server = try? await channel(handler: { handler(contexts.server) }, sink: serverSink) else { return }
        _ = try? await server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 7443))
        if mode % 2 == 1 {
            let clientSink = Sink()
            guard let client = try? await channel(handler: { handler(contexts.client, serverName: "localhost") }, sink: clientSink) else { return }
            _ = try? await client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 7443))
            // The real handshake, both ways, until the server has verified its peer; a bounded number of rounds.
            var rounds = 0
            while !serverSink.handshakeCompleted, rounds < 200 {
                rounds += 1
                while let flight = try? await client.readOutbound(as: ByteBuffer.self) { _ = try? await server.writeInbound(flight) }
                while let flight = try? await server.readOutbound(as: ByteBuffer.self) { _ = try? await client.writeInbound(flight) }
                await server.testingEventLoop.run()
                await Task.yield()
            }
            precondition(serverSink.handshakeCompleted, "a real client's handshake did not complete in 200 rounds")
            _ = try? await client.writeAndFlush(ByteBuffer(string: "sealed"))
            while let record = try? await client.readOutbound(as: ByteBuffer.self) {
                _ = try? await server.writeInbound(record)
            }
            precondition(serverSink.plaintext == 6, "the client's sealed record did not arrive whole")
            _ = try? await client.finish()
        }
        // The stranger's bytes, cut where the input says.
        let cut = body.isEmpty ? 0 : Int(body[body.startIndex]) % max(1, body.count)
        for part in [body.prefix(cut), body.dropFirst(cut)] where !part.isEmpty {
            guard (try? await server.writeInbound(ByteBuffer(bytes: part))) != nil else { break }
        }
        while (try? await server.readOutbound(as: ByteBuffer.self)) != nil {}
        // Forged bytes never open: nothing beyond the one sealed record is passed up.
        precondition(serverSink.plaintext == (mode % 2 == 1 ? 6 : 0), "bytes nobody sealed were passed up as plaintext")
        _ = try? await server.finish()
    }
}
