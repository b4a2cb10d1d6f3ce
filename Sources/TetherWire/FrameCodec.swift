import NIOCore

/// Splits a byte stream into ``Frame``s.
///
/// ```
/// +-------------------+--------+--------+---------------------------+
/// | length: UInt32 BE | type   | flags  | payload                   |
/// +-------------------+--------+--------+---------------------------+
///   read first          then, once `length` bytes are buffered, all of the rest
/// ```
///
/// `length` is checked against the maximum before the decoder waits for (and so buffers) the
/// body: a peer announcing 4 GiB is refused after four bytes. Pair it with
/// `ByteToMessageHandler(_:maximumBufferSize:)` so nothing else can grow the buffer either.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = Frame

    private enum State {
        case waitingForLength
        case waitingForBody(length: Int)
    }

    private var state = State.waitingForLength
    private let maximumFrameLength: Int

    public init(maximumFrameLength: Int) {
        self.maximumFrameLength = maximumFrameLength
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try self.nextFrame(from: &buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(
        context: ChannelHandlerContext,
        buffer: inout ByteBuffer,
        seenEOF: Bool
    ) throws -> DecodingState {
        while let frame = try self.nextFrame(from: &buffer) {
            context.fireChannelRead(Self.wrapInboundOut(frame))
        }
        if seenEOF, buffer.readableBytes > 0 || self.isInsideFrame {
            let buffered = buffer.readableBytes
            buffer.moveReaderIndex(forwardBy: buffered)
            throw WireError(.truncatedFrame, "connection ended inside a frame (\(buffered) bytes of it received)")
        }
        return .needMoreData
    }

    private var isInsideFrame: Bool {
        if case .waitingForBody = self.state { return true }
        return false
    }

    /// The next complete frame in `buffer`, or nil when more bytes are needed.
    mutating func nextFrame(from buffer: inout ByteBuffer) throws -> Frame? {
        if case .waitingForLength = self.state {
            guard let announced = buffer.readInteger(as: UInt32.self) else { return nil }
            guard announced >= Frame.headerBytesAfterLength else {
                throw WireError(.frameTooShort, "frame length \(announced) is below the minimum of 2")
            }
            guard announced <= self.maximumFrameLength else {
                throw WireError(
                    .frameTooLarge,
                    "frame length \(announced) exceeds the limit of \(self.maximumFrameLength) bytes"
                )
            }
            self.state = .waitingForBody(length: Int(announced))
        }
        guard case .waitingForBody(let length) = self.state, buffer.readableBytes >= length,
            let type = buffer.readInteger(as: UInt8.self),
            let flags = buffer.readInteger(as: UInt8.self),
            let payload = buffer.readSlice(length: length - Frame.headerBytesAfterLength)
        else { return nil }
        self.state = .waitingForLength
        return Frame(type: type, flags: Frame.Flags(rawValue: flags), payload: payload)
    }
}

/// Writes ``Frame``s with their length prefix.
public struct FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = Frame

    public init() {}

    public func encode(data frame: Frame, out: inout ByteBuffer) throws {
        out.reserveCapacity(minimumWritableBytes: Frame.headerBytes + frame.payload.readableBytes)
        out.writeInteger(UInt32(Frame.headerBytesAfterLength + frame.payload.readableBytes))
        out.writeInteger(frame.type)
        out.writeInteger(frame.flags.rawValue)
        var payload = frame.payload
        out.writeBuffer(&payload)
    }
}
