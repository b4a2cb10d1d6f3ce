import Testing
import TetherJSON
import TetherModel

@testable import TetherPlugin

/// The CEL subset of CustomResourceDefinition validation rules: what rules published in
/// common definitions evaluate to, CEL's error rules (`&&`/`||` absorb an error on the decisive
/// side), and what is refused as outside the subset.
@Suite("CEL validation rules")
struct CELTests {
    static let object: JSONValue = [
        "minReplicas": 2, "maxReplicas": 5, "name": "web-frontend", "mode": "blue", "ratio": .double(0.5),
        "ports": [["name": "http", "port": 80], ["name": "https", "port": 443]],
        "labels": ["tier": "web", "team": "a"], "tags": ["a", "b", "c"], "empty": [],
    ]

    static func evaluate(_ rule: String, _ value: JSONValue = object) throws -> JSONValue {
        var evaluator = CELEvaluator()
        return try evaluator.evaluate(try CELExpression(parsing: rule), bindings: ["self": value])
    }

    @Test(
        "rules evaluate as kube-apiserver evaluates them",
        arguments: [
            ("self.minReplicas <= self.maxReplicas", true),
            ("self.minReplicas > self.maxReplicas", false),
            ("has(self.mode) && self.mode in ['blue', 'green']", true),
            ("!has(self.absent) || self.absent > 0", true),
            ("self.name.startsWith('web-') && self.name.endsWith('frontend') && self.name.contains('-')", true),
            ("self.name.matches('^[a-z]+(-[a-z]+)*$')", true),
            ("size(self.name) <= 12 && self.tags.size() == 3", true),
            ("self.ports.all(p, p.port > 0 && p.port < 65536)", true),
            ("self.ports.exists(p, p.name == 'https')", true),
            ("self.ports.exists_one(p, p.port == 80)", true),
            ("self.ports.map(p, p.port) == [80, 443]", true),
            ("self.ports.filter(p, p.port > 100).size() == 1", true),
            ("self.labels.all(k, k.size() <= 4)", true),
            ("'tier' in self.labels && self.labels['tier'] == 'web'", true),
            ("self.tags[0] + self.tags[2] == 'ac'", true),
            (
                "self.maxReplicas - self.minReplicas == 3 && self.maxReplicas * 2 == 10 && self.maxReplicas / 2 == 2 && self.maxReplicas % 2 == 1",
                true
            ),
            ("self.ratio * 2.0 == 1.0 && double(self.minReplicas) == 2.0 && int(self.ratio) == 0", true),
            ("self.minReplicas == 2.0", true),
            ("self.empty.size() == 0 ? true : self.empty[0] == 1", true),
            ("string(self.minReplicas) + '/' + string(self.maxReplicas) == '2/5'", true),
            ("self.tags.isSorted() && self.ports.map(p, p.port).max() == 443 && [1, 2, 3].sum() == 6", true),
            ("self.name.lowerAscii() == 'web-frontend' && 'A b'.upperAscii() == 'A B'", true),
            ("{'a': 1}.a == 1 && [1, 2] + [3] == [1, 2, 3]", true),
            // An error on the side that does not decide is absorbed, as CEL specifies.
            ("self.absent == 1 || true", true),
            ("false && self.absent == 1", false),
            ("self.tags.exists(t, t == 'c') || self.missing", true),
        ])
    func rules(rule: String, expected: Bool) throws {
        #expect(try Self.evaluate(rule) == .bool(expected), "\(rule)")
    }

