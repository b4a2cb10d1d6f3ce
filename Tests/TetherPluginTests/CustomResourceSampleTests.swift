import Testing
import TetherJSON
import TetherModel
import TetherPlugin

/// Objects made from a CustomResourceDefinition's schema, for `tetherctl plugin test --crd`.
@Suite("Samples from definitions")
struct CustomResourceSampleTests {
    static func definition(spec: JSONValue, rules: [String] = []) throws -> CustomResourceDefinition {
        var specSchema = spec
        if !rules.isEmpty { specSchema[member: "x-kubernetes-validations"] = .array(rules.map { ["rule": .string($0)] }) }
        let object: JSONValue = [
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": ["name": "widgets.example.com"],
            "spec": [
                "group": "example.com", "scope": "Namespaced", "names": ["kind": "Widget", "plural": "widgets"],
                "versions": [
                    [
                        "name": "v1", "served": true, "storage": true,
                        "schema": [
                            "openAPIV3Schema": [
                                "type": "object", "properties": ["metadata": ["type": "object"], "spec": specSchema],
                            ]
                        ],
                    ]
                ],
            ],
        ]
        return try CustomResourceDefinition(parsing: object)
    }

    @Test(
        "each field takes its default, its first enum value, the least its bounds allow, its format's shape or a string its pattern matches; replicas take 2; the object passes the definition's own validation"
    )
    func fields() throws {
        let definition = try Self.definition(spec: [
            "type": "object", "required": ["size", "name"],
            "properties": [
                "replicas": ["type": "integer", "minimum": 0],
                "size": ["type": "integer", "minimum": 3, "maximum": 9],
                "ratio": ["type": "number", "exclusiveMinimum": true, "minimum": 0],
                "mode": ["type": "string", "enum": ["Fast", "Slow"]],
                "retries": ["type": "integer", "default": 5],
                "name": ["type": "string", "pattern": "^[a-z]+-[0-9]+$"],
                "version": ["type": "string", "pattern": "^v[0-9]+$"],
                "code": ["type": "string", "minLength": 8],
                "started": ["type": "string", "format": "date-time"],
                "port": ["x-kubernetes-int-or-string": true],
                "labels": ["type": "object", "additionalProperties": ["type": "string"]],
                "extra": ["type": "object", "x-kubernetes-preserve-unknown-fields": true],
                "steps": [
                    "type": "array", "minItems": 2,
                    "items": ["type": "object", "required": ["weight"], "properties": ["weight": ["type": "integer"]]],
                ],
                "enabled": ["type": "boolean"],
            ],
        ])
        let sample = try definition.sample()
        #expect(sample.apiVersion == "example.com/v1" && sample.kind == "Widget" && sample.name == "sample" && sample.namespace == "default")
        let spec = sample["spec"] ?? .null
        #expect(spec["replicas"] == 2)
        #expect(spec["size"] == 3)
        #expect(spec["ratio"] == 1)
        #expect(spec["mode"] == "Fast")
        #expect(spec["retries"] == 5)
        #expect(spec["name"] == "sample-1")
        #expect(spec["version"] == "v1")
        #expect(spec["code"] == "sampleaa")
        #expect(spec["started"] == "2026-01-01T00:00:00Z")
        #expect(spec["port"] == 1)
        #expect(spec["labels"] == [:] && spec["extra"] == [:])
        #expect(spec["steps"] == [["weight": 1], ["weight": 1]])
        #expect(spec["enabled"] == false)
    }

    @Test("a sample that breaks a CEL rule, or a required field no common shape matches, is refused with what to do")
    func refusals() throws {
        let ruled = try Self.definition(
            spec: ["type": "object", "properties": ["low": ["type": "integer", "minimum": 5], "high": ["type": "integer", "maximum": 2]]],
            rules: ["self.low < self.high"])
        #expect {
            try ruled.sample()
        } throws: { error in
            "\(error)".contains("breaks its own rules") && "\(error)".contains("give an object of Widget with --sample")
        }
        let unmatched = try Self.definition(spec: [
            "type": "object", "required": ["key"], "properties": ["key": ["type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"]],
        ])
        #expect {
            try unmatched.sample()
        } throws: { error in
            "\(error)" == "no value could be made for the required field spec.key"
        }
    }
}
