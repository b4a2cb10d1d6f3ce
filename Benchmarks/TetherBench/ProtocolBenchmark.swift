import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import TetherJSON
import TetherModel
import TetherSecurity
import TetherWire
import X509

/// Tether's framed protocol against a grpc-swift-2 bidirectional stream, in one run.
///
/// Both carry the same deltas (one object each, JSON, sorted keys) from a sender to a receiver
/// over loopback mutual TLS with certificates from one CA, and the receiver acks every delta
/// with its revision. Both senders keep the same number of deltas in flight. Compression is
/// zlib deflate at the default level on both (Tether compresses payloads above 1 KiB; gRPC
/// compresses every message when asked to). Bytes are counted on the receiver's TCP channel,
/// below TLS: what crosses the wire, record headers and HTTP/2 framing included.
struct ProtocolBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "protocol",
        abstract: "Tether's framed protocol against a grpc-swift-2 bidirectional stream: the same deltas, the same loopback mutual TLS.",
        discussion: """
            Payloads: a realistic Deployment (about 2.5 KiB of JSON), a 1 KiB and a 64 KiB ConfigMap. Each
            combination (payload, compressed or not, protocol) runs --repeats times in this process; the
            table shows medians, and the ratios are Tether over gRPC.
            """
    )

    @Option(name: .long, help: "Deltas per run for the Deployment and 1 KiB payloads.")
    var messages = 10_000

    @Option(name: .long, help: "Deltas per run for the 64 KiB payload.")
    var largeMessages = 1_000

    @Option(name: .long, parsing: .upToNextOption, help: "What each end does per delta: json (encode and decode it), bytes (send an encoding made once, read only its revision), or both.")
    var carriage: [Carriage] = Carriage.allCases

    @Option(name: .long, help: "Runs of each combination; medians are reported.")
    var repeats = 3

    @Option(name: .long, help: "Deltas in flight before a sender waits for an ack (the same for both protocols).")
    var window = 32

    @Option(name: .long, help: "Deltas exchanged on a fresh connection before measuring (handshake and warm-up excluded).")
    var warmup = 200

    func validate() throws {
        guard messages > 0, largeMessages > 0, repeats > 0, window > 0, warmup >= 0 else {
            throw ValidationError("--messages, --large-messages, --repeats and --window must be positive, --warmup not negative")
        }
    }

    func run() async throws {
        let pki = try BenchPKI()
        var report = Report("protocol")
        report.note("window", "\(window) deltas in flight, acked one by one; deflate at zlib's default level on both")
        for payload in DesiredStatePayload.allCases {
            let count = payload == .configMap64KiB ? largeMessages : messages
            let sample = payload.delta(revision: 1)
            report.add("\(payload.key)_json_bytes", Double(try WireCodec.jsonBody(sample).count), "\(payload.label): JSON per delta", format: "%.0f", unit: "bytes")
            for carriage in carriage {
            for compressed in [false, true] {
                let setup = ExchangeSetup(payload: payload, carriage: carriage, count: count, compressed: compressed, window: window, warmup: warmup)
                var results: [WireProtocolUnderTest: [ExchangeResult]] = [:]
                for _ in 0..<repeats {
                    // Alternate the order so neither protocol always runs on a warmer machine.
                    for candidate in WireProtocolUnderTest.allCases.shuffled() {
                        let result = try await candidate.exchange(setup, pki: pki)
                        results[candidate, default: []].append(result)
                    }
                }
                let mode = "\(carriage.rawValue)_" + (compressed ? "deflate" : "plain")
                var medians: [WireProtocolUnderTest: ExchangeResult] = [:]
                for candidate in WireProtocolUnderTest.allCases {
                    let median = ExchangeResult.median(results[candidate] ?? [])
                    medians[candidate] = median
                    let key = "\(payload.key)_\(mode)_\(candidate.rawValue)"
                    let label = "\(payload.label), \(carriage.rawValue), \(compressed ? "deflate" : "plain"), \(candidate.label)"
                    report.add("\(key)_msgs_per_s", median.messagesPerSecond, "\(label): deltas/s", format: "%.0f")
                    report.add("\(key)_wire_bytes", median.wireBytesPerMessage, "\(label): wire bytes per delta (both ways)", format: "%.0f", unit: "bytes")
                    report.add("\(key)_cpu_us", median.cpuMicrosecondsPerMessage, "\(label): CPU per delta (both ends)", format: "%.1f", unit: "µs")
                }
                if let ours = medians[.tether], let theirs = medians[.grpc] {
                    let key = "\(payload.key)_\(mode)"
                    let label = "\(payload.label), \(carriage.rawValue), \(compressed ? "deflate" : "plain")"
                    report.add("\(key)_throughput_ratio", ours.messagesPerSecond / theirs.messagesPerSecond, "\(label): throughput Tether/gRPC", format: "%.2f", unit: "x")
                    report.add("\(key)_bytes_ratio", ours.wireBytesPerMessage / theirs.wireBytesPerMessage, "\(label): wire bytes Tether/gRPC", format: "%.3f", unit: "x")
                    report.add("\(key)_cpu_ratio", ours.cpuMicrosecondsPerMessage / theirs.cpuMicrosecondsPerMessage, "\(label): CPU Tether/gRPC", format: "%.2f", unit: "x")
                }
            }
            }
        }
        report.print()
    }
}

