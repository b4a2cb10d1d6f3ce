import Testing
import TetherJSON
import TetherModel

@Suite("Object limits and Kubernetes name rules")
struct LimitsTests {
    static func nested(_ depth: Int) -> JSONValue {
        var value: JSONValue = "leaf"
        for _ in 0..<depth { value = ["a": value] }
        return value
    }

    @Test("nesting depth counts containers and stops past its bound")
    func depth() {
        #expect(JSONValue.string("x").nestingDepth() == 0)
        #expect(JSONValue.object([:]).nestingDepth() == 1)
        #expect(JSONValue.array([[1], [[2]]]).nestingDepth() == 3)
        #expect(Self.nested(100).nestingDepth() == 100)
        // Past the bound it reports "more", without walking the rest.
        #expect(Self.nested(1_000).nestingDepth(stoppingAfter: 48) == 49)
    }

    @Test("the encoded size is the length of the compact JSON the codec writes")
    func size() throws {
        let samples: [JSONValue] = [
            ["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": "c", "labels": ["a": "b"]], "data": ["k": "line\n\"quoted\"\\ \u{1}"]],
            [1, -2, true, false, .null, "é", ["nested": [[], [:]]]],
            ["n": 9_223_372_036_854_775_807, "m": -9_223_372_036_854_775_808],
        ]
        for sample in samples {
            #expect(sample.encodedSize() == (try sample.serialized()).count, "\(sample)")
        }
    }

    @Test("an object past the depth or the size is a violation of the right kind")
    func violations() {
        let limits = ObjectLimits(maximumBytes: 1_000, maximumDepth: 10)
        #expect(limits.check(Self.nested(10)) == nil)
        #expect(limits.check(Self.nested(11))?.code == .tooDeep)
        let big: JSONValue = ["data": .string(String(repeating: "x", count: 2_000))]
        #expect(limits.check(big)?.code == .tooLarge)
        #expect(limits.check(big, limit: 4_000) == nil)
        #expect(limits.check(["a": 1], encodedBytes: 5_000)?.code == .tooLarge)
    }

    @Test(
        "names follow the kind's rule",
        arguments: [
            ("web", KubernetesNames.Rule.dns1123Subdomain, true), ("web-1.example.com", .dns1123Subdomain, true),
            ("a/b", .dns1123Subdomain, false), ("..", .dns1123Subdomain, false), ("UPPER_case", .dns1123Subdomain, false),
            (String(repeating: "a", count: 5_000), .dns1123Subdomain, false), ("-web", .dns1123Subdomain, false),
            ("web.", .dns1123Subdomain, false), ("", .dns1123Subdomain, false),
            ("shop", .dns1123Label, true), ("shop.prod", .dns1123Label, false), (String(repeating: "a", count: 64), .dns1123Label, false),
            ("system:admin", .pathSegment, true), ("a/b", .pathSegment, false), ("..", .pathSegment, false), ("50%", .pathSegment, false),
        ]
    )
    func names(name: String, rule: KubernetesNames.Rule, valid: Bool) {
        #expect((KubernetesNames.problem(name: name, rule: rule) == nil) == valid, "\(name.prefix(20)) under \(rule)")
    }

    @Test("generateName leaves room for the random suffix and may end in a dash")
    func generateName() {
        #expect(KubernetesNames.problem(generateName: "web-", rule: .dns1123Subdomain) == nil)
        #expect(KubernetesNames.problem(generateName: String(repeating: "a", count: 60), rule: .dns1123Label) != nil)
        #expect(KubernetesNames.problem(generateName: "Web-", rule: .dns1123Subdomain) != nil)
    }

    @Test("labels, annotations, finalizers and owner references are checked as Kubernetes checks them")
    func metadata() {
        var good: JSONValue = ["metadata": ["name": "web", "namespace": "shop"]]
        good.labels = ["app": "web", "example.com/tier": "front_end.1", "empty": ""]
        good.annotations = ["kubectl.kubernetes.io/last-applied-configuration": "{}"]
        good.finalizers = ["tether.io/unjoin", "orphan"]
        #expect(KubernetesNames.metadataProblems(of: good, nameRule: .dns1123Subdomain).isEmpty)

        var bad = good
        bad.labels = ["bad key": "v", "k": String(repeating: "v", count: 64), "a/b/c": "x", "ok": "-dash"]
        bad.annotations = ["big": String(repeating: "x", count: 300 * 1024)]
        bad.namespace = "Shop"
        let problems = KubernetesNames.metadataProblems(of: bad, nameRule: .dns1123Subdomain)
        #expect(problems.count == 6, "\(problems)")
        #expect(problems.contains { $0.hasPrefix("metadata.annotations: Too long") })
        #expect(problems.contains { $0.hasPrefix("metadata.namespace") })

        // Owner references name their owner fully, and at most one is the controller.
        var owned = good
        owned.metadata["ownerReferences"] = [
            ["apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u1", "controller": true],
            ["apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-2", "uid": "u2", "controller": false],
        ]
        #expect(KubernetesNames.metadataProblems(of: owned, nameRule: .dns1123Subdomain).isEmpty)
        owned.metadata["ownerReferences"] = [
            ["apiVersion": "apps/", "kind": "ReplicaSet", "name": "web-1", "uid": "", "controller": true],
            ["apiVersion": "v1", "kind": "Event", "name": "e", "uid": "u2", "controller": true],
        ]
        let ownerProblems = KubernetesNames.metadataProblems(of: owned, nameRule: .dns1123Subdomain)
        #expect(
            ownerProblems == [
                "metadata.ownerReferences.apiVersion: Invalid value: \"apps/\": version must not be empty",
                "metadata.ownerReferences.uid: Invalid value: \"\": uid must not be empty",
                "metadata.ownerReferences: Invalid value: \"Event\": v1, Kind=Event is disallowed from being an owner",
                "metadata.ownerReferences: Invalid value: 2 references: Only one reference can have Controller set to true. Found \"true\" in references for ReplicaSet/web-1 and Event/e",
            ], "\(ownerProblems)")

        // Error messages never repeat a huge value in full.
        let long: JSONValue = ["metadata": ["name": .string(String(repeating: "A", count: 5_000))]]
        let message = KubernetesNames.metadataProblems(of: long, nameRule: .dns1123Subdomain).joined()
        #expect(message.count < 600)
    }
}

