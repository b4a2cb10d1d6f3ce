import Testing
import TetherJSON
import TetherModel

@Suite("Label and field selectors")
struct SelectorTests {
    let web: [String: String] = ["app": "web", "tier": "frontend", "env": "prod"]

    @Test(
        "selectors match as Kubernetes defines them",
        arguments: [
            ("", true), ("app=web", true), ("app==web", true), ("app!=web", false), ("app=db", false),
            ("env in (prod,staging)", true), ("env in (dev)", false), ("env notin (dev, qa)", true),
            ("env notin (prod)", false), ("tier", true), ("!tier", false), ("canary", false), ("!canary", true),
            ("app=web,env in (prod),!canary", true), ("app=web,tier=backend", false), ("missing!=x", true),
            ("example.com/team=core", false),
        ]
    )
    func matches(selector: String, expected: Bool) throws {
        #expect(try LabelSelector(parsing: selector).matches(web) == expected)
    }

    @Test("malformed selectors are refused", arguments: ["app=web,", "env in prod", "env in (a", "a)b", "=web", "app=we b", ",", "Bad Key=1"])
    func malformed(selector: String) {
        #expect(throws: SelectorError.self) { try LabelSelector(parsing: selector) }
    }

    @Test("field selectors on metadata.name and metadata.namespace")
    func fields() throws {
        let object: JSONValue = ["metadata": ["name": "web", "namespace": "default"]]
        #expect(try FieldSelector(parsing: "metadata.name=web").matches(object))
        #expect(try FieldSelector(parsing: "metadata.namespace==default,metadata.name!=db").matches(object))
        #expect(try !FieldSelector(parsing: "metadata.name!=web").matches(object))
        #expect(throws: SelectorError.self) { try FieldSelector(parsing: "spec.replicas=3") }
        // A kind may allow more fields; a missing one reads as empty, numbers as their digits.
        let event: JSONValue = ["involvedObject": ["kind": "ReplicaSet", "name": "web"], "count": 3]
        #expect(try FieldSelector(parsing: "involvedObject.kind=ReplicaSet,count=3", allowing: ["involvedObject.kind", "count"]).matches(event))
        #expect(try FieldSelector(parsing: "involvedObject.uid=", allowing: ["involvedObject.uid"]).matches(event))
        #expect(try !FieldSelector(parsing: "involvedObject.name!=web", allowing: ["involvedObject.name"]).matches(event))
    }

    @Test("metadata accessors read and write only their fields")
    func metadata() {
        var object: JSONValue = ["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": "a", "extra": 1], "data": ["k": "v"]]
        object.labels = ["app": "web"]
        object.resourceVersion = 42
        object.finalizers = ["tether.io/cleanup"]
        #expect(object.labels == ["app": "web"])
        #expect(object.resourceVersion == 42)
        #expect(object.metadata["extra"] == 1)
        #expect(object.specPart == ["data": ["k": "v"]])
        object.finalizers = []
        #expect(object.metadata["finalizers"] == nil)
    }
}
