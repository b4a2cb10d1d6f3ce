import ArgumentParser
import Foundation
import NIOCore
import TetherLocal
import TetherSecurity

@main
struct TetherBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tether-bench",
        abstract: "Measure Tether on this machine: sessions one hub holds, fan-out latency, agent footprint, the API under load.",
        discussion: """
            Each benchmark starts the processes it measures (tether-hub, tether-agent, tether-simcluster from
            --bin-dir, by default beside tether-bench: build them with `swift build -c release`), prints a
            table and one JSON line, and cleans up. Results and what bounds them: docs/performance.md.
            """,
        subcommands: [
            SessionsBenchmark.self, FanoutBenchmark.self, AgentBenchmark.self, APIBenchmark.self, ProtocolBenchmark.self, FloodBenchmark.self,
            KindsBenchmark.self, FailoverBenchmark.self, FanoutHubsBenchmark.self, ChaosCommand.self,
        ]
    )
}

/// Options every benchmark shares.
struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: "Folder holding tether-hub, tether-agent and tether-simcluster (default: beside tether-bench).")
    var binDir: String?

    @Option(name: .long, help: "Seconds between agent heartbeats.")
    var heartbeatInterval: Double = 10

    @Option(name: .long, help: "Seconds a process is left alone before its memory is read (a fixed part of the measurement, the same in every run).")
    var settle: Double = 3
}

/// A hub with `agents` light sessions up and their first desired state acknowledged.
struct SessionFixture {
    let federation: LocalFederation
    let hub: ManagedProcess
    let port: Int
    let agents: LightAgents
    let connectSeconds: Double
    let baseline: ProcessStats
    /// What the hub was started with besides the defaults (its agent port's TLS library).
    let hubArguments: [String]

    static func start(
        agents count: Int, options: CommonOptions, label: String, hubTLS: AgentPortTLS = .boringSSL, clientTLS: AgentPortTLS = .boringSSL
    ) async throws -> SessionFixture {
        let federation = try makeFederation(binDirectory: options.binDir, label: label)
        let issued = ContinuousClock.now
        let materials = try clusterMaterials(count, directory: federation.directory)
        print("issued \(count) agent certificates in \(String(format: "%.1f", milliseconds(.now - issued) / 1000)) s")
        let hubArguments = ["--agent-tls", hubTLS.rawValue]
        let (hub, port) = try await federation.startHub(heartbeatInterval: options.heartbeatInterval, autoJoin: true, extraArguments: hubArguments)
        let baseline = try await settledStats(hub, settle: options.settle)
        let agents = try LightAgents(
            settings: .init(hubPort: port, heartbeatInterval: .milliseconds(Int64(options.heartbeatInterval * 1000)), tls: clientTLS),
            materials: materials
        )
        let started = ContinuousClock.now
        async let dialled: Void = agents.start()
        agents.recorder.track(1)
        let up = await agents.recorder.wait(for: .seconds(600)) { $0.established == count && $0.acked == count }
        await dialled
        guard up else {
            let counts = agents.recorder.counts
            throw ValidationError(
                "only \(counts.established) of \(count) sessions came up (\(counts.acked) acknowledged a desired state) within 600 s; "
                    + "hub log:\n\(hub.tail(20))"
            )
        }
        let seconds = milliseconds(.now - started) / 1000
        print("\(count) sessions up and acknowledged their first desired state in \(String(format: "%.1f", seconds)) s")
        return SessionFixture(
            federation: federation, hub: hub, port: port, agents: agents, connectSeconds: seconds, baseline: baseline, hubArguments: hubArguments)
    }

    /// The hub's figures after `settle` seconds left alone: a fixed settling period is part of
    /// the measurement protocol (the same in every run), not a wait for something to happen.
    static func settledStats(_ hub: ManagedProcess, settle: Double) async throws -> ProcessStats {
        try await Task.sleep(for: .seconds(settle))
        guard let stats = ProcessStats.read(hub.processIdentifier) else { throw ValidationError("cannot read the hub's /proc entries") }
        return stats
    }

    func stop() async {
        await agents.shutdown()
        await federation.stopAll()
        try? FileManager.default.removeItem(atPath: federation.root)
    }
}

