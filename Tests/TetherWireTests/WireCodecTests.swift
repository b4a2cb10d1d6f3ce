import Foundation
import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing
import TetherJSON
import TetherModel

@testable import TetherWire

/// A pipeline of the real wire handlers on an embedded channel, recording what comes out.
final class WirePipeline {
    let channel = EmbeddedChannel()
    let collector = Collector()

    final class Collector: ChannelInboundHandler {
        typealias InboundIn = WireMessage
        var messages: [WireMessage] = []
        var errors: [any Error] = []

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            messages.append(Self.unwrapInboundIn(data))
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            errors.append(error)
        }
    }

    init(limits: WireLimits = .default) throws {
        try channel.pipeline.syncOperations.addTetherWireHandlers(limits: limits)
        try channel.pipeline.syncOperations.addHandler(collector)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    }

    func feed(_ bytes: [UInt8]) {
        _ = try? channel.writeInbound(channel.allocator.buffer(bytes: bytes))
    }

    /// The frames the handlers wrote back (error notices), decoded.
    func outboundMessages() throws -> [WireMessage] {
        var decoder = FrameDecoder(maximumFrameLength: 1 << 30)
        var buffer = channel.allocator.buffer(capacity: 0)
        while var chunk = try channel.readOutbound(as: ByteBuffer.self) { buffer.writeBuffer(&chunk) }
        var messages: [WireMessage] = []
        while let frame = try decoder.nextFrame(from: &buffer) {
            messages.append(try WireCodec().decode(frame, allocator: channel.allocator))
        }
        return messages
    }

    /// The single `error` notice the pipeline sent, after which the channel must be closed.
    func expectRefusal(_ code: WireError.Code, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let sent = try outboundMessages()
        #expect(sent.count == 1, "expected one error frame, got \(sent)", sourceLocation: sourceLocation)
        guard case .error(let notice) = sent.first else {
            Issue.record("expected an error frame, got \(sent)", sourceLocation: sourceLocation)
            return
        }
        #expect(notice.code == code, "got \(notice)", sourceLocation: sourceLocation)
        #expect(!channel.isActive, "the connection must be closed after a violation", sourceLocation: sourceLocation)
        #expect(
            collector.errors.contains { ($0 as? WireError)?.code == code },
            "the session handler must learn of the violation",
            sourceLocation: sourceLocation
        )
    }
}

/// The bytes of one frame, built by hand so tests can break any field.
func rawFrame(type: UInt8, flags: UInt8 = 0, payload: [UInt8], length: UInt32? = nil) -> [UInt8] {
    let announced = length ?? UInt32(payload.count + 2)
    return withUnsafeBytes(of: announced.bigEndian, Array.init) + [type, flags] + payload
}

func encoded(_ message: WireMessage, limits: WireLimits = .default) throws -> [UInt8] {
    let frame = try WireCodec(limits: limits).encode(message, allocator: ByteBufferAllocator())
    return rawFrame(type: frame.type, flags: frame.flags.rawValue, payload: Array(buffer: frame.payload))
}

func zlib(_ bytes: [UInt8]) -> [UInt8] {
    let allocator = ByteBufferAllocator()
    return Array(buffer: Zlib.deflate(allocator.buffer(bytes: bytes), allocator: allocator))
}

let reference = ObjectReference(apiVersion: "apps/v1", kind: "ReplicaSet", namespace: "default", name: "web")

/// One of each message, with fields filled in; `large` makes payloads far above the compression threshold.
func everyMessage(large: Bool) -> [WireMessage] {
    everyMessage(repeating: large ? 2000 : 1)
}

