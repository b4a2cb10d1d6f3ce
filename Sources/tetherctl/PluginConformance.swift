import ArgumentParser
import BuiltinPlugins
import Foundation
import NIOHTTP1
import TetherJSON
import TetherLua
import TetherModel
import TetherPlugin
import TetherSecurity

/// Karmada's test operations and the customization each runs.
enum TestOperation: String {
    case interpretReplica = "InterpretReplica"
    case reviseReplica = "ReviseReplica"
    case retain = "Retain"
    case interpretStatus = "InterpretStatus"
    case aggregateStatus = "AggregateStatus"
    case interpretHealth = "InterpretHealth"
    case interpretDependency = "InterpretDependency"

    var customization: InterpreterCustomization.Operation {
        switch self {
        case .interpretReplica: .replicaResource
        case .reviseReplica: .replicaRevision
        case .retain: .retention
        case .interpretStatus: .statusReflection
        case .aggregateStatus: .statusAggregation
        case .interpretHealth: .healthInterpretation
        case .interpretDependency: .dependencyInterpretation
        }
    }
}

struct CustomizationConformance {
    let layout: CustomizationLayout
    let repeats: Int
    /// Objects (`--sample`) every scripted operation also runs on, checked for type and determinism.
    var samples: [JSONValue] = []

    func run() throws -> ConformanceReport {
        let object = try PluginTestCommand.readObject(layout.customization)
        let customization: InterpreterCustomization
        do {
            customization = try InterpreterCustomization(parsing: object)
        } catch {
            return ConformanceReport(
                subject: "customization \(object.name ?? layout.customization)", target: layout.customization,
                checks: error.problems.map { ConformanceCheck(operation: "compile", name: $0.field, passed: false, problem: $0.message) })
        }
        var checks: [ConformanceCheck] = []
        var samples: [JSONValue] = []
        for file in layout.testFiles {
            let text = try String(contentsOfFile: file, encoding: .utf8)
            let cases: [JSONValue]
            do {
                cases = try YAMLDocument.decodeAll(text)
            } catch {
                checks.append(ConformanceCheck(operation: "read", name: file, passed: false, problem: error.description))
                continue
            }
            for testCase in cases {
                let check = run(testCase, customization, file: file)
                checks.append(check)
                for key in ["desiredObj", "observedObj"] { if let sample = testCase[key] { samples.append(sample) } }
            }
        }
        if let legacy = layout.legacyTests { checks += legacyChecks(legacy, customization, samples: &samples) }
        for (index, sample) in self.samples.enumerated() where sample.kind == customization.targetKind {
            samples.append(sample)
            for operation in [
                TestOperation.interpretReplica, .reviseReplica, .retain, .interpretStatus, .aggregateStatus, .interpretHealth, .interpretDependency,
            ]
            where customization.scripts[operation.customization] != nil {
                let testCase: JSONValue = [
                    "name": .string("sample \(index + 1) (\(sample.name ?? "unnamed"))"), "operation": .string(operation.rawValue),
                    "desiredObj": sample, "observedObj": sample, "inputReplicas": 2, "output": .null,
                ]
                checks.append(run(testCase, customization, file: "--sample"))
            }
        }
        checks += rules(customization, samples: samples)
        let target = "\(customization.targetAPIVersion) \(customization.targetKind)"
        return ConformanceReport(subject: "customization \(customization.name)", target: target, checks: checks)
    }

