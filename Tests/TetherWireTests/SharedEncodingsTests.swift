import NIOCore
import NIOEmbedded
import Testing
import TetherJSON
import TetherModel

@testable import TetherWire

@Suite("One encoding of a delta shared by many sessions")
struct SharedEncodingsTests {
    /// A session's wire handlers on an embedded channel, sharing `encodings` with the others.
    static func session(sharing encodings: SharedEncodings) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addTetherWireHandlers(limits: .default, sharedEncodings: encodings)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    static func written(_ channel: EmbeddedChannel) throws -> [UInt8] {
        var bytes: [UInt8] = []
        while let chunk = try channel.readOutbound(as: ByteBuffer.self) { bytes += chunk.readableBytesView }
        return bytes
    }

    static let object: JSONValue = [
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": "routes", "namespace": "shop"],
        "data": ["table": .string(String(repeating: "route upstream weight 10\n", count: 200))],
    ]

    @Test("the same delta to many sessions is encoded once, and every session gets the same bytes")
    func sharedDelta() throws {
        let encodings = SharedEncodings()
        let sessions = try (0..<5).map { _ in try Self.session(sharing: encodings) }
        let delta = WireMessage.delta(Delta(fromRevision: 7, toRevision: 8, upserts: [Self.object], deletes: []))
        for session in sessions { try session.writeAndFlush(delta).wait() }
        #expect(encodings.counts.encoded == 1)
        #expect(encodings.counts.reused == 4)
        let outputs = try sessions.map(Self.written)
        #expect(Set(outputs).count == 1)
        var buffer = ByteBuffer(bytes: outputs[0])
        var decoder = FrameDecoder(maximumFrameLength: 1 << 20)
        let frame = try #require(try decoder.nextFrame(from: &buffer))
        #expect(frame.flags.contains(.compressed), "a 5 KB delta is compressed once for everyone")
        #expect(try WireCodec().decode(frame, allocator: ByteBufferAllocator()) == delta)
    }

    @Test("a delta that differs in anything is encoded for itself; snapshots and other messages are never kept")
    func differentMessages() throws {
        let encodings = SharedEncodings(capacity: 2)
        let first = try Self.session(sharing: encodings)
        let second = try Self.session(sharing: encodings)
        let delta = Delta(fromRevision: 7, toRevision: 8, upserts: [Self.object], deletes: [])
        var otherFrom = delta
        otherFrom.fromRevision = 6
        var otherObject = delta
        otherObject.upserts = [["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": "other"]]]
        try first.writeAndFlush(WireMessage.delta(delta)).wait()
        try second.writeAndFlush(WireMessage.delta(otherFrom)).wait()
        try second.writeAndFlush(WireMessage.delta(otherObject)).wait()
        #expect(encodings.counts.encoded == 3)
        #expect(encodings.counts.reused == 0)
        // Only the last two are kept: the first must be encoded again.
        try second.writeAndFlush(WireMessage.delta(delta)).wait()
        #expect(encodings.counts.encoded == 4)
        let heartbeat = WireMessage.heartbeat(Heartbeat(sentAtMilliseconds: 1))
        try first.writeAndFlush(heartbeat).wait()
        try second.writeAndFlush(heartbeat).wait()
        let snapshot = WireMessage.snapshot(Snapshot(revision: 8, objects: [Self.object]))
        try first.writeAndFlush(snapshot).wait()
        try second.writeAndFlush(snapshot).wait()
        #expect(encodings.counts.encoded == 4)
        #expect(encodings.counts.reused == 0)
        let decoded = try [first, second].flatMap { channel -> [WireMessage] in
            var buffer = ByteBuffer(bytes: try Self.written(channel))
            var decoder = FrameDecoder(maximumFrameLength: 1 << 20)
            var messages: [WireMessage] = []
            while let frame = try decoder.nextFrame(from: &buffer) {
                messages.append(try WireCodec().decode(frame, allocator: ByteBufferAllocator()))
            }
            return messages
        }
        #expect(decoded == [.delta(delta), heartbeat, snapshot, .delta(otherFrom), .delta(otherObject), .delta(delta), heartbeat, snapshot])
    }
}