// MARK: - What is compared

enum WireProtocolUnderTest: String, CaseIterable, Hashable {
    case tether
    case grpc

    var label: String { self == .tether ? "Tether" : "gRPC" }

    func exchange(_ setup: ExchangeSetup, pki: BenchPKI) async throws -> ExchangeResult {
        switch self {
        case .tether: try await TetherExchange.run(setup, pki: pki)
        case .grpc: try await GRPCExchange.run(setup, pki: pki)
        }
    }
}

/// What each end does with a delta besides carrying it.
enum Carriage: String, CaseIterable, ExpressibleByArgument {
    /// The sender encodes every delta as JSON, the receiver decodes it: the whole cost of a message.
    case json
    /// The sender sends JSON encoded once beforehand (as a hub does for many clusters sharing a
    /// delta), the receiver reads only its revision: what is left is the protocol and transport.
    case bytes
}

struct ExchangeSetup: Sendable {
    var payload: DesiredStatePayload
    var carriage: Carriage
    var count: Int
    var compressed: Bool
    var window: Int
    var warmup: Int

    /// Encodings made once for `bytes` carriage, used in turn (distinct revisions, like a stream of changes).
    func preEncoded() throws -> [[UInt8]] {
        try (1...64).map { Array(try WireCodec.jsonBody(payload.delta(revision: UInt64($0)))) }
    }
}

struct ExchangeResult: Sendable {
    var messagesPerSecond: Double
    var wireBytesPerMessage: Double
    var cpuMicrosecondsPerMessage: Double

    /// Each figure's median on its own (runs are few and close; the figures move together).
    static func median(_ results: [ExchangeResult]) -> ExchangeResult {
        func middle(_ values: [Double]) -> Double {
            let sorted = values.sorted()
            return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
        }
        return ExchangeResult(
            messagesPerSecond: middle(results.map(\.messagesPerSecond)),
            wireBytesPerMessage: middle(results.map(\.wireBytesPerMessage)),
            cpuMicrosecondsPerMessage: middle(results.map(\.cpuMicrosecondsPerMessage))
        )
    }

    /// Figures for `count` deltas between two readings of the wire counter and the process clock.
    static func measure(count: Int, traffic: WireTraffic, _ body: () async throws -> Void) async throws -> ExchangeResult {
        let bytesBefore = traffic.total
        let cpuBefore = ProcessStats.read(getpid())?.cpuSeconds ?? 0
        let started = ContinuousClock.now
        try await body()
        let seconds = milliseconds(.now - started) / 1000
        let cpu = (ProcessStats.read(getpid())?.cpuSeconds ?? 0) - cpuBefore
        return ExchangeResult(
            messagesPerSecond: Double(count) / seconds,
            wireBytesPerMessage: Double(traffic.total - bytesBefore) / Double(count),
            cpuMicrosecondsPerMessage: cpu * 1_000_000 / Double(count)
        )
    }
}

/// The desired-state payloads: one object per delta, its revision annotation changing each time.
enum DesiredStatePayload: CaseIterable {
    case deployment
    case configMap1KiB
    case configMap64KiB

    var key: String {
        switch self {
        case .deployment: "deployment"
        case .configMap1KiB: "configmap_1k"
        case .configMap64KiB: "configmap_64k"
        }
    }

