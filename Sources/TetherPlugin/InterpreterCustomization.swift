import Synchronization
import TetherJSON
import TetherLua
import TetherModel

/// A Karmada `ResourceInterpreterCustomization` (`config.karmada.io/v1alpha1`): Lua scripts
/// that say how to read and change objects of one kind, with Karmada's field and function names.
public struct InterpreterCustomization: Sendable {
    public static let apiVersion = "config.karmada.io/v1alpha1"
    public static let kind = "ResourceInterpreterCustomization"

    /// Each customization and the function its script defines, as Karmada names them.
    public enum Operation: String, Sendable, CaseIterable {
        case retention
        case replicaResource
        case replicaRevision
        case statusReflection
        case statusAggregation
        case healthInterpretation
        case dependencyInterpretation

        public var function: String {
            switch self {
            case .retention: "Retain"
            case .replicaResource: "GetReplicas"
            case .replicaRevision: "ReviseReplica"
            case .statusReflection: "ReflectStatus"
            case .statusAggregation: "AggregateStatus"
            case .healthInterpretation: "InterpretHealth"
            case .dependencyInterpretation: "GetDependencies"
            }
        }
    }

    public let name: String
    public let targetAPIVersion: String
    public let targetKind: String
    public let scripts: [Operation: LuaScript]
    /// The object's resource version when parsed, so an unchanged one is not compiled again.
    public let resourceVersion: UInt64?

    /// Compiles every script of `object`; each problem names its field and the script's line.
    public init(parsing object: JSONValue, limits: LuaLimits = LuaLimits()) throws(DefinitionProblems) {
        var problems: [ValidationProblem] = []
        name = object.name ?? ""
        resourceVersion = object.resourceVersion
        targetAPIVersion = object.string(at: "spec", "target", "apiVersion") ?? ""
        targetKind = object.string(at: "spec", "target", "kind") ?? ""
        if targetAPIVersion.isEmpty { problems.append(ValidationProblem(field: "spec.target.apiVersion", "Required value")) }
        if targetKind.isEmpty { problems.append(ValidationProblem(field: "spec.target.kind", "Required value")) }
        var scripts: [Operation: LuaScript] = [:]
        let customizations = object.value(at: "spec", "customizations") ?? .object([:])
        for key in customizations.objectMembers.keys.sorted() where Operation(rawValue: key) == nil {
            problems.append(
                ValidationProblem(
                    field: "spec.customizations.\(key)",
                    "Unsupported value: supported values: \(Operation.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "))"))
        }
        for operation in Operation.allCases {
            guard let section = customizations[operation.rawValue] else { continue }
            let field = "spec.customizations.\(operation.rawValue).luaScript"
            guard let source = section["luaScript"]?.stringValue, !source.isEmpty else {
                problems.append(ValidationProblem(field: field, "Required value"))
                continue
            }
            do {
                let script = try LuaScript(name: "\(operation.rawValue) of \(name)", source: source, limits: limits)
                guard script.defines(operation.function) else {
                    problems.append(ValidationProblem(field: field, "Invalid value: the script defines no function \(operation.function)"))
                    continue
                }
                scripts[operation] = script
            } catch {
                problems.append(ValidationProblem(field: field, "Invalid value: \(error.message)"))
            }
        }
        guard problems.isEmpty else { throw DefinitionProblems(problems: problems) }
        self.scripts = scripts
    }

    public var targetKey: String { "\(targetAPIVersion)/\(targetKind)" }
}

/// A kind's behaviour with a customization's scripts in front: each operation the
/// customization scripts runs in Lua, the rest (and any script that fails) is the base plugin's.
public struct InterpretedPlugin: ResourcePlugin {
    public let base: any ResourcePlugin
    public let customization: InterpreterCustomization
    /// Told of every script that failed and was replaced by the base behaviour.
    let failures: InterpreterFailures

    public var name: String { "\(base.name)+lua:\(customization.name)" }
    public var kinds: [KindDescriptor] { base.kinds }

    public init(base: any ResourcePlugin, customization: InterpreterCustomization, failures: InterpreterFailures) {
        self.base = base
        self.customization = customization
        self.failures = failures
    }

    /// The script's results, or nil (after reporting why) when it has none or fails.
    private func run(_ operation: InterpreterCustomization.Operation, _ arguments: [JSONValue], results: Int, shapes: [JSONValue?])
        -> [JSONValue]?
    {
        guard let script = customization.scripts[operation] else { return nil }
        do {
            return try script.call(operation.function, arguments, results: results, shapes: shapes)
        } catch {
            failures.report(customization: customization.name, operation: operation, error)
            return nil
        }
    }

    public func validate(_ object: JSONValue) -> [ValidationProblem] { base.validate(object) }
    public func normalizeOnWrite(_ object: JSONValue) -> JSONValue { base.normalizeOnWrite(object) }
    public func prepareForMember(_ object: JSONValue) -> JSONValue { base.prepareForMember(object) }
    public func applyPhase(of kind: KindDescriptor) -> ApplyPhase { base.applyPhase(of: kind) }
    public func propagates(_ kind: KindDescriptor) -> Bool { base.propagates(kind) }
    public func allowedByDefault(_ kind: KindDescriptor) -> Bool { base.allowedByDefault(kind) }

    public func replicas(of object: JSONValue) -> Int64? {
        guard customization.scripts[.replicaResource] != nil else { return base.replicas(of: object) }
        guard let results = run(.replicaResource, [object], results: 2, shapes: []) else { return base.replicas(of: object) }
        return results[0].integerValue.map { max(0, $0) }
    }

