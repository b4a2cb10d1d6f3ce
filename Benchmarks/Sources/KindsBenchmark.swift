import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
import TetherLocal
import TetherTestSupport

/// What objects of a kind cost the hub and the agent, by the way the kind is interpreted: each
/// way gets a federation of its own (hub, one simulated member, its agent), `objects` creates
/// and then one update of each, and the CPU both processes (and their plugin processes) spent
/// until every object's Propagation said its member had applied it.
struct KindsBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kinds",
        abstract:
            "What a kind's objects cost the hub and the agent by how the kind is interpreted: built in (Swift), a CustomResourceDefinition with the generic behaviour, with a Lua customization, with an out-of-process Python plugin."
    )

    enum Way: String, CaseIterable, ExpressibleByArgument {
        /// ConfigMaps: the built-in Swift plugin.
        case builtin
        /// Widgets from a CustomResourceDefinition, no interpreter: the generic behaviour.
        case crd
        /// Widgets with a ResourceInterpreterCustomization (Lua 5.4) at the hub and the agent.
        case lua
        /// Widgets with the `python-widgets` plugin from `Plugins/External`, at the hub and the agent.
        case python
    }

    @Option(name: .long, help: "Objects created, then updated once each.")
    var objects = 1000

    @Option(name: .long, parsing: .upToNextOption, help: "The ways to measure (builtin, crd, lua, python); default all.")
    var ways: [Way] = Way.allCases

    @Option(name: .long, help: "The python-widgets plugin's folder (default: Plugins/External/python-widgets under the current directory).")
    var pythonPlugin = "Plugins/External/python-widgets"

    @OptionGroup var options: CommonOptions

    func validate() throws {
        guard objects >= 1 else { throw ValidationError("--objects must be at least 1") }
        if ways.contains(.python), !FileManager.default.fileExists(atPath: pythonPlugin + "/plugin.json") {
            throw ValidationError("no plugin.json in \(pythonPlugin); run from the repository root or pass --python-plugin")
        }
    }

    func run() async throws {
        var report = Report("kinds")
        report.add("objects", Double(objects), "objects per way (each created, then updated once)", format: "%.0f")
        for way in ways {
            try await measure(way, into: &report)
        }
        report.print()
    }

    private func measure(_ way: Way, into report: inout Report) async throws {
        let federation = try makeFederation(binDirectory: options.binDir, label: "kinds-\(way.rawValue)")
        do {
            var hubArguments: [String] = []
            var agentArguments = ["--also-allow-kind", "apiextensions.k8s.io/CustomResourceDefinition", "--also-allow-kind", "example.com/*"]
            if way == .python {
                // A folder holding only this plugin, so nothing else is started beside it.
                let plugins = federation.root + "/plugins"
                try FileManager.default.createDirectory(atPath: plugins, withIntermediateDirectories: true)
                try FileManager.default.createSymbolicLink(
                    atPath: plugins + "/python-widgets", withDestinationPath: URL(fileURLWithPath: pythonPlugin).standardizedFileURL.path)
                hubArguments += ["--plugin-dir", plugins]
                agentArguments += ["--plugin-dir", plugins]
            }
            let (hub, port) = try await federation.startHub(
                heartbeatInterval: options.heartbeatInterval, autoJoin: true, extraArguments: hubArguments)
            let (_, simulated) = try await federation.startSimcluster("member", nodes: 1, readyAfter: "1s")
            let agent = try federation.startAgent(
                bundle: try federation.issueBundle(cluster: "member", hubPort: port), kubeconfig: simulated + "/kubeconfig",
                extraArguments: agentArguments)
            try await agent.waitForEvent("session.established", within: .seconds(60))
            if way == .python {
                for process in [hub, agent] {
                    try await process.waitForEvent("plugin.ready", within: .seconds(30)) { ($0.fields["message"] ?? "").contains("python-widgets") }
                }
            }
            let api = try HubAPIClient(federation: federation)
            do {
                try await measure(way, api: api, processes: [hub.processIdentifier, agent.processIdentifier], into: &report)
            } catch {
                await api.shutdown()
                throw error
            }
            await api.shutdown()
        } catch {
            await federation.stopAll()
            throw error
        }
        await federation.stopAll()
        try? FileManager.default.removeItem(atPath: federation.root)
    }

    /// Creates then updates `objects` of the way's kind through `api`, with the CPU `processes` (hub, agent) spent on each.
    private func measure(_ way: Way, api: HubAPIClient, processes: [Int32], into report: inout Report) async throws {
        let kind: (path: String, label: String)
        switch way {
        case .builtin:
            kind = ("/api/v1/namespaces/default/configmaps", "configmap")
        case .crd, .lua, .python:
            // The create answers once the kind is served (the API waits for its catalog), so objects may follow at once.
            try await Self.expect(201, try await api.send(.POST, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json: Self.widgets))
            kind = ("/apis/example.com/v1/namespaces/default/widgets", "widget")
            if way == .lua {
                try await Self.expect(
                    201,
                    try await api.send(
                        .POST, "/apis/config.karmada.io/v1alpha1/resourceinterpretercustomizations", json: Self.customization))
            }
        }
        let (_, listed) = try await api.send(.GET, "/apis/core.tether.io/v1alpha1/propagations?limit=1")
        let watch = try await PropagationWatch.open(
            api: api,
            path:
                "/apis/core.tether.io/v1alpha1/propagations?watch=true&labelSelector=tether.io/kind=\(kind.label)&resourceVersion=\(HubAPIClient.resourceVersion(listed) ?? 0)"
        )
        defer { watch.close() }

        // Creates: every object, 8 requests at a time, until the member has applied each.
        var before = processes.map(ProcessTreeCPU.seconds)
        var started = ContinuousClock.now
        try await Self.concurrently(objects) { index in
            try await Self.expect(201, try await api.send(.POST, kind.path, json: Self.object(way, index: index)))
        }
        let created = ContinuousClock.now - started
        let revisions = try await watch.waitUntilApplied(objects, newerThan: [:], within: .seconds(600))
        var elapsed = ContinuousClock.now - started
        var after = processes.map(ProcessTreeCPU.seconds)
        let prefix = way.rawValue
        report.add("\(prefix)_create_seconds", milliseconds(created) / 1000, "\(prefix): API creates took", format: "%.2f", unit: "s")
        report.add("\(prefix)_applied_seconds", milliseconds(elapsed) / 1000, "\(prefix): created to all applied", format: "%.2f", unit: "s")
        report.add(
            "\(prefix)_hub_cpu_us", (after[0] - before[0]) / Double(objects) * 1e6, "\(prefix): hub CPU per object created", format: "%.0f",
            unit: "µs")
        report.add(
            "\(prefix)_agent_cpu_us", (after[1] - before[1]) / Double(objects) * 1e6, "\(prefix): agent CPU per object created",
            format: "%.0f", unit: "µs")

        // Updates: one change to each, until the member has applied a newer revision of each.
        before = processes.map(ProcessTreeCPU.seconds)
        started = .now
        try await Self.concurrently(objects) { index in
            try await Self.expect(
                200,
                try await api.send(
                    .PATCH, kind.path + "/\(Self.name(index))", json: Self.change(way), contentType: "application/merge-patch+json"))
        }
        _ = try await watch.waitUntilApplied(objects, newerThan: revisions, within: .seconds(600))
        elapsed = .now - started
        after = processes.map(ProcessTreeCPU.seconds)
        report.add("\(prefix)_update_seconds", milliseconds(elapsed) / 1000, "\(prefix): updated to all applied", format: "%.2f", unit: "s")
        report.add(
            "\(prefix)_hub_update_cpu_us", (after[0] - before[0]) / Double(objects) * 1e6, "\(prefix): hub CPU per object updated",
            format: "%.0f", unit: "µs")
        report.add(
            "\(prefix)_agent_update_cpu_us", (after[1] - before[1]) / Double(objects) * 1e6, "\(prefix): agent CPU per object updated",
            format: "%.0f", unit: "µs")
        if way == .lua || way == .python {
            // The interpreter ran: only its aggregation writes `clusters` into a Widget's status.
            try await Self.until("the interpreter's aggregated status on \(Self.name(0))", within: .seconds(30)) {
                let (code, body) = try await api.send(.GET, kind.path + "/\(Self.name(0))")
                let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any]
                return code == 200 && ((object?["status"] as? [String: Any])?["clusters"] as? Int) == 1
            }
        }
    }

    static func name(_ index: Int) -> String { "object-\(index)" }

    /// A 256-byte ConfigMap, or a Widget of size 2 with a comparable payload.
    static func object(_ way: Way, index: Int) -> String {
        guard way != .builtin else { return configMap(name(index), bytes: 256) }
        let filler = String(repeating: "x", count: 160)
        return
            #"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"\#(name(index))","namespace":"default"},"spec":{"size":2,"generation":0,"payload":"\#(filler)"}}"#
    }

    /// The one change each object gets.
    static func change(_ way: Way) -> String {
        way == .builtin ? #"{"data":{"generation":"1"}}"# : #"{"spec":{"generation":1}}"#
    }

    static let widgets = """
        {"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"widgets.example.com"},
         "spec":{"group":"example.com","scope":"Namespaced","names":{"plural":"widgets","kind":"Widget"},
          "versions":[{"name":"v1","served":true,"storage":true,"subresources":{"status":{}},
           "schema":{"openAPIV3Schema":{"type":"object","properties":{
             "spec":{"type":"object","properties":{"size":{"type":"integer"},"generation":{"type":"integer"},"payload":{"type":"string"}}},
             "status":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}}}]}}
        """

    /// The python-widgets plugin's operations, as Karmada's interpreter scripts.
    static let customization: String = {
        let scripts: [(String, String)] = [
            ("replicaResource", "function GetReplicas(obj)\n  return obj.spec.size or 1, nil\nend\n"),
            ("replicaRevision", "function ReviseReplica(obj, desired)\n  obj.spec.size = desired\n  return obj\nend\n"),
            (
                "healthInterpretation",
                "function InterpretHealth(obj)\n  local ready = 0\n  if obj.status ~= nil and obj.status.readyCount ~= nil then ready = obj.status.readyCount end\n  return ready >= (obj.spec.size or 1)\nend\n"
            ),
            (
                "statusReflection",
                "function ReflectStatus(obj)\n  if obj.status == nil then return {readyCount = 0} end\n  return {readyCount = obj.status.readyCount or 0}\nend\n"
            ),
            (
                "statusAggregation",
                "function AggregateStatus(desired, items)\n  local ready = 0\n  for i = 1, #items do\n    if items[i].status ~= nil and items[i].status.readyCount ~= nil then ready = ready + items[i].status.readyCount end\n  end\n  desired.status = {readyCount = ready, clusters = #items}\n  return desired\nend\n"
            ),
        ]
        let customizations = scripts.map { field, script in
            "\"\(field)\":{\"luaScript\":\(String(decoding: try! JSONSerialization.data(withJSONObject: script, options: .fragmentsAllowed), as: UTF8.self))}"
        }
        return """
            {"apiVersion":"config.karmada.io/v1alpha1","kind":"ResourceInterpreterCustomization","metadata":{"name":"widget-interpreter"},
             "spec":{"target":{"apiVersion":"example.com/v1","kind":"Widget"},"customizations":{\(customizations.joined(separator: ","))}}}
            """
    }()

    static func expect(_ code: Int, _ answer: (Int, Data)) async throws {
        guard answer.0 == code else {
            throw BenchError("expected \(code), got \(answer.0): \(String(decoding: answer.1.prefix(600), as: UTF8.self))")
        }
    }

    /// Runs `body` for 0..<count, 8 at a time.
    static func concurrently(_ count: Int, _ body: @escaping @Sendable (Int) async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            while next < min(8, count) {
                let index = next
                group.addTask { try await body(index) }
                next += 1
            }
            while try await group.next() != nil, next < count {
                let index = next
                group.addTask { try await body(index) }
                next += 1
            }
            try await group.waitForAll()
        }
    }

    /// Checks `condition` every 100 ms until it holds, failing after `deadline`.
    static func until(_ what: String, within deadline: Duration, _ condition: () async throws -> Bool) async throws {
        let end = ContinuousClock.now + deadline
        while try await !condition() {
            guard ContinuousClock.now < end else { throw BenchError("\(what): not within \(deadline)") }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}

/// CPU seconds of a process and its children alive now (an out-of-process plugin is a child).
enum ProcessTreeCPU {
    static func seconds(_ pid: Int32) -> Double {
        let children = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init).filter { candidate in
            guard let stat = try? String(contentsOfFile: "/proc/\(candidate)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else {
                return false
            }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid
        }
        return ([pid] + children).compactMap { ProcessStats.read($0)?.cpuSeconds }.reduce(0, +)
    }
}

