import NIOCore

/// One frame of the Tether wire protocol, version 1.
///
/// ```
/// 0                   4        5        6
/// +-------------------+--------+--------+---------------------------+
/// | length: UInt32 BE | type   | flags  | payload                   |
/// | (bytes after it)  | UInt8  | UInt8  | (length - 2 bytes)        |
/// +-------------------+--------+--------+---------------------------+
/// ```
///
/// The payload is the UTF-8 JSON of the message named by `type`; flag bit 0 says it is
/// zlib-compressed. See `docs/protocol.md`.
public struct Frame: Sendable, Hashable {
    public var type: UInt8
    public var flags: Flags
    public var payload: ByteBuffer

    public init(type: UInt8, flags: Flags = [], payload: ByteBuffer) {
        self.type = type
        self.flags = flags
        self.payload = payload
    }

    /// Bytes of the type and flags fields, counted by `length`.
    public static let headerBytesAfterLength = 2
    /// Bytes of the whole header: length, type and flags.
    public static let headerBytes = 6

    public struct Flags: OptionSet, Sendable, Hashable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }

        /// The payload is a zlib stream (RFC 1950).
        public static let compressed = Flags(rawValue: 1 << 0)

        /// Every flag this version understands; a frame with any other bit set is refused.
        public static let known: Flags = [.compressed]
    }
}

/// The limits a connection enforces on what its peer sends. All are checked before the
/// memory they guard is allocated.
public struct WireLimits: Sendable, Hashable {
    /// Largest `length` field accepted (type + flags + payload), in bytes.
    public var maximumFrameLength: Int
    /// Largest payload after decompression, in bytes: the guard against compression bombs.
    public var maximumInflatedPayload: Int
    /// Deepest nesting of JSON arrays and objects accepted in a payload.
    public var maximumJSONDepth: Int
    /// Payloads larger than this are compressed by the sender.
    public var compressionThreshold: Int

    public init(
        maximumFrameLength: Int = 16 * 1024 * 1024,
        maximumInflatedPayload: Int = 64 * 1024 * 1024,
        maximumJSONDepth: Int = 64,
        compressionThreshold: Int = 1024
    ) {
        self.maximumFrameLength = maximumFrameLength
        self.maximumInflatedPayload = maximumInflatedPayload
        self.maximumJSONDepth = maximumJSONDepth
        self.compressionThreshold = compressionThreshold
    }

    public static let `default` = WireLimits()
}
