import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import TetherJSON
import TetherModel
import TetherSecurity
import TetherWire
import X509

// MARK: - Tether's framed protocol

/// A server and a client event loop of their own for one exchange, shut down after it.
func withExchangeLoops<Result: Sendable>(
    _ body: (_ server: MultiThreadedEventLoopGroup, _ client: MultiThreadedEventLoopGroup) async throws -> Result
) async throws -> Result {
    let server = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let client = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let outcome: Swift.Result<Result, any Error>
    do {
        outcome = .success(try await body(server, client))
    } catch {
        outcome = .failure(error)
    }
    try? await client.shutdownGracefully()
    try? await server.shutdownGracefully()
    return try outcome.get()
}

enum TetherExchange {
    static func run(_ setup: ExchangeSetup, pki: BenchPKI) async throws -> ExchangeResult {
        let limits = WireLimits(compressionThreshold: setup.compressed ? WireLimits.default.compressionThreshold : Int.max)
        let codec = WireCodec(limits: limits)
        let preEncoded = setup.carriage == .bytes ? try setup.preEncoded() : []
        let traffic = WireTraffic()
        let serverContext = try TetherTLS.agentListenerContext(pki.server)
        let clientContext = try TetherTLS.agentDialerContext(pki.client)
        return try await withExchangeLoops { serverGroup, clientGroup in
            let listener = try await ServerBootstrap(group: serverGroup)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(WireCountingHandler(traffic))
                        try sync.addHandler(NIOSSLServerHandler(context: serverContext))
                        try sync.addTetherFrameHandlers(limits: limits)
                        try sync.addHandler(AckingReceiver(codec: codec, carriage: setup.carriage))
                    }
                }
                .bind(host: "127.0.0.1", port: 0)
                .get()
            guard let port = listener.localAddress?.port else { throw ValidationError("the benchmark listener has no port") }
            let payload = setup.payload
            let sender = WindowedSender(window: setup.window, codec: codec) { revision, allocator in
                if preEncoded.isEmpty {
                    return try codec.encode(.delta(payload.delta(revision: revision)), allocator: allocator)
                }
                return try codec.frame(.delta, json: allocator.buffer(bytes: preEncoded[Int(revision) % preEncoded.count]), allocator: allocator)
            }
            let result: Swift.Result<ExchangeResult, any Error>
            do {
                let channel = try await ClientBootstrap(group: clientGroup)
                    .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            let sync = channel.pipeline.syncOperations
                            try sync.addHandler(NIOSSLClientHandler(context: clientContext, serverHostname: nil))
                            try sync.addTetherFrameHandlers(limits: limits)
                            try sync.addHandler(sender)
                        }
                    }
                    .connect(host: "127.0.0.1", port: port)
                    .get()
                if setup.warmup > 0 { try await sender.send(setup.warmup, on: channel).get() }
                result = .success(
                    try await ExchangeResult.measure(count: setup.count, traffic: traffic) {
                        try await sender.send(setup.count, on: channel).get()
                    }
                )
                try? await channel.close()
            } catch {
                result = .failure(error)
            }
            try? await listener.close()
            return try result.get()
        }
    }
}

/// The receiving end: decodes each delta (or reads its revision) and acks it, flushing once per read burst.
final class AckingReceiver: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    private let codec: WireCodec
    private let carriage: Carriage

    init(codec: WireCodec, carriage: Carriage) {
        self.codec = codec
        self.carriage = carriage
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        do {
            let revision: UInt64?
            switch carriage {
            case .json:
                guard case .delta(let delta) = try codec.decode(frame, allocator: context.channel.allocator) else { return }
                revision = delta.toRevision
            case .bytes:
                revision = try codec.revision(of: frame, allocator: context.channel.allocator)
            }
            guard let revision else { return }
            context.write(wrapOutboundOut(try codec.encode(.ack(Ack(revision: revision)), allocator: context.channel.allocator)), promise: nil)
        } catch {
            context.fireErrorCaught(error)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }
}

/// The sending end: keeps `window` deltas unacked until `count` have been acked.
final class WindowedSender: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    private let window: Int
    private let codec: WireCodec
    private let frame: (UInt64, ByteBufferAllocator) throws -> Frame
    // Touched only on the channel's event loop.
    private var revision: UInt64 = 0
    private var remaining = 0
    private var unacked = 0
    private var done: EventLoopPromise<Void>?
    private var context: ChannelHandlerContext?

    init(window: Int, codec: WireCodec, frame: @escaping (UInt64, ByteBufferAllocator) throws -> Frame) {
        self.window = window
        self.codec = codec
        self.frame = frame
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func send(_ count: Int, on channel: any Channel) -> EventLoopFuture<Void> {
        channel.eventLoop.flatSubmit {
            let promise = channel.eventLoop.makePromise(of: Void.self)
            self.done = promise
            self.remaining = count
            self.topUp()
            return promise.futureResult
        }
    }

    private func topUp() {
        guard let context else { return }
        var wrote = false
        while remaining > 0, unacked < window {
            revision += 1
            remaining -= 1
            unacked += 1
            do {
                context.write(wrapOutboundOut(try frame(revision, context.channel.allocator)), promise: nil)
            } catch {
                fail(error)
                return
            }
            wrote = true
        }
        if wrote { context.flush() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        do {
            guard case .ack = try codec.decode(unwrapInboundIn(data), allocator: context.channel.allocator) else { return }
        } catch {
            fail(error)
            return
        }
        unacked -= 1
        if remaining == 0, unacked == 0, let done {
            self.done = nil
            done.succeed()
        } else {
            topUp()
        }
    }

    private func fail(_ error: any Error) {
        done?.fail(error)
        done = nil
        context?.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(ChannelError.ioOnClosedChannel)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error)
    }
}
