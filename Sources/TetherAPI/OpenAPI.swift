import Foundation
import Synchronization
import TetherJSON
import TetherModel
import TetherPlugin

/// The OpenAPI documents of every served kind, built once from the kind registry.
///
/// - `/openapi/v2`: Swagger 2.0, as protobuf (`openapi.v2.Document`, which kubectl 1.20 needs
///   before `create` and uses for client-side validation) or JSON.
/// - `/openapi/v3`: the index of group versions, then one OpenAPI 3.0 document per group
///   version whose PATCH operations declare the `fieldValidation` parameter, which tells
///   kubectl 1.27+ to leave validation to the server (`fieldValidation=Strict`), and whose
///   schemas `kubectl explain` reads.
/// The documents of one generation of a ``KindCatalog``: built on first use after it changes.
/// A field's path from the object's root (`spec.placement`), by which its description is found.
private func fieldPath(_ name: String, in path: String) -> String { path.isEmpty ? name : "\(path).\(name)" }

final class OpenAPICache: Sendable {
    private let current = Mutex<(generation: UInt64, documents: OpenAPIDocuments)?>(nil)

    func documents(for catalog: KindCatalog, serverVersion: String) -> OpenAPIDocuments {
        let generation = catalog.generation
        if let cached = current.withLock({ $0 }), cached.generation == generation { return cached.documents }
        let documents = OpenAPIDocuments(registry: catalog.registry, serverVersion: serverVersion)
        current.withLock { $0 = (generation, documents) }
        return documents
    }
}

struct OpenAPIDocuments: Sendable {
    let v2JSON: Data
    let v2Protobuf: [UInt8]
    /// Each group version's document by its path (`api/v1`, `apis/apps/v1`), with its hash.
    let v3: [String: (document: Data, hash: String)]
    let v3Index: Data

    init(registry: KindRegistry, serverVersion: String) {
        var definitions: [(name: String, kind: KindDescriptor)] = []
        for kind in registry.servedKinds { definitions.append((Self.definitionName(kind), kind)) }
        let info: JSONValue = ["title": "Tether", "version": .string(serverVersion)]

        var v2Definitions: [String: JSONValue] = [:]
        for (name, kind) in definitions { v2Definitions[name] = Self.v2Schema(kind.schema, kind: kind, described: kind.fieldDescriptions) }
        let patchPaths = definitions.map { (path: Self.objectPath(of: $0.kind), kind: $0.kind) }
        var v2Paths: [String: JSONValue] = [:]
        for (path, kind) in patchPaths {
            v2Paths[path] = [
                "patch": [
                    "operationId": .string("patch\(kind.kind)"),
                    "parameters": .array(
                        Self.patchParameters.map { ["name": .string($0), "in": "query", "type": $0 == "force" ? "boolean" : "string"] }),
                    "responses": ["200": ["description": "OK"]],
                    "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": Self.groupVersionKind(kind),
                ]
            ]
        }
        v2JSON = Data(ResourceHandler.encode(["swagger": "2.0", "info": info, "paths": .object(v2Paths), "definitions": .object(v2Definitions)]))
        v2Protobuf = OpenAPIv2Protobuf.document(
            title: "Tether", version: serverVersion, definitions: definitions.map { ($0.name, $0.kind.schema, $0.kind) },
            patchPaths: patchPaths
        )

        var documents: [String: (document: Data, hash: String)] = [:]
        var index: [String: JSONValue] = [:]
        for group in registry.groups {
            for version in group.versions {
                let path = group.name.isEmpty ? "api/\(version)" : "apis/\(group.name)/\(version)"
                let kinds = definitions.filter { $0.kind.group == group.name && $0.kind.version == version }
                let document = Data(ResourceHandler.encode(Self.v3Document(path: path, kinds: kinds, info: info)))
                var digest = StableHash()
                digest.combine(bytes: document)
                let hash = String(format: "%016llX", digest.value)
                documents[path] = (document, hash)
                index[path] = ["serverRelativeURL": .string("/openapi/v3/\(path)?hash=\(hash)")]
            }
        }
        v3 = documents
        v3Index = Data(ResourceHandler.encode(["paths": .object(index)]))
    }

    /// `io.k8s.api.apps.v1.ReplicaSet` for Kubernetes groups, `io.tether.core.v1alpha1.Cluster` for others.
    static func definitionName(_ kind: KindDescriptor) -> String {
        let group: String
        if kind.group.isEmpty {
            group = "io.k8s.api.core"
        } else if !kind.group.contains(".") || kind.group.hasSuffix(".k8s.io") {
            group = "io.k8s.api.\(kind.group.split(separator: ".")[0])"
        } else {
            group = kind.group.split(separator: ".").reversed().joined(separator: ".")
        }
        return "\(group).\(kind.version).\(kind.kind)"
    }

