import Foundation
import NIOCore
import TetherJSON
import TetherModel

/// Every message of protocol version 1, with the frame type that carries it.
public enum WireMessage: Sendable, Hashable {
    case hello(Hello)
    case welcome(Welcome)
    case reject(Reject)
    case snapshot(Snapshot)
    case delta(Delta)
    case ack(Ack)
    case status(StatusReport)
    case heartbeat(Heartbeat)
    case goaway(GoAway)
    case error(ErrorMessage)
    case renew(RenewRequest)
    case certificate(CertificateIssued)
    case trust(TrustBundle)
    case streamOpen(StreamOpen)
    case streamHead(StreamHead)
    case streamData(StreamData)
    case streamWindow(StreamWindow)
    case streamReset(StreamReset)

    /// Frame type numbers; stable for version 1 and listed in `docs/protocol.md`.
    public enum Kind: UInt8, Sendable, CaseIterable {
        case hello = 1
        case welcome = 2
        case reject = 3
        case snapshot = 4
        case delta = 5
        case ack = 6
        case status = 7
        case heartbeat = 8
        case goaway = 9
        case error = 10
        case renew = 11
        case certificate = 12
        case trust = 13
        case streamOpen = 14
        case streamHead = 15
        case streamData = 16
        case streamWindow = 17
        case streamReset = 18
    }

    public var kind: Kind {
        switch self {
        case .hello: .hello
        case .welcome: .welcome
        case .reject: .reject
        case .snapshot: .snapshot
        case .delta: .delta
        case .ack: .ack
        case .status: .status
        case .heartbeat: .heartbeat
        case .goaway: .goaway
        case .error: .error
        case .renew: .renew
        case .certificate: .certificate
        case .trust: .trust
        case .streamOpen: .streamOpen
        case .streamHead: .streamHead
        case .streamData: .streamData
        case .streamWindow: .streamWindow
        case .streamReset: .streamReset
        }
    }

    /// The protocol versions this build speaks, highest last.
    public static let supportedVersions = [1]
}

/// Turns frames into messages and back, enforcing a connection's ``WireLimits``.
public struct WireCodec: Sendable {
    public let limits: WireLimits

    public init(limits: WireLimits = .default) {
        self.limits = limits
    }

    /// Decodes one received frame; any violation is a ``WireError`` the caller answers with an `error` frame.
    public func decode(_ frame: Frame, allocator: ByteBufferAllocator) throws(WireError) -> WireMessage {
        guard frame.flags.isSubset(of: .known) else {
            throw WireError(.unknownFlags, "flag bits 0x\(String(frame.flags.rawValue, radix: 16)) are not defined")
        }
        guard let kind = WireMessage.Kind(rawValue: frame.type) else {
            throw WireError(.unknownMessageType, "frame type \(frame.type) is not a message of protocol version 1")
        }
        var payload = frame.payload
        if frame.flags.contains(.compressed) {
            do {
                payload = try Zlib.inflate(payload, limit: limits.maximumInflatedPayload, allocator: allocator)
            } catch {
                switch error {
                case .tooLarge:
                    throw WireError(
                        .payloadTooLarge,
                        "\(kind) payload inflates past the limit of \(limits.maximumInflatedPayload) bytes"
                    )
                case .truncated:
                    throw WireError(.corruptCompression, "\(kind) payload ends before its zlib stream does")
                case .corrupt(let detail):
                    throw WireError(.corruptCompression, "\(kind) payload is not a valid zlib stream: \(detail)")
                }
            }
        } else if payload.readableBytes > limits.maximumInflatedPayload {
            throw WireError(.payloadTooLarge, "\(kind) payload exceeds \(limits.maximumInflatedPayload) bytes")
        }
        if kind == .streamData { return .streamData(try StreamData.decoded(payload)) }
        let parsed = payload.withUnsafeReadableBytes { bytes in
            Result { () throws(JSONSyntaxError) in try JSONValue(parsing: bytes, maximumDepth: limits.maximumJSONDepth) }
        }
        let body: JSONValue
        switch parsed {
        case .success(let value):
            body = value
        case .failure(let error) where error.isNestingTooDeep:
            throw WireError(.nestingTooDeep, "\(kind) payload nests deeper than \(limits.maximumJSONDepth) levels")
        case .failure(let error):
            throw WireError(.malformedPayload, "\(kind) payload is not valid: not JSON: \(error)")
        }
        do {
            return try Self.message(of: kind, from: body)
        } catch {
            throw WireError(.malformedPayload, "\(kind) payload is not valid: \(Self.explain(error))")
        }
    }

