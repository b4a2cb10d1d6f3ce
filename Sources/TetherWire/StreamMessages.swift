import Foundation
import NIOCore

// The member tunnel: HTTP requests the hub sends to a member's API over the agent's session.
// A stream is one request and its response. The hub opens it (`streamOpen`, carrying the whole
// request); the agent answers with `streamHead` and then `streamData` frames, never sending more
// response bytes than the hub has granted (`streamWindow`); either side ends it early with
// `streamReset`. `docs/protocol.md` has the rules.

/// Hub -> agent: one HTTP request for the member's API.
public struct StreamOpen: Codable, Sendable, Hashable {
    /// Chosen by the hub, unique within the session, never reused.
    public var stream: UInt32
    public var method: String
    /// The member API path with its query (`/api/v1/namespaces/demo/pods?watch=1`).
    public var path: String
    /// Request headers the member needs (content type, accept); never credentials.
    public var headers: [StreamHeader]
    /// The request body, base64; requests are bounded by the hub's body limit.
    public var body: String?
    /// Response bytes the agent may send before the hub grants more.
    public var window: Int
    /// Who asked, for the agent's audit log.
    public var user: String

    public init(stream: UInt32, method: String, path: String, headers: [StreamHeader] = [], body: String? = nil, window: Int, user: String) {
        self.stream = stream
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.window = window
        self.user = user
    }
}

public struct StreamHeader: Codable, Sendable, Hashable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// Agent -> hub: the member's answer begins.
public struct StreamHead: Codable, Sendable, Hashable {
    public var stream: UInt32
    public var status: Int
    public var headers: [StreamHeader]

    public init(stream: UInt32, status: Int, headers: [StreamHeader]) {
        self.stream = stream
        self.status = status
        self.headers = headers
    }
}

/// Agent -> hub: response bytes. Unlike the other messages its payload is binary, not JSON:
/// `stream: UInt32 BE | flags: UInt8 | bytes`, flag bit 0 marking the stream's last frame.
public struct StreamData: Sendable, Hashable {
    public var stream: UInt32
    public var bytes: ByteBuffer
    public var end: Bool

    public init(stream: UInt32, bytes: ByteBuffer, end: Bool = false) {
        self.stream = stream
        self.bytes = bytes
        self.end = end
    }

    static let headerBytes = 5

    func encoded(allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: Self.headerBytes + bytes.readableBytes)
        buffer.writeInteger(stream)
        buffer.writeInteger(UInt8(end ? 1 : 0))
        buffer.writeImmutableBuffer(bytes)
        return buffer
    }

    static func decoded(_ payload: ByteBuffer) throws(WireError) -> StreamData {
        var payload = payload
        guard let stream = payload.readInteger(as: UInt32.self), let flags = payload.readInteger(as: UInt8.self) else {
            throw WireError(.malformedPayload, "streamData payload is shorter than its 5-byte header")
        }
        guard flags & ~1 == 0 else {
            throw WireError(.malformedPayload, "streamData flags 0x\(String(flags, radix: 16)) are not defined")
        }
        return StreamData(stream: stream, bytes: payload, end: flags & 1 == 1)
    }
}

/// Hub -> agent: the hub passed on `bytes` more of the stream's response; the agent may send that many more.
public struct StreamWindow: Codable, Sendable, Hashable {
    public var stream: UInt32
    public var bytes: Int

    public init(stream: UInt32, bytes: Int) {
        self.stream = stream
        self.bytes = bytes
    }
}

/// Either way: the stream ends now, without the rest of its response.
public struct StreamReset: Codable, Sendable, Hashable {
    public var stream: UInt32
    public var reason: String

    public init(stream: UInt32, reason: String) {
        self.stream = stream
        self.reason = reason
    }
}

/// How much of a session the tunnel may take. The hub and the agent each enforce their own.
public struct TunnelLimits: Sendable, Hashable {
    /// Streams open at once on one session; the next request is refused (429 at the hub).
    public var maximumStreamsPerSession: Int
    /// Response bytes granted to a stream and not yet passed on to the client: the bytes in flight
    /// per stream. A session carries at most `maximumStreamsPerSession` times this.
    public var streamWindowBytes: Int
    /// Largest `streamData` frame the agent sends, so a desired-state frame waits behind at most
    /// one such frame per stream.
    public var maximumChunkBytes: Int

    public init(maximumStreamsPerSession: Int = 32, streamWindowBytes: Int = 256 * 1024, maximumChunkBytes: Int = 32 * 1024) {
        self.maximumStreamsPerSession = maximumStreamsPerSession
        self.streamWindowBytes = streamWindowBytes
        self.maximumChunkBytes = maximumChunkBytes
    }

    public static let `default` = TunnelLimits()

    /// Bytes of response one session may hold in flight at once.
    public var sessionBytesInFlight: Int { maximumStreamsPerSession * streamWindowBytes }
}
