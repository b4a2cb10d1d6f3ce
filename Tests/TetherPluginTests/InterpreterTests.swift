import Foundation
import Testing
import TetherJSON
import TetherLua
import TetherModel
import TetherPlugin

/// Lua scripts in their sandbox, and customizations in Karmada's format in front of a kind.
@Suite("Lua interpreters")
struct InterpreterTests {
    /// The instruction budget and the memory ceiling stop these scripts; the time limit is far
    /// beyond them, so a loaded machine cannot make a different limit stop them first.
    static let fast = LuaLimits(instructions: 2_000_000, time: .seconds(60), memoryBytes: 4 << 20)

    @Test("a script that loops forever, one that allocates without bound and one that calls os.exit are stopped and named")
    func hostileScripts() throws {
        let loop = try LuaScript(name: "loop", source: "function F() while true do end end", limits: Self.fast)
        let started = ContinuousClock.now
        #expect {
            _ = try loop.call("F", [], results: 1)
        } throws: { error in
            (error as? LuaError)?.kind == .limit && "\(error)".contains("loop: stopped after 2000000 instructions")
        }
        #expect(ContinuousClock.now - started < .seconds(10))

        // pcall cannot catch the sandbox's stop.
        let sly = try LuaScript(
            name: "sly", source: "function F() while true do pcall(function() while true do end end) end end", limits: Self.fast)
        #expect { _ = try sly.call("F", [], results: 1) } throws: { ($0 as? LuaError)?.kind == .limit }