/// One watch on Propagations: which objects their member has applied, at which revision.
final class PropagationWatch: Sendable {
    private struct State {
        /// By object name: the revision the member acknowledged, once it says applied.
        var applied: [String: Int] = [:]
        var waiter: (count: Int, newerThan: [String: Int], continuation: CheckedContinuation<[String: Int], any Error>)?

        func satisfied(_ count: Int, newerThan: [String: Int]) -> Bool {
            applied.count(where: { name, revision in revision > (newerThan[name] ?? -1) }) >= count
        }
    }

    private let state = Mutex(State())
    private let reader = Mutex<Task<Void, Never>?>(nil)

    static func open(api: HubAPIClient, path: String) async throws -> PropagationWatch {
        var request = HTTPClientRequest(url: api.base + path)
        request.method = .GET
        let response = try await api.client.execute(request, timeout: .hours(1))
        guard response.status == .ok else { throw BenchError("watch on propagations: \(response.status)") }
        let watch = PropagationWatch()
        watch.reader.withLock { $0 = Task { await watch.read(response.body) } }
        return watch
    }

    private func read(_ body: HTTPClientResponse.Body) async {
        var pending = Data()
        do {
            for try await chunk in body {
                pending.append(contentsOf: chunk.readableBytesView)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = pending[pending.startIndex..<newline]
                    pending = Data(pending[pending.index(after: newline)...])
                    note(line)
                }
            }
        } catch {}
    }

    private func note(_ line: Data) {
        guard let event = try? JSONSerialization.jsonObject(with: line) as? [String: Any],
            let object = event["object"] as? [String: Any],
            let spec = object["spec"] as? [String: Any], let resource = spec["resource"] as? [String: Any],
            let name = resource["name"] as? String,
            let status = object["status"] as? [String: Any], let clusters = status["clusters"] as? [[String: Any]], !clusters.isEmpty,
            clusters.allSatisfy({ $0["state"] as? String == "applied" })
        else { return }
        let revision = clusters.compactMap { $0["revision"] as? Int }.min() ?? 0
        let resumed = state.withLock { state -> (CheckedContinuation<[String: Int], any Error>, [String: Int])? in
            state.applied[name] = max(state.applied[name] ?? 0, revision)
            guard let waiter = state.waiter, state.satisfied(waiter.count, newerThan: waiter.newerThan) else { return nil }
            state.waiter = nil
            return (waiter.continuation, state.applied)
        }
        if let (continuation, applied) = resumed { continuation.resume(returning: applied) }
    }

    /// Waits until `count` objects are applied at a revision above the one `newerThan` names for
    /// each; returns every object's applied revision.
    func waitUntilApplied(_ count: Int, newerThan: [String: Int], within deadline: Duration) async throws -> [String: Int] {
        try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLock { state -> [String: Int]? in
                if state.satisfied(count, newerThan: newerThan) { return state.applied }
                state.waiter = (count, newerThan, continuation)
                return nil
            }
            if let ready {
                continuation.resume(returning: ready)
                return
            }
            Task {
                try? await Task.sleep(for: deadline)
                let expired = self.state.withLock { state -> (CheckedContinuation<[String: Int], any Error>, Int)? in
                    guard let waiter = state.waiter else { return nil }
                    state.waiter = nil
                    return (waiter.continuation, state.applied.count(where: { name, revision in revision > (newerThan[name] ?? -1) }))
                }
                if let (continuation, reached) = expired {
                    continuation.resume(throwing: BenchError("\(reached) of \(count) objects applied within \(deadline)"))
                }
            }
        }
    }

    func close() {
        reader.withLock { $0?.cancel() }
    }
}
