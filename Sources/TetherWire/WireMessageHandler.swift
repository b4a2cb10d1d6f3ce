import NIOCore

/// Converts frames to ``WireMessage``s and back, and answers protocol violations.
///
/// A violation by the peer (a ``WireError`` from the frame decoder or from decoding a payload,
/// or a frame decoder buffer overflow) is answered with one `error` frame, after which the
/// connection is closed (by this handler, once the notice is written) and nothing more is read
/// from it. The error is also passed on so the session can log it; the session must not close
/// the channel itself, or the notice could be cut off.
public final class WireMessageHandler: ChannelDuplexHandler {
    public typealias InboundIn = Frame
    public typealias InboundOut = WireMessage
    public typealias OutboundIn = WireMessage
    public typealias OutboundOut = Frame

    private let codec: WireCodec
    private let sharedEncodings: SharedEncodings?
    private var failed = false

    /// With `sharedEncodings`, a delta equal to one another handler encoded recently is written
    /// as that handler's frame (see ``SharedEncodings``).
    public init(limits: WireLimits, sharedEncodings: SharedEncodings? = nil) {
        self.codec = WireCodec(limits: limits)
        self.sharedEncodings = sharedEncodings
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        let frame = Self.unwrapInboundIn(data)
        do {
            let message = try codec.decode(frame, allocator: context.channel.allocator)
            context.fireChannelRead(Self.wrapInboundOut(message))
        } catch {
            self.violated(context: context, error: error)
        }
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let message = Self.unwrapOutboundIn(data)
        let (codec, allocator) = (self.codec, context.channel.allocator)
        do {
            let frame =
                if let sharedEncodings {
                    try sharedEncodings.frame(for: message) { () throws(WireError) in try codec.encode(message, allocator: allocator) }
                } else {
                    try codec.encode(message, allocator: allocator)
                }
            context.write(Self.wrapOutboundOut(frame), promise: promise)
        } catch {
            promise?.fail(error)
        }
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error {
        case let wireError as WireError:
            self.violated(context: context, error: wireError)
        case is ByteToMessageDecoderError.PayloadTooLargeError:
            let limit = codec.limits.maximumFrameLength
            self.violated(context: context, error: WireError(.frameTooLarge, "more than \(limit) bytes buffered"))
        default:
            context.fireErrorCaught(error)
        }
    }

    private func violated(context: ChannelHandlerContext, error: WireError) {
        guard !failed else { return }
        failed = true
        defer { context.fireErrorCaught(error) }
        guard error.code != .truncatedFrame, context.channel.isActive else {
            context.close(promise: nil)
            return
        }
        let notice = ErrorMessage(code: error.code, message: error.message)
        do {
            let frame = try codec.encode(.error(notice), allocator: context.channel.allocator)
            context.writeAndFlush(Self.wrapOutboundOut(frame)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        } catch {
            context.close(promise: nil)
        }
    }
}

extension ChannelPipeline.SynchronousOperations {
    /// Adds the frame decoder, frame encoder and message handler: above them, handlers see ``WireMessage``s.
    public func addTetherWireHandlers(limits: WireLimits, sharedEncodings: SharedEncodings? = nil) throws {
        try addTetherFrameHandlers(limits: limits)
        try self.addHandler(WireMessageHandler(limits: limits, sharedEncodings: sharedEncodings))
    }

    /// Adds the frame decoder and encoder only: above them, handlers see ``Frame``s (a peer that
    /// reads some frames without decoding them, as the benchmarks' load generator does).
    public func addTetherFrameHandlers(limits: WireLimits) throws {
        // The decoder consumes each frame as soon as it is whole, so the buffer never needs more
        // than one frame plus one socket read beyond it.
        let bufferLimit = limits.maximumFrameLength + Frame.headerBytes + 256 * 1024
        try self.addHandler(
            ByteToMessageHandler(FrameDecoder(maximumFrameLength: limits.maximumFrameLength), maximumBufferSize: bufferLimit)
        )
        try self.addHandler(MessageToByteHandler(FrameEncoder()))
    }
}