    public func setting(replicas count: Int64, on object: JSONValue) -> JSONValue {
        guard let results = run(.replicaRevision, [object, .integer(count)], results: 1, shapes: [object]), case .object = results[0] else {
            return base.setting(replicas: count, on: object)
        }
        return results[0]
    }

    public func health(of live: JSONValue) -> Health {
        guard let results = run(.healthInterpretation, [live], results: 1, shapes: []) else { return base.health(of: live) }
        switch results[0] {
        case .bool(true): return .healthy
        case .bool(false): return Health(.progressing, "not healthy by the InterpretHealth of \(customization.name)")
        default: return base.health(of: live)
        }
    }

    public func summary(of live: JSONValue) -> [String: JSONValue] {
        guard customization.scripts[.statusReflection] != nil else { return base.summary(of: live) }
        guard let results = run(.statusReflection, [live], results: 1, shapes: [live["status"]]) else { return base.summary(of: live) }
        if case .null = results[0] { return [:] }
        return ["status": results[0]]
    }

    /// Karmada's `AggregateStatus(desiredObj, statusItems)`: each item is `{clusterName, status,
    /// applied, health}`; the script returns the object with its status set.
    public func aggregateStatus(of object: JSONValue, members: [MemberObjectStatus]) -> JSONValue? {
        guard customization.scripts[.statusAggregation] != nil else { return base.aggregateStatus(of: object, members: members) }
        let items: [JSONValue] = members.map { member in
            [
                "clusterName": .string(member.cluster), "status": member.summary["status"] ?? .object(member.summary), "applied": true,
                "health": .string(member.health.state == .healthy ? "Healthy" : member.health.state == .unknown ? "Unknown" : "Unhealthy"),
            ]
        }
        guard let results = run(.statusAggregation, [object, .array(items)], results: 1, shapes: [object]) else {
            return base.aggregateStatus(of: object, members: members)
        }
        return results[0]["status"]
    }

    /// Karmada's `Retain(desiredObj, observedObj)`: the object to write, keeping what the member owns.
    public func retain(desired: JSONValue, observed: JSONValue) -> JSONValue {
        guard let results = run(.retention, [desired, observed], results: 1, shapes: [desired]), case .object = results[0] else {
            return base.retain(desired: desired, observed: observed)
        }
        return results[0]
    }

    /// Karmada's `GetDependencies(desiredObj)`: the objects this one needs, `{apiVersion, kind, namespace, name}`.
    public func dependencies(of object: JSONValue) -> [ObjectReference] {
        guard let results = run(.dependencyInterpretation, [object], results: 1, shapes: [.array([])]) else { return base.dependencies(of: object) }
        return results[0].arrayElements.compactMap { item in
            guard let apiVersion = item["apiVersion"]?.stringValue, let kind = item["kind"]?.stringValue, let name = item["name"]?.stringValue else {
                return nil
            }
            return ObjectReference(apiVersion: apiVersion, kind: kind, namespace: item["namespace"]?.stringValue ?? object.namespace, name: name)
        }
    }
}

/// Where failed scripts are reported: the owner (hub, agent) logs them. Each customization and
/// operation is reported once per distinct message, so a script failing on every call is one line.
public final class InterpreterFailures: Sendable {
    private let reported = Mutex<Set<String>>([])
    private let sink: @Sendable (_ customization: String, _ operation: String, _ message: String) -> Void

    public init(_ sink: @escaping @Sendable (_ customization: String, _ operation: String, _ message: String) -> Void = { _, _, _ in }) {
        self.sink = sink
    }

    func report(customization: String, operation: InterpreterCustomization.Operation, _ error: LuaError) {
        let key = "\(customization)/\(operation.rawValue)/\(error.message)"
        guard reported.withLock({ $0.count < 10_000 && $0.insert(key).inserted }) else { return }
        sink(customization, operation.rawValue, error.message)
    }
}

/// The kind ResourceInterpreterCustomization itself, as the hub serves it: cluster-scoped,
/// refused with 422 when a script does not compile or lacks its function.
public struct InterpreterCustomizationPlugin: ResourcePlugin {
    public let name = "interpreters"
    public let kinds: [KindDescriptor] = [Self.customization]

    public init() {}

    public static let customization = KindDescriptor(
        group: "config.karmada.io", version: "v1alpha1", kind: InterpreterCustomization.kind, plural: "resourceinterpretercustomizations",
        namespaced: false, shortNames: ["ric"],
        printerColumns: [
            .text("TARGET-API-VERSION") { $0.string(at: "spec", "target", "apiVersion") ?? "" },
            .text("TARGET-KIND") { $0.string(at: "spec", "target", "kind") ?? "" },
        ],
        hasStatus: false,
        fields: ["spec": .free],
        summary: "ResourceInterpreterCustomization tells how to interpret objects of one kind, in Lua (Karmada's format)."
    )

    public func validate(_ object: JSONValue) -> [ValidationProblem] {
        do {
            _ = try InterpreterCustomization(parsing: object)
            return []
        } catch {
            return error.problems
        }
    }

    /// A customization travels to the agents of the clusters that receive objects of its target
    /// kind, which interpret them with it (health, status reflection, retention); it is never
    /// written to a member.
    public func applyPhase(of kind: KindDescriptor) -> ApplyPhase { .definitions }
}
