import ArgumentParser
import Foundation
import NIOCore
import NIOHTTP1
import TetherLocal
import TetherProcess
import TetherSecurity
import TetherTestSupport

struct AgentBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "A real tether-agent against a simulated cluster: time to apply a snapshot, then memory and CPU while idle."
    )

    @Option(name: .long, help: "Managed objects (ConfigMaps of --object-bytes).")
    var objects = 1000

    @Option(name: .long, help: "Size of each object, bytes.")
    var objectBytes = 1024

    @Option(name: .long, help: "Seconds over which idle CPU is measured.")
    var idleWindow: Double = 10

    @OptionGroup var options: CommonOptions

    func run() async throws {
        let federation = try makeFederation(binDirectory: options.binDir, label: "agent")
        var report = Report("agent")
        do {
            let (_, port) = try await federation.startHub(heartbeatInterval: options.heartbeatInterval, autoJoin: true)
            let (_, simulated) = try await federation.startSimcluster("member", nodes: 3, readyAfter: "1s")
            let api = try HubAPIClient(federation: federation)
            let created = ContinuousClock.now
            try await createConfigMaps(objects, prefix: "managed", bytes: objectBytes, api: api)
            await api.shutdown()
            report.add("objects", Double(objects), "managed objects (ConfigMaps)", format: "%.0f")
            report.add("object_bytes", Double(objectBytes), "object size", format: "%.0f", unit: "bytes")
            report.add(
                "hub_create_per_second", Double(objects) / (milliseconds(.now - created) / 1000), "hub API creates per second (8 connections)",
                format: "%.0f")

            let agent = try federation.startAgent(
                bundle: try federation.issueBundle(cluster: "member", hubPort: port), kubeconfig: simulated + "/kubeconfig")
            let established = try await agent.waitForEvent("session.established", within: .seconds(60))
            let started = ContinuousClock.now
            _ = established
            let done = try await agent.waitForEvent("applier.revision_done", within: .seconds(600))
            let applySeconds = milliseconds(.now - started) / 1000
            report.add(
                "snapshot_apply_seconds", applySeconds, "snapshot of all objects applied (session up to revision done)", format: "%.2f", unit: "s")
            report.note("failures", done["tether.failures"] ?? "?")

            // A fixed settling period, then the measurement window (see CommonOptions.settle).
            try await Task.sleep(for: .seconds(options.settle))
            let before = ProcessStats.read(agent.processIdentifier)
            try await Task.sleep(for: .seconds(idleWindow))
            let after = ProcessStats.read(agent.processIdentifier)
            report.add("agent_rss_mib", Double(after?.resident ?? 0) / 1_048_576, "agent resident memory, idle", unit: "MiB")
            report.add("agent_peak_mib", Double(after?.peakResident ?? 0) / 1_048_576, "agent peak resident memory", unit: "MiB")
            report.add(
                "agent_idle_cpu_percent", ((after?.cpuSeconds ?? 0) - (before?.cpuSeconds ?? 0)) / idleWindow * 100,
                "agent CPU while idle", format: "%.2f", unit: "% of one core"
            )
        } catch {
            await federation.stopAll()
            throw error
        }
        await federation.stopAll()
        try? FileManager.default.removeItem(atPath: federation.root)
        report.print()
    }
}

