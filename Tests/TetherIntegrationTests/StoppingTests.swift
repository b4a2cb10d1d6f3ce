import Foundation
import Testing
import TetherLocal
import TetherTestSupport

/// Clean stops, measured against a 2 s bound. `make test` runs these after the rest of the suite,
/// one at a time, so the bound is measured on an otherwise idle machine (with the whole suite
/// running at once on two cores, a debug-built process can wait seconds for a CPU).
@Suite("stopping", .timeLimit(.minutes(3)))
struct StoppingTests {
    @Test("every process exits within 2 s of SIGTERM: an agent whose hub is down, a hub with agents, a simulated member")
    func cleanStops() async throws {
        try await withFederation { federation in
            // An agent dialling a hub that is not there (a closed port), and one whose hub hangs
            // (it accepts and never answers): mid-backoff and mid-handshake.
            let lonely = try federation.startAgent(name: "lonely", bundle: try federation.issueBundle(cluster: "lonely", hubPort: 1))
            try await lonely.waitForEvent("session.ended", within: .seconds(20))
            let silent = try await SilentListener.start()
            defer { Task { await silent.close() } }
            let stuck = try federation.startAgent(name: "stuck", bundle: try federation.issueBundle(cluster: "stuck", hubPort: silent.port))
            try await stuck.waitForLine(within: .seconds(20), "the agent starting") { $0.raw.contains("agent starting") }
            for process in [lonely, stuck] {
                let started = ContinuousClock.now
                process.send(SIGTERM)
                #expect(await process.waitForExit(within: .seconds(10)) != nil)
                #expect(ContinuousClock.now - started < .seconds(2), "\(process.name) took \(ContinuousClock.now - started)")
            }
            let (hub, port) = try await federation.startHub(heartbeatInterval: 1)
            let (sim, simDirectory) = try await federation.startSimcluster("m1", nodes: 1, readyAfter: "1s")
            let agent = try federation.startAgent(
                bundle: try federation.issueBundle(cluster: "m1", hubPort: port), kubeconfig: simDirectory + "/kubeconfig")
            try await agent.waitForEvent("session.established", within: .seconds(20))
            // A stranger that never speaks and an established session the hub must drain.
            let idle = await TCPFlood.open(count: 3, port: port)
            defer { Task { await idle.close() } }
            // The member first, with the agent's watches open on it; then the hub with a session.
            for process in [sim, hub, agent] {
                let started = ContinuousClock.now
                process.send(SIGTERM)
                #expect(await process.waitForExit(within: .seconds(10)) != nil)
                #expect(ContinuousClock.now - started < .seconds(2), "\(process.name) took \(ContinuousClock.now - started)")
            }
        }
    }

    @Test("Ctrl-C at the terminal stops tetherctl demo, piped through tee, and every process it started within 2 s")
    func demoStopsFromTerminal() async throws {
        try await withFederation { federation in
            let binaries = try TetherBinaries.locate()
            let directory = federation.root + "/demo"
            let log = federation.root + "/terminal.log"
            // `script` gives the pipeline a terminal: Ctrl-C typed into it reaches tetherctl, tee and
            // the children together, as at a shell; when the shell goes, the terminal hangs up.
            let command = "\(binaries.url("tetherctl").path) demo --clusters 2 --dir \(directory) --heartbeat-interval 1 | tee \(log)"
            let terminal = ManagedProcess(
                name: "terminal", executable: URL(fileURLWithPath: "/usr/bin/script"),
                arguments: ["--quiet", "--flush", "--return", "--command", command, "/dev/null"],
                keepStandardInputOpen: true
            )
            try terminal.start()
            defer { terminal.send(SIGKILL) }
            try await terminal.waitForLine(within: .seconds(90), "the demo ready") { $0.raw.contains("agents connected") }
            let started = try ProcessTable.matching(directory)
            #expect(started.count == 6, "tetherctl, a hub, 2 members and 2 agents; found \(started)")
            // tee writes each line to the terminal, then to its file; Ctrl-C ends tee with the rest
            // (its children run with default signals), so the file is read before, not after.
            let deadline = ContinuousClock.now + .seconds(10)
            while !((try? String(contentsOfFile: log, encoding: .utf8))?.contains("agents connected") ?? false), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(try String(contentsOfFile: log, encoding: .utf8).contains("agents connected"), "lines reached tee as they were printed")

            let pressed = ContinuousClock.now
            try terminal.type([0x03])
            try await ProcessTable.waitUntilGone(started.map(\.pid), within: .seconds(10))
            let stopped = ContinuousClock.now - pressed
            #expect(stopped < .seconds(2), "the demo and its processes took \(stopped) to stop")
            #expect(try ProcessTable.matching(directory).isEmpty)
        }
    }
}
