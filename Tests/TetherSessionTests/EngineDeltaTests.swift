import BuiltinPlugins
import Logging
import NIOCore
import NIOEmbedded
import Testing
import TetherHub
import TetherJSON
import TetherModel
import TetherStore
import TetherTestSupport
import TetherWire

/// Holds every message the engine writes until the test lets it through or fails it, so a push
/// can be kept in flight while the hub's objects change.
final class GatedWrites: ChannelOutboundHandler, Sendable {
    typealias OutboundIn = WireMessage

    let written: AsyncStream<(message: WireMessage, promise: EventLoopPromise<Void>?)>
    private let continuation: AsyncStream<(message: WireMessage, promise: EventLoopPromise<Void>?)>.Continuation

    init() {
        (written, continuation) = AsyncStream.makeStream()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        continuation.yield((Self.unwrapOutboundIn(data), promise))
    }
}

/// What an agent holds, built only from the messages it was sent; checks the protocol's rules
/// on each one.
struct AgentMirror {
    var revision: UInt64?
    var objects: [String: JSONValue] = [:]

    static func key(_ object: JSONValue) -> String {
        "\(object["kind"]?.stringValue ?? "")/\(object["metadata"]?["name"]?.stringValue ?? "")"
    }

    mutating func take(_ message: WireMessage, sourceLocation: SourceLocation = #_sourceLocation) {
        switch message {
        case .snapshot(let snapshot):
            objects = Dictionary(uniqueKeysWithValues: snapshot.objects.map { (Self.key($0), $0) })
            revision = snapshot.revision
        case .delta(let delta):
            #expect(delta.fromRevision == revision, "a delta starts where the agent is", sourceLocation: sourceLocation)
            for reference in delta.deletes + (delta.orphans ?? []) {
                let key = "\(reference.kind)/\(reference.name)"
                #expect(objects[key] != nil, "a delete names an object the agent holds: \(key)", sourceLocation: sourceLocation)
                objects[key] = nil
            }
            for object in delta.upserts { objects[Self.key(object)] = object }
            revision = delta.toRevision
        default:
            break
        }
    }
}

@Suite("The federation engine's deltas")
struct EngineDeltaTests {
    static let configMaps = ResourceType(group: "", resource: "configmaps", namespaced: true)

    static func configMap(_ name: String, _ value: String) -> JSONValue {
        ["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": .string(name), "namespace": "default"], "data": ["v": .string(value)]]
    }

    @Test(
        "deltas chain from revision to revision, delete only what the agent holds, carry every change made while a push was in flight, and repeat a push whose write failed",
        .timeLimit(.minutes(1))
    )
    func deltas() async throws {
        let scratch = try ScratchDirectory("tether-engine")
        let store = try SQLiteResourceStore(path: scratch.file("hub.db"))
        var settings = FederationSettings()
        settings.autoJoin = true
        let engine = FederationEngine(
            store: store, registry: BuiltinPlugins.hub, settings: settings,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        let gate = GatedWrites()
        let channel = NIOAsyncTestingChannel()
        try await channel.pipeline.addHandler(gate)
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1))

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await engine.run() }
            defer { group.cancelAll() }
            var writes = gate.written.makeAsyncIterator()
            var mirror = AgentMirror()

            /// Lets writes through until the agent holds exactly `expected` (names to values).
            func deliver(until expected: [String: String]) async throws {
                let deadline = ContinuousClock.now + .seconds(20)
                while mirror.objects.mapValues({ $0["data"]?["v"]?.stringValue ?? "" }) != expected.mapKeys({ "ConfigMap/\($0)" }) {
                    guard ContinuousClock.now < deadline else {
                        Issue.record("the agent holds \(mirror.objects.keys.sorted()), expected \(expected.keys.sorted())")
                        return
                    }
                    let next = try await nextWrite()
                    mirror.take(next.message)
                    next.promise?.succeed()
                }
            }
            func nextWrite() async throws -> (message: WireMessage, promise: EventLoopPromise<Void>?) {
                // The test's time limit bounds the wait.
                guard let write = await writes.next() else { throw ChannelError.ioOnClosedChannel }
                return write
            }

            _ = try await store.create(Self.configMap("a", "1"), as: Self.configMaps, dryRun: false)
            engine.sessionEstablished(
                cluster: "east", sessionID: "s1", hello: Hello(protocolVersions: [1], agentVersion: "test", cluster: "east"),
                channel: channel
            )
            try await deliver(until: ["a": "1"])

            // A push held in flight while objects change: nothing is lost, nothing is deleted twice.
            _ = try await store.create(Self.configMap("b", "1"), as: Self.configMaps, dryRun: false)
            var held = try await nextWrite()
            _ = try await store.create(Self.configMap("c", "1"), as: Self.configMaps, dryRun: false)
            _ = try await store.delete(Self.configMaps, namespace: "default", name: "c", preconditions: DeletePreconditions(), dryRun: false)
            _ = try await store.delete(Self.configMaps, namespace: "default", name: "a", preconditions: DeletePreconditions(), dryRun: false)
            mirror.take(held.message)
            held.promise?.succeed()
            try await deliver(until: ["b": "1"])

            // A write that fails is not taken as delivered: the next push carries its changes again.
            _ = try await store.update(Self.configMap("b", "2"), as: Self.configMaps, dryRun: false)
            held = try await nextWrite()
            guard case .delta(let failed) = held.message else {
                Issue.record("expected a delta, got \(held.message)")
                return
            }
            held.promise?.fail(ChannelError.ioOnClosedChannel)
            let retry = try await nextWrite()
            guard case .delta(let repeated) = retry.message else {
                Issue.record("expected the delta again, got \(retry.message)")
                return
            }
            #expect(repeated.fromRevision == failed.fromRevision)
            #expect(Set(failed.upserts.map(AgentMirror.key)).isSubset(of: Set(repeated.upserts.map(AgentMirror.key))))
            mirror.take(retry.message)
            retry.promise?.succeed()
            try await deliver(until: ["b": "2"])
        }
    }
}

extension Dictionary {
    fileprivate func mapKeys<NewKey: Hashable>(_ transform: (Key) -> NewKey) -> [NewKey: Value] {
        [NewKey: Value](uniqueKeysWithValues: map { (transform($0.key), $0.value) })
    }
}