    /// The query parameters of a PATCH: kubectl 1.20 finds server-side dry run (`apply
    /// --dry-run=server`, `diff`) by the `dryRun` parameter of the kind's PATCH in `/openapi/v2`.
    static let patchParameters = ["dryRun", "fieldManager", "fieldValidation", "force"]

    /// `/api/v1/namespaces/{namespace}/configmaps/{name}`, `/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}`.
    static func objectPath(of kind: KindDescriptor) -> String {
        let prefix = kind.group.isEmpty ? "/api/\(kind.version)" : "/apis/\(kind.group)/\(kind.version)"
        return "\(prefix)/\(kind.namespaced ? "namespaces/{namespace}/" : "")\(kind.plural)/{name}"
    }

    private static func groupVersionKind(_ kind: KindDescriptor) -> JSONValue {
        ["group": .string(kind.group), "version": .string(kind.version), "kind": .string(kind.kind)]
    }

    // MARK: Version 2 (JSON)

    private static func v2Schema(
        _ schema: FieldSchema, kind: KindDescriptor? = nil, described descriptions: [String: String] = [:], at path: String = ""
    ) -> JSONValue {
        var result: [String: JSONValue]
        switch schema.jsonShape {
        case .string: result = ["type": "string"]
        case .integer: result = ["type": "integer", "format": "int64"]
        case .number: result = ["type": "number", "format": "double"]
        case .boolean: result = ["type": "boolean"]
        case .intOrString: result = ["type": "string", "format": "int-or-string"]
        case .object(let fields):
            var properties: [String: JSONValue] = [:]
            for (name, field) in fields {
                var property = v2Schema(field, described: descriptions, at: fieldPath(name, in: path))
                if let text = descriptions[fieldPath(name, in: path)] { property[member: "description"] = .string(text) }
                properties[name] = property
            }
            result = ["type": "object", "properties": .object(properties)]
        case .map(let element): result = ["type": "object", "additionalProperties": v2Schema(element, described: descriptions, at: path)]
        case .array(let element): result = ["type": "array", "items": v2Schema(element, described: descriptions, at: path)]
        case .free: result = ["x-kubernetes-preserve-unknown-fields": true]
        case .message, .time, .microTime, .quantity, .keyedList, .bytes, .rawJSON: result = [:]  // never a JSON shape
        }
        if case .keyedList(_, let key) = schema {
            result["x-kubernetes-patch-merge-key"] = .string(key)
            result["x-kubernetes-patch-strategy"] = "merge"
        }
        if let kind {
            result["x-kubernetes-group-version-kind"] = [groupVersionKind(kind)]
            if !kind.summary.isEmpty { result["description"] = .string(kind.summary) }
        }
        return .object(result)
    }

    // MARK: Version 3

    private static func v3Schema(_ schema: FieldSchema, described descriptions: [String: String] = [:], at path: String = "") -> JSONValue {
        var result = v3Shape(schema, described: descriptions, at: path)
        if case .keyedList(_, let key) = schema {
            result[member: "x-kubernetes-patch-merge-key"] = .string(key)
            result[member: "x-kubernetes-patch-strategy"] = "merge"
        }
        return result
    }

    private static func v3Shape(_ schema: FieldSchema, described descriptions: [String: String], at path: String) -> JSONValue {
        switch schema.jsonShape {
        case .string: ["type": "string"]
        case .integer: ["type": "integer", "format": "int64"]
        case .number: ["type": "number", "format": "double"]
        case .boolean: ["type": "boolean"]
        case .intOrString: ["x-kubernetes-int-or-string": true, "anyOf": [["type": "integer"], ["type": "string"]]]
        case .object(let fields):
            [
                "type": "object",
                "properties": .object(
                    Dictionary(
                        uniqueKeysWithValues: fields.map { name, field in
                            var property = v3Schema(field, described: descriptions, at: fieldPath(name, in: path))
                            if let text = descriptions[fieldPath(name, in: path)] { property[member: "description"] = .string(text) }
                            return (name, property)
                        })),
            ]
        case .map(let element): ["type": "object", "additionalProperties": v3Schema(element, described: descriptions, at: path)]
        case .array(let element): ["type": "array", "items": v3Schema(element, described: descriptions, at: path)]
        case .free: ["type": "object", "x-kubernetes-preserve-unknown-fields": true]
        case .message, .time, .microTime, .quantity, .keyedList, .bytes, .rawJSON: [:]  // never a JSON shape
        }
    }

