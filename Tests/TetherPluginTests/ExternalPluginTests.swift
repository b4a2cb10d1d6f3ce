import Foundation
import Testing
import TetherJSON
import TetherModel
import TetherPlugin

/// Out-of-process plugins as real processes: the two worked examples, and plugins that crash,
/// never answer or answer garbage (each falls back to the built-in behaviour, says why, and
/// never holds a caller past its deadline).
@Suite("out-of-process plugins", .timeLimit(.minutes(2)))
struct ExternalPluginTests {
    static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Plugins/External").path

    /// Starts `host` and waits (30 s at most, for a loaded machine) until it has answered its handshake.
    static func started(_ host: ExternalPluginProcess) async throws -> Task<Void, Never> {
        let task = Task { await host.run() }
        guard await host.waitUntilReady(within: .seconds(30)) else {
            task.cancel()
            host.stop()
            throw ExternalPluginError("plugin \(host.manifest.name) not ready within 30 s: \(host.unavailability ?? "")")
        }
        return task
    }

    static func host(_ directory: String) throws -> ExternalPluginProcess {
        let loaded = try ExternalPluginManifest.load(from: (directory as NSString).deletingLastPathComponent)
        guard let entry = loaded.first(where: { $0.directory == directory }) else { throw ExternalPluginError("no plugin.json in \(directory)") }
        return ExternalPluginProcess(manifest: entry.manifest, directory: entry.directory)
    }

    static func widget(size: Int, ready: Int) -> JSONValue {
        yaml("{apiVersion: example.com/v1, kind: Widget, metadata: {name: w, namespace: ns}, spec: {size: \(size)}, status: {readyCount: \(ready)}}")
    }

