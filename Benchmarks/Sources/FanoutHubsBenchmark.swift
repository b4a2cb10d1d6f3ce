import ArgumentParser
import Foundation
import NIOCore
import NIOHTTP1
import TetherLocal
import TetherSecurity
import TetherTestSupport

/// Agents on every hub (`--agent-sessions every-hub`) on one PostgreSQL the benchmark starts:
/// `agents` light sessions split evenly over `hubs` hubs, then one 4 KiB change written through
/// the first hub's API, repeated, timed until every agent on every hub acknowledged it.
struct FanoutHubsBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fanout-hubs",
        abstract: "One change reaching agents split over several hubs with agent sessions on every hub (PostgreSQL)."
    )

    @Option(name: .long, help: "Agent sessions, split evenly over the hubs.")
    var agents = 2000

    @Option(name: .long, help: "Hubs on the one database (1: the same store and mode, one hub).")
    var hubs = 2

    @Option(name: .long, help: "Single changes measured one after the other.")
    var changes = 10

    @Option(name: .long, help: "Size of the changed object, bytes.")
    var objectBytes = 4096

    @OptionGroup var options: CommonOptions

    func validate() throws {
        guard (1...8).contains(hubs) else { throw ValidationError("--hubs must be between 1 and 8") }
        guard agents >= hubs else { throw ValidationError("--agents must be at least --hubs") }
    }

    func run() async throws {
        let postgres = try await PostgresServer.start()
        let federation = try makeFederation(binDirectory: options.binDir, label: "fanout-hubs")
        var groups: [LightAgents] = []
        var report = Report("fanout-hubs")
        do {
            let store = postgres.url(database: try await postgres.createDatabase("fanouthubs"))
            let common = ["--store", store, "--agent-sessions", "every-hub"]
            let materials = try clusterMaterials(agents, directory: federation.directory)
            let (first, firstPort) = try await federation.startHub(
                heartbeatInterval: options.heartbeatInterval, autoJoin: true, extraArguments: common)
            try await first.waitForEvent("federation.leading", within: .seconds(60))
            var processes = [first]
            var ports = [firstPort]
            for index in 1..<hubs {
                let port = try LoopbackPort.free()
                let hub = try federation.launch(
                    name: "hub-\(index)", binary: "tether-hub",
                    arguments: [
                        "--dir", federation.directory.path, "--agent-listen", "127.0.0.1:\(port)", "--api-listen", "127.0.0.1:0",
                        "--heartbeat-interval", "\(options.heartbeatInterval)", "--auto-join",
                    ] + common)
                try await hub.waitForEvent("listener.ready", within: .seconds(60))
                processes.append(hub)
                ports.append(port)
            }
            for (index, port) in ports.enumerated() {
                let share = Array(materials[index * agents / hubs..<(index + 1) * agents / hubs])
                groups.append(
                    try LightAgents(
                        settings: .init(hubPort: port, heartbeatInterval: .milliseconds(Int64(options.heartbeatInterval * 1000))), materials: share))
            }
            let started = ContinuousClock.now
            await withTaskGroup(of: Void.self) { tasks in
                for group in groups { tasks.addTask { await group.start() } }
            }
            for group in groups { group.recorder.track(1) }
            for (index, group) in groups.enumerated() {
                let size = (index + 1) * agents / hubs - index * agents / hubs
                guard await group.recorder.wait(for: .seconds(600), until: { $0.established == size && $0.acked == size }) else {
                    throw BenchError("only \(group.recorder.counts.established) of \(size) sessions came up on hub \(index)")
                }
            }
            print("\(agents) sessions up on \(hubs) hub(s) in \(String(format: "%.1f", milliseconds(.now - started) / 1000)) s")
            // A fixed settling period is part of the measurement protocol, as in `fanout`.
            try await Task.sleep(for: .seconds(options.settle))
            try await measure(processes: processes, groups: groups, federation: federation, report: &report)
        } catch {
            for group in groups { await group.shutdown() }
            await federation.stopAll()
            await postgres.stop()
            throw error
        }
        for group in groups { await group.shutdown() }
        await federation.stopAll()
        await postgres.stop()
        try? FileManager.default.removeItem(atPath: federation.root)
        report.print()
    }

    private func measure(processes: [ManagedProcess], groups: [LightAgents], federation: LocalFederation, report: inout Report) async throws {
        let api = try HubAPIClient(federation: federation)
        defer { Task { await api.shutdown() } }
        report.add("agents", Double(agents), "agent sessions", format: "%.0f")
        report.add("hubs", Double(hubs), "hubs holding them (agents on every hub)", format: "%.0f")
        var allAcked: [Duration] = []
        var perAgent: [Duration] = []
        let cpuBefore = processes.map { ProcessStats.read($0.processIdentifier)?.cpuSeconds ?? 0 }
        let loopStarted = ContinuousClock.now
        for change in 0...changes {
            let sent = ContinuousClock.now
            let version = try await FanoutBenchmark.writeChange(change, bytes: objectBytes, api: api)
            for group in groups { group.recorder.track(version) }
            for (index, group) in groups.enumerated() {
                let size = (index + 1) * agents / hubs - index * agents / hubs
                guard await group.recorder.wait(for: .seconds(120), until: { $0.acked == size }) else {
                    throw BenchError(
                        "change \(change): only \(group.recorder.counts.acked) of \(size) agents on hub \(index) acknowledged within 120 s")
                }
            }
            guard change > 0 else { continue }
            let acked = groups.flatMap { $0.recorder.times(acked: true) }
            allAcked.append((acked.max() ?? sent) - sent)
            perAgent += groups.flatMap { $0.recorder.times(acked: false) }.map { $0 - sent }
        }
        let wall = milliseconds(.now - loopStarted) / 1000
        let cpu = zip(processes, cpuBefore).map { (ProcessStats.read($0.processIdentifier)?.cpuSeconds ?? 0) - $1 }
        let acks = percentiles(allAcked)
        let each = percentiles(perAgent)
        report.add("all_acked_p50_ms", acks.p50, "every agent acknowledged it: p50", unit: "ms")
        report.add("all_acked_p99_ms", acks.p99, "every agent acknowledged it: p99", unit: "ms")
        report.add("agent_received_p50_ms", each.p50, "one agent received it: p50", unit: "ms")
        report.add("agent_received_p99_ms", each.p99, "one agent received it: p99", unit: "ms")
        for (index, seconds) in cpu.enumerated() {
            report.add("hub\(index)_cpu_percent", seconds / wall * 100, "hub \(index) CPU during the changes", format: "%.0f", unit: "% of one core")
        }
        report.add(
            "hubs_cpu_us_per_delivery", cpu.reduce(0, +) * 1e6 / Double(agents * (changes + 1)), "all hubs' CPU per delivery", format: "%.1f",
            unit: "µs")
    }
}