    /// The revision a `snapshot` or `delta` frame carries, read without decoding its objects
    /// (a load generator standing in for thousands of agents cannot afford full decoding); nil
    /// for other frames. Relies on the sender's sorted keys: a delta's `toRevision` comes before
    /// its `upserts`, a snapshot's `revision` is its last key.
    public func revision(of frame: Frame, allocator: ByteBufferAllocator) throws(WireError) -> UInt64? {
        guard frame.type == WireMessage.Kind.snapshot.rawValue || frame.type == WireMessage.Kind.delta.rawValue else { return nil }
        var payload = frame.payload
        if frame.flags.contains(.compressed) {
            do {
                payload = try Zlib.inflate(payload, limit: limits.maximumInflatedPayload, allocator: allocator)
            } catch {
                throw WireError(.corruptCompression, "cannot inflate a frame to read its revision")
            }
        }
        let bytes = Array(payload.readableBytesView)
        let key = Array((frame.type == WireMessage.Kind.delta.rawValue ? "\"toRevision\":" : "\"revision\":").utf8)
        let found =
            frame.type == WireMessage.Kind.delta.rawValue
            ? bytes.firstRange(of: key)
            : bytes.indices.reversed().lazy.compactMap { start -> Range<Int>? in
                bytes[start...].starts(with: key) ? start..<(start + key.count) : nil
            }.first
        guard let range = found else { return nil }
        var value: UInt64 = 0
        for byte in bytes[range.upperBound...] {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { break }
            value = value * 10 + UInt64(byte - UInt8(ascii: "0"))
        }
        return value
    }

    /// Encodes one message, compressing its payload above the threshold.
    public func encode(_ message: WireMessage, allocator: ByteBufferAllocator) throws(WireError) -> Frame {
        if case .streamData(let data) = message {
            return try frame(.streamData, json: data.encoded(allocator: allocator), allocator: allocator)
        }
        let json: [UInt8]
        do {
            json = try Self.json(of: message)
        } catch {
            throw WireError(.malformedPayload, "cannot encode \(message.kind): \(error)")
        }
        var payload = allocator.buffer(capacity: json.count)
        payload.writeBytes(json)
        return try frame(message.kind, json: payload, allocator: allocator)
    }

    /// Frames a message body already encoded as JSON, compressing it above the threshold: the
    /// way to send one encoding to many peers.
    public func frame(_ kind: WireMessage.Kind, json: ByteBuffer, allocator: ByteBufferAllocator) throws(WireError) -> Frame {
        var payload = json
        var flags: Frame.Flags = []
        if payload.readableBytes > limits.compressionThreshold {
            let compressed = Zlib.deflate(payload, allocator: allocator)
            if compressed.readableBytes < payload.readableBytes {
                payload = compressed
                flags.insert(.compressed)
            }
        }
        guard payload.readableBytes + Frame.headerBytesAfterLength <= limits.maximumFrameLength else {
            throw WireError(
                .frameTooLarge,
                "\(kind) needs a \(payload.readableBytes)-byte payload; frames are limited to "
                    + "\(limits.maximumFrameLength) bytes"
            )
        }
        return Frame(type: kind.rawValue, flags: flags, payload: payload)
    }