    @Test("the Python example: every operation it declares")
    func pythonExample() async throws {
        let host = try Self.host(Self.examples + "/python-widgets")
        let running = try await Self.started(host)
        defer {
            host.stop()
            running.cancel()
        }
        let plugin = ExternalPlugin(base: GenericPlugin(), host: host)
        let widget = Self.widget(size: 3, ready: 1)
        #expect(plugin.replicas(of: widget) == 3)
        #expect(plugin.setting(replicas: 2, on: widget).integer(at: "spec", "size") == 2)
        #expect(plugin.health(of: widget) == Health(.progressing, "1 of 3 ready"))
        #expect(plugin.health(of: Self.widget(size: 3, ready: 3)) == .healthy)
        #expect(plugin.summary(of: widget) == ["readyCount": 1])
        let members = [
            MemberObjectStatus(cluster: "a", health: .healthy, summary: ["readyCount": 2]),
            MemberObjectStatus(cluster: "b", health: .healthy, summary: ["readyCount": 3]),
        ]
        #expect(plugin.aggregateStatus(of: widget, members: members) == ["readyCount": 5, "clusters": 2])
        #expect(
            plugin.validate(yaml("{apiVersion: example.com/v1, kind: Widget, metadata: {name: w}, spec: {size: -1}}")).map(\.description) == [
                "spec.size: must be a non-negative integer"
            ])
        // The generic behaviour for what it does not declare.
        #expect(plugin.prepareForMember(widget)["status"] == nil)
        let clock = ContinuousClock()
        let elapsed = clock.measure { for _ in 0..<200 { _ = plugin.health(of: widget) } }
        #expect(elapsed < .seconds(20), "200 health calls took \(elapsed)")
    }

    @Test("the compiled example: health, summary and the member copy")
    func compiledExample() async throws {
        let binary = URL(fileURLWithPath: Self.examples).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/debug/tether-example-gadgets").path
        // The example's wrapper runs this very path by default. No setenv: changing the
        // environment while other tests spawn processes crashed Foundation's Process.run.
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build it first: swift build --product tether-example-gadgets")
        let host = try Self.host(Self.examples + "/swift-gadgets")
        let running = try await Self.started(host)
        defer {
            host.stop()
            running.cancel()
        }
        let plugin = ExternalPlugin(base: GenericPlugin(), host: host)
        let gadget = yaml("{apiVersion: example.com/v1, kind: Gadget, metadata: {name: g}, spec: {serial: X1, colour: red}, status: {online: true}}")
        #expect(plugin.health(of: gadget) == .healthy)
        #expect(plugin.summary(of: gadget) == ["online": true])
        let copy = plugin.prepareForMember(gadget)
        #expect(copy.value(at: "spec", "serial") == nil && copy.string(at: "spec", "colour") == "red" && copy["status"] == nil)
    }

    /// A plugin in Python that handshakes, then misbehaves as `behaviour` says on every call.
    static func misbehaving(_ behaviour: String, timeout: Int = 300) throws -> (ExternalPluginProcess, ScratchFolder) {
        let folder = try ScratchFolder()
        let directory = folder.path + "/bad"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let manifest = """
            {"name": "bad", "command": ["python3", "bad.py"], "kinds": [{"apiVersion": "example.com/v1", "kind": "Widget"}],
             "operations": ["health", "replicas"], "timeoutMilliseconds": \(timeout)}
            """
        try manifest.write(toFile: directory + "/plugin.json", atomically: true, encoding: .utf8)
        let script = """
            import json, struct, sys, time
            stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
            def frame():
                header = stdin.read(4)
                if len(header) < 4: sys.exit(0)
                return json.loads(stdin.read(struct.unpack(">I", header)[0]))
            def send(value):
                body = json.dumps(value).encode(); stdout.write(struct.pack(">I", len(body)) + body); stdout.flush()
            hello = frame()
            send({"id": hello["id"], "result": {"version": 1, "name": "bad", "kinds": [{"apiVersion": "example.com/v1", "kind": "Widget"}], "operations": ["health"]}})
            while True:
                request = frame()
                \(behaviour)
            """
        try script.write(toFile: directory + "/bad.py", atomically: true, encoding: .utf8)
        return (try host(directory), folder)
    }

    @Test(
        "a plugin that crashes, never answers, or answers garbage: generic behaviour with the reason, no caller held past the deadline, restarted",
        arguments: [
            ("crash", "sys.exit(3)"),
            ("silence", "time.sleep(3600)"),
            ("garbage", "stdout.write(b'\\\\xff\\\\xff\\\\xff\\\\xff'); stdout.flush()"),
            ("wrong type", "send({\"id\": request[\"id\"], \"result\": {\"state\": \"Splendid\"}})"),
        ])
    func misbehaviour(name: String, behaviour: String) async throws {
        let (host, folder) = try Self.misbehaving(behaviour)
        let running = try await Self.started(host)
        defer {
            host.stop()
            running.cancel()
            _ = folder
        }
        let plugin = ExternalPlugin(base: GenericPlugin(), host: host)
        let widget = yaml("{apiVersion: example.com/v1, kind: Widget, metadata: {name: w}, status: {conditions: [{type: Ready, status: 'True'}]}}")
        let clock = ContinuousClock()
        var health = Health.healthy
        let first = clock.measure { health = plugin.health(of: widget) }
        // The generic behaviour (Ready=True: healthy) with the plugin's trouble in the reason.
        #expect(health.state == .healthy && health.reason.contains("plugin bad unavailable"), "\(name): \(health)")
        // The deadline is 300 ms; the bound leaves room for a loaded machine.
        #expect(first < .seconds(5), "\(name): the first call took \(first)")
        // While it is down every call falls back at once.
        let more = clock.measure { for _ in 0..<50 { _ = plugin.health(of: widget) } }
        #expect(more < .seconds(5), "\(name): 50 calls took \(more)")
        if name != "wrong type" {
            #expect(host.unavailability != nil)
            // Started again with backoff: up (handshake answered) again, within 30 s on a loaded machine
            // (a Python interpreter's start alone took over 10 s with eight suites running beside it).
            #expect(await host.waitUntilReady(within: .seconds(30)), "\(name): not restarted")
            #expect(host.starts >= 2, "\(name): not restarted")
        }
    }
}

/// A temporary folder removed when released.
final class ScratchFolder: Sendable {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "tether-plugin-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