@Suite("YAML expansion is bounded")
struct YAMLBoundsTests {
    /// Ten levels of aliases, each naming the one before ten times: 10^10 values from 1 KB.
    static let billionLaughs: String = {
        var lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        for level in 1...9 {
            let previous = Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ")
            lines.append("a\(level): &a\(level) [\(previous)]")
        }
        lines.append("users: [{name: bomb, user: {token: *a9}}]")
        return lines.joined(separator: "\n")
    }()

    @Test("a 1 KB document of aliases that expands to 10^10 values is refused quickly, with a clear error")
    func aliasBomb() {
        #expect(Self.billionLaughs.utf8.count < 1_100)
        let started = ContinuousClock.now
        #expect(throws: YAMLDocument.DecodingError.self) { try YAMLDocument.decode(Self.billionLaughs) }
        do {
            _ = try YAMLDocument.decode(Self.billionLaughs)
        } catch {
            #expect(error.description.contains("aliases"), "\(error)")
        }
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    @Test("ordinary documents, a few aliases included, still read")
    func ordinary() throws {
        let manifest = "base: &base {a: 1}\nuse: *base\nlist: [1, 2, {b: true}]"
        let value = try YAMLDocument.decode(manifest)
        #expect(value["use"]?["a"] == 1)
        #expect(throws: YAMLDocument.DecodingError.self) {
            try YAMLDocument.decode(String(repeating: "[", count: 200) + String(repeating: "]", count: 200))
        }
    }
}