        // Only the ceiling can stop this one: instructions and time are plentiful, so a loaded machine cannot stop it first.
        let roomy = LuaLimits(instructions: 1_000_000_000, time: .seconds(60), memoryBytes: 4 << 20)
        let hog = try LuaScript(
            name: "hog", source: "function F() local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1024) .. i end return #t end", limits: roomy)
        #expect { _ = try hog.call("F", [], results: 1) } throws: { error in
            (error as? LuaError)?.kind == .limit && "\(error)".contains("memory ceiling")
        }
        let bigString = try LuaScript(name: "rep", source: "function F() return string.rep('x', 1 << 30) end", limits: Self.fast)
        #expect { _ = try bigString.call("F", [], results: 1) } throws: { ($0 as? LuaError)?.kind == .limit }

        let exit = try LuaScript(name: "exit", source: "function F()\n  os.exit(1)\nend", limits: Self.fast)
        #expect { _ = try exit.call("F", [], results: 1) } throws: { error in
            (error as? LuaError)?.kind == .runtime && "\(error)".contains("exit:2:") && "\(error)".contains("'os'")
        }
        // Each stopped script still answers its next call.
        let after = try LuaScript(
            name: "after", source: "n = 0\nfunction F(x) n = n + 1 if x then while true do end end return n end", limits: Self.fast)
        #expect(throws: LuaError.self) { _ = try after.call("F", [true], results: 1) }
        #expect(try after.call("F", [false], results: 1) == [.integer(2)])
    }

    @Test("only the safe libraries: no io, os, debug, load, dofile, bytecode; require knows only kube")
    func sandboxSurface() throws {
        let probe = try LuaScript(
            name: "probe",
            source: """
                function F()
                  return {io = io == nil, os = os == nil, debug = debug == nil, load = load == nil, dofile = dofile == nil,
                          loadfile = loadfile == nil, dump = string.dump == nil, kube = type(require("kube").getPodDependencies) == "function",
                          ok = pcall(require, "io") == false}
                end
                """)
        let result = try probe.call("F", [], results: 1)[0]
        for key in ["io", "os", "debug", "load", "dofile", "loadfile", "dump", "kube", "ok"] { #expect(result[key] == .bool(true), "\(key)") }
        #expect { _ = try LuaScript(name: "syntax", source: "function F(\n  return 1\nend") } throws: { error in
            (error as? LuaError)?.kind == .syntax && "\(error)".hasPrefix("syntax:2:")
        }
        #expect {
            _ = try LuaScript(name: "unknown", source: "local x = require('socket')")
        } throws: { "\($0)".contains("module 'socket' is not available in this sandbox") }
    }

    @Test("values cross both ways: integers stay integers, empty tables take the input's shape, functions are refused")
    func values() throws {
        let echo = try LuaScript(
            name: "echo", source: "function F(o) return o end\nfunction G() return function() end end\nfunction H() local t = {} t.t = t return t end"
        )
        let object: JSONValue = ["a": .integer(3), "b": .double(2.5), "c": "x", "d": .array([]), "e": .object([:]), "f": .array([1, 2]), "g": true]
        #expect(try echo.call("F", [object], results: 1, shapes: [object]) == [object])
        #expect { _ = try echo.call("G", [], results: 1) } throws: { ($0 as? LuaError)?.kind == .result }
        #expect { _ = try echo.call("H", [], results: 1) } throws: { ($0 as? LuaError)?.kind == .result }
        #expect { _ = try echo.call("Missing", [], results: 1) } throws: { ($0 as? LuaError)?.kind == .missingFunction }
    }

    @Test("the kube helpers: pod dependencies, requirements, quantities")
    func kubeHelpers() throws {
        let helpers = try LuaScript(
            name: "helpers",
            source: """
                local kube = require("kube")
                function Deps(t, ns) return kube.getPodDependencies(t, ns) end
                function Req(t) return kube.accuratePodRequirements(t) end
                function Q(q) return kube.getResourceQuantity(q) end
                """)
        let template = yaml(
            """
            spec:
              serviceAccountName: builder
              imagePullSecrets: [{name: registry}]
              volumes: [{name: v, configMap: {name: settings}}, {name: s, secret: {secretName: keys}}, {name: d, persistentVolumeClaim: {claimName: data}}]
              initContainers: [{name: i, resources: {requests: {cpu: 2}}}]
              containers:
              - {name: a, envFrom: [{configMapRef: {name: settings}}], env: [{name: X, valueFrom: {secretKeyRef: {name: token, key: k}}}], resources: {requests: {cpu: 500m, memory: 1Gi}}}
              - {name: b, resources: {requests: {cpu: 250m, memory: 512Mi}}}
              nodeSelector: {zone: a}
            """)
        let dependencies = try helpers.call("Deps", [template, "shop"], results: 1, shapes: [.array([])])[0].arrayElements
        let names = Set(dependencies.map { "\($0["kind"]?.stringValue ?? "")/\($0["name"]?.stringValue ?? "")" })
        #expect(
            names == ["ConfigMap/settings", "Secret/keys", "PersistentVolumeClaim/data", "Secret/token", "Secret/registry", "ServiceAccount/builder"])
        #expect(dependencies.allSatisfy { $0["namespace"] == "shop" && $0["apiVersion"] == "v1" })
        let requirements = try helpers.call("Req", [template], results: 1)[0]
        #expect(requirements["resourceRequest"] == ["cpu": "2000m", "memory": "1610612736"])
        #expect(requirements["nodeClaim"]?["nodeSelector"] == ["zone": "a"])
        #expect(try helpers.call("Q", ["1500m"], results: 1)[0] == .double(1.5))
        #expect(try helpers.call("Q", ["2Ki"], results: 1)[0] == .integer(2048))
    }

    /// The dependencies of a Pod spec are found twice, by the Swift plugins (`PodDependencies`)
    /// and by the Lua `kube` module customizations call; the two must never drift apart.
    @Test("kube.getPodDependencies in Lua finds what PodDependencies finds in Swift, in the same order, for 300 generated Pod specs")
    func podDependenciesAgree() throws {
        let lua = try LuaScript(name: "deps", source: "function Deps(t, ns) return require('kube').getPodDependencies(t, ns) end")
        var seed: UInt64 = 0x5EED
        func pick(_ count: Int) -> Int {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((seed >> 33) % UInt64(count))
        }
        // Names repeat across fields on purpose (duplicates are kept once), and include the empty and default ones.
        let names: [JSONValue] = ["a", "b", "", "default", "settings"]
        func name() -> JSONValue { names[pick(names.count)] }
        func volume() -> JSONValue {
            switch pick(5) {
            case 0: return ["name": "v", "configMap": ["name": name()]]
            case 1: return ["name": "v", "secret": ["secretName": name()]]
            case 2: return ["name": "v", "persistentVolumeClaim": ["claimName": name()]]
            case 3: return ["name": "v", "projected": ["sources": [["configMap": ["name": name()]], ["secret": ["name": name()]]]]]
            default: return ["name": "v", "emptyDir": [:]]
            }
        }
        func container() -> JSONValue {
            var container: JSONValue = ["name": "c", "image": "busybox"]
            if pick(2) == 0 {
                container[member: "env"] = [
                    ["name": "X", "valueFrom": ["configMapKeyRef": ["name": name(), "key": "k"]]],
                    ["name": "Y", "valueFrom": ["secretKeyRef": ["name": name(), "key": "k"]]], ["name": "Z", "value": "plain"],
                ]
            }
            if pick(2) == 0 { container[member: "envFrom"] = [["configMapRef": ["name": name()]], ["secretRef": ["name": name()]]] }
            return container
        }
        for round in 0..<300 {
            var spec: [String: JSONValue] = [:]
            if pick(3) > 0 { spec["volumes"] = .array((0..<pick(4)).map { _ in volume() }) }
            for list in ["initContainers", "containers", "ephemeralContainers"] where pick(3) > 0 {
                spec[list] = .array((0..<(1 + pick(2))).map { _ in container() })
            }
            if pick(3) == 0 { spec["imagePullSecrets"] = [["name": name()]] }
            if pick(2) == 0 { spec["serviceAccountName"] = name() }
            let namespace = round % 2 == 0 ? "shop" : "tools"
            let swift = PodDependencies.of(podSpec: .object(spec), namespace: namespace).map { "\($0.kind)/\($0.namespace ?? "")/\($0.name)" }
            let fromLua = try lua.call("Deps", [["spec": .object(spec)], .string(namespace)], results: 1, shapes: [.array([])])[0]
                .arrayElements.map { "\($0["kind"]?.stringValue ?? "")/\($0["namespace"]?.stringValue ?? "")/\($0["name"]?.stringValue ?? "")" }
            #expect(fromLua == swift, "round \(round): \(spec)")
        }
    }

    static let customization = yaml(
        """
        apiVersion: config.karmada.io/v1alpha1
        kind: ResourceInterpreterCustomization
        metadata: {name: workers, resourceVersion: "5"}
        spec:
          target: {apiVersion: example.com/v1, kind: Worker}
          customizations:
            replicaResource: {luaScript: "function GetReplicas(obj) return obj.spec.size, {} end"}
            replicaRevision: {luaScript: "function ReviseReplica(obj, n) obj.spec.size = n return obj end"}
            healthInterpretation: {luaScript: "function InterpretHealth(o) return o.status ~= nil and o.status.up == o.spec.size end"}
            statusReflection: {luaScript: "function ReflectStatus(o) return {up = o.status.up} end"}
            statusAggregation: {luaScript: "function AggregateStatus(d, items) local up = 0 for _, i in ipairs(items) do up = up + i.status.up end d.status = {up = up} return d end"}
            retention: {luaScript: "function Retain(d, o) d.spec.size = o.spec.size return d end"}
            dependencyInterpretation: {luaScript: "function GetDependencies(d) return {{apiVersion = 'v1', kind = 'Secret', name = d.spec.secret}} end"}
        """)

    @Test("a customization in front of a kind runs every operation; a failing script falls back to the base and is reported once")
    func customizationOperations() throws {
        let customization = try InterpreterCustomization(parsing: Self.customization)
        let reported = Reported()
        let plugin = InterpretedPlugin(
            base: GenericPlugin(), customization: customization, failures: InterpreterFailures { reported.add("\($0) \($1) \($2)") })
        let worker = yaml(
            "{apiVersion: example.com/v1, kind: Worker, metadata: {name: w, namespace: ns}, spec: {size: 6, secret: token}, status: {up: 6}}")
        #expect(plugin.replicas(of: worker) == 6)
        #expect(plugin.setting(replicas: 2, on: worker).integer(at: "spec", "size") == 2)
        #expect(plugin.health(of: worker) == .healthy)
        #expect(plugin.health(of: plugin.setting(replicas: 2, on: worker)).state == .progressing)
        #expect(plugin.summary(of: worker) == ["status": ["up": 6]])
        let members = [
            MemberObjectStatus(cluster: "a", health: .healthy, summary: ["status": ["up": 2]]),
            MemberObjectStatus(cluster: "b", health: .healthy, summary: ["status": ["up": 3]]),
        ]
        #expect(plugin.aggregateStatus(of: worker, members: members) == ["up": 5])
        #expect(plugin.retain(desired: worker, observed: plugin.setting(replicas: 9, on: worker)).integer(at: "spec", "size") == 9)
        #expect(plugin.dependencies(of: worker) == [ObjectReference(apiVersion: "v1", kind: "Secret", namespace: "ns", name: "token")])
        // A script that errors: the base behaviour (generic: no replicas), reported once however often it runs.
        let broken = yaml("{apiVersion: example.com/v1, kind: Worker, metadata: {name: w}, spec: {}}")
        #expect(plugin.summary(of: broken) == [:])
        #expect(plugin.summary(of: broken) == [:])
        #expect(
            reported.lines.count == 1 && reported.lines[0].contains("statusReflection")
                && reported.lines[0].contains("statusReflection of workers:1:"), "\(reported.lines)")
    }

    @Test("a customization is refused with each bad script named by field")
    func customizationRefusals() {
        var object = Self.customization
        object.set("function GetReplicas(obj) return obj.spec.size +", at: ["spec", "customizations", "replicaResource", "luaScript"])
        object.set("function Other() end", at: ["spec", "customizations", "replicaRevision", "luaScript"])
        object.set(nil, at: ["spec", "target", "kind"])
        let problems = InterpreterCustomizationPlugin().validate(object).map(\.description)
        #expect(
            problems.contains { $0.hasPrefix("spec.customizations.replicaResource.luaScript: Invalid value: replicaResource of workers:1:") },
            "\(problems)")
        #expect(
            problems.contains("spec.customizations.replicaRevision.luaScript: Invalid value: the script defines no function ReviseReplica"),
            "\(problems)")
        #expect(problems.contains("spec.target.kind: Required value"), "\(problems)")
    }
}

private final class Reported: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    func add(_ line: String) { lock.withLock { stored.append(line) } }
    var lines: [String] { lock.withLock { stored } }
}
