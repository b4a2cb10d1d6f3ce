import ArgumentParser
import Foundation
import NIOHTTP1
import TetherLocal
import TetherSecurity
import TetherTestSupport
import TetherWire

/// `tether-bench floods`: the hub's memory and kubectl's latency during each attack of issue #15,
/// against the idle hub. Each flood runs alone, then stops; the hub must stay up throughout.
struct FloodBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "floods",
        abstract: "Hub memory and kubectl get latency during connection, heartbeat, watch-replay and never-reading floods, against an idle baseline."
    )

    @OptionGroup var common: CommonOptions

    @Option(name: .long, help: "Idle connections per port in the connection floods.")
    var connections: Int = 1_000

    @Option(name: .long, help: "Run the hub under this open-file limit (prlimit); 0 leaves the process's own.")
    var descriptors: Int = 256

    @Option(name: .long, help: "kubectl get runs per measurement (the median is reported).")
    var samples: Int = 5

    func run() async throws {
        let federation = try makeFederation(binDirectory: common.binDir, label: "floods")
        let token = UUID().uuidString
        try AccessPolicy(tokens: [.init(token: token, user: "viewer", role: .viewer)]).save(to: federation.directory.accessPolicyPath)
        let (hub, agentPort) = try await federation.startHub(
            heartbeatInterval: common.heartbeatInterval, autoJoin: true, descriptorLimit: descriptors > 0 ? descriptors : nil,
            extraArguments: ["--write-stall-timeout", "5"]
        )
        defer { Task { await federation.stopAll() } }
        guard let apiPort = try federation.directory.readPorts()?.api else { throw BenchError("the hub wrote no API port") }
        let kubectl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home")
        _ = try await kubectl.succeed(["get", "namespaces"])  // discovery, cached for the runs that count
        var report = Report("floods")

        func measure(
            _ label: String, key: String, prepare: () async throws -> Void = {}, during flood: () async throws -> String
        ) async throws {
            try await prepare()
            let before = ProcessProbe.residentBytes(of: hub.processIdentifier) ?? 0
            let sampler = PeakSampler(pid: hub.processIdentifier)
            let outcome = try await flood()
            var latencies: [Duration] = []
            for _ in 0..<samples {
                let started = ContinuousClock.now
                _ = try await kubectl.succeed(["get", "namespaces", "-o", "name"])
                latencies.append(.now - started)
            }
            let peak = await sampler.stop()
            guard hub.exitStatus == nil else { throw BenchError("the hub exited during \(label): \(hub.tail(10))") }
            report.add("\(key)_kubectl_ms", percentiles(latencies).p50, "\(label): kubectl get, median", format: "%.0f", unit: "ms")
            report.add(
                "\(key)_rss_mib", Double(peak) / 1_048_576, "\(label): hub RSS peak (before \(before / 1_048_576) MiB)", format: "%.0f", unit: "MiB")
            report.note("\(key)_outcome", outcome)
            print("\(label): \(outcome)")
        }

        try await measure("idle", key: "idle") { "no flood" }
        try await measure("\(connections) idle TCP connections to the API port", key: "api_flood") {
            let flood = await TCPFlood.open(count: connections, port: apiPort)
            defer { Task { await flood.close() } }
            return "\(flood.opened) accepted by the kernel, \(flood.stillOpen) still open after the flood"
        }
        try await measure("\(connections) idle TCP connections to the agent port", key: "agent_flood") {
            let flood = await TCPFlood.open(count: connections, port: agentPort)
            defer { Task { await flood.close() } }
            return "\(flood.opened) accepted by the kernel, \(flood.stillOpen) still open after the flood"
        }
        try await measure("200,000 heartbeats from an agent that never reads", key: "heartbeats") {
            let material = try federation.material(for: federation.identity(cluster: "flood"))
            let client = try await WireTestClient.connect(port: agentPort, material: material)
            try await client.send(.hello(Hello(protocolVersions: [1], agentVersion: "bench", cluster: "flood")))
            try await client.waitForMessage("welcome") { if case .welcome = $0 { true } else { false } }
            try await client.stopReading()
            for _ in 0..<200_000 { client.sendWithoutWaiting(.heartbeat(Heartbeat(sentAtMilliseconds: 1))) }
            let closed = try await hub.waitForEvent("session.rate_limited", within: .seconds(60))
            await client.close()
            return "session closed (\(closed.event ?? "")) after the burst"
        }
        let api = try HubAPIClient(federation: federation)
        defer { Task { await api.shutdown() } }
        var first: UInt64 = 0
        try await measure("8 watches replaying 40 MB of history at 20 KB/s", key: "replay") {
            let (code, created) = try await api.send(.POST, "/api/v1/namespaces/default/configmaps", json: configMap("history", bytes: 200_000))
            guard code == 201, let version = HubAPIClient.resourceVersion(created) else {
                throw BenchError("cannot create the history object: \(code)")
            }
            first = version
            for generation in 1...200 {
                try await api.send(
                    .PATCH, "/api/v1/namespaces/default/configmaps/history", json: #"{"data":{"generation":"\#(generation)"}}"#,
                    contentType: "application/merge-patch+json")
            }
        } during: {
            let watchers = try (0..<8).map { index in
                try federation.launch(
                    name: "watch-\(index)", executable: URL(fileURLWithPath: "/usr/bin/curl"),
                    arguments: [
                        "--silent", "--limit-rate", "20k", "-o", "/dev/null", "--max-time", "20", "--cacert", federation.directory.caCertificatePath,
                        "-H", "Authorization: Bearer \(token)", "https://127.0.0.1:\(apiPort)/api/v1/configmaps?watch=true&resourceVersion=\(first)",
                    ]
                )
            }
            // The watchers run through the kubectl samples that follow; they end at their --max-time.
            _ = watchers
            return "8 watchers replaying from resourceVersion \(first)"
        }
        try await measure("an agent that never reads a 20 MB desired set", key: "never_reads") {
            // Random text: compression must not shrink the set below what fills the socket buffers.
            var generator = SystemRandomNumberGenerator()
            let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
            for index in 0..<20 {
                let payload = String((0..<1_000_000).map { _ in alphabet[Int(generator.next() % 36)] })
                let body =
                    #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big-\#(index)","namespace":"default"},"data":{"p":"\#(payload)"}}"#
                try await api.send(.POST, "/api/v1/namespaces/default/configmaps", json: body)
            }
        } during: {
            let material = try federation.material(for: federation.identity(cluster: "reader"))
            let client = try await WireTestClient.connect(port: agentPort, material: material)
            try await client.send(.hello(Hello(protocolVersions: [1], agentVersion: "bench", cluster: "reader")))
            try await client.waitForMessage("welcome") { if case .welcome = $0 { true } else { false } }
            try await client.stopReading()
            let stalled = try await hub.waitForEvent("session.write_stalled", within: .seconds(120))
            await client.close()
            return "session closed (\(stalled.event ?? "")) at the write-stall deadline"
        }
        report.note("descriptors", descriptors > 0 ? "\(descriptors)" : "process default")
        report.print()
    }
}

/// The highest resident memory of a process while a measurement runs, sampled every 50 ms.
final class PeakSampler: Sendable {
    private let task: Task<Int, Never>

    init(pid: Int32) {
        task = Task {
            var peak = 0
            while !Task.isCancelled {
                peak = max(peak, ProcessProbe.residentBytes(of: pid) ?? 0)
                try? await Task.sleep(for: .milliseconds(50))  // the sampling interval of the measurement
            }
            return peak
        }
    }

    func stop() async -> Int {
        task.cancel()
        return await task.value
    }
}
