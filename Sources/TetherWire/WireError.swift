/// A violation of the wire protocol, by either side.
///
/// When the peer commits one, the receiving side sends an `error` frame carrying `code` and
/// `message`, then closes the connection. Codes are stable strings listed in `docs/protocol.md`.
public struct WireError: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }

    /// A stable, machine-readable error code. Unknown codes from newer peers decode as they are.
    public struct Code: WireCode {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The `length` field exceeds the receiver's maximum frame length.
        public static let frameTooLarge = Code(rawValue: "frame-too-large")
        /// The `length` field is smaller than the type and flags fields it must cover.
        public static let frameTooShort = Code(rawValue: "frame-too-short")
        /// The connection ended in the middle of a frame.
        public static let truncatedFrame = Code(rawValue: "truncated-frame")
        /// A flag bit this version does not define is set.
        public static let unknownFlags = Code(rawValue: "unknown-flags")
        /// The frame type names no message of the negotiated version.
        public static let unknownMessageType = Code(rawValue: "unknown-message-type")
        /// The decompressed payload would exceed the receiver's inflated-size limit.
        public static let payloadTooLarge = Code(rawValue: "payload-too-large")
        /// The compressed payload is not a valid, complete zlib stream.
        public static let corruptCompression = Code(rawValue: "corrupt-compression")
        /// The payload is not valid UTF-8 JSON, or lacks a field its message requires.
        public static let malformedPayload = Code(rawValue: "malformed-payload")
        /// The payload's JSON nests arrays and objects deeper than the receiver allows.
        public static let nestingTooDeep = Code(rawValue: "nesting-too-deep")
        /// A well-formed message that is not allowed in the session's current state.
        public static let unexpectedMessage = Code(rawValue: "unexpected-message")
        /// The peer sent a kind of message faster than its budget allows.
        public static let rateLimited = Code(rawValue: "rate-limited")
        /// A report (hello, heartbeat, status, ack) outside the bounds the receiver keeps.
        public static let invalidReport = Code(rawValue: "invalid-report")
    }
}

/// A code carried as a JSON string (`identity-mismatch`, `frame-too-large`, ...).
///
/// An open set rather than an enum: a code this build does not know, sent by a newer peer,
/// still decodes and can be logged, instead of failing the whole message.
public protocol WireCode: RawRepresentable<String>, Codable, Sendable, Hashable, CustomStringConvertible {}

extension WireCode {
    public var description: String { rawValue }
}