    private static func message(of kind: WireMessage.Kind, from data: JSONValue) throws -> WireMessage {
        let decoder = JSONValueDecoder()
        switch kind {
        case .hello: return .hello(try decoder.decode(Hello.self, from: data))
        case .welcome: return .welcome(try decoder.decode(Welcome.self, from: data))
        case .reject: return .reject(try decoder.decode(Reject.self, from: data))
        case .snapshot: return .snapshot(try decoder.decode(Snapshot.self, from: data))
        case .delta: return .delta(try decoder.decode(Delta.self, from: data))
        case .ack: return .ack(try decoder.decode(Ack.self, from: data))
        case .status: return .status(try decoder.decode(StatusReport.self, from: data))
        case .heartbeat: return .heartbeat(try decoder.decode(Heartbeat.self, from: data))
        case .goaway: return .goaway(try decoder.decode(GoAway.self, from: data))
        case .error: return .error(try decoder.decode(ErrorMessage.self, from: data))
        case .renew: return .renew(try decoder.decode(RenewRequest.self, from: data))
        case .certificate: return .certificate(try decoder.decode(CertificateIssued.self, from: data))
        case .trust: return .trust(try decoder.decode(TrustBundle.self, from: data))
        case .streamOpen: return .streamOpen(try decoder.decode(StreamOpen.self, from: data))
        case .streamHead: return .streamHead(try decoder.decode(StreamHead.self, from: data))
        case .streamData: throw WireError(.malformedPayload, "streamData is binary")
        case .streamWindow: return .streamWindow(try decoder.decode(StreamWindow.self, from: data))
        case .streamReset: return .streamReset(try decoder.decode(StreamReset.self, from: data))
        }
    }

    /// A message body as the wire carries it (what ``frame(_:json:allocator:)`` takes): compact
    /// JSON with sorted keys, so the same message is the same bytes (stable for tests, hashes and
    /// compression).
    public static func jsonBody(_ body: some Encodable) throws -> [UInt8] {
        try JSONValueEncoder().encode(body)
    }

    private static func json(of message: WireMessage) throws -> [UInt8] {
        let encoder = JSONValueEncoder()
        switch message {
        case .hello(let body): return try encoder.encode(body)
        case .welcome(let body): return try encoder.encode(body)
        case .reject(let body): return try encoder.encode(body)
        case .snapshot(let body): return try encoder.encode(body)
        case .delta(let body): return try encoder.encode(body)
        case .ack(let body): return try encoder.encode(body)
        case .status(let body): return try encoder.encode(body)
        case .heartbeat(let body): return try encoder.encode(body)
        case .goaway(let body): return try encoder.encode(body)
        case .error(let body): return try encoder.encode(body)
        case .renew(let body): return try encoder.encode(body)
        case .certificate(let body): return try encoder.encode(body)
        case .trust(let body): return try encoder.encode(body)
        case .streamOpen(let body): return try encoder.encode(body)
        case .streamHead(let body): return try encoder.encode(body)
        case .streamData: throw WireError(.malformedPayload, "streamData is binary")
        case .streamWindow(let body): return try encoder.encode(body)
        case .streamReset(let body): return try encoder.encode(body)
        }
    }

    /// A one-line account of a decoding failure, naming the field path where there is one.
    private static func explain(_ error: any Error) -> String {
        guard let decodingError = error as? DecodingError else { return "\(error)" }
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            return keys.isEmpty ? "document" : keys.joined(separator: ".")
        }
        switch decodingError {
        case .keyNotFound(let key, let context): return "missing field \(key.stringValue) in \(path(context))"
        case .typeMismatch(_, let context): return "wrong type at \(path(context)): \(context.debugDescription)"
        case .valueNotFound(_, let context): return "null at \(path(context))"
        case .dataCorrupted(let context): return "not JSON at \(path(context)): \(context.debugDescription)"
        @unknown default: return "\(decodingError)"
        }
    }
}
