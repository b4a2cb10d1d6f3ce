import ArgumentParser
import Foundation
import NIOHTTP1
import TetherLocal
import TetherSecurity
import TetherTestSupport

struct FanoutBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fanout",
        abstract: "One 4 KiB change at the hub reaching every connected agent, repeated; then a burst of changes."
    )

    @Option(name: .long, help: "Agent sessions.")
    var agents = 1000

    @Option(name: .long, help: "Single changes measured one after the other.")
    var changes = 20

    @Option(name: .long, help: "Changes in the burst (0: none).")
    var burst = 1000

    @Option(name: .long, help: "Size of the changed object, bytes.")
    var objectBytes = 4096

    @Option(name: .long, help: "The hub's agent-port TLS library (tether-hub --agent-tls): boringssl or openssl.")
    var hubTls = AgentPortTLS.boringSSL.rawValue

    @OptionGroup var options: CommonOptions

    func validate() throws {
        guard AgentPortTLS(rawValue: hubTls) != nil else { throw ValidationError("--hub-tls \(hubTls): say boringssl or openssl") }
    }

    func run() async throws {
        let fixture = try await SessionFixture.start(
            agents: agents, options: options, label: "fanout", hubTLS: AgentPortTLS(rawValue: hubTls) ?? .boringSSL)
        let api = try HubAPIClient(federation: fixture.federation)
        var report = Report("fanout")
        do {
            try await measure(fixture, api: api, report: &report)
        } catch {
            await api.shutdown()
            await fixture.stop()
            throw error
        }
        await api.shutdown()
        await fixture.stop()
        report.print()
    }

    private func measure(_ fixture: SessionFixture, api: HubAPIClient, report: inout Report) async throws {
        let recorder = fixture.agents.recorder
        report.add("agents", Double(agents), "agent sessions", format: "%.0f")
        report.note("tls", "hub \(hubTls)")
        report.add("object_bytes", Double(objectBytes), "changed object size", format: "%.0f", unit: "bytes")
        var allReceived: [Duration] = []
        var allAcked: [Duration] = []
        var perAgent: [Duration] = []
        let cpuBefore = ProcessStats.read(fixture.hub.processIdentifier)?.cpuSeconds ?? 0
        let generatorBefore = ProcessStats.read(getpid())?.cpuSeconds ?? 0
        let loopStarted = ContinuousClock.now
        for change in 0...changes {
            let sent = ContinuousClock.now
            let version = try await Self.writeChange(change, bytes: objectBytes, api: api)
            recorder.track(version)
            guard await recorder.wait(for: .seconds(120), until: { $0.acked == agents }) else {
                throw BenchError("change \(change): only \(recorder.counts.acked) of \(agents) agents acknowledged within 120 s")
            }
            // The first change also creates the object everywhere: measured, but not in the figures.
            guard change > 0 else { continue }
            let received = recorder.times(acked: false)
            let acked = recorder.times(acked: true)
            allReceived.append((received.max() ?? sent) - sent)
            allAcked.append((acked.max() ?? sent) - sent)
            perAgent += received.map { $0 - sent }
        }
        let cpu = (ProcessStats.read(fixture.hub.processIdentifier)?.cpuSeconds ?? 0) - cpuBefore
        let generator = (ProcessStats.read(getpid())?.cpuSeconds ?? 0) - generatorBefore
        let wall = milliseconds(.now - loopStarted) / 1000
        let all = percentiles(allReceived)
        let acks = percentiles(allAcked)
        let each = percentiles(perAgent)
        report.add("all_received_p50_ms", all.p50, "every agent received it: p50", unit: "ms")
        report.add("all_received_p99_ms", all.p99, "every agent received it: p99", unit: "ms")
        report.add("all_received_max_ms", all.max, "every agent received it: max", unit: "ms")
        report.add("all_acked_p50_ms", acks.p50, "every agent acknowledged it: p50", unit: "ms")
        report.add("all_acked_p99_ms", acks.p99, "every agent acknowledged it: p99", unit: "ms")
        report.add("agent_received_p50_ms", each.p50, "one agent received it: p50", unit: "ms")
        report.add("agent_received_p99_ms", each.p99, "one agent received it: p99", unit: "ms")
        report.add(
            "pushes_per_second", Double(agents) / max(all.p50 / 1000, 0.000_001), "per-cluster pushes per second (p50 fan-out)", format: "%.0f")
        report.add(
            "hub_cpu_us_per_delivery", cpu * 1e6 / Double(agents * (changes + 1)), "hub CPU per delivery (API write included)", format: "%.1f",
            unit: "µs")
        report.add(
            "generator_cpu_us_per_delivery", generator * 1e6 / Double(agents * (changes + 1)), "load generator CPU per delivery", format: "%.1f",
            unit: "µs")
        report.add("hub_cpu_percent", cpu / wall * 100, "hub CPU during the changes", format: "%.0f", unit: "% of one core")
        report.add("generator_cpu_percent", generator / wall * 100, "load generator CPU during the changes", format: "%.0f", unit: "% of one core")

        guard burst > 0 else { return }
        // The burst: `burst` writes of distinct objects as fast as 8 connections allow; coalescing
        // must keep memory bounded by the desired state, not by the number of changes.
        // Writing "5" to clear_refs resets the peak (VmHWM), so the peak below is the burst's.
        try? "5".write(toFile: "/proc/\(fixture.hub.processIdentifier)/clear_refs", atomically: false, encoding: .utf8)
        let before = ProcessStats.read(fixture.hub.processIdentifier)
        let started = ContinuousClock.now
        let last = try await createConfigMaps(burst, prefix: "burst", bytes: objectBytes, api: api)
        let written = ContinuousClock.now
        recorder.track(last)
        guard await recorder.wait(for: .seconds(600), until: { $0.acked == agents }) else {
            throw BenchError("burst: only \(recorder.counts.acked) of \(agents) agents acknowledged the last change within 600 s")
        }
        let converged = ContinuousClock.now
        let after = ProcessStats.read(fixture.hub.processIdentifier)
        report.add("burst_changes", Double(burst), "burst: changes", format: "%.0f")
        report.add("burst_write_seconds", milliseconds(written - started) / 1000, "burst: writes accepted by the API in", format: "%.2f", unit: "s")
        report.add(
            "burst_converge_seconds", milliseconds(converged - started) / 1000, "burst: every agent acknowledged all in", format: "%.2f", unit: "s")
        report.add("burst_hub_rss_before_mib", Double(before?.resident ?? 0) / 1_048_576, "burst: hub resident before", unit: "MiB")
        report.add("burst_hub_peak_mib", Double(after?.peakResident ?? 0) / 1_048_576, "burst: hub peak resident", unit: "MiB")
    }

    /// The measured change: ConfigMap `fanout` of `bytes`, created at change 0 and replaced after;
    /// returns the resourceVersion the hub gave it.
    static func writeChange(_ change: Int, bytes: Int, api: HubAPIClient) async throws -> UInt64 {
        let body = configMap("fanout", bytes: bytes, generation: change)
        let (code, answer) =
            change == 0
            ? try await api.send(.POST, "/api/v1/namespaces/default/configmaps", json: body)
            : try await api.send(.PUT, "/api/v1/namespaces/default/configmaps/fanout", json: body)
        guard (200...201).contains(code), let version = HubAPIClient.resourceVersion(answer) else {
            throw BenchError("the hub answered \(code): \(String(decoding: answer, as: UTF8.self).prefix(300))")
        }
        return version
    }
}