    private static func v3Document(path: String, kinds: [(name: String, kind: KindDescriptor)], info: JSONValue) -> JSONValue {
        var schemas: [String: JSONValue] = [:]
        var paths: [String: JSONValue] = [:]
        for (name, kind) in kinds {
            var schema = v3Schema(kind.schema, described: kind.fieldDescriptions)
            schema[member: "x-kubernetes-group-version-kind"] = [groupVersionKind(kind)]
            if !kind.summary.isEmpty { schema[member: "description"] = .string(kind.summary) }
            schemas[name] = schema
            let reference: JSONValue = ["$ref": .string("#/components/schemas/\(name)")]
            let body: JSONValue = ["content": ["application/json": ["schema": reference]]]
            let answer: JSONValue = ["200": ["description": "OK", "content": ["application/json": ["schema": reference]]]]
            let scope = kind.namespaced ? "namespaces/{namespace}/" : ""
            let collection = "/\(path)/\(scope)\(kind.plural)"
            func operation(_ action: String, parameters: [String], body withBody: Bool) -> JSONValue {
                var operation: JSONValue = [
                    "operationId": .string("\(action)\(kind.kind)"),
                    "parameters": .array(parameters.map { ["name": .string($0), "in": "query", "schema": ["type": "string"]] }),
                    "responses": answer,
                    "x-kubernetes-action": .string(action),
                    "x-kubernetes-group-version-kind": groupVersionKind(kind),
                ]
                if withBody { operation[member: "requestBody"] = body }
                return operation
            }
            let writing = ["dryRun", "fieldManager", "fieldValidation"]
            paths[collection] = [
                "get": operation(
                    "list", parameters: ["labelSelector", "fieldSelector", "limit", "continue", "watch", "resourceVersion"], body: false),
                "post": operation("post", parameters: writing, body: true),
            ]
            paths["\(collection)/{name}"] = [
                "get": operation("get", parameters: [], body: false),
                "put": operation("put", parameters: writing, body: true),
                "patch": operation("patch", parameters: writing + ["force"], body: true),
                "delete": operation("delete", parameters: ["dryRun", "propagationPolicy"], body: false),
            ]
        }
        return [
            "openapi": "3.0.0", "info": info, "paths": .object(paths),
            "components": ["schemas": .object(schemas)],
        ]
    }

}

/// Encodes the Swagger 2.0 document as the protobuf message `openapi.v2.Document` (the gnostic
/// schema kubectl decodes), from that message's public field numbers.
enum OpenAPIv2Protobuf {
    static func document(
        title: String, version: String, definitions: [(String, FieldSchema, KindDescriptor)], patchPaths: [(path: String, kind: KindDescriptor)]
    ) -> [UInt8] {
        var document = ProtobufWriter()
        document.string(1, "2.0")  // swagger
        var info = ProtobufWriter()
        info.string(1, title)
        info.string(2, version)
        document.message(2, info)  // info
        var all = ProtobufWriter()
        for (name, schema, kind) in definitions {
            var named = ProtobufWriter()
            named.string(1, name)
            named.message(2, self.schema(schema, kind: kind, described: kind.fieldDescriptions))
            all.message(1, named)  // Definitions.additional_properties
        }
        document.message(9, all)  // definitions
        var paths = ProtobufWriter()
        for (path, kind) in patchPaths {
            var named = ProtobufWriter()
            named.string(1, path)
            var item = ProtobufWriter()
            item.message(8, patchOperation(kind))  // PathItem.patch
            named.message(2, item)
            paths.message(2, named)  // Paths.path
        }
        document.message(8, paths)  // paths
        return document.bytes
    }

