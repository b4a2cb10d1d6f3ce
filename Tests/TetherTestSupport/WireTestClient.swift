import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import TetherLocal
import TetherSecurity
import TetherWire

/// What a ``WireTestClient`` saw, in order.
public enum WireClientEvent: Sendable, CustomStringConvertible {
    case handshakeCompleted
    case message(WireMessage)
    case error(String)
    case closed

    public var description: String {
        switch self {
        case .handshakeCompleted: "handshake completed"
        case .message(let message): "message \(message.kind)"
        case .error(let error): "error \(error)"
        case .closed: "closed"
        }
    }

    public var message: WireMessage? {
        if case .message(let message) = self { return message }
        return nil
    }
}

/// A client of the hub's agent port built from the same TLS and wire code as the agent, but
/// driven by the test: it sends whatever it is told, including what a real agent never would
/// (another cluster's hello, garbage frames, silence).
public final class WireTestClient: Sendable {
    private let channel: any Channel

    /// - Parameter hello: written on the event loop as soon as the connection is up, as an
    ///   agent's session handler does; waiting for the test's task to send it would put the
    ///   hub's hello deadline at the mercy of how busy the test process's thread pool is.
    public static func connect(
        port: Int,
        material: TLSMaterial,
        host: String = "127.0.0.1",
        limits: WireLimits = .default,
        hello: Hello? = nil
    ) async throws -> WireTestClient {
        let context = try TetherTLS.agentDialerContext(material)
        let events = Inbox<WireClientEvent>()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(15))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    try sync.addTetherWireHandlers(limits: limits)
                    try sync.addHandler(Recorder(events: events))
                }
            }
            .connect(host: host, port: port)
            .map { channel in
                // Refused handshakes fail the write, not the connection: the test looks at the events.
                if let hello { channel.writeAndFlush(WireMessage.hello(hello), promise: nil) }
                return channel
            }
            .get()
        return WireTestClient(channel: channel, events: events)
    }

    /// Everything the client saw, in order.
    public let events: Inbox<WireClientEvent>

    private init(channel: any Channel, events: Inbox<WireClientEvent>) {
        self.channel = channel
        self.events = events
    }

    public func send(_ message: WireMessage) async throws {
        try await channel.writeAndFlush(message)
    }

    /// Writes bytes straight into the TLS stream, below the frame encoder: for malformed frames.
    public func sendRaw(_ bytes: [UInt8]) async throws {
        try await channel.eventLoop.flatSubmit { [channel] in
            do {
                // Written from the frame decoder's context, the next outbound handler is TLS: the bytes
                // are encrypted like any frame, but no frame encoder checks them.
                let context = try channel.pipeline.syncOperations.context(
                    handlerType: ByteToMessageHandler<FrameDecoder>.self
                )
                let buffer = channel.allocator.buffer(bytes: bytes)
                return context.writeAndFlush(NIOAny(buffer))
            } catch {
                return channel.eventLoop.makeFailedFuture(error)
            }
        }.get()
    }

    @discardableResult
    public func waitForMessage(
        within timeout: Duration = .seconds(10),
        _ what: String,
        where predicate: @escaping @Sendable (WireMessage) -> Bool
    ) async throws -> WireMessage {
        let event = try await events.waitFor(what, within: timeout) { event in
            event.message.map(predicate) ?? false
        }
        return event.message!
    }

    public func waitForClose(within timeout: Duration = .seconds(10)) async throws {
        try await events.waitFor("connection close", within: timeout) {
            if case .closed = $0 { return true }
            return false
        }
    }

    public func close() async {
        try? await channel.close()
    }

    /// Stops reading from the hub, as an agent that never reads would: what the hub writes piles
    /// up in the kernel's buffers and then at the hub.
    public func stopReading() async throws {
        try await channel.setOption(.autoRead, value: false).get()
    }

    /// Sends without waiting for each write to complete (a flood that never waits for the hub).
    public func sendWithoutWaiting(_ message: WireMessage) {
        channel.writeAndFlush(message, promise: nil)
    }

    private final class Recorder: ChannelInboundHandler, Sendable {
        typealias InboundIn = WireMessage
        let events: Inbox<WireClientEvent>

        init(events: Inbox<WireClientEvent>) { self.events = events }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            events.append(.message(Self.unwrapInboundIn(data)))
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case TLSUserEvent.handshakeCompleted = event { events.append(.handshakeCompleted) }
            context.fireUserInboundEventTriggered(event)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            events.append(.error("\(error)"))
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            events.append(.closed)
        }
    }
}
