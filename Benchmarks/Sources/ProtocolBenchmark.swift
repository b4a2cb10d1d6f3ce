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

    @Option(
        name: .long, parsing: .upToNextOption,
        help: "What each end does per delta: json (encode and decode it), bytes (send an encoding made once, read only its revision), or both.")
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
            report.add(
                "\(payload.key)_json_bytes", Double(try WireCodec.jsonBody(sample).count), "\(payload.label): JSON per delta", format: "%.0f",
                unit: "bytes")
            for carriage in carriage {
                for compressed in [false, true] {
                    let setup = ExchangeSetup(
                        payload: payload, carriage: carriage, count: count, compressed: compressed, window: window, warmup: warmup)
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
                        report.add(
                            "\(key)_wire_bytes", median.wireBytesPerMessage, "\(label): wire bytes per delta (both ways)", format: "%.0f",
                            unit: "bytes")
                        report.add(
                            "\(key)_cpu_us", median.cpuMicrosecondsPerMessage, "\(label): CPU per delta (both ends)", format: "%.1f", unit: "µs")
                    }
                    if let ours = medians[.tether], let theirs = medians[.grpc] {
                        let key = "\(payload.key)_\(mode)"
                        let label = "\(payload.label), \(carriage.rawValue), \(compressed ? "deflate" : "plain")"
                        report.add(
                            "\(key)_throughput_ratio", ours.messagesPerSecond / theirs.messagesPerSecond, "\(label): throughput Tether/gRPC",
                            format: "%.2f", unit: "x")
                        report.add(
                            "\(key)_bytes_ratio", ours.wireBytesPerMessage / theirs.wireBytesPerMessage, "\(label): wire bytes Tether/gRPC",
                            format: "%.3f", unit: "x")
                        report.add(
                            "\(key)_cpu_ratio", ours.cpuMicrosecondsPerMessage / theirs.cpuMicrosecondsPerMessage, "\(label): CPU Tether/gRPC",
                            format: "%.2f", unit: "x")
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