    var label: String {
        switch self {
        case .deployment: "Deployment"
        case .configMap1KiB: "1 KiB ConfigMap"
        case .configMap64KiB: "64 KiB ConfigMap"
        }
    }

    func delta(revision: UInt64) -> Delta {
        var object = template
        if case .object(var fields) = object, case .object(var metadata) = fields["metadata"] {
            metadata["annotations"] = .object(["tether.io/revision": .string(String(revision))])
            fields["metadata"] = .object(metadata)
            object = .object(fields)
        }
        return Delta(fromRevision: revision - 1, toRevision: revision, upserts: [object], deletes: [])
    }

    private var template: JSONValue {
        switch self {
        case .deployment: Self.deploymentTemplate
        case .configMap1KiB: Self.configMap1KiBTemplate
        case .configMap64KiB: Self.configMap64KiBTemplate
        }
    }

    private static let deploymentTemplate: JSONValue = {
        // A web service as teams write them: two containers, probes, limits, config and secret mounts.
        let text = """
            {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"checkout-api","namespace":"shop",
            "labels":{"app.kubernetes.io/name":"checkout-api","app.kubernetes.io/part-of":"shop","app.kubernetes.io/version":"4.18.2","team":"payments"}},
            "spec":{"replicas":6,"revisionHistoryLimit":5,"selector":{"matchLabels":{"app.kubernetes.io/name":"checkout-api"}},
            "strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":"25%","maxUnavailable":0}},
            "template":{"metadata":{"labels":{"app.kubernetes.io/name":"checkout-api","app.kubernetes.io/part-of":"shop","team":"payments"},
            "annotations":{"prometheus.io/scrape":"true","prometheus.io/port":"9090"}},
            "spec":{"serviceAccountName":"checkout-api","terminationGracePeriodSeconds":45,
            "securityContext":{"runAsNonRoot":true,"runAsUser":10001,"fsGroup":10001,"seccompProfile":{"type":"RuntimeDefault"}},
            "containers":[{"name":"api","image":"registry.example.com/shop/checkout-api:4.18.2","imagePullPolicy":"IfNotPresent",
            "args":["--listen=:8080","--metrics=:9090","--config=/etc/checkout/config.yaml"],
            "ports":[{"name":"http","containerPort":8080,"protocol":"TCP"},{"name":"metrics","containerPort":9090,"protocol":"TCP"}],
            "env":[{"name":"DATABASE_HOST","value":"checkout-db.shop.svc.cluster.local"},{"name":"DATABASE_PORT","value":"5432"},
            {"name":"DATABASE_PASSWORD","valueFrom":{"secretKeyRef":{"name":"checkout-db","key":"password"}}},
            {"name":"PAYMENTS_ENDPOINT","value":"https://payments.internal.example.com/v2"},{"name":"LOG_LEVEL","value":"info"},
            {"name":"POD_NAME","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}],
            "resources":{"requests":{"cpu":"250m","memory":"256Mi"},"limits":{"cpu":"1","memory":"512Mi"}},
            "readinessProbe":{"httpGet":{"path":"/healthz/ready","port":"http"},"periodSeconds":5,"failureThreshold":3},
            "livenessProbe":{"httpGet":{"path":"/healthz/live","port":"http"},"initialDelaySeconds":10,"periodSeconds":10},
            "volumeMounts":[{"name":"config","mountPath":"/etc/checkout","readOnly":true},{"name":"tls","mountPath":"/etc/tls","readOnly":true}],
            "securityContext":{"allowPrivilegeEscalation":false,"readOnlyRootFilesystem":true,"capabilities":{"drop":["ALL"]}}},
            {"name":"envoy","image":"registry.example.com/mesh/envoy:1.31.4","args":["-c","/etc/envoy/envoy.yaml","--log-level","warn"],
            "ports":[{"name":"mesh","containerPort":15001,"protocol":"TCP"}],
            "resources":{"requests":{"cpu":"100m","memory":"64Mi"},"limits":{"cpu":"500m","memory":"128Mi"}},
            "volumeMounts":[{"name":"envoy","mountPath":"/etc/envoy","readOnly":true}]}],
            "volumes":[{"name":"config","configMap":{"name":"checkout-api-config"}},{"name":"tls","secret":{"secretName":"checkout-api-tls"}},
            {"name":"envoy","configMap":{"name":"checkout-api-envoy"}}],
            "affinity":{"podAntiAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[{"weight":100,
            "podAffinityTerm":{"topologyKey":"kubernetes.io/hostname","labelSelector":{"matchLabels":{"app.kubernetes.io/name":"checkout-api"}}}}]}},
            "topologySpreadConstraints":[{"maxSkew":1,"topologyKey":"topology.kubernetes.io/zone","whenUnsatisfiable":"ScheduleAnyway",
            "labelSelector":{"matchLabels":{"app.kubernetes.io/name":"checkout-api"}}}]}}}}
            """
        return (try? JSONValue(parsing: text)) ?? .null
    }()

