import ArgumentParser
import Foundation
import NIOCore
import TetherLocal
import TetherSecurity
import TetherTestSupport

/// Two hubs on one PostgreSQL database (a server the benchmark starts), `agents` light sessions
/// on the active one with both hubs in their list; then SIGKILL of the active hub, timed until
/// every session is served by the other.
struct FailoverBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failover",
        abstract: "Two hubs on one PostgreSQL: how long after SIGKILL of the active hub its agents are all served by the standby."
    )

    @Option(name: .long, help: "Agent sessions on the active hub.")
    var agents = 1000

    @OptionGroup var options: CommonOptions

    func run() async throws {
        let postgres = try await PostgresServer.start()
        let federation = try makeFederation(binDirectory: options.binDir, label: "failover")
        var report = Report("failover")
        var lightAgents: LightAgents?
        do {
            let store = postgres.url(database: try await postgres.createDatabase("failover"))
            let materials = try clusterMaterials(agents, directory: federation.directory)
            let (active, activePort) = try await federation.startHub(
                heartbeatInterval: options.heartbeatInterval, autoJoin: true, extraArguments: ["--store", store])
            let standbyPort = try LoopbackPort.free()
            let standby = try federation.launch(
                name: "hub-b", binary: "tether-hub",
                arguments: [
                    "--dir", federation.directory.path, "--agent-listen", "127.0.0.1:\(standbyPort)", "--api-listen", "127.0.0.1:0",
                    "--heartbeat-interval", "\(options.heartbeatInterval)", "--auto-join", "--store", store,
                ])
            try await standby.waitForEvent("hub.standby", within: .seconds(60))
            let sessions = try LightAgents(
                settings: .init(
                    hubPort: activePort, otherHubPorts: [standbyPort], heartbeatInterval: .milliseconds(Int64(options.heartbeatInterval * 1000))),
                materials: materials)
            lightAgents = sessions
            async let dialled: Void = sessions.start()
            sessions.recorder.track(1)
            let up = await sessions.recorder.wait(for: .seconds(600)) { $0.established == agents && $0.acked == agents }
            await dialled
            guard up else { throw BenchError("only \(sessions.recorder.counts.established) of \(agents) sessions came up on the active hub") }

            sessions.recorder.resetConnections()
            let killed = ContinuousClock.now
            active.send(SIGKILL)
            try await standby.waitForEvent("hub.active", within: .seconds(120))
            let locked = ContinuousClock.now - killed
            try await standby.waitForEvent("hub.ready", within: .seconds(120))
            let listening = ContinuousClock.now - killed
            let back = await sessions.recorder.wait(for: .seconds(600)) { $0.welcomed >= agents && $0.established == agents }
            let served = ContinuousClock.now - killed
            guard back else {
                throw BenchError("only \(sessions.recorder.counts.established) of \(agents) sessions came back; standby log:\n\(standby.tail(20))")
            }
            report.add("agents", Double(agents), "agent sessions moved", format: "%.0f")
            report.add("lock_seconds", milliseconds(locked) / 1000, "SIGKILL to the standby's hub.active (lock taken)", format: "%.2f", unit: "s")
            report.add(
                "ready_seconds", milliseconds(listening) / 1000, "SIGKILL to the standby's hub.ready (agent port open)", format: "%.2f", unit: "s")
            report.add("served_seconds", milliseconds(served) / 1000, "SIGKILL to every session served by the standby", format: "%.2f", unit: "s")
            report.add("refused_dials", Double(sessions.recorder.connectFailures), "dials refused meanwhile", format: "%.0f")
        } catch {
            await lightAgents?.shutdown()
            await federation.stopAll()
            await postgres.stop()
            throw error
        }
        await lightAgents?.shutdown()
        await federation.stopAll()
        await postgres.stop()
        try? FileManager.default.removeItem(atPath: federation.root)
        report.print()
    }
}