    /// One Karmada test case: the operation on its inputs, the result against `output`.
    private func run(_ testCase: JSONValue, _ customization: InterpreterCustomization, file: String) -> ConformanceCheck {
        let name = testCase["name"]?.stringValue ?? (file as NSString).lastPathComponent
        guard let operationName = testCase["operation"]?.stringValue, let operation = TestOperation(rawValue: operationName) else {
            return ConformanceCheck(
                operation: testCase["operation"]?.stringValue ?? "?", name: name, passed: false, problem: "unknown operation in \(file)")
        }
        guard let script = customization.scripts[operation.customization] else {
            return ConformanceCheck(
                operation: operationName, name: name, passed: false,
                problem: "the customization has no \(operation.customization.rawValue) script for this case")
        }
        let expected = testCase["output"] ?? .null
        do {
            let (results, micros) = try timed(script, operation, testCase)
            let problem = Self.compare(operation, results: results, expected: expected, testCase: testCase)
            return ConformanceCheck(operation: operationName, name: name, passed: problem == nil, problem: problem, microsecondsPerCall: micros)
        } catch {
            return ConformanceCheck(operation: operationName, name: name, passed: false, problem: "\(error)")
        }
    }

    /// The arguments an operation takes from a test case.
    static func arguments(_ operation: TestOperation, _ testCase: JSONValue) -> (arguments: [JSONValue], results: Int, shapes: [JSONValue?]) {
        let desired = testCase["desiredObj"] ?? testCase["observedObj"] ?? .object([:])
        let observed = testCase["observedObj"] ?? testCase["desiredObj"] ?? .object([:])
        switch operation {
        case .interpretReplica: return ([desired], 2, [])
        case .reviseReplica:
            let replicas = testCase["inputReplicas"] ?? testCase["desiredReplicas"] ?? .integer(1)
            return ([desired, replicas], 1, [desired])
        case .retain: return ([desired, observed], 1, [desired])
        case .interpretStatus: return ([observed], 1, [observed["status"]])
        case .aggregateStatus: return ([desired, testCase["statusItems"] ?? .array([])], 1, [desired])
        case .interpretHealth: return ([observed], 1, [])
        case .interpretDependency: return ([desired], 1, [.array([])])
        }
    }

    /// The results of one call, checked for determinism over `repeats` calls, and the median time.
    private func timed(_ script: LuaScript, _ operation: TestOperation, _ testCase: JSONValue) throws -> ([JSONValue], Double) {
        let (arguments, results, shapes) = Self.arguments(operation, testCase)
        let before = arguments
        var durations: [Duration] = []
        var first: [JSONValue]?
        let clock = ContinuousClock()
        for _ in 0..<repeats {
            var values: [JSONValue] = []
            let elapsed = try clock.measure {
                values = try script.call(operation.customization.function, arguments, results: results, shapes: shapes)
            }
            durations.append(elapsed)
            if let first, first != values {
                throw ConformanceFailure("not deterministic: the same input gave \(Self.show(first[0])) then \(Self.show(values[0]))")
            }
            first = first ?? values
        }
        guard arguments == before else { throw ConformanceFailure("the call changed its inputs") }
        let median = durations.sorted()[durations.count / 2]
        let (seconds, attoseconds) = median.components
        return (first ?? [], Double(seconds) * 1e6 + Double(attoseconds) / 1e12)
    }

