import Foundation
import Testing
import TetherLocal
import TetherSecurity
import TetherTestSupport

extension SessionIntegrationTests {
    @Test("an agent whose listed hubs are down but one tries each at once, and waits its backoff only when all have failed")
    func nextHubAtOnce() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub()
            // Nothing listens on these: a dial is refused at once, as by a standby or a stopped hub.
            let closed = try [LoopbackPort.free(), LoopbackPort.free()]
            // eu-1's agent starts at the third address (its name's stable hash), so both closed
            // ports are dialled before the hub.
            let addresses = ["127.0.0.1:\(closed[0])", "127.0.0.1:\(port)", "127.0.0.1:\(closed[1])"]
            let started = ContinuousClock.now
            let agent = try federation.startAgent(
                bundle: try federation.directory.issueAgentBundle(cluster: "eu-1", to: federation.root + "/bundles/eu-1", hubAddresses: addresses),
                extraArguments: ["--backoff-initial", "2", "--backoff-max", "2"])
            try await agent.waitForEvent("session.established", within: .seconds(8))
            let took = ContinuousClock.now - started
            let failed = agent.lines.filter { $0.event == "session.ended" }
            #expect(failed.count == 2, "\(failed.map(\.raw))")
            #expect(failed.allSatisfy { $0["tether.backoff"] == "false" && $0["tether.retry_in_ms"] == "0" }, "\(failed.map(\.raw))")
            try await hub.waitForEvent("session.established", within: .seconds(5))
            print("agent with hubs \(addresses): established after \(failed.count) refused dials, \(took) after its start")

            // All three down: a whole round fails, and only then does the agent wait.
            let mark = agent.mark
            hub.send(SIGKILL)
            let round = try await agent.waitForLine(within: .seconds(20), "a backoff after three failed dials") { line in
                line.event == "session.ended" && line["tether.backoff"] == "true" && line["tether.hub"] != addresses[1]
            }
            let ends = agent.lines.dropFirst(mark).filter { $0.event == "session.ended" }
            // The session's end waits its backoff; then each address is dialled once, the last failure waiting again.
            #expect(ends.count == 4, "\(ends.map(\.raw))")
            #expect(ends.dropFirst().dropLast().allSatisfy { $0["tether.backoff"] == "false" }, "\(ends.map(\.raw))")
            #expect(Set(ends.dropFirst().compactMap { $0["tether.hub"] }) == Set(addresses), "\(round.raw)")
        }
    }
}
