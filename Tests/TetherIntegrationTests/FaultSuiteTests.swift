import Foundation
import Testing
import TetherTestSupport

/// The short fault suite: each fault once, against a hub on the host and members in network
/// namespaces behind egress-only firewalls. `make chaos` runs the long one (100 cycles).
@Suite("fault suite", .timeLimit(.minutes(10)))
struct FaultSuiteTests {
    @Test("every fault once: nothing acknowledged is lost, nothing is deleted wrongly, the federation converges")
    func everyFaultOnce() async throws {
        let scratch = try ScratchDirectory("tether-chaos")
        let settings = FaultSuiteSettings(cycles: Fault.allCases.count)
        let suite = try await FaultSuite.start(in: scratch.path, settings: settings) { print($0) }
        let results = await suite.run()
        await suite.stop()
        #expect(results.count == Fault.allCases.count, "stopped early: \(results.last.map(\.problems) ?? [])")
        for result in results {
            #expect(result.problems.isEmpty, "cycle \(result.cycle) (\(result.fault.rawValue)): \(result.problems)")
            #expect(result.writesLost == 0, "cycle \(result.cycle) (\(result.fault.rawValue)) lost acknowledged writes")
            #expect(result.wronglyDeleted == 0, "cycle \(result.cycle) (\(result.fault.rawValue)) deleted member objects")
            #expect(result.writesAcknowledged > 0, "cycle \(result.cycle) wrote nothing, so it proved nothing")
            #expect(result.convergenceSeconds < 90)
        }
        // The restore cycle really rolled the hub back, so the agents really had something to refuse.
        #expect(results.first { $0.fault == .hubRestoredFromBackup }.map { $0.writesRolledBackByRestore > 0 } == true)
    }
}
