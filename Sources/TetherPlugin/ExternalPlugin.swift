import Foundation
import Synchronization
import TetherJSON
import TetherModel

/// `plugin.json` in a directory of `--plugin-dir`: an executable that handles some kinds.
public struct ExternalPluginManifest: Codable, Sendable {
    public struct Kind: Codable, Sendable, Hashable {
        public var apiVersion: String
        public var kind: String
    }

    public var name: String
    /// The program and its arguments; a relative program is found in the plugin's directory.
    public var command: [String]
    public var kinds: [Kind]
    /// Of ``ExternalPlugin/operations``; an operation not listed keeps the built-in behaviour.
    public var operations: [String]
    /// Per call; 1000 when absent.
    public var timeoutMilliseconds: Int?

    /// Every manifest under `directory` (`*/plugin.json`), in name order, or why one is wrong.
    public static func load(from directory: String) throws(ExternalPluginError) -> [(manifest: ExternalPluginManifest, directory: String)] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
            throw ExternalPluginError("cannot read the plugin directory \(directory)")
        }
        var found: [(ExternalPluginManifest, String)] = []
        for name in names.sorted() {
            let folder = (directory as NSString).appendingPathComponent(name)
            let file = (folder as NSString).appendingPathComponent("plugin.json")
            guard FileManager.default.fileExists(atPath: file) else { continue }
            guard let data = FileManager.default.contents(atPath: file), data.count < 64 * 1024 else {
                throw ExternalPluginError("\(file): cannot read it (or it is over 64 KiB)")
            }
            let manifest: ExternalPluginManifest
            do {
                manifest = try JSONDecoder().decode(ExternalPluginManifest.self, from: data)
            } catch {
                throw ExternalPluginError("\(file): not a plugin manifest (name, command, kinds, operations): \(error)")
            }
            if manifest.command.isEmpty { throw ExternalPluginError("\(file): command is empty") }
            let unknown = Set(manifest.operations).subtracting(ExternalPlugin.operations)
            if !unknown.isEmpty {
                throw ExternalPluginError(
                    "\(file): unknown operations \(unknown.sorted()); known: \(ExternalPlugin.operations.sorted().joined(separator: ", "))")
            }
            found.append((manifest, folder))
        }
        return found
    }
}

public struct ExternalPluginError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A kind's behaviour with an out-of-process plugin in front: each operation the plugin
/// declares goes to it; the rest, and every call while it is down, is the base plugin's.
public struct ExternalPlugin: ResourcePlugin {
    public static let operations: Set<String> = [
        "validate", "normalize", "replicas", "setReplicas", "prepare", "health", "summary", "aggregateStatus",
    ]

    public let base: any ResourcePlugin
    public let host: ExternalPluginProcess
    private let declared: Set<String>

    public init(base: any ResourcePlugin, host: ExternalPluginProcess) {
        self.base = base
        self.host = host
        self.declared = Set(host.manifest.operations)
    }

    public var name: String { "\(base.name)+\(host.manifest.name)" }
    public var kinds: [KindDescriptor] { base.kinds }

    private func ask(_ operation: String, _ fields: [String: JSONValue]) -> JSONValue? {
        guard declared.contains(operation), case .success(let value) = host.call(operation, fields) else { return nil }
        return value
    }

    public func validate(_ object: JSONValue) -> [ValidationProblem] {
        let problems = base.validate(object)
        guard let answer = ask("validate", ["object": object]) else { return problems }
        return problems
            + answer.arrayElements.compactMap { problem in
                problem["message"]?.stringValue.map { ValidationProblem(field: problem["field"]?.stringValue ?? "<root>", $0) }
            }
    }

    public func normalizeOnWrite(_ object: JSONValue) -> JSONValue {
        guard let answer = ask("normalize", ["object": base.normalizeOnWrite(object)]), case .object = answer else {
            return base.normalizeOnWrite(object)
        }
        return answer
    }

    public func replicas(of object: JSONValue) -> Int64? {
        guard declared.contains("replicas") else { return base.replicas(of: object) }
        guard let answer = ask("replicas", ["object": object]) else { return base.replicas(of: object) }
        return answer.integerValue.map { max(0, $0) }
    }