/// One of each message, each list and string repeated `count` times.
func everyMessage(repeating count: Int) -> [WireMessage] {
    let object: JSONValue = [
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": ["name": "web", "namespace": "default", "labels": ["app": "web"]],
        "spec": ["replicas": 200, "template": ["spec": ["containers": [["name": "web", "image": "nginx:1.27"]]]]],
    ]
    return [
        .hello(
            Hello(
                protocolVersions: [1], agentVersion: "0.1.0", cluster: "eu-1", kinds: Array(repeating: "apps/v1/ReplicaSet", count: count),
                lastAppliedRevision: 42)),
        .welcome(
            Welcome(protocolVersion: 1, sessionID: String(repeating: "s", count: count), heartbeatIntervalMilliseconds: 10_000, hubVersion: "0.1.0")),
        .reject(Reject(code: .identityMismatch, reason: String(repeating: "no ", count: count), retryAfterMilliseconds: 5_000)),
        .snapshot(Snapshot(revision: 7, objects: Array(repeating: object, count: count), chunkIndex: 0, chunkCount: 1)),
        .delta(Delta(fromRevision: 7, toRevision: 9, upserts: Array(repeating: object, count: count), deletes: [reference])),
        .ack(Ack(revision: 9, failures: Array(repeating: .init(object: reference, message: "conflict"), count: count))),
        .status(
            StatusReport(
                objects: Array(
                    repeating: .init(object: reference, state: .applied, health: .healthy, summary: ["readyReplicas": 3, "ratio": .double(0.5)]),
                    count: count))),
        .heartbeat(
            Heartbeat(
                sentAtMilliseconds: 1_700_000_000_000,
                cluster: .init(apiReachable: true, kubernetesVersion: String(repeating: "v", count: count), nodeCount: 3))),
        .goaway(GoAway(code: .draining, reason: String(repeating: "bye ", count: count), reconnectAfterMilliseconds: 1_000)),
        .error(ErrorMessage(code: .frameTooLarge, message: String(repeating: "x", count: count))),
        .renew(RenewRequest(csr: "-----BEGIN CERTIFICATE REQUEST-----\n" + String(repeating: "Q", count: count))),
        .certificate(CertificateIssued(certificate: String(repeating: "C", count: count), caBundle: "ca", error: nil)),
        .trust(TrustBundle(caBundle: String(repeating: "B", count: count))),
        .streamOpen(
            StreamOpen(
                stream: 7, method: "POST", path: "/api/v1/namespaces/default/configmaps?name=" + String(repeating: "n", count: count),
                headers: [StreamHeader(name: "Content-Type", value: "application/json")], body: "e30=", window: 262_144, user: "admin")),
        .streamHead(
            StreamHead(stream: 7, status: 200, headers: Array(repeating: StreamHeader(name: "Warning", value: "299 - \"w\""), count: count))),
        .streamData(StreamData(stream: 7, bytes: ByteBuffer(string: String(repeating: "d", count: count)), end: count % 2 == 1)),
        .streamWindow(StreamWindow(stream: 7, bytes: 131_072)),
        .streamReset(StreamReset(stream: 7, reason: String(repeating: "gone ", count: count))),
    ]
}

@Suite("Wire codec")
struct WireCodecTests {
    @Test("every message type round-trips, compressed and not", arguments: [false, true])
    func roundTrip(large: Bool) throws {
        let messages = everyMessage(large: large)
        #expect(Set(messages.map(\.kind)) == Set(WireMessage.Kind.allCases))
        let codec = WireCodec()
        for message in messages {
            let frame = try codec.encode(message, allocator: ByteBufferAllocator())
            // streamWindow carries two integers: never above the compression threshold.
            #expect(frame.flags.contains(.compressed) == (large && message.kind != .streamWindow), "\(message.kind) compression")
            #expect(try codec.decode(frame, allocator: ByteBufferAllocator()) == message)
        }
        // And through the channel handlers, all frames in one write.
        let pipeline = try WirePipeline()
        pipeline.feed(try messages.flatMap { try encoded($0) })
        #expect(pipeline.collector.messages == messages)
        #expect(pipeline.collector.errors.isEmpty)
    }

