import HummingbirdCore
import Logging
import NIOCore
import TetherWire

/// Hummingbird's child channel with a ``ConnectionGateHandler`` in front: every accepted API
/// connection is admitted by the listener's gate before TLS starts, and shed when it must be.
struct GatedChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value

    let base: Base
    let gate: ConnectionGate

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(ConnectionGateHandler(gate: gate), position: .first)
        }.flatMap {
            base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

/// Tells the gate that an API connection authenticated itself as far as the listener can tell:
/// its first request arrived (authentication proper is per request).
final class FirstRequestMarker: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let gate: ConnectionGate
    private var marked = false

    init(gate: ConnectionGate) {
        self.gate = gate
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !marked {
            marked = true
            gate.authenticated(context.channel)
        }
        context.fireChannelRead(data)
    }
}