    @Test(
        "an absent field, a wrong type, a division by zero and an overflow are errors, not false",
        arguments: [
            ("self.absent > 0", "no such key: absent"),
            ("self.labels['nope'] == 'x'", "no such key: nope"),
            ("self.name > 3", "no such overload"),
            ("self.minReplicas / 0 == 1", "division by zero"),
            ("9223372036854775807 + 1 > 0", "integer overflow"),
            ("self.tags[7] == 'x'", "index out of range"),
            ("self.absent == 1 && true", "no such key: absent"),
        ])
    func errors(rule: String, fragment: String) {
        var evaluator = CELEvaluator()
        do {
            let value = try evaluator.evaluate(try CELExpression(parsing: rule), bindings: ["self": Self.object])
            Issue.record("\(rule) gave \(value), not an error")
        } catch let error as CELEvaluator.EvaluationError {
            #expect(error.description.contains(fragment), "\(rule): \(error)")
        } catch {
            Issue.record("\(rule): \(error)")
        }
    }

    @Test(
        "what is outside the subset is refused when parsed, never evaluated wrongly",
        arguments: [
            "self.expiry > timestamp('2026-01-01T00:00:00Z')",
            "duration(self.timeout) < duration('1h')",
            "quantity(self.memory).isLessThan(quantity('1Gi'))",
            "self.?optional.orValue(1) == 1",
            "self.name.format([1])",
            "self.minReplicas <=",
            "'unterminated",
        ])
    func outsideTheSubset(rule: String) {
        #expect(throws: CELSyntaxError.self) { try CELExpression(parsing: rule) }
    }

    @Test("hostile rules are refused when parsed: deep nesting of every kind, and length")
    func hostile() {
        for rule in [
            String(repeating: "!", count: 5_000) + "true", String(repeating: "(", count: 5_000) + "1" + String(repeating: ")", count: 5_000),
            "self" + String(repeating: ".a", count: 2_000), (0..<500).map { "self.x\($0)" }.joined(separator: " || "),
            String(repeating: "[", count: 3_000) + String(repeating: "]", count: 3_000), String(repeating: "x", count: 20_000),
        ] {
            #expect(throws: CELSyntaxError.self, "\(rule.prefix(40))") { try CELExpression(parsing: rule) }
        }
    }

    @Test(
        "transition rules compare an update with the stored value at the same place: members and map entries by name (dots in keys too), never list elements"
    )
    func transitions() throws {
        let schema = try StructuralSchema(
            parsing: [
                "type": "object",
                "properties": [
                    "labels": [
                        "type": "object",
                        "additionalProperties": [
                            "type": "string", "x-kubernetes-validations": [["rule": "self == oldSelf", "message": "a label is immutable"]],
                        ],
                    ],
                    "steps": [
                        "type": "array",
                        "items": ["type": "string", "x-kubernetes-validations": [["rule": "self == oldSelf", "message": "never checked"]]],
                    ],
                    "size": ["type": "integer", "x-kubernetes-validations": [["rule": "self >= oldSelf", "message": "size may only grow"]]],
                ],
            ], path: "schema")
        func problems(_ new: JSONValue, _ old: JSONValue) -> [String] {
            var found: [ValidationProblem] = []
            schema.checkRules(new, old: old, into: &found)
            return found.map { "\($0.field): \($0.message)" }
        }
        let stored: JSONValue = ["labels": ["example.com/team": "a"], "steps": ["x"], "size": 3]
        #expect(problems(stored, stored).isEmpty)
        #expect(
            problems(["labels": ["example.com/team": "b"], "steps": ["y"], "size": 3], stored) == [
                "labels.example.com/team: Invalid value: \"string\": a label is immutable"
            ])
        #expect(problems(["labels": ["example.com/other": "b"], "size": 2], stored) == ["size: Invalid value: \"integer\": size may only grow"])
        // On a create (no old value) transition rules do not run.
        var created: [ValidationProblem] = []
        schema.checkRules(["size": 0], into: &created)
        #expect(created.isEmpty)
    }

    @Test("a rule that loops over a large list stops at the step budget")
    func budget() throws {
        let large = JSONValue.array((0..<2_000).map { .integer(Int64($0)) })
        #expect(throws: CELEvaluator.EvaluationError.self) { try Self.evaluate("self.all(a, self.all(b, a + b >= 0))", large) }
    }
}