    /// A kind's PATCH `Operation`: its query parameters (`QueryParameterSubSchema`: in 2, name 4,
    /// type 6, inside `NonBodyParameter` 3, `Parameter` 2, `ParametersItem` 1), a 200 response, and
    /// the group-version-kind extension kubectl 1.20 matches (one map, not a list as in a definition).
    private static func patchOperation(_ kind: KindDescriptor) -> ProtobufWriter {
        var operation = ProtobufWriter()
        operation.string(5, "patch\(kind.kind)")  // operation_id
        for name in OpenAPIDocuments.patchParameters {
            var query = ProtobufWriter()
            query.string(2, "query")
            query.string(4, name)
            query.string(6, name == "force" ? "boolean" : "string")
            var nonBody = ProtobufWriter()
            nonBody.message(3, query)
            var parameter = ProtobufWriter()
            parameter.message(2, nonBody)
            var item = ProtobufWriter()
            item.message(1, parameter)
            operation.message(8, item)  // parameters
        }
        var response = ProtobufWriter()
        response.string(1, "OK")
        var value = ProtobufWriter()
        value.message(1, response)
        var code = ProtobufWriter()
        code.string(1, "200")
        code.message(2, value)
        var responses = ProtobufWriter()
        responses.message(1, code)
        operation.message(9, responses)
        let gvk = "group: \"\(kind.group)\"\nkind: \(kind.kind)\nversion: \(kind.version)\n"
        operation.message(13, extensionEntry("x-kubernetes-group-version-kind", yaml: gvk))
        operation.message(13, extensionEntry("x-kubernetes-action", yaml: "patch\n"))
        return operation
    }

    /// `openapi.v2.Schema`: description 4, additional_properties 21, type 22, items 23,
    /// properties 25, format 2, vendor_extension 31.
    private static func schema(
        _ schema: FieldSchema, kind: KindDescriptor? = nil, description: String? = nil, described descriptions: [String: String] = [:],
        at path: String = ""
    ) -> ProtobufWriter {
        var message = ProtobufWriter()
        if let description { message.string(4, description) }
        func type(_ name: String) {
            var item = ProtobufWriter()
            item.string(1, name)
            message.message(22, item)
        }
        switch schema.jsonShape {
        case .string: type("string")
        case .integer:
            message.string(2, "int64")
            type("integer")
        case .number:
            message.string(2, "double")
            type("number")
        case .boolean: type("boolean")
        case .intOrString:
            message.string(2, "int-or-string")
            type("string")
        case .object(let fields):
            type("object")
            var properties = ProtobufWriter()
            for (name, field) in fields.sorted(by: { $0.key < $1.key }) {
                var named = ProtobufWriter()
                named.string(1, name)
                let fieldPath = fieldPath(name, in: path)
                named.message(2, self.schema(field, description: descriptions[fieldPath], described: descriptions, at: fieldPath))
                properties.message(1, named)
            }
            message.message(25, properties)
        case .map(let element):
            type("object")
            var additional = ProtobufWriter()
            additional.message(1, self.schema(element, described: descriptions, at: path))
            message.message(21, additional)
        case .array(let element):
            type("array")
            var items = ProtobufWriter()
            items.message(1, self.schema(element, described: descriptions, at: path))
            message.message(23, items)
        case .free:
            message.message(31, extensionEntry("x-kubernetes-preserve-unknown-fields", yaml: "true\n"))
        case .message, .time, .microTime, .quantity, .keyedList, .bytes, .rawJSON:
            break  // never a JSON shape
        }
        if case .keyedList(_, let key) = schema {
            message.message(31, extensionEntry("x-kubernetes-patch-merge-key", yaml: "\(key)\n"))
            message.message(31, extensionEntry("x-kubernetes-patch-strategy", yaml: "merge\n"))
        }
        if let kind {
            if !kind.summary.isEmpty { message.string(4, kind.summary) }
            let gvk = "- group: \"\(kind.group)\"\n  kind: \(kind.kind)\n  version: \(kind.version)\n"
            message.message(31, extensionEntry("x-kubernetes-group-version-kind", yaml: gvk))
        }
        return message
    }

    /// `NamedAny { name = 1; Any value = 2 }` with `Any { yaml = 2 }`.
    private static func extensionEntry(_ name: String, yaml: String) -> ProtobufWriter {
        var value = ProtobufWriter()
        value.string(2, yaml)
        var entry = ProtobufWriter()
        entry.string(1, name)
        entry.message(2, value)
        return entry
    }
}

/// Protocol Buffers wire format, the length-delimited and varint parts of it.
struct ProtobufWriter {
    private(set) var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(rest & 0x7F) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }

    private mutating func key(_ field: Int, wireType: UInt64) {
        varint(UInt64(field) << 3 | wireType)
    }

    mutating func varint(_ field: Int, _ value: UInt64) {
        key(field, wireType: 0)
        varint(value)
    }

    mutating func string(_ field: Int, _ value: String) {
        lengthDelimited(field, Array(value.utf8))
    }

    mutating func message(_ field: Int, _ value: ProtobufWriter) {
        lengthDelimited(field, value.bytes)
    }

    mutating func lengthDelimited(_ field: Int, _ value: [UInt8]) {
        key(field, wireType: 2)
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }
}