struct APIBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api",
        abstract: "The hub's API with many objects stored: kubectl and raw latencies, a full list, and a watch fanned out to many watchers."
    )

    @Option(name: .long, help: "Objects stored (ConfigMaps).")
    var objects = 10_000

    @Option(name: .long, help: "Concurrent watchers.")
    var watchers = 100

    @Option(name: .long, help: "Repetitions of each latency measurement.")
    var repeats = 10

    @Option(
        name: .long,
        help: "The hub's store: sqlite (DIR/hub.db) or postgres (a PostgreSQL 15 server this benchmark starts on a Unix socket).")
    var store = "sqlite"

    @OptionGroup var options: CommonOptions

    func validate() throws {
        guard ["sqlite", "postgres"].contains(store) else { throw ValidationError("--store: say sqlite or postgres") }
    }

    func run() async throws {
        let federation = try makeFederation(binDirectory: options.binDir, label: "api")
        var report = Report("api-\(store)")
        let api: HubAPIClient
        // Held for the whole run: the server stops when it goes.
        var postgres: PostgresServer?
        do {
            var storeArguments: [String] = []
            if store == "postgres" {
                let server = try await PostgresServer.start()
                storeArguments = ["--store", server.url(database: try await server.createDatabase("bench"))]
                postgres = server
            }
            _ = try await federation.startHub(heartbeatInterval: options.heartbeatInterval, autoJoin: true, extraArguments: storeArguments)
            api = try HubAPIClient(federation: federation, connections: 8)
        } catch {
            await federation.stopAll()
            throw error
        }
        do {
            try await measure(federation, api: api, report: &report)
        } catch {
            await api.shutdown()
            await federation.stopAll()
            throw error
        }
        await api.shutdown()
        await federation.stopAll()
        await postgres?.stop()
        try? FileManager.default.removeItem(atPath: federation.root)
        report.print()
    }

    private func measure(_ federation: LocalFederation, api: HubAPIClient, report: inout Report) async throws {
        let started = ContinuousClock.now
        try await createConfigMaps(objects, prefix: "stored", bytes: 256, api: api)
        report.add("objects", Double(objects), "objects stored (256-byte ConfigMaps)", format: "%.0f")
        report.add("create_per_second", Double(objects) / (milliseconds(.now - started) / 1000), "creates per second (8 connections)", format: "%.0f")

        var gets: [Duration] = []
        var lists: [Duration] = []
        var listBytes = 0
        for index in 0..<repeats {
            var begin = ContinuousClock.now
            try await api.send(.GET, "/api/v1/namespaces/default/configmaps/stored-\(index * 97 % objects)")
            gets.append(.now - begin)
            begin = .now
            let (_, body) = try await api.send(.GET, "/api/v1/namespaces/default/configmaps")
            lists.append(.now - begin)
            listBytes = body.count
        }
        let get = percentiles(gets)
        let list = percentiles(lists)
        report.add("http_get_p50_ms", get.p50, "HTTP get one: p50", format: "%.2f", unit: "ms")
        report.add("http_list_p50_ms", list.p50, "HTTP list of all \(objects): p50", unit: "ms")
        report.add("http_list_max_ms", list.max, "HTTP list of all: max", unit: "ms")
        report.add("list_mib", Double(listBytes) / 1_048_576, "list response", format: "%.2f", unit: "MiB")

        // kubectl as a user runs it: process start, discovery from a warm cache, the request.
        let kubectl = try KubectlRunner(federation: federation)
        _ = try await kubectl.run(["get", "ns"])
        var creates: [Duration] = []
        var kubeGets: [Duration] = []
        var kubeLists: [Duration] = []
        for index in 0..<repeats {
            var begin = ContinuousClock.now
            _ = try await kubectl.run(["create", "-f", "-"], stdin: configMap("kubectl-\(index)", bytes: 256))
            creates.append(.now - begin)
            begin = .now
            _ = try await kubectl.run(["get", "cm", "stored-\(index)"])
            kubeGets.append(.now - begin)
            begin = .now
            _ = try await kubectl.run(["get", "cm", "-o", "name"])
            kubeLists.append(.now - begin)
        }
        report.add("kubectl_create_p50_ms", percentiles(creates).p50, "kubectl create -f: p50", unit: "ms")
        report.add("kubectl_get_p50_ms", percentiles(kubeGets).p50, "kubectl get one: p50", unit: "ms")
        report.add("kubectl_list_p50_ms", percentiles(kubeLists).p50, "kubectl get all \(objects) (-o name): p50", unit: "ms")

        // Watch fan-out: `watchers` streams from now; each change must reach every one.
        let (_, current) = try await api.send(.GET, "/api/v1/namespaces/default/configmaps?limit=1")
        let version = HubAPIClient.resourceVersion(current) ?? 0
        // One connection per watcher: a watch holds its connection for as long as it lasts.
        let watchClient = try HubAPIClient(federation: federation, connections: watchers)
        let watch = try await WatchFan.open(
            watchers, api: watchClient, path: "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=\(version)")
        var allSeen: [Duration] = []
        var each: [Duration] = []
        for change in 0..<repeats {
            let name = "watched-\(change)"
            let begin = ContinuousClock.now
            try await api.send(.POST, "/api/v1/namespaces/default/configmaps", json: configMap(name, bytes: 256))
            let times = try await watch.waitAll(for: name, timeout: .seconds(60))
            allSeen.append((times.max() ?? begin) - begin)
            each += times.map { $0 - begin }
        }
        await watch.close()
        await watchClient.shutdown()
        report.add("watchers", Double(watchers), "watchers", format: "%.0f")
        report.add("watch_all_p50_ms", percentiles(allSeen).p50, "a change seen by every watcher: p50", format: "%.2f", unit: "ms")
        report.add("watch_all_max_ms", percentiles(allSeen).max, "a change seen by every watcher: max", format: "%.2f", unit: "ms")
        report.add("watch_each_p99_ms", percentiles(each).p99, "one watcher sees a change: p99", format: "%.2f", unit: "ms")
    }
}

/// Runs the kubectl on PATH against the hub, with its own cache folder.
struct KubectlRunner {
    let kubeconfig: String
    let cache: String
    let federation: LocalFederation

    init(federation: LocalFederation) throws {
        guard let port = try federation.directory.readPorts()?.api else { throw BenchError("no API port") }
        kubeconfig = federation.root + "/bench.kubeconfig"
        try federation.directory.writeKubeconfig(server: "https://127.0.0.1:\(port)", to: kubeconfig)
        cache = federation.root + "/kube-cache"
        self.federation = federation
    }

    func run(_ arguments: [String], stdin: String? = nil) async throws -> String {
        let output = Pipe()
        let input = Pipe()
        let process = try ChildProcess(
            executable: "/usr/bin/env", arguments: ["kubectl", "--kubeconfig", kubeconfig, "--cache-dir", cache] + arguments,
            standardInput: input.fileHandleForReading.fileDescriptor, standardOutput: output.fileHandleForWriting.fileDescriptor,
            standardError: output.fileHandleForWriting.fileDescriptor)
        // The child has its own copies: its exit ends the output, and its input ends when ours is closed.
        try input.fileHandleForReading.close()
        try output.fileHandleForWriting.close()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        guard await process.waitUntilExit() == 0 else { throw BenchError("kubectl \(arguments) failed: \(String(decoding: data, as: UTF8.self))") }
        return String(decoding: data, as: UTF8.self)
    }
}