    @Test("streamData is binary: its header is checked, unknown flags and a short payload refused")
    func streamDataPayload() throws {
        let codec = WireCodec()
        let allocator = ByteBufferAllocator()
        let sent = StreamData(stream: 0xDEAD_BEEF, bytes: ByteBuffer(bytes: [0, 1, 2, 255]), end: true)
        let frame = try codec.encode(.streamData(sent), allocator: allocator)
        #expect(Array(buffer: frame.payload) == [0xDE, 0xAD, 0xBE, 0xEF, 1, 0, 1, 2, 255])
        #expect(try codec.decode(frame, allocator: allocator) == .streamData(sent))

        let unknownFlags = try WirePipeline()
        unknownFlags.feed(rawFrame(type: WireMessage.Kind.streamData.rawValue, payload: [0, 0, 0, 1, 2, 65]))
        try unknownFlags.expectRefusal(.malformedPayload)
        let short = try WirePipeline()
        short.feed(rawFrame(type: WireMessage.Kind.streamData.rawValue, payload: [0, 0, 1]))
        try short.expectRefusal(.malformedPayload)
    }

    @Test("the decoder survives one byte at a time and every split (ByteToMessageDecoderVerifier)")
    func decoderVerifier() throws {
        let allocator = ByteBufferAllocator()
        let cases = try everyMessage(large: false).prefix(4).map { message in
            let frame = try WireCodec().encode(message, allocator: allocator)
            return (allocator.buffer(bytes: try encoded(message)), [frame])
        }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: cases) {
            FrameDecoder(maximumFrameLength: 1 << 20)
        }
    }

    @Test("frames split and coalesced at random boundaries arrive whole and in order")
    func arbitrarySplits() throws {
        var generator = SystemRandomNumberGenerator()
        let messages = everyMessage(repeating: 1) + everyMessage(repeating: 20)
        let stream = try messages.flatMap { try encoded($0) }
        for _ in 0..<50 {
            let pipeline = try WirePipeline()
            var offset = 0
            while offset < stream.count {
                let size = Int.random(in: 1...max(1, stream.count / 7), using: &generator)
                let end = min(stream.count, offset + size)
                pipeline.feed(Array(stream[offset..<end]))
                offset = end
            }
            #expect(pipeline.collector.messages == messages)
        }
    }

    @Test("an oversized length is refused after four bytes, before any body is buffered")
    func oversizedLength() throws {
        let pipeline = try WirePipeline(limits: WireLimits(maximumFrameLength: 1024))
        pipeline.feed(withUnsafeBytes(of: UInt32(1025).bigEndian, Array.init))
        try pipeline.expectRefusal(.frameTooLarge)

        let huge = try WirePipeline()
        huge.feed(withUnsafeBytes(of: UInt32.max.bigEndian, Array.init) + [1, 0])
        try huge.expectRefusal(.frameTooLarge)
    }

    @Test("a length too small to hold type and flags is refused")
    func undersizedLength() throws {
        let pipeline = try WirePipeline()
        pipeline.feed(rawFrame(type: 1, payload: [], length: 1))
        try pipeline.expectRefusal(.frameTooShort)
    }

    @Test("a compression bomb is refused at the inflated-size limit (64 MiB of zeros, 1 MiB limit)")
    func compressionBombSmallLimit() throws {
        let bomb = zlib([UInt8](repeating: 0, count: 64 << 20))
        #expect(bomb.count < 128 * 1024, "the bomb must be small on the wire")
        let pipeline = try WirePipeline(limits: WireLimits(maximumInflatedPayload: 1 << 20))
        pipeline.feed(rawFrame(type: WireMessage.Kind.status.rawValue, flags: 1, payload: bomb))
        try pipeline.expectRefusal(.payloadTooLarge)
    }

    @Test("a compression bomb past the default 64 MiB limit is refused")
    func compressionBombDefaultLimit() throws {
        let bomb = zlib([UInt8](repeating: UInt8(ascii: " "), count: 80 << 20))
        let pipeline = try WirePipeline()
        pipeline.feed(rawFrame(type: WireMessage.Kind.snapshot.rawValue, flags: 1, payload: bomb))
        try pipeline.expectRefusal(.payloadTooLarge)
    }

    @Test("inflation stops exactly at the limit: a payload of exactly the limit passes, one byte more does not")
    func inflateLimitBoundary() throws {
        let allocator = ByteBufferAllocator()
        for size in [1000, 4096, 70_000] {
            let compressed = allocator.buffer(bytes: zlib([UInt8](repeating: 7, count: size)))
            #expect(try Zlib.inflate(compressed, limit: size, allocator: allocator).readableBytes == size)
            #expect(throws: Zlib.InflateFailure.tooLarge) { try Zlib.inflate(compressed, limit: size - 1, allocator: allocator) }
        }
    }

    @Test("a truncated zlib stream is refused")
    func truncatedZlib() throws {
        let json = Array(try JSONEncoder().encode(Heartbeat(sentAtMilliseconds: 1)))
        let compressed = zlib(json + Array(repeating: UInt8(ascii: " "), count: 2000))
        let pipeline = try WirePipeline()
        pipeline.feed(rawFrame(type: WireMessage.Kind.heartbeat.rawValue, flags: 1, payload: Array(compressed.dropLast(6))))
        try pipeline.expectRefusal(.corruptCompression)
    }

    @Test("corrupt zlib (bad header, flipped bytes, trailing garbage) is refused", arguments: ["header", "body", "trailing"])
    func corruptZlib(damage: String) throws {
        let json = Array(try JSONEncoder().encode(Heartbeat(sentAtMilliseconds: 1)))
        var compressed = zlib(json + Array(repeating: UInt8(ascii: " "), count: 2000))
        switch damage {
        case "header": compressed[0] = 0x00
        case "body": for index in stride(from: 2, to: compressed.count - 4, by: 3) { compressed[index] ^= 0xA5 }
        default: compressed += [1, 2, 3]
        }
        let pipeline = try WirePipeline()
        pipeline.feed(rawFrame(type: WireMessage.Kind.heartbeat.rawValue, flags: 1, payload: compressed))
        try pipeline.expectRefusal(.corruptCompression)
    }

    @Test("an unknown frame type is refused")
    func unknownType() throws {
        let pipeline = try WirePipeline()
        pipeline.feed(rawFrame(type: 200, payload: Array("{}".utf8)))
        try pipeline.expectRefusal(.unknownMessageType)
    }

    @Test("undefined flag bits are refused")
    func unknownFlags() throws {
        let pipeline = try WirePipeline()
        pipeline.feed(rawFrame(type: WireMessage.Kind.heartbeat.rawValue, flags: 0x80, payload: Array(#"{"sentAtMilliseconds":1}"#.utf8)))
        try pipeline.expectRefusal(.unknownFlags)
    }

    @Test(
        "invalid JSON, a missing field, a wrong type and invalid UTF-8 are refused as malformed",
        arguments: [
            Array("{not json".utf8), Array("{}".utf8), Array(#"{"sentAtMilliseconds":"soon"}"#.utf8), [0x7B, 0xFF, 0xFE, 0x7D],
            [],
        ]
    )
    func malformedPayload(payload: [UInt8]) throws {
        let pipeline = try WirePipeline()
        pipeline.feed(rawFrame(type: WireMessage.Kind.heartbeat.rawValue, payload: payload))
        try pipeline.expectRefusal(.malformedPayload)
    }

    @Test("JSON nested past the depth limit is refused before decoding")
    func deepNesting() throws {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        let payload = Array(#"{"revision":1,"objects":"#.utf8) + Array(deep.utf8) + Array(#","chunkIndex":0,"chunkCount":1}"#.utf8)
        let pipeline = try WirePipeline()
        pipeline.feed(rawFrame(type: WireMessage.Kind.snapshot.rawValue, payload: payload))
        try pipeline.expectRefusal(.nestingTooDeep)

        // Brackets inside strings do not count.
        let quoted = Heartbeat(sentAtMilliseconds: 1, cluster: .init(apiReachable: true, kubernetesVersion: String(repeating: "[{", count: 500)))
        let accepted = try WirePipeline()
        accepted.feed(try encoded(.heartbeat(quoted)))
        #expect(accepted.collector.messages == [.heartbeat(quoted)])
    }

    @Test("a connection that ends inside a frame is reported as truncated, without a reply")
    func truncatedAtEOF() throws {
        let pipeline = try WirePipeline()
        let frame = try encoded(.heartbeat(Heartbeat(sentAtMilliseconds: 5)))
        pipeline.feed(Array(frame.prefix(frame.count - 3)))
        #expect(pipeline.collector.messages.isEmpty)
        pipeline.channel.pipeline.fireChannelInactive()
        #expect(pipeline.collector.errors.contains { ($0 as? WireError)?.code == .truncatedFrame })
        #expect(try pipeline.outboundMessages().isEmpty)
    }

    @Test("nothing is read after a violation, even valid frames that follow it")
    func silentAfterViolation() throws {
        let pipeline = try WirePipeline()
        pipeline.feed(rawFrame(type: 99, payload: []) + (try encoded(.heartbeat(Heartbeat(sentAtMilliseconds: 1)))))
        #expect(pipeline.collector.messages.isEmpty)
        try pipeline.expectRefusal(.unknownMessageType)
    }

    @Test("random bytes never crash the decoder or grow it past its limit")
    func randomBytes() throws {
        var generator = SystemRandomNumberGenerator()
        for round in 0..<2_000 {
            let pipeline = try WirePipeline(limits: WireLimits(maximumFrameLength: 4096))
            let count = Int.random(in: 0...600, using: &generator)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if round % 2 == 0, bytes.count >= 6 {
                // Plausible headers reach the payload decoders instead of dying at the length check.
                bytes.replaceSubrange(0..<4, with: withUnsafeBytes(of: UInt32(bytes.count - 4).bigEndian, Array.init))
                bytes[4] = UInt8.random(in: 1...11, using: &generator)
                bytes[5] = UInt8.random(in: 0...1, using: &generator)
            }
            pipeline.feed(bytes)
            _ = try? pipeline.outboundMessages()
            pipeline.channel.pipeline.fireChannelInactive()
        }
    }

    @Test("an outbound message too large for one frame fails its write instead of being sent")
    func outboundTooLarge() throws {
        let limits = WireLimits(maximumFrameLength: 256, compressionThreshold: 1 << 20)
        let big = WireMessage.error(ErrorMessage(code: .unexpectedMessage, message: String(repeating: "z", count: 1000)))
        #expect(throws: WireError.self) { try WireCodec(limits: limits).encode(big, allocator: ByteBufferAllocator()) }
    }
}

@Suite("Host and port")
struct HostAndPortTests {
    @Test(
        "valid addresses parse",
        arguments: [
            ("127.0.0.1:7443", "127.0.0.1", 7443), (":0", "127.0.0.1", 0), ("hub.example.com:443", "hub.example.com", 443),
            ("[::1]:7443", "::1", 7443),
        ]
    )
    func valid(text: String, host: String, port: Int) throws {
        let parsed = try HostAndPort(parsing: text)
        #expect(parsed.host == host && parsed.port == port)
    }

    @Test("invalid addresses are refused with the reason", arguments: ["7443", "host:", "host:70000", "::1:7443", "[::1]7443", "h:-1"])
    func invalid(text: String) {
        #expect(throws: HostAndPort.AddressError.self) { try HostAndPort(parsing: text) }
    }
}