    private static let configMap1KiBTemplate = configMap(name: "feature-flags", approximateBytes: 1024)
    private static let configMap64KiBTemplate = configMap(name: "routing-table", approximateBytes: 64 * 1024)

    /// A ConfigMap of configuration lines: words, numbers and hex tokens from a seeded generator,
    /// so it compresses the way real configuration does rather than as repeated or random bytes.
    private static func configMap(name: String, approximateBytes: Int) -> JSONValue {
        var generator = SplitMix64(seed: UInt64(approximateBytes))
        let words = ["route", "upstream", "timeout", "retries", "weight", "region", "enabled", "canary", "pool", "limit", "backend", "zone"]
        var data: [String: JSONValue] = [:]
        var size = 160
        var entry = 0
        while size < approximateBytes {
            var lines: [String] = []
            for _ in 0..<4 {
                let word = words[Int(generator.next() % UInt64(words.count))]
                let other = words[Int(generator.next() % UInt64(words.count))]
                lines.append("\(word).\(other) = \(generator.next() % 10_000) # \(String(generator.next() & 0xFFFF_FFFF, radix: 16))")
            }
            let value = lines.joined(separator: "\n")
            let key = String(format: "entry-%04d.conf", entry)
            data[key] = .string(value)
            size += key.count + value.count + 10
            entry += 1
        }
        return .object([
            "apiVersion": .string("v1"), "kind": .string("ConfigMap"),
            "metadata": .object(["name": .string(name), "namespace": .string("shop")]),
            "data": .object(data),
        ])
    }
}

struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

// MARK: - Shared by both sides

/// One CA, a server certificate for 127.0.0.1 and a client certificate, made in memory.
struct BenchPKI: Sendable {
    let server: TLSMaterial
    let client: TLSMaterial
    /// The same, as PEM, for gRPC's configuration.
    let serverPEM: (chain: [UInt8], key: [UInt8])
    let clientPEM: (chain: [UInt8], key: [UInt8])
    let authorityPEM: [UInt8]

    init() throws {
        let authority = try CertificateAuthority.create(trustDomain: "bench.local")
        let roots = [authority.certificate]
        let serverKeyed = try authority.issue(for: .hub(trustDomain: "bench.local"), usage: .server, ipAddresses: ["127.0.0.1"])
        let clientKeyed = try authority.issue(for: .cluster("c0", trustDomain: "bench.local"), usage: .client)
        server = try TLSMaterial(serverKeyed, trustRoots: roots)
        client = try TLSMaterial(clientKeyed, trustRoots: roots)
        serverPEM = (Array(try serverKeyed.certificatePEM.utf8), Array(serverKeyed.privateKeyPEM.utf8))
        clientPEM = (Array(try clientKeyed.certificatePEM.utf8), Array(clientKeyed.privateKeyPEM.utf8))
        authorityPEM = Array(try PEMFiles.pem(of: authority.certificate).utf8)
    }
}

/// Bytes through the receiver's socket, both directions, counted beneath TLS.
final class WireTraffic: Sendable {
    private let bytes = Atomic<Int>(0)
    var total: Int { bytes.load(ordering: .acquiring) }
    func add(_ count: Int) { bytes.add(count, ordering: .relaxed) }
}

final class WireCountingHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let traffic: WireTraffic

    init(_ traffic: WireTraffic) { self.traffic = traffic }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        traffic.add(unwrapInboundIn(data).readableBytes)
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        traffic.add(unwrapOutboundIn(data).readableBytes)
        context.write(data, promise: promise)
    }
}

// MARK: - Tether's framed protocol

