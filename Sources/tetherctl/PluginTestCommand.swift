import ArgumentParser
import BuiltinPlugins
import Foundation
import NIOHTTP1
import TetherJSON
import TetherLua
import TetherModel
import TetherPlugin
import TetherSecurity

struct PluginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugin",
        abstract: "Work with resource-kind plugins and interpreter customizations.",
        subcommands: [PluginTestCommand.self]
    )
}

/// Runs a customization's scripts, or a compiled-in plugin, through their operations and checks
/// what comes back: Karmada's test files, types, determinism, the replica round trip, inputs left
/// unchanged, and the time per call.
struct PluginTestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Check a Lua customization or a compiled-in plugin against test cases and the interface's rules.",
        discussion: """
            PATH is a ResourceInterpreterCustomization file, or a directory in Karmada's layout: a \
            customizations.yaml with testdata/*-test.yaml cases (name, operation, desiredObj, observedObj, \
            statusItems, inputReplicas, output) and an optional customizations_tests.yaml; a directory \
            without customizations.yaml is searched for such directories (a whole resourcecustomizations/ \
            tree). Outputs are compared as subsets: every field a case expects must be in the result.

            --kind group/version/Kind with --sample FILE runs the compiled-in plugin of that kind instead.

            --crd FILE makes an object of the definition's kind from its schema (defaults, enums, the \
            least values its bounds allow, strings of its formats and patterns; held to its own \
            validation) and runs the operations on it as on a --sample. With --at-hub, the definition \
            of the customization's target kind is read from the hub when it serves one.

            Exit status: 0 when every check passes, 1 when one fails, 64 for a usage error.
            """
    )

    @Argument(help: "A customization file, a Karmada customization directory, or a tree of them.")
    var paths: [String] = []

    @Option(name: .long, help: "A compiled-in kind to check instead, as group/version/Kind (apps/v1/Deployment; core: /v1/Service).")
    var kind: String?

    @Option(name: .long, help: "An out-of-process plugin's directory (with plugin.json) to check instead; started, checked, stopped.")
    var plugin: String?

    @Option(name: .long, help: "An object of --kind (or of the --plugin's kinds) to run the plugin's operations on; repeatable.")
    var sample: [String] = []

    @Option(name: .long, help: "A CustomResourceDefinition file: an object of its kind is made from its schema and checked on; repeatable.")
    var crd: [String] = []

    @Option(name: .long, help: "A ResourceInterpreterCustomization at the running hub to check, by name (with --dir or --hub).")
    var atHub: String?

    @Option(name: .long, help: "The federation directory, for --at-hub (the admin certificate, the hub's port).")
    var dir: String = "."

    @Option(name: .long, help: "The hub's API for --at-hub, https://HOST:PORT (default: from --dir).")
    var hub: String?

    @Option(name: .long, help: "A folder of Karmada test files (*-test.yaml) to run an --at-hub customization against.")
    var tests: String?

    @Option(name: .long, help: "Calls per operation when timing it.")
    var repeats: Int = 20

    @Option(name: .long, help: "text or json.")
    var output: OutputFormat = .text

    func validate() throws {
        if kind == nil, plugin == nil, atHub == nil, paths.isEmpty {
            throw ValidationError("name a customization file or directory, --at-hub NAME, or --kind or --plugin with --sample")
        }
        if kind != nil, sample.isEmpty { throw ValidationError("--kind needs at least one --sample object to run on") }
        if plugin != nil, sample.isEmpty, crd.isEmpty {
            throw ValidationError("--plugin needs at least one --sample object, or a --crd to make one from, to run on")
        }
        if repeats < 1 || repeats > 10_000 { throw ValidationError("--repeats must be between 1 and 10000") }
    }

    func run() async throws {
        var reports: [ConformanceReport] = []
        var samples = try sample.map(Self.readObject)
        var generated = ConformanceReport(subject: "objects made from definitions", target: "--crd", checks: [])
        for file in crd { samples += Self.generatedSamples(from: try Self.readObject(file), source: file, into: &generated) }
        if let kind {
            reports.append(try PluginConformance.compiled(kind: kind, samples: samples, repeats: repeats))
        }
        if let plugin {
            reports.append(try await PluginConformance.external(directory: plugin, samples: samples, repeats: repeats))
        }
        if let atHub {
            let api = try HubAPI(directory: FederationDirectory(path: dir), hub: hub)
            let (status, object) = try await api.send(.GET, "/apis/config.karmada.io/v1alpha1/resourceinterpretercustomizations/\(atHub)")
            let definitions = try? await api.send(.GET, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
            await api.shutdown()
            guard status == 200 else {
                throw ValidationError(
                    "the hub has no ResourceInterpreterCustomization \(atHub) (HTTP \(status)): \(object["message"]?.stringValue ?? "")")
            }
            // The definition of its target kind, when the hub serves one: an object made from it is checked on too.
            let target = object.value(at: "spec", "target")
            let group = target?["apiVersion"]?.stringValue.map { $0.split(separator: "/").dropLast().joined(separator: "/") }
            for definition in definitions?.1["items"]?.arrayElements ?? []
            where definition.string(at: "spec", "group") == group && definition.string(at: "spec", "names", "kind") == target?["kind"]?.stringValue {
                samples += Self.generatedSamples(from: definition, source: "the hub", into: &generated)
            }
            let folder = NSTemporaryDirectory() + "tetherctl-plugin-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let file = folder + "/customization.json"
            try Data(try object.serialized()).write(to: URL(fileURLWithPath: file))
            let testFiles =
                try tests.map { folder in
                    try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".yaml") }.sorted()
                        .map { (folder as NSString).appendingPathComponent($0) }
                } ?? []
            let layout = CustomizationLayout(customization: file, testFiles: testFiles, legacyTests: nil)
            reports.append(try CustomizationConformance(layout: layout, repeats: repeats, samples: samples).run())
        }
        for path in paths {
            for directory in try CustomizationLayout.find(path) {
                reports.append(try CustomizationConformance(layout: directory, repeats: repeats, samples: samples).run())
            }
        }
        if !generated.checks.isEmpty { reports.insert(generated, at: 0) }
        let failed = reports.reduce(0) { $0 + $1.checks.filter { !$0.passed }.count }
        switch output {
        case .json: try printJSON(reports)
        case .text: for report in reports { print(report.text) }
        }
        if output == .text {
            let passed = reports.reduce(0) { $0 + $1.checks.filter(\.passed).count }
            print("\(passed) passed, \(failed) failed")
        }
        if failed > 0 { throw ExitCode(1) }
    }

    /// The object made from `definition`'s schema (none when it cannot be made), and a check saying which.
    static func generatedSamples(from definition: JSONValue, source: String, into report: inout ConformanceReport) -> [JSONValue] {
        let name = "\(definition.name ?? "definition") (\(source))"
        do {
            let parsed = try CustomResourceDefinition(parsing: definition)
            let made = try parsed.sample()
            report.checks.append(ConformanceCheck(operation: "generate", name: "\(parsed.kind) from \(name)", passed: true))
            return [made]
        } catch let error as DefinitionProblems {
            let problems = error.problems.prefix(3).map(\.description).joined(separator: "; ")
            report.checks.append(ConformanceCheck(operation: "generate", name: name, passed: false, problem: "not a valid definition: \(problems)"))
        } catch {
            report.checks.append(ConformanceCheck(operation: "generate", name: name, passed: false, problem: "\(error)"))
        }
        return []
    }

    static func readObject(_ path: String) throws -> JSONValue {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ValidationError("cannot read \(path)") }
        do {
            return try YAMLDocument.decode(text)
        } catch {
            throw ValidationError("\(path): \(error.description)")
        }
    }
}

