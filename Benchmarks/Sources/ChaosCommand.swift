import ArgumentParser
import Foundation
import TetherTestSupport

/// The fault suite's long run (`make chaos`): the cycles of `FaultSuiteTests`, many times over.
struct ChaosCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chaos",
        abstract: "Run the fault suite for many cycles and report writes acknowledged, lost and wrongly deleted, and convergence times.",
        discussion: """
            A hub on this host, members (tether-simcluster) and agents in network namespaces behind egress-only \
            firewalls; each cycle stages one fault (the hub killed during writes, an agent killed or stopped, a \
            member partitioned past the rebalance grace, the hub restored from an older backup, a member API \
            answering errors) with writes going on, then checks the hub and every member against what the API \
            acknowledged. Needs root, iproute2, iptables and sqlite3. Stops at the first cycle with a problem.
            """
    )

    @Option(name: .long, help: "Cycles to run (the faults in turn).")
    var cycles = 100

    @Option(name: .long, help: "Member clusters, each in its own network namespace.")
    var members = 3

    @Option(name: .long, help: "Write the per-cycle results and the summary as JSON to this file.")
    var report: String?

    func validate() throws {
        guard cycles > 0, (1...20).contains(members) else { throw ValidationError("--cycles must be positive and --members between 1 and 20") }
    }

    func run() async throws {
        let root = NSTemporaryDirectory() + "tether-chaos-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        var settings = FaultSuiteSettings(cycles: cycles)
        settings.members = members
        let started = ContinuousClock.now
        let suite = try await FaultSuite.start(in: root, settings: settings) { print($0) }
        let results = await suite.run()
        await suite.stop()
        let summary = ChaosSummary(results: results, seconds: FaultSuite.seconds(ContinuousClock.now - started))
        print(summary.text)
        if let report {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(ChaosReport(summary: summary, cycles: results)).write(to: URL(fileURLWithPath: report))
        }
        try? FileManager.default.removeItem(atPath: root)
        guard summary.clean, results.count == cycles else { throw ExitCode(1) }
    }
}

struct ChaosReport: Encodable {
    var summary: ChaosSummary
    var cycles: [CycleResult]
}

struct ChaosSummary: Encodable {
    var cycles: Int
    var writesAcknowledged: Int
    var writesInDoubt: Int
    var writesLost: Int
    var writesRolledBackByRestore: Int
    var wronglyDeleted: Int
    var worstConvergenceSeconds: Double
    var worstConvergenceByFault: [String: Double]
    var totalSeconds: Double
    var problems: [String]

    init(results: [CycleResult], seconds: Double) {
        cycles = results.count
        writesAcknowledged = results.map(\.writesAcknowledged).reduce(0, +)
        writesInDoubt = results.map(\.writesInDoubt).reduce(0, +)
        writesLost = results.map(\.writesLost).reduce(0, +)
        writesRolledBackByRestore = results.map(\.writesRolledBackByRestore).reduce(0, +)
        wronglyDeleted = results.map(\.wronglyDeleted).reduce(0, +)
        worstConvergenceSeconds = results.map(\.convergenceSeconds).max() ?? 0
        worstConvergenceByFault = Dictionary(results.map { ($0.fault.rawValue, $0.convergenceSeconds) }, uniquingKeysWith: max)
        totalSeconds = seconds
        problems = results.flatMap { result in result.problems.map { "cycle \(result.cycle): \($0)" } }
    }

    var clean: Bool { writesLost == 0 && wronglyDeleted == 0 && problems.isEmpty }

    var text: String {
        var lines = [
            "── fault suite: \(cycles) cycles in \(String(format: "%.0f", totalSeconds)) s",
            "   writes acknowledged \(writesAcknowledged), in doubt \(writesInDoubt), lost \(writesLost), rolled back by restores \(writesRolledBackByRestore) (re-applied)",
            "   member objects wrongly deleted \(wronglyDeleted)",
            "   worst convergence \(String(format: "%.1f", worstConvergenceSeconds)) s",
        ]
        for (fault, seconds) in worstConvergenceByFault.sorted(by: { $0.key < $1.key }) {
            lines.append("     \(fault): \(String(format: "%.1f", seconds)) s")
        }
        lines += problems.prefix(10).map { "   PROBLEM \($0)" }
        return lines.joined(separator: "\n")
    }
}