    /// Why `results` do not match a case's `output`, or nil.
    static func compare(_ operation: TestOperation, results: [JSONValue], expected: JSONValue, testCase: JSONValue) -> String? {
        let result = results.first ?? .null
        switch operation {
        case .interpretReplica:
            guard let replicas = result.integerValue, replicas >= 0 else { return "GetReplicas returned \(show(result)), not a replica count" }
            if let want = expected["replica"], want.integerValue != replicas { return "replica is \(replicas), expected \(show(want))" }
            if let want = expected["requires"], !contains(want, in: results.count > 1 ? results[1] : .null) {
                return "requires is \(show(results.count > 1 ? results[1] : .null)), expected it to contain \(show(want))"
            }
        case .interpretHealth:
            guard case .bool(let healthy) = result else { return "InterpretHealth returned \(show(result)), not true or false" }
            if let want = expected["healthy"], want != .bool(healthy) { return "healthy is \(healthy), expected \(show(want))" }
        case .interpretStatus:
            if let want = expected["status"], !contains(want, in: result) { return "status is \(show(result)), expected it to contain \(show(want))" }
        case .aggregateStatus:
            guard case .object = result else { return "AggregateStatus returned \(show(result)), not the object" }
            if let want = expected["aggregatedStatus"], !contains(want, in: result) {
                return "the aggregated object is \(show(result)), expected it to contain \(show(want))"
            }
        case .reviseReplica, .retain:
            guard case .object = result else { return "\(operation.rawValue) returned \(show(result)), not the object" }
            let want = expected["retained"] ?? expected["revised"] ?? expected
            if want != .null, !contains(want, in: result) { return "the object is \(show(result)), expected it to contain \(show(want))" }
        case .interpretDependency:
            guard case .array(let found) = result else { return "GetDependencies returned \(show(result)), not a list" }
            for dependency in found where dependency["kind"]?.stringValue == nil || dependency["name"]?.stringValue == nil {
                return "a dependency without kind or name: \(show(dependency))"
            }
            if case .array(let wanted)? = expected["dependencies"] {
                let missing = wanted.filter { want in !found.contains { contains(want, in: $0) } }
                if !missing.isEmpty || found.count != wanted.count {
                    return "dependencies are \(show(result)), expected \(show(.array(wanted)))"
                }
            }
        }
        return nil
    }

    /// Karmada's older customizations_tests.yaml: inputs by path, no expected output; each run
    /// is checked for the types its operation must return.
    private func legacyChecks(_ path: String, _ customization: InterpreterCustomization, samples: inout [JSONValue]) -> [ConformanceCheck] {
        let directory = (path as NSString).deletingLastPathComponent
        guard let text = try? String(contentsOfFile: path, encoding: .utf8), let document = try? YAMLDocument.decode(text) else {
            return [ConformanceCheck(operation: "read", name: path, passed: false, problem: "not a readable YAML document")]
        }
        return document["tests"]?.arrayElements.enumerated().map { index, test -> ConformanceCheck in
            let operationName = test["operation"]?.stringValue ?? "?"
            var testCase: JSONValue = ["operation": .string(operationName), "output": .null]
            for (key, field) in [("desiredInputPath", "desiredObj"), ("observedInputPath", "observedObj"), ("statusInputPath", "statusItems")] {
                guard let relative = test[key]?.stringValue else { continue }
                let file = (directory as NSString).appendingPathComponent(relative)
                guard let contents = try? String(contentsOfFile: file, encoding: .utf8), let value = try? YAMLDocument.decode(contents) else {
                    return ConformanceCheck(
                        operation: operationName, name: "customizations_tests.yaml #\(index + 1)", passed: false, problem: "cannot read \(file)")
                }
                testCase[member: field] = value
                if field != "statusItems" { samples.append(value) }
            }
            if let replicas = test["desiredReplicas"] { testCase[member: "inputReplicas"] = replicas }
            var check = run(testCase, customization, file: path)
            check.name = "customizations_tests.yaml #\(index + 1)"
            return check
        } ?? []
    }

    /// The interface's rules on the samples the cases brought: the replica round trip.
    private func rules(_ customization: InterpreterCustomization, samples: [JSONValue]) -> [ConformanceCheck] {
        guard let get = customization.scripts[.replicaResource], let revise = customization.scripts[.replicaRevision],
            let sample = samples.first(where: { $0.kind == customization.targetKind })
        else { return [] }
        for count in [0, 1, 3, 7] {
            do {
                let revised = try revise.call("ReviseReplica", [sample, .integer(Int64(count))], results: 1, shapes: [sample])[0]
                let read = try get.call("GetReplicas", [revised], results: 2)[0]
                guard read.integerValue == Int64(count) else {
                    return [
                        ConformanceCheck(
                            operation: "replica round trip", name: "GetReplicas(ReviseReplica(obj, \(count)))", passed: false,
                            problem: "read back \(Self.show(read)), expected \(count)")
                    ]
                }
            } catch {
                return [ConformanceCheck(operation: "replica round trip", name: "ReviseReplica then GetReplicas", passed: false, problem: "\(error)")]
            }
        }
        return [ConformanceCheck(operation: "replica round trip", name: "GetReplicas(ReviseReplica(obj, n)) = n for n in 0, 1, 3, 7", passed: true)]
    }

