import Logging
import NIOCore
import NIOEmbedded
import Testing
import TetherJSON
import TetherModel
import TetherWire

@Suite("Connection gate: caps, silent strangers evicted first, authentication deadline")
struct ConnectionGateTests {
    /// A connection from `address`, accepted through a gate handler.
    static func connect(_ gate: ConnectionGate, from address: String = "10.0.0.1") throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        let remote = try SocketAddress(ipAddress: address, port: 40_000)
        channel.remoteAddress = remote
        try channel.pipeline.syncOperations.addHandler(ConnectionGateHandler(gate: gate))
        try channel.connect(to: remote).wait()
        return channel
    }

    static func speak(_ channel: EmbeddedChannel) throws {
        try channel.writeInbound(ByteBuffer(string: "hello"))
        _ = try channel.readInbound(as: ByteBuffer.self)
    }

    static func gate(total: Int = 100, perAddress: Int = 100, strangers: Int = 100, timeout: TimeAmount = .seconds(10)) -> ConnectionGate {
        ConnectionGate(
            name: "test",
            limits: ListenerLimits(
                maximumConnections: total, maximumConnectionsPerAddress: perAddress, maximumStrangers: strangers, authenticationTimeout: timeout),
            logger: Logger(label: "test")
        )
    }

    @Test("at the cap a new connection takes the place of the oldest silent stranger")
    func evictsSilent() throws {
        let gate = Self.gate(strangers: 3)
        let idle = try (0..<3).map { _ in try Self.connect(gate) }
        let newcomer = try Self.connect(gate)
        #expect(!idle[0].isActive, "the oldest idle connection made room")
        #expect(idle[1].isActive && idle[2].isActive && newcomer.isActive)
        #expect(gate.counts == (open: 3, strangers: 3))
    }

    @Test("when every stranger has spoken, the newcomer is the one refused: a storm keeps its handshakes")
    func refusesWhenNoneSilent() throws {
        let gate = Self.gate(strangers: 2)
        let talking = try (0..<2).map { _ in try Self.connect(gate) }
        for channel in talking { try Self.speak(channel) }
        let newcomer = try Self.connect(gate)
        #expect(!newcomer.isActive)
        #expect(talking.allSatisfy { $0.isActive })
        // An authenticated connection no longer counts as a stranger: room again.
        gate.authenticated(talking[0])
        let next = try Self.connect(gate)
        #expect(next.isActive)
        #expect(gate.counts == (open: 3, strangers: 2))
    }

    @Test("the per-address cap evicts that address's silent strangers, never another's")
    func perAddress() throws {
        let gate = Self.gate(perAddress: 2)
        let mine = try Self.connect(gate, from: "10.0.0.9")
        let flood = try (0..<2).map { _ in try Self.connect(gate, from: "10.0.0.1") }
        let more = try Self.connect(gate, from: "10.0.0.1")
        #expect(!flood[0].isActive && flood[1].isActive && more.isActive && mine.isActive)
        for channel in [flood[1], more] { try Self.speak(channel) }
        let refused = try Self.connect(gate, from: "10.0.0.1")
        #expect(!refused.isActive)
        #expect(mine.isActive)
    }

    @Test("the total cap holds authenticated connections too")
    func total() throws {
        let gate = Self.gate(total: 2)
        let first = try Self.connect(gate)
        let second = try Self.connect(gate)
        gate.authenticated(first)
        gate.authenticated(second)
        let third = try Self.connect(gate)
        #expect(!third.isActive && first.isActive && second.isActive)
        try second.close().wait()
        let fourth = try Self.connect(gate)
        #expect(fourth.isActive)
    }

    @Test("a stranger that does not authenticate in time is closed; one that does is kept")
    func deadline() throws {
        let gate = Self.gate(timeout: .seconds(10))
        let slow = try Self.connect(gate)
        let prompt = try Self.connect(gate)
        gate.authenticated(prompt)
        slow.embeddedEventLoop.advanceTime(by: .seconds(9))
        #expect(slow.isActive)
        slow.embeddedEventLoop.advanceTime(by: .seconds(2))
        prompt.embeddedEventLoop.advanceTime(by: .seconds(11))
        #expect(!slow.isActive && prompt.isActive)
        #expect(gate.counts == (open: 1, strangers: 0))
    }

    @Test("thousands of connections that come and go leave nothing behind")
    func churn() throws {
        let gate = Self.gate(total: 50, strangers: 20)
        for round in 0..<2_000 {
            let channel = try Self.connect(gate, from: "10.0.\(round % 7).1")
            if round % 3 == 0 { try Self.speak(channel) }
            if round % 2 == 0 { gate.authenticated(channel) }
            if round % 5 != 0, channel.isActive { try channel.close().wait() }
        }
        let (open, strangers) = gate.counts
        #expect(open <= 50 && strangers <= 20)
    }
}