struct SessionsBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessions",
        abstract:
            "Idle sessions one hub holds: memory per session, idle CPU, reconnects to the running hub (resumed where the TLS libraries allow), and the reconnect storm after a restart."
    )

    @Option(name: .long, help: "Agent sessions to hold.")
    var agents = 1000

    @Option(name: .long, help: "Seconds over which idle CPU is measured.")
    var idleWindow: Double = 10

    @Option(name: .long, help: "The hub's agent-port TLS library (tether-hub --agent-tls): boringssl or openssl.")
    var hubTls = AgentPortTLS.boringSSL.rawValue

    @Option(
        name: .long,
        help:
            "The sessions' TLS library: boringssl (swift-nio-ssl, no tickets kept) or openssl (each session keeps its ticket, as tether-agent --tls openssl)."
    )
    var clientTls = AgentPortTLS.boringSSL.rawValue

    @OptionGroup var options: CommonOptions

    func validate() throws {
        for (option, value) in [("--hub-tls", hubTls), ("--client-tls", clientTls)] where AgentPortTLS(rawValue: value) == nil {
            throw ValidationError("\(option) \(value): say boringssl or openssl")
        }
    }

    func run() async throws {
        let fixture = try await SessionFixture.start(
            agents: agents, options: options, label: "sessions", hubTLS: AgentPortTLS(rawValue: hubTls) ?? .boringSSL,
            clientTLS: AgentPortTLS(rawValue: clientTls) ?? .boringSSL)
        var report = Report("sessions")
        report.add("agents", Double(agents), "agent sessions", format: "%.0f")
        report.note("tls", "hub \(hubTls), sessions \(clientTls)")
        report.add("connect_seconds", fixture.connectSeconds, "first connection of all, joined and acknowledged", unit: "s")
        do {
            let held = try await SessionFixture.settledStats(fixture.hub, settle: options.settle)
            let perSession = Double(held.resident - fixture.baseline.resident) / Double(agents)
            report.add("hub_rss_baseline_mib", Double(fixture.baseline.resident) / 1_048_576, "hub resident memory, no sessions", unit: "MiB")
            report.add("hub_rss_mib", Double(held.resident) / 1_048_576, "hub resident memory, sessions idle", unit: "MiB")
            report.add("hub_bytes_per_session", perSession, "hub memory per idle session", format: "%.0f", unit: "bytes")

            // The measurement window: idle CPU is CPU seconds over a fixed stretch of wall time.
            let before = ProcessStats.read(fixture.hub.processIdentifier)?.cpuSeconds ?? 0
            try await Task.sleep(for: .seconds(idleWindow))
            let after = ProcessStats.read(fixture.hub.processIdentifier)?.cpuSeconds ?? 0
            report.add("hub_idle_cpu_percent", (after - before) / idleWindow * 100, "hub CPU while idle (heartbeats only)", unit: "% of one core")

            // Every session closed by its agent and dialled again, to the same hub (a network
            // blip): the hub's ticket keys still hold, so a session that kept its ticket resumes.
            fixture.agents.recorder.resetConnections()
            let blipCPU = ProcessStats.read(fixture.hub.processIdentifier)?.cpuSeconds ?? 0
            let blipStarted = ContinuousClock.now
            await fixture.agents.dropAll()
            let blipBack = await fixture.agents.recorder.wait(for: .seconds(300)) { $0.welcomed >= agents && $0.established == agents }
            let blipSeconds = milliseconds(.now - blipStarted) / 1000
            let blipCPUAfter = ProcessStats.read(fixture.hub.processIdentifier)?.cpuSeconds ?? 0
            report.add(
                "blip_seconds", blipSeconds, blipBack ? "reconnect to the running hub: all back" : "reconnect to the running hub: NOT all back",
                unit: "s")
            report.add(
                "hub_cpu_ms_per_reconnect", (blipCPUAfter - blipCPU) * 1000 / Double(agents), "hub CPU per session reconnecting to the running hub",
                format: "%.2f", unit: "ms")
            report.add("resumed_reconnects", Double(fixture.agents.recorder.resumedHandshakes), "of them, resumed TLS sessions", format: "%.0f")

            // The storm: stop the hub (it tells every agent to come back later), start it again on the same port.
            _ = await fixture.hub.stop(grace: .seconds(30))
            let (restarted, _) = try await fixture.federation.startHub(
                heartbeatInterval: options.heartbeatInterval, agentListen: "127.0.0.1:\(fixture.port)", autoJoin: true,
                extraArguments: fixture.hubArguments
            )
            fixture.agents.recorder.resetConnections()
            let ready = ContinuousClock.now
            let cpuAtReady = ProcessStats.read(restarted.processIdentifier)?.cpuSeconds ?? 0
            let back = await fixture.agents.recorder.wait(for: .seconds(300)) { $0.established == agents }
            let stormSeconds = milliseconds(.now - ready) / 1000
            let cpuAfter = ProcessStats.read(restarted.processIdentifier)?.cpuSeconds ?? 0
            report.add("storm_seconds", stormSeconds, back ? "reconnect storm: all back after restart" : "reconnect storm: NOT all back", unit: "s")
            report.add(
                "hub_cpu_ms_per_handshake", (cpuAfter - cpuAtReady) * 1000 / Double(agents), "hub CPU per reconnecting session", format: "%.2f",
                unit: "ms")
            // Connect to first desired state: every reconnecting session gets a snapshot.
            _ = await fixture.agents.recorder.wait(for: .seconds(120)) { $0.firstStates >= agents }
            let firstState = percentiles(fixture.agents.recorder.connectToFirstState())
            report.add("first_state_p50_ms", firstState.p50, "connect to first desired state (storm): p50", unit: "ms")
            report.add("first_state_p99_ms", firstState.p99, "connect to first desired state (storm): p99", unit: "ms")
            let afterHandshake = percentiles(fixture.agents.recorder.handshakeToFirstState())
            report.add("handshake_to_first_state_p50_ms", afterHandshake.p50, "of which after the TLS handshake: p50", unit: "ms")
            report.add("handshake_to_first_state_p99_ms", afterHandshake.p99, "of which after the TLS handshake: p99", unit: "ms")
            report.add("connect_failures", Double(fixture.agents.recorder.connectFailures), "refused dials while the hub was down", format: "%.0f")
        } catch {
            await fixture.stop()
            throw error
        }
        await fixture.stop()
        report.print()
    }
}