    /// Whether every field of `expected` is in `actual` with the same value (numbers by value).
    static func contains(_ expected: JSONValue, in actual: JSONValue) -> Bool {
        switch (expected, actual) {
        case (.object(let want), .object(let have)):
            return want.allSatisfy { key, value in
                if case .null = value { return have[key] == nil || have[key] == .null }
                return have[key].map { contains(value, in: $0) } ?? false
            }
        case (.array(let want), .array(let have)):
            return want.count == have.count && zip(want, have).allSatisfy { contains($0, in: $1) }
        case (.integer(let want), .double(let have)): return Double(want) == have
        case (.double(let want), .integer(let have)): return want == Double(have)
        default: return expected == actual
        }
    }

    static func show(_ value: JSONValue) -> String {
        let text = (try? value.serializedText()) ?? "?"
        return text.count > 300 ? String(text.prefix(300)) + "…" : text
    }
}

struct ConformanceFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A compiled-in plugin through its operations on samples: replicas and their round trip, the
/// member copy, health, summary and aggregate, each checked for type, determinism and inputs left as they were.
enum PluginConformance {
    static func compiled(kind name: String, samples: [JSONValue], repeats: Int) throws -> ConformanceReport {
        let parts = name.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3 else { throw ValidationError("--kind \(name): write group/version/Kind (/v1/Service for the core group)") }
        let apiVersion = parts[0].isEmpty ? parts[1] : "\(parts[0])/\(parts[1])"
        let registry = BuiltinPlugins.hub
        guard registry.kind(apiVersion: apiVersion, kind: parts[2]) != nil else {
            throw ValidationError(
                "--kind \(name): no compiled-in plugin serves it; known: \(registry.kinds.map { "\($0.group)/\($0.version)/\($0.kind)" }.joined(separator: ", "))"
            )
        }
        let plugin = registry.plugin(apiVersion: apiVersion, kind: parts[2])
        return run(plugin, subject: "plugin \(plugin.name)", target: name, kinds: [(apiVersion, parts[2])], samples: samples, repeats: repeats)
    }

    /// An out-of-process plugin, started from its directory for the checks and stopped after.
    static func external(directory: String, samples: [JSONValue], repeats: Int) async throws -> ConformanceReport {
        let parent = (directory as NSString).deletingLastPathComponent
        let path = URL(fileURLWithPath: directory).standardizedFileURL.path
        guard
            let entry = try ExternalPluginManifest.load(from: parent.isEmpty ? "." : parent)
                .first(where: { URL(fileURLWithPath: $0.directory).standardizedFileURL.path == path })
        else { throw ValidationError("\(directory) holds no plugin.json") }
        let host = ExternalPluginProcess(manifest: entry.manifest, directory: entry.directory)
        let running = Task { await host.run() }
        defer {
            host.stop()
            running.cancel()
        }
        _ = await host.waitUntilReady(within: .seconds(10))
        let kinds = entry.manifest.kinds.map { ($0.apiVersion, $0.kind) }
        guard host.unavailability == nil else {
            return ConformanceReport(
                subject: "plugin \(entry.manifest.name)", target: directory,
                checks: [
                    ConformanceCheck(
                        operation: "handshake", name: entry.manifest.command.joined(separator: " "), passed: false, problem: host.unavailability)
                ])
        }
        let plugin = ExternalPlugin(base: GenericPlugin(), host: host)
        var report = run(plugin, subject: "plugin \(entry.manifest.name)", target: directory, kinds: kinds, samples: samples, repeats: repeats)
        // A fallback answers in the built-in behaviour's words: the plugin must not have been down meanwhile.
        if host.starts > 1 || host.unavailability != nil {
            report.checks.append(
                ConformanceCheck(
                    operation: "stability", name: "no restart during the checks", passed: false, problem: host.unavailability ?? "restarted"))
        }
        return report
    }

