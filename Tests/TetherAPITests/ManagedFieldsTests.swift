import Testing
import TetherJSON
import TetherModel
import TetherPlugin
import WorkloadsPlugin

@testable import TetherAPI

/// Field ownership for server-side apply: which fields an object sets, FieldsV1 both ways,
/// conflicts, and what an apply abandons.
@Suite("managed fields")
struct ManagedFieldsTests {
    static func deployment(replicas: Int?, image: String = "nginx:1.27", label: Bool = true) throws -> JSONValue {
        var spec: [String: JSONValue] = [
            "selector": ["matchLabels": ["app": "web"]],
            "template": [
                "metadata": ["labels": ["app": "web"]],
                "spec": ["containers": [["name": "web", "image": .string(image), "ports": [["containerPort": 80]]]]],
            ],
        ]
        if let replicas { spec["replicas"] = .integer(Int64(replicas)) }
        var metadata: [String: JSONValue] = ["name": "web"]
        if label { metadata["labels"] = ["team": "a"] }
        return ["apiVersion": "apps/v1", "kind": "Deployment", "metadata": .object(metadata), "spec": .object(spec)]
    }

    @Test("fields follow the schema: containers by name, ports by containerPort; identity and status are nobody's")
    func fieldsOfAnObject() throws {
        let fields = ManagedFields.fields(of: try Self.deployment(replicas: 2), schema: WorkloadsPlugin.deployment.schema)
        let container = ["f:spec", "f:template", "f:spec", "f:containers", "k:{\"name\":\"web\"}"]
        #expect(fields.contains(["f:spec", "f:replicas"]))
        #expect(fields.contains(container + ["f:image"]))
        #expect(fields.contains(container + ["f:ports", "k:{\"containerPort\":80}", "f:containerPort"]))
        #expect(fields.contains(["f:metadata", "f:labels", "f:team"]))
        #expect(!fields.contains { $0.first == "f:apiVersion" || $0 == ["f:metadata", "f:name"] })
    }

    @Test("a create by an Update records every field it set under its manager")
    func createRecordsItsFields() throws {
        let object = try Self.deployment(replicas: 2)
        let schema = WorkloadsPlugin.deployment.schema
        let changed = ManagedFields.changed(from: [:], to: object, schema: schema)
        #expect(changed.contains(["f:spec", "f:replicas"]), "\(changed)")
        var managed = ManagedFields(of: object)
        managed.entries = []
        managed.record(
            manager: "kubectl-create", operation: "Update", apiVersion: "apps/v1", fields: changed, taking: changed, at: "2026-12-02T00:00:00Z")
        #expect(managed.entries.map(\.manager) == ["kubectl-create"])
    }

    @Test("an apply merges keyed lists element by element (containers by name, ports by containerPort); other lists are replaced; null removes")
    func applyMergesKeyedLists() throws {
        let schema = WorkloadsPlugin.deployment.schema
        let live = try Self.deployment(replicas: 2)
        let sidecar: JSONValue = [
            "metadata": ["name": "web", "labels": ["team": .null]],
            "spec": [
                "template": [
                    "spec": [
                        "containers": [
                            ["name": "log", "image": "busybox:1.36", "args": ["tail"]],
                            ["name": "web", "ports": [["containerPort": 8080]]],
                        ]
                    ]
                ]
            ],
        ]
        let merged = ManagedFields.applied(sidecar, to: live, schema: schema)
        let containers = merged.value(at: ["spec", "template", "spec", "containers"])?.arrayElements ?? []
        #expect(containers.map { $0["name"]?.stringValue } == ["web", "log"])
        #expect(containers.first?["image"] == "nginx:1.27", "the live element keeps what the apply does not set")
        #expect(containers.first?["ports"]?.arrayElements.compactMap { $0["containerPort"]?.integerValue } == [80, 8080])
        #expect(containers.last?["args"] == ["tail"])
        #expect(merged["metadata"]?["labels"]?.objectMembers.keys.contains("team") == false)
        #expect(merged.value(at: ["spec", "replicas"]) == 2)
        // A list the schema does not key is replaced whole.
        let args = ManagedFields.applied(
            ["spec": ["template": ["spec": ["containers": [["name": "log", "args": ["head"]]]]]]], to: merged, schema: schema)
        #expect(args.value(at: ["spec", "template", "spec", "containers"])?.arrayElements.last?["args"] == ["head"])
    }

