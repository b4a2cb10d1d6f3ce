import Foundation
import Testing
import TetherLocal
import TetherTestSupport

/// Each benchmark, run small: it builds, starts what it measures, finishes, and prints its
/// figures as a JSON line. The figures themselves are not judged here (docs/performance.md).
///
/// `tether-bench` comes from the benchmarks' own package (`Benchmarks/`), which `make test`
/// builds in the same configuration as this one.
@Suite("benchmarks run (small N)", .serialized, .timeLimit(.minutes(5)))
struct BenchmarkSmokeTests {
    private func bench(_ arguments: [String]) async throws -> [String: Any] {
        let ours = try TetherBinaries.locate().directory
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let built = root.appendingPathComponent("Benchmarks/.build/\(ours.lastPathComponent)/tether-bench")
        guard FileManager.default.isExecutableFile(atPath: built.path) else {
            Issue.record("\(built.path) is missing: build the benchmarks first (`swift build --package-path Benchmarks`, as `make test` does)")
            return [:]
        }
        let process = ManagedProcess(
            name: "tether-bench", executable: built, arguments: arguments,
            environment: ProcessInfo.processInfo.environment.merging(["TETHER_BIN_DIR": ours.path]) { $1 })
        try process.start()
        guard let status = await process.waitForExit(within: .seconds(240)) else {
            await process.stop()
            throw DeadlineExceeded(description: "tether-bench \(arguments) did not finish")
        }
        let output = process.lines.map(\.raw).joined(separator: "\n")
        #expect(status == 0, "\(output.suffix(3000))")
        let line = output.split(separator: "\n").last { $0.hasPrefix("{") } ?? ""
        return (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]) ?? [:]
    }

    @Test("sessions: 20 light agents held, then a reconnect storm")
    func sessions() async throws {
        let figures = try await bench(["sessions", "--agents", "20", "--idle-window", "1", "--heartbeat-interval", "2", "--settle", "1"])
        #expect(figures["agents"] as? Double == 20)
        #expect((figures["hub_bytes_per_session"] as? Double) != nil && (figures["storm_seconds"] as? Double ?? 0) > 0, "\(figures)")
        // swift-nio-ssl keeps no tickets: every reconnect is a full handshake.
        #expect(figures["resumed_reconnects"] as? Double == 0, "\(figures)")
    }

    @Test("sessions on OpenSSL at both ends: every session that reconnects to the running hub resumes its TLS session")
    func sessionsResumed() async throws {
        let figures = try await bench([
            "sessions", "--agents", "20", "--idle-window", "1", "--heartbeat-interval", "2", "--settle", "1", "--hub-tls", "openssl", "--client-tls",
            "openssl",
        ])
        #expect((figures["blip_seconds"] as? Double ?? 0) > 0 && (figures["storm_seconds"] as? Double ?? 0) > 0, "\(figures)")
        #expect(figures["resumed_reconnects"] as? Double ?? 0 >= 20, "\(figures)")
    }

    @Test("kinds: 10 objects of a kind built in, from a bare CRD, with a Lua customization and with the Python plugin")
    func kinds() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let figures = try await bench([
            "kinds", "--objects", "10", "--python-plugin", root.appendingPathComponent("Plugins/External/python-widgets").path,
        ])
        for way in ["builtin", "crd", "lua", "python"] {
            #expect(
                (figures["\(way)_hub_cpu_us"] as? Double ?? 0) > 0 && (figures["\(way)_update_seconds"] as? Double ?? 0) > 0, "\(way): \(figures)")
        }
    }

    @Test("failover: 20 agents move to the standby hub on PostgreSQL after SIGKILL of the active one")
    func failover() async throws {
        let figures = try await bench(["failover", "--agents", "20", "--heartbeat-interval", "2"])
        #expect(figures["agents"] as? Double == 20 && (figures["served_seconds"] as? Double ?? 0) > 0, "\(figures)")
        #expect((figures["lock_seconds"] as? Double ?? .infinity) <= (figures["served_seconds"] as? Double ?? 0), "\(figures)")
    }

    @Test("fanout: a change reaching 10 agents, and a burst")
    func fanout() async throws {
        let figures = try await bench(["fanout", "--agents", "10", "--changes", "2", "--burst", "10"])
        #expect((figures["all_received_p50_ms"] as? Double ?? 0) > 0 && figures["burst_converge_seconds"] != nil, "\(figures)")
    }

    @Test("agent: a real agent applies 10 objects and idles")
    func agent() async throws {
        let figures = try await bench(["agent", "--objects", "10", "--idle-window", "1", "--settle", "1"])
        #expect((figures["agent_rss_mib"] as? Double ?? 0) > 0 && (figures["snapshot_apply_seconds"] as? Double) != nil, "\(figures)")
    }

    @Test("protocol: Tether's framing and a gRPC stream carry the same deltas, both carriages, compressed and not")
    func protocolComparison() async throws {
        let figures = try await bench(["protocol", "--messages", "100", "--large-messages", "10", "--repeats", "1", "--warmup", "10"])
        for key in ["deployment_json_plain", "configmap_1k_bytes_deflate", "configmap_64k_json_deflate"] {
            #expect(
                (figures["\(key)_tether_msgs_per_s"] as? Double ?? 0) > 0 && (figures["\(key)_grpc_msgs_per_s"] as? Double ?? 0) > 0,
                "\(key): \(figures)")
        }
        // Bytes are counted on the wire: compression must show, and both protocols carry the same JSON.
        let plain = figures["configmap_64k_json_plain_tether_wire_bytes"] as? Double ?? 0
        let deflated = figures["configmap_64k_json_deflate_tether_wire_bytes"] as? Double ?? 0
        let json = figures["configmap_64k_json_bytes"] as? Double ?? 0
        #expect(plain > json && deflated > 0 && deflated < plain / 2, "\(figures)")
        let grpcPlain = figures["configmap_64k_json_plain_grpc_wire_bytes"] as? Double ?? 0
        #expect(grpcPlain > json, "\(figures)")
    }

    @Test("api: 50 objects, kubectl and HTTP latencies, 3 watchers")
    func api() async throws {
        let figures = try await bench(["api", "--objects", "50", "--watchers", "3", "--repeats", "2"])
        #expect((figures["watch_all_p50_ms"] as? Double) != nil && (figures["kubectl_get_p50_ms"] as? Double ?? 0) > 0, "\(figures)")
    }
}