/// A server and a client event loop of their own for one exchange, shut down after it.
func withExchangeLoops<Result: Sendable>(
    _ body: (_ server: MultiThreadedEventLoopGroup, _ client: MultiThreadedEventLoopGroup) async throws -> Result
) async throws -> Result {
    let server = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let client = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let outcome: Swift.Result<Result, any Error>
    do {
        outcome = .success(try await body(server, client))
    } catch {
        outcome = .failure(error)
    }
    try? await client.shutdownGracefully()
    try? await server.shutdownGracefully()
    return try outcome.get()
}

enum TetherExchange {
    static func run(_ setup: ExchangeSetup, pki: BenchPKI) async throws -> ExchangeResult {
        let limits = WireLimits(compressionThreshold: setup.compressed ? WireLimits.default.compressionThreshold : Int.max)
        let codec = WireCodec(limits: limits)
        let preEncoded = setup.carriage == .bytes ? try setup.preEncoded() : []
        let traffic = WireTraffic()
        let serverContext = try TetherTLS.agentListenerContext(pki.server)
        let clientContext = try TetherTLS.agentDialerContext(pki.client)
        return try await withExchangeLoops { serverGroup, clientGroup in
            let listener = try await ServerBootstrap(group: serverGroup)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(WireCountingHandler(traffic))
                        try sync.addHandler(NIOSSLServerHandler(context: serverContext))
                        try sync.addTetherFrameHandlers(limits: limits)
                        try sync.addHandler(AckingReceiver(codec: codec, carriage: setup.carriage))
                    }
                }
                .bind(host: "127.0.0.1", port: 0)
                .get()
            guard let port = listener.localAddress?.port else { throw ValidationError("the benchmark listener has no port") }
            let payload = setup.payload
            let sender = WindowedSender(window: setup.window, codec: codec) { revision, allocator in
                if preEncoded.isEmpty {
                    return try codec.encode(.delta(payload.delta(revision: revision)), allocator: allocator)
                }
                return try codec.frame(.delta, json: allocator.buffer(bytes: preEncoded[Int(revision) % preEncoded.count]), allocator: allocator)
            }
            let result: Swift.Result<ExchangeResult, any Error>
            do {
                let channel = try await ClientBootstrap(group: clientGroup)
                    .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            let sync = channel.pipeline.syncOperations
                            try sync.addHandler(NIOSSLClientHandler(context: clientContext, serverHostname: nil))
                            try sync.addTetherFrameHandlers(limits: limits)
                            try sync.addHandler(sender)
                        }
                    }
                    .connect(host: "127.0.0.1", port: port)
                    .get()
                if setup.warmup > 0 { try await sender.send(setup.warmup, on: channel).get() }
                result = .success(
                    try await ExchangeResult.measure(count: setup.count, traffic: traffic) {
                        try await sender.send(setup.count, on: channel).get()
                    }
                )
                try? await channel.close()
            } catch {
                result = .failure(error)
            }
            try? await listener.close()
            return try result.get()
        }
    }
}

/// The receiving end: decodes each delta (or reads its revision) and acks it, flushing once per read burst.
final class AckingReceiver: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    private let codec: WireCodec
    private let carriage: Carriage

    init(codec: WireCodec, carriage: Carriage) {
        self.codec = codec
        self.carriage = carriage
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        do {
            let revision: UInt64?
            switch carriage {
            case .json:
                guard case .delta(let delta) = try codec.decode(frame, allocator: context.channel.allocator) else { return }
                revision = delta.toRevision
            case .bytes:
                revision = try codec.revision(of: frame, allocator: context.channel.allocator)
            }
            guard let revision else { return }
            context.write(wrapOutboundOut(try codec.encode(.ack(Ack(revision: revision)), allocator: context.channel.allocator)), promise: nil)
        } catch {
            context.fireErrorCaught(error)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }
}