    static func run(
        _ plugin: any ResourcePlugin, subject: String, target name: String, kinds: [(String, String)], samples: [JSONValue], repeats: Int
    ) -> ConformanceReport {
        var checks: [ConformanceCheck] = []
        for (index, sample) in samples.enumerated() {
            let label = "sample \(index + 1) (\(sample.name ?? "unnamed"))"
            guard kinds.contains(where: { $0.0 == sample.apiVersion && $0.1 == sample.kind }) else {
                checks.append(
                    ConformanceCheck(
                        operation: "sample", name: label, passed: false,
                        problem: "is a \(sample.apiVersion ?? "?") \(sample.kind ?? "?"), not \(name)"))
                continue
            }
            /// Runs `body` (which makes `calls` calls of the plugin) `repeats` times; the time is per call.
            func check(_ operation: String, calls: Int, _ body: () -> String?) {
                let clock = ContinuousClock()
                var problem: String?
                var durations: [Duration] = []
                for _ in 0..<repeats { durations.append(clock.measure { problem = body() }) }
                let median = durations.sorted()[durations.count / 2].components
                checks.append(
                    ConformanceCheck(
                        operation: operation, name: label, passed: problem == nil, problem: problem,
                        microsecondsPerCall: (Double(median.seconds) * 1e6 + Double(median.attoseconds) / 1e12) / Double(calls)))
            }
            let problems = plugin.validate(sample)
            checks.append(
                ConformanceCheck(
                    operation: "validate", name: label, passed: problems.isEmpty,
                    problem: problems.isEmpty ? nil : problems.map(\.description).joined(separator: "; ")))
            // Two reads, then a set and a read for each of four counts, when the kind has replicas.
            check("replicas", calls: plugin.replicas(of: sample) == nil ? 2 : 10) {
                let first = plugin.replicas(of: sample)
                guard first == plugin.replicas(of: sample) else { return "not deterministic" }
                guard let replicas = first else { return nil }
                guard replicas >= 0 else { return "negative replicas \(replicas)" }
                for count: Int64 in [0, 1, 3, 7] where plugin.replicas(of: plugin.setting(replicas: count, on: sample)) != count {
                    return
                        "replicas(setting(\(count))) is \(plugin.replicas(of: plugin.setting(replicas: count, on: sample)).map(String.init) ?? "nil")"
                }
                return nil
            }
            check("prepareForMember", calls: 2) {
                let copy = plugin.prepareForMember(sample)
                guard copy == plugin.prepareForMember(sample) else { return "not deterministic" }
                return copy.apiVersion == sample.apiVersion && copy.kind == sample.kind && copy.name == sample.name
                    ? nil : "the member copy lost its identity"
            }
            let members = [MemberObjectStatus(cluster: "a", health: plugin.health(of: sample), summary: plugin.summary(of: sample))]
            check("health", calls: 2) { plugin.health(of: sample) == plugin.health(of: sample) ? nil : "not deterministic" }
            check("summary", calls: 2) {
                let summary = plugin.summary(of: sample)
                guard summary == plugin.summary(of: sample) else { return "not deterministic" }
                return JSONValue.object(summary).encodedSize() <= 8 * 1024 ? nil : "the summary is over the 8 KiB a report may carry"
            }
            check("aggregateStatus", calls: 2) {
                return plugin.aggregateStatus(of: sample, members: members) == plugin.aggregateStatus(of: sample, members: members)
                    ? nil : "not deterministic"
            }
        }
        return ConformanceReport(subject: subject, target: name, checks: checks)
    }
}