@Suite("Report limits")
struct ReportLimitsTests {
    let reference = ObjectReference(apiVersion: "v1", kind: "ConfigMap", namespace: "default", name: "c")

    @Test("reports inside the bounds pass; each bound is enforced")
    func bounds() {
        #expect(ReportLimits.problem(in: Hello(protocolVersions: [1], agentVersion: "0.1.0", cluster: "a", kinds: ["/v1/ConfigMap"])) == nil)
        #expect(
            ReportLimits.problem(in: Hello(protocolVersions: [1], agentVersion: "0.1.0", cluster: "a", kinds: Array(repeating: "x", count: 300)))
                != nil)
        #expect(ReportLimits.problem(in: Hello(protocolVersions: [1], agentVersion: String(repeating: "v", count: 65), cluster: "a")) != nil)
        let health = Heartbeat.ClusterHealth(apiReachable: true, message: String(repeating: "m", count: 2_000))
        #expect(ReportLimits.problem(in: Heartbeat(sentAtMilliseconds: 1, cluster: health)) != nil)
        let status = StatusReport.ObjectStatus(object: reference, state: .applied, health: .healthy, summary: ["deep": LimitsHelpers.nested(9)])
        #expect(ReportLimits.problem(in: StatusReport(objects: [status])) != nil)
        let wide = StatusReport.ObjectStatus(
            object: reference, state: .applied, health: .healthy, summary: ["x": .string(String(repeating: "x", count: 9_000))])
        #expect(ReportLimits.problem(in: StatusReport(objects: [wide])) != nil)
        let fine = StatusReport.ObjectStatus(
            object: reference, state: .failed, health: .unknown, message: ReportLimits.clipped(String(repeating: "é", count: 5_000)))
        #expect(ReportLimits.problem(in: StatusReport(objects: [fine])) == nil)
        #expect(
            ReportLimits.problem(in: Ack(revision: 1, failures: [.init(object: reference, message: String(repeating: "m", count: 1_025))])) != nil)
    }

    @Test("a state or health outside the vocabulary does not decode: the message is refused as malformed")
    func vocabulary() throws {
        let codec = WireCodec()
        let body = #"{"objects":[{"object":{"apiVersion":"v1","kind":"ConfigMap","name":"c"},"state":"owned","health":"Healthy","summary":{}}]}"#
        let frame = Frame(type: WireMessage.Kind.status.rawValue, payload: ByteBuffer(string: body))
        #expect(throws: WireError.self) { try codec.decode(frame, allocator: ByteBufferAllocator()) }
    }
}

enum LimitsHelpers {
    static func nested(_ depth: Int) -> JSONValue {
        var value: JSONValue = 1
        for _ in 0..<depth { value = [value] }
        return value
    }
}

@Suite("one depth limit from the API to the wire")
struct DepthLimitTests {
    @Test("an object at the object depth limit travels in a snapshot and a delta; one level more is refused by the API's check")
    func objectAtTheLimitTravels() throws {
        let limits = ObjectLimits.default
        var object: JSONValue = "leaf"
        for _ in 0..<(limits.maximumDepth - 1) { object = ["a": object] }
        #expect(object.nestingDepth() == limits.maximumDepth - 1 + 0)
        var top: JSONValue = ["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": "deep"], "data": object]
        while top.nestingDepth() < limits.maximumDepth { top[member: "data"] = ["a": top["data"] ?? .null] }
        #expect(top.nestingDepth() == limits.maximumDepth)
        #expect(limits.check(top) == nil)
        let codec = WireCodec()
        for message in [
            WireMessage.snapshot(Snapshot(revision: 1, objects: [top])), .delta(Delta(fromRevision: 1, toRevision: 2, upserts: [top], deletes: [])),
        ] {
            let frame = try codec.encode(message, allocator: ByteBufferAllocator())
            #expect(try codec.decode(frame, allocator: ByteBufferAllocator()) == message)
        }
        var deeper = top
        deeper[member: "data"] = ["a": top["data"] ?? .null]
        #expect(limits.check(deeper)?.code == .tooDeep)
    }
}