/// The sending end: keeps `window` deltas unacked until `count` have been acked.
final class WindowedSender: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    private let window: Int
    private let codec: WireCodec
    private let frame: (UInt64, ByteBufferAllocator) throws -> Frame
    // Touched only on the channel's event loop.
    private var revision: UInt64 = 0
    private var remaining = 0
    private var unacked = 0
    private var done: EventLoopPromise<Void>?
    private var context: ChannelHandlerContext?

    init(window: Int, codec: WireCodec, frame: @escaping (UInt64, ByteBufferAllocator) throws -> Frame) {
        self.window = window
        self.codec = codec
        self.frame = frame
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func send(_ count: Int, on channel: any Channel) -> EventLoopFuture<Void> {
        channel.eventLoop.flatSubmit {
            let promise = channel.eventLoop.makePromise(of: Void.self)
            self.done = promise
            self.remaining = count
            self.topUp()
            return promise.futureResult
        }
    }

    private func topUp() {
        guard let context else { return }
        var wrote = false
        while remaining > 0, unacked < window {
            revision += 1
            remaining -= 1
            unacked += 1
            do {
                context.write(wrapOutboundOut(try frame(revision, context.channel.allocator)), promise: nil)
            } catch {
                fail(error)
                return
            }
            wrote = true
        }
        if wrote { context.flush() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        do {
            guard case .ack = try codec.decode(unwrapInboundIn(data), allocator: context.channel.allocator) else { return }
        } catch {
            fail(error)
            return
        }
        unacked -= 1
        if remaining == 0, unacked == 0, let done {
            self.done = nil
            done.succeed()
        } else {
            topUp()
        }
    }

    private func fail(_ error: any Error) {
        done?.fail(error)
        done = nil
        context?.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(ChannelError.ioOnClosedChannel)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error)
    }
}

// MARK: - gRPC

/// The same JSON both ways; gRPC frames and (when asked) compresses it.
struct JSONMessageCoder<Message: Codable & Sendable>: MessageSerializer, MessageDeserializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: Message) throws -> Bytes {
        contiguousBytes(try WireCodec.jsonBody(message))
    }

    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> Message {
        try serializedMessageBytes.withUnsafeBytes { try JSONValueDecoder().decode(Message.self, from: $0) }
    }
}

/// Bytes as they are: for JSON encoded beforehand.
struct RawBytesCoder: MessageSerializer, MessageDeserializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes {
        contiguousBytes(message)
    }

    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}

/// One copy into gRPC's buffer type (its sequence initializer goes byte by byte).
private func contiguousBytes<Bytes: GRPCContiguousBytes>(_ source: some ContiguousBytes) -> Bytes {
    source.withUnsafeBytes { source in
        var bytes = Bytes(repeating: 0, count: source.count)
        bytes.withUnsafeMutableBytes { $0.copyMemory(from: source) }
        return bytes
    }
}

/// `tether.bench.DesiredState/Stream` (decoded deltas) and `/StreamBytes` (deltas read for
/// their revision only, as Tether's receiver does with `bytes` carriage): one ack per delta.
struct DesiredStateService: RegistrableRPCService {
    static let stream = MethodDescriptor(fullyQualifiedService: "tether.bench.DesiredState", method: "Stream")
    static let streamBytes = MethodDescriptor(fullyQualifiedService: "tether.bench.DesiredState", method: "StreamBytes")

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: Self.stream, deserializer: JSONMessageCoder<Delta>(), serializer: JSONMessageCoder<Ack>()
        ) { request, _ in
            StreamingServerResponse { writer in
                for try await delta in request.messages {
                    try await writer.write(Ack(revision: delta.toRevision))
                }
                return [:]
            }
        }
        router.registerHandler(
            forMethod: Self.streamBytes, deserializer: RawBytesCoder(), serializer: JSONMessageCoder<Ack>()
        ) { request, _ in
            StreamingServerResponse { writer in
                let codec = WireCodec()
                let allocator = ByteBufferAllocator()
                for try await bytes in request.messages {
                    // The same revision lookup Tether's receiver makes (gRPC has inflated the message already).
                    let frame = Frame(type: WireMessage.Kind.delta.rawValue, payload: allocator.buffer(bytes: bytes))
                    guard let revision = try codec.revision(of: frame, allocator: allocator) else { continue }
                    try await writer.write(Ack(revision: revision))
                }
                return [:]
            }
        }
    }
}

enum GRPCExchange {
    static func run(_ setup: ExchangeSetup, pki: BenchPKI) async throws -> ExchangeResult {
        let traffic = WireTraffic()
        return try await withExchangeLoops { serverGroup, clientGroup in
            try await exchange(setup, pki: pki, traffic: traffic, serverGroup: serverGroup, clientGroup: clientGroup)
        }
    }