/// What one check found.
struct ConformanceCheck: Codable {
    var operation: String
    var name: String
    var passed: Bool
    var problem: String?
    var microsecondsPerCall: Double?

    var text: String {
        let timing = microsecondsPerCall.map { String(format: "  %.1f µs/call", $0) } ?? ""
        return "  \(passed ? "PASS" : "FAIL")  \(operation)  \(name)\(timing)\(problem.map { "\n        \($0)" } ?? "")"
    }
}

struct ConformanceReport: Codable {
    var subject: String
    var target: String
    var checks: [ConformanceCheck]

    var text: String { (["\(subject) (\(target))"] + checks.map(\.text)).joined(separator: "\n") }
}

/// Where a customization and its tests are.
struct CustomizationLayout {
    var customization: String
    var testFiles: [String]
    var legacyTests: String?

    static func find(_ path: String) throws -> [CustomizationLayout] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw ValidationError("\(path) does not exist") }
        guard isDirectory.boolValue else { return [CustomizationLayout(customization: path, testFiles: [], legacyTests: nil)] }
        let url = URL(fileURLWithPath: path)
        let file = url.appendingPathComponent("customizations.yaml").path
        if FileManager.default.fileExists(atPath: file) {
            let testdata = url.appendingPathComponent("testdata")
            let names = (try? FileManager.default.contentsOfDirectory(atPath: testdata.path)) ?? []
            let tests = names.filter { $0.hasSuffix("-test.yaml") || $0.hasSuffix("_test.yaml") }.sorted().map {
                testdata.appendingPathComponent($0).path
            }
            let legacy = url.appendingPathComponent("customizations_tests.yaml").path
            return [
                CustomizationLayout(customization: file, testFiles: tests, legacyTests: FileManager.default.fileExists(atPath: legacy) ? legacy : nil)
            ]
        }
        var found: [CustomizationLayout] = []
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() {
            let child = url.appendingPathComponent(name).path
            var childIsDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: child, isDirectory: &childIsDirectory), childIsDirectory.boolValue {
                found += try find(child)
            }
        }
        if found.isEmpty { throw ValidationError("\(path) holds no customizations.yaml") }
        return found
    }
}