    public func setting(replicas count: Int64, on object: JSONValue) -> JSONValue {
        guard let answer = ask("setReplicas", ["object": object, "replicas": .integer(count)]), case .object = answer else {
            return base.setting(replicas: count, on: object)
        }
        return answer
    }

    public func prepareForMember(_ object: JSONValue) -> JSONValue {
        guard let answer = ask("prepare", ["object": object]), case .object = answer else { return base.prepareForMember(object) }
        return answer
    }

    /// The plugin's health; while it is down, the built-in health with why in its reason.
    public func health(of live: JSONValue) -> Health {
        guard declared.contains("health") else { return base.health(of: live) }
        switch host.call("health", ["object": live]) {
        case .success(let answer):
            guard let state = answer["state"]?.stringValue.flatMap(HealthState.init(rawValue:)) else {
                return fallback(live, "its health answer has no state (Healthy, Progressing, Degraded, Unknown)")
            }
            return Health(state, answer["reason"]?.stringValue ?? "")
        case .failure(let error):
            return fallback(live, error.description)
        }
    }

    private func fallback(_ live: JSONValue, _ why: String) -> Health {
        let generic = base.health(of: live)
        let reason = "plugin \(host.manifest.name) unavailable (\(why)); built-in health used" + (generic.reason.isEmpty ? "" : ": \(generic.reason)")
        return Health(generic.state, String(reason.prefix(900)))
    }

    public func summary(of live: JSONValue) -> [String: JSONValue] {
        guard let answer = ask("summary", ["object": live]), case .object(let fields) = answer else { return base.summary(of: live) }
        return fields
    }

    public func aggregateStatus(of object: JSONValue, members: [MemberObjectStatus]) -> JSONValue? {
        let items: [JSONValue] = members.map { member in
            ["cluster": .string(member.cluster), "health": .string(member.health.state.rawValue), "summary": .object(member.summary)]
        }
        guard let answer = ask("aggregateStatus", ["object": object, "members": .array(items)]) else {
            return base.aggregateStatus(of: object, members: members)
        }
        if case .null = answer { return nil }
        return answer
    }

    public func retain(desired: JSONValue, observed: JSONValue) -> JSONValue { base.retain(desired: desired, observed: observed) }
    public func dependencies(of object: JSONValue) -> [ObjectReference] { base.dependencies(of: object) }
    public func applyPhase(of kind: KindDescriptor) -> ApplyPhase { base.applyPhase(of: kind) }
    public func propagates(_ kind: KindDescriptor) -> Bool { base.propagates(kind) }
    public func allowedByDefault(_ kind: KindDescriptor) -> Bool { base.allowedByDefault(kind) }
}

extension KindRegistry {
    /// `plugins` with out-of-process plugins in front of the kinds they declare and interpreter
    /// customizations in front of those (the first by name per kind): Lua, then out-of-process,
    /// then Swift, as DESIGN.md section 8 orders them.
    public static func layered(
        plugins: [any ResourcePlugin], external: [ExternalPluginProcess] = [], customizations: [InterpreterCustomization] = [],
        failures: InterpreterFailures = InterpreterFailures()
    ) -> KindRegistry {
        let plain = KindRegistry(plugins: plugins)
        var overrides: [String: any ResourcePlugin] = [:]
        for host in external {
            for kind in host.manifest.kinds where overrides["\(kind.apiVersion)/\(kind.kind)"] == nil {
                overrides["\(kind.apiVersion)/\(kind.kind)"] = ExternalPlugin(
                    base: plain.basePlugin(apiVersion: kind.apiVersion, kind: kind.kind), host: host)
            }
        }
        var interpreted: Set<String> = []
        for customization in customizations.sorted(by: { $0.name < $1.name }) where interpreted.insert(customization.targetKey).inserted {
            let base =
                overrides[customization.targetKey] ?? plain.basePlugin(apiVersion: customization.targetAPIVersion, kind: customization.targetKind)
            overrides[customization.targetKey] = InterpretedPlugin(base: base, customization: customization, failures: failures)
        }
        return overrides.isEmpty ? plain : KindRegistry(plugins: plugins, overrides: overrides)
    }
}