    private static func exchange(
        _ setup: ExchangeSetup, pki: BenchPKI, traffic: WireTraffic,
        serverGroup: MultiThreadedEventLoopGroup, clientGroup: MultiThreadedEventLoopGroup
    ) async throws -> ExchangeResult {
        let algorithm: CompressionAlgorithm = setup.compressed ? .deflate : .none
        let algorithms: CompressionAlgorithmSet = setup.compressed ? [.deflate] : []
        let preEncoded = setup.carriage == .bytes ? try setup.preEncoded() : []

        var serverConfig = HTTP2ServerTransport.Posix.Config.defaults
        serverConfig.compression.enabledAlgorithms = algorithms
        serverConfig.channelDebuggingCallbacks.onAcceptTCPConnection = { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(WireCountingHandler(traffic), position: .first)
            }
        }
        let roots = pki.authorityPEM
        let serverSecurity = HTTP2ServerTransport.Posix.TransportSecurity.mTLS(
            certificateChain: [.bytes(pki.serverPEM.chain, format: .pem)], privateKey: .bytes(pki.serverPEM.key, format: .pem)
        ) { tls in
            tls.trustRoots = .certificates([.bytes(roots, format: .pem)])
            tls.clientCertificateVerification = .noHostnameVerification
        }
        let serverTransport = HTTP2ServerTransport.Posix(
            address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: serverSecurity, config: serverConfig, eventLoopGroup: serverGroup
        )
        let server = GRPCServer(transport: serverTransport, services: [DesiredStateService()])

        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            defer { server.beginGracefulShutdown() }
            guard let port = try await serverTransport.listeningAddress.ipv4?.port else {
                throw ValidationError("the gRPC listener has no IPv4 port")
            }
            var clientConfig = HTTP2ClientTransport.Posix.Config.defaults
            clientConfig.compression = .init(algorithm: algorithm, enabledAlgorithms: algorithms)
            let clientSecurity = HTTP2ClientTransport.Posix.TransportSecurity.mTLS(
                certificateChain: [.bytes(pki.clientPEM.chain, format: .pem)], privateKey: .bytes(pki.clientPEM.key, format: .pem)
            ) { tls in
                tls.trustRoots = .certificates([.bytes(roots, format: .pem)])
                tls.serverCertificateVerification = .fullVerification
            }
            let clientTransport = try HTTP2ClientTransport.Posix(
                target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: clientSecurity, config: clientConfig,
                eventLoopGroup: clientGroup
            )
            let payload = setup.payload
            let result = try await withGRPCClient(transport: clientTransport) { client in
                var options = CallOptions.defaults
                options.compression = algorithm
                let revisions = RevisionCounter()
                func run(_ count: Int) async throws {
                    if preEncoded.isEmpty {
                        try await stream(client, DesiredStateService.stream, JSONMessageCoder<Delta>(), count: count, window: setup.window, options: options) {
                            payload.delta(revision: revisions.next())
                        }
                    } else {
                        try await stream(client, DesiredStateService.streamBytes, RawBytesCoder(), count: count, window: setup.window, options: options) {
                            preEncoded[Int(revisions.next()) % preEncoded.count]
                        }
                    }
                }
                if setup.warmup > 0 { try await run(setup.warmup) }
                return try await ExchangeResult.measure(count: setup.count, traffic: traffic) { try await run(setup.count) }
            }
            server.beginGracefulShutdown()
            try await group.waitForAll()
            return result
        }
    }

    /// One bidirectional stream carrying `count` deltas, at most `window` unacked.
    private static func stream<Message: Sendable>(
        _ client: GRPCClient<HTTP2ClientTransport.Posix>, _ method: MethodDescriptor, _ serializer: some MessageSerializer<Message>,
        count: Int, window: Int, options: CallOptions, next: @escaping @Sendable () -> Message
    ) async throws {
        let (acks, acked) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .unbounded)
        let request = StreamingClientRequest(of: Message.self) { writer in
            var sent = 0
            var credits = acks.makeAsyncIterator()
            while sent < count {
                if sent >= window, await credits.next() == nil { break }
                try await writer.write(next())
                sent += 1
            }
        }
        let received = try await client.bidirectionalStreaming(
            request: request, descriptor: method, serializer: serializer, deserializer: JSONMessageCoder<Ack>(), options: options
        ) { response in
            var received = 0
            for try await _ in response.messages {
                received += 1
                acked.yield()
            }
            return received
        }
        acked.finish()
        guard received == count else { throw ValidationError("gRPC stream ended after \(received) of \(count) acks") }
    }
}

final class RevisionCounter: Sendable {
    private let value = Atomic<UInt64>(0)
    func next() -> UInt64 { value.add(1, ordering: .relaxed).newValue }
}