    @Test("a strategic merge patch merges by the schema's keys: a container's ports by containerPort, and $patch: delete removes one")
    func strategicMergeByContainerPort() throws {
        let live = try Self.deployment(replicas: 2)
        let schema = WorkloadsPlugin.deployment.schema
        func ports(after patch: JSONValue, to object: JSONValue) throws -> [Int64] {
            let patched = try ResourceOperation.apply(
                patch, contentType: "application/strategic-merge-patch+json", to: object, schema: schema, limits: .default)
            let container = patched.value(at: ["spec", "template", "spec", "containers"])?.arrayElements.first
            return container?["ports"]?.arrayElements.compactMap { $0["containerPort"]?.integerValue } ?? []
        }
        func patch(_ port: JSONValue) -> JSONValue {
            ["spec": ["template": ["spec": ["containers": [["name": "web", "ports": [port]]]]]]]
        }
        #expect(try ports(after: patch(["containerPort": 8080]), to: live) == [80, 8080])
        #expect(try ports(after: patch(["containerPort": 80, "$patch": "delete"]), to: live) == [])
    }

    @Test("FieldsV1 written and read back is the same set, with \".\" on owned inner nodes")
    func fieldsV1RoundTrip() throws {
        let fields = ManagedFields.fields(of: try Self.deployment(replicas: 2), schema: WorkloadsPlugin.deployment.schema)
        let encoded = ManagedFields.encode(fields)
        #expect(ManagedFields.decode(encoded) == fields)
        let element = encoded.value(at: ["f:spec", "f:template", "f:spec", "f:containers", "k:{\"name\":\"web\"}"])
        #expect(element?["."] == [:])
    }

    @Test("an apply conflicts only where it would change another manager's value; forcing takes the field")
    func conflicts() throws {
        let schema = WorkloadsPlugin.deployment.schema
        let first = try Self.deployment(replicas: 2)
        var managed = ManagedFields(of: first)
        managed.record(
            manager: "alice", operation: "Apply", apiVersion: "apps/v1", fields: ManagedFields.fields(of: first, schema: schema), taking: [],
            at: "t0")
        let same = try Self.deployment(replicas: 2)
        #expect(managed.conflicts(applying: same, fields: ManagedFields.fields(of: same, schema: schema), by: "bob", current: first).isEmpty)
        let other = try Self.deployment(replicas: 5, image: "nginx:1.28")
        let found = managed.conflicts(applying: other, fields: ManagedFields.fields(of: other, schema: schema), by: "bob", current: first)
        #expect(found.map(\.field) == [".spec.replicas", ".spec.template.spec.containers[name=\"web\"].image"])
        managed.record(
            manager: "bob", operation: "Apply", apiVersion: "apps/v1", fields: ManagedFields.fields(of: other, schema: schema),
            taking: Set(found.map(\.path)), at: "t1")
        #expect(managed.entries.first { $0.manager == "alice" }?.fields.contains(["f:spec", "f:replicas"]) == false)
    }

    @Test("a field an applier stops applying is abandoned unless another manager holds it")
    func abandoned() throws {
        let schema = WorkloadsPlugin.deployment.schema
        let labelled = try Self.deployment(replicas: 2)
        var managed = ManagedFields(of: labelled)
        managed.record(
            manager: "alice", operation: "Apply", apiVersion: "apps/v1", fields: ManagedFields.fields(of: labelled, schema: schema), taking: [],
            at: "t0")
        let unlabelled = ManagedFields.fields(of: try Self.deployment(replicas: 2, label: false), schema: schema)
        #expect(managed.abandoned(by: "alice", applying: unlabelled) == [["f:metadata", "f:labels", "f:team"]])
        managed.record(
            manager: "bob", operation: "Update", apiVersion: "apps/v1", fields: [["f:metadata", "f:labels", "f:team"]], taking: [], at: "t1")
        #expect(managed.abandoned(by: "alice", applying: unlabelled).isEmpty)
        let removed = ManagedFields.removing(["f:metadata", "f:labels", "f:team"], from: labelled)
        #expect(removed.metadata["labels"] == [:])
    }
}
