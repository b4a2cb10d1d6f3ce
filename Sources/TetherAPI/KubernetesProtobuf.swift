import Foundation
import TetherJSON
import TetherModel
import TetherPlugin

/// Kubernetes' protobuf bodies, which kubectl's generator commands and typed clients send and
/// ask for: the `k8s\0` envelope around a `runtime.Unknown`. A kind whose schema carries field
/// numbers (Namespace, ConfigMap, Deployment, Service, ...) is read by ``ProtobufSchemaDecoder``
/// and written by ``ProtobufSchemaEncoder``. Other kinds are refused with a hint to send JSON,
/// and answered in JSON.
///
/// Field numbers are those of the public `generated.proto` files of k8s.io/api and
/// k8s.io/apimachinery.
public enum KubernetesProtobuf {
    static let contentType = "application/vnd.kubernetes.protobuf"
    /// `k8s\0`, the first bytes of every protobuf body.
    static let magic: [UInt8] = [0x6B, 0x38, 0x73, 0x00]

    struct Unsupported: Error {
        var kind: String
    }

    /// Kubernetes' envelope (`k8s\0`, then `runtime.Unknown`): the object's type and its bytes.
    private static func envelope(_ bytes: [UInt8]) throws -> (apiVersion: String, kind: String, raw: ArraySlice<UInt8>) {
        guard bytes.count >= 4, Array(bytes.prefix(4)) == magic else {
            throw ProtobufError("the body does not start with Kubernetes' protobuf envelope (k8s\\0)")
        }
        var unknown = ProtobufReader(bytes[4...])
        var apiVersion = ""
        var kind = ""
        var raw: ArraySlice<UInt8> = []
        while let field = try unknown.next() {
            switch field.number {
            case 1:
                var typeMeta = ProtobufReader(try field.bytes())
                while let meta = try typeMeta.next() {
                    if meta.number == 1 { apiVersion = try meta.string() }
                    if meta.number == 2 { kind = try meta.string() }
                }
            case 2: raw = try field.bytes()
            case 3:
                let encoding = try field.string()
                guard encoding.isEmpty else { throw ProtobufError("content encoding \(encoding) is not supported") }
            default: break
            }
        }
        return (apiVersion, kind, raw)
    }

    /// The kinds of `registry` whose protobuf bodies this server decodes.
    static func decodedKinds(in registry: KindRegistry) -> [String] {
        registry.kinds.filter { $0.protobufNumbers != nil }.map(\.kind)
    }

    /// The object a protobuf request body holds, or an error saying why there is none: any kind
    /// of `registry` whose schema has field numbers is read from it.
    public static func decode(_ bytes: [UInt8], registry: KindRegistry) throws -> JSONValue {
        let (apiVersion, kind, raw) = try envelope(bytes)
        guard let descriptor = registry.kind(apiVersion: apiVersion, kind: kind), let numbers = descriptor.protobufNumbers else {
            throw Unsupported(kind: kind.isEmpty ? "an object" : kind)
        }
        return try ProtobufSchemaDecoder.decode(raw, kind: descriptor, numbers: numbers)
    }

    /// `object` in Kubernetes' envelope, or nil when some part of it has no field number here
    /// (a part the schema leaves `free`, a field it does not know): that object is answered as
    /// JSON, which every client that asks for protobuf accepts as well.
    public static func encode(_ object: JSONValue, kind: KindDescriptor) -> [UInt8]? {
        guard let numbers = kind.protobufNumbers, let raw = try? ProtobufSchemaEncoder.encode(object, kind: kind, numbers: numbers) else {
            return nil
        }
        return enveloped(raw, apiVersion: kind.apiVersion, kind: kind.kind)
    }

    /// A list of the kind (`DeploymentList`: `metadata = 1` a ListMeta, `items = 2`), or nil
    /// when some item cannot be encoded: the whole list is then answered as JSON.
    static func encodeList(_ objects: [JSONValue], kind: KindDescriptor, resourceVersion: String, continueToken: String?) -> [UInt8]? {
        guard let numbers = kind.protobufNumbers else { return nil }
        var list = ProtobufWriter()
        var listMeta = ProtobufWriter()
        listMeta.string(2, resourceVersion)
        if let continueToken { listMeta.string(3, continueToken) }
        list.message(1, listMeta)
        for object in objects {
            guard let item = try? ProtobufSchemaEncoder.encode(object, kind: kind, numbers: numbers) else { return nil }
            list.lengthDelimited(2, item)
        }
        return enveloped(list.bytes, apiVersion: kind.apiVersion, kind: "\(kind.kind)List")
    }

    /// The content type of a watch in protobuf: each event a `metav1.WatchEvent` after its
    /// length (4 bytes, big-endian).
    static let watchContentType = "application/vnd.kubernetes.protobuf;stream=watch"

    /// One event of a protobuf watch, its length first: `WatchEvent{type = 1, object = 2}`, the
    /// object a `RawExtension` (`raw = 1`) holding the object in its envelope, as kube-apiserver
    /// writes it (the event itself has no envelope).
    static func watchFrame(type: String, enveloped object: [UInt8]) -> [UInt8] {
        var raw = ProtobufWriter()
        raw.lengthDelimited(1, object)
        var event = ProtobufWriter()
        event.string(1, type)
        event.message(2, raw)
        let length = UInt32(event.bytes.count)
        return [UInt8(length >> 24), UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)] + event.bytes
    }

    /// `metav1.Status` (a failed request; a watch's `ERROR` event) in its envelope.
    static func encodeStatus(_ status: JSONValue) -> [UInt8]? {
        guard case .object(var members) = status else { return nil }
        members["apiVersion"] = nil
        members["kind"] = nil
        guard let raw = try? ProtobufSchemaEncoder.encode(members, message: statusFields) else { return nil }
        return enveloped(raw, apiVersion: "v1", kind: "Status")
    }

    /// `metav1.Status`: metadata (a ListMeta), status, message, reason, details, code.
    private static let statusFields: [ProtoField] = [
        .field(1, "metadata", .numbered(.field(2, "resourceVersion", .string), .field(3, "continue", .string))),
        .field(2, "status", .string), .field(3, "message", .string), .field(4, "reason", .string),
        .field(
            5, "details",
            .numbered(
                .field(1, "name", .string), .field(2, "group", .string), .field(3, "kind", .string), .field(6, "uid", .string),
                .field(4, "causes", .array(.numbered(.field(1, "reason", .string), .field(2, "message", .string), .field(3, "field", .string)))),
                .field(5, "retryAfterSeconds", .integer))),
        .field(6, "code", .integer),
    ]

    private static func enveloped(_ raw: [UInt8], apiVersion: String, kind: String) -> [UInt8] {
        var typeMeta = ProtobufWriter()
        typeMeta.string(1, apiVersion)
        typeMeta.string(2, kind)
        var unknown = ProtobufWriter()
        unknown.message(1, typeMeta)
        unknown.lengthDelimited(2, raw)
        unknown.string(3, "")
        unknown.string(4, "")
        return magic + unknown.bytes
    }

    /// `metav1.DeleteOptions`, which typed clients send with a DELETE (`kubectl drain` without
    /// evictions) and inside an Eviction.
    static let deleteOptionsFields: [ProtoField] = [
        .field(1, "gracePeriodSeconds", .integer, optional: true),
        .field(
            2, "preconditions", .numbered(.field(1, "uid", .string, optional: true), .field(2, "resourceVersion", .string, optional: true)),
            optional: true),
        .field(3, "orphanDependents", .boolean, optional: true), .field(4, "propagationPolicy", .string, optional: true),
        .field(5, "dryRun", .stringList), .field(6, "ignoreStoreReadErrorWithClusterBreakingPotential", .boolean, optional: true),
    ]

    /// A DELETE's protobuf body: `DeleteOptions` as JSON.
    public static func decodeDeleteOptions(_ bytes: [UInt8]) throws -> JSONValue {
        let (_, kind, raw) = try envelope(bytes)
        guard kind == "DeleteOptions" else { throw ProtobufError("the body is \(kind.isEmpty ? "untyped" : kind), not DeleteOptions") }
        return try ProtobufSchemaDecoder.decode(raw, message: deleteOptionsFields)
    }

    /// A Pod's `policy/v1` Eviction (`metadata = 1`, `deleteOptions = 2`), as `kubectl drain` sends it.
    public static func decodeEviction(_ bytes: [UInt8]) throws -> JSONValue {
        let (apiVersion, kind, raw) = try envelope(bytes)
        guard kind == "Eviction" else { throw ProtobufError("the body is \(kind.isEmpty ? "untyped" : kind), not an Eviction") }
        var object: [String: JSONValue] = ["apiVersion": .string(apiVersion), "kind": "Eviction"]
        var message = ProtobufReader(raw)
        while let field = try message.next() {
            switch field.number {
            case 1: object["metadata"] = try objectMeta(field.bytes())
            case 2: object["deleteOptions"] = try ProtobufSchemaDecoder.decode(try field.bytes(), message: deleteOptionsFields)
            default: break
            }
        }
        return .object(object)
    }

    /// A self review kubectl sends (`auth can-i`, `can-i --list`, `whoami`): its spec, as JSON.
    public static func decodeReview(_ bytes: [UInt8]) throws -> JSONValue {
        let (apiVersion, kind, raw) = try envelope(bytes)
        var object: [String: JSONValue] = ["apiVersion": .string(apiVersion), "kind": .string(kind)]
        var message = ProtobufReader(raw)
        while let field = try message.next() {
            switch (kind, field.number) {
            case (_, 1): object["metadata"] = try objectMeta(field.bytes())
            case ("SelfSubjectAccessReview", 2):
                var spec = ProtobufReader(try field.bytes())
                var decoded: [String: JSONValue] = [:]
                while let part = try spec.next() {
                    // ResourceAttributes: namespace, verb, group, version, resource, subresource, name;
                    // NonResourceAttributes: path, verb.
                    let names =
                        part.number == 1
                        ? [1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource", 6: "subresource", 7: "name"]
                        : [1: "path", 2: "verb"]
                    guard part.number == 1 || part.number == 2 else { continue }
                    var attributes = ProtobufReader(try part.bytes())
                    var values: [String: JSONValue] = [:]
                    while let attribute = try attributes.next() {
                        guard let name = names[attribute.number] else { continue }
                        let value = try attribute.string()
                        if !value.isEmpty { values[name] = .string(value) }
                    }
                    decoded[part.number == 1 ? "resourceAttributes" : "nonResourceAttributes"] = .object(values)
                }
                object["spec"] = .object(decoded)
            case ("SelfSubjectRulesReview", 2):
                var spec = ProtobufReader(try field.bytes())
                var namespace = ""
                while let part = try spec.next() {
                    if part.number == 1 { namespace = try part.string() }
                }
                object["spec"] = ["namespace": .string(namespace)]
            default: break
            }
        }
        return .object(object)
    }

    /// `metav1.ObjectMeta`: the fields a client sets (the server's own are ignored on write anyway).
    private static func objectMeta(_ bytes: ArraySlice<UInt8>) throws -> JSONValue {
        var reader = ProtobufReader(bytes)
        var metadata: [String: JSONValue] = [:]
        var labels: [String: JSONValue] = [:]
        var annotations: [String: JSONValue] = [:]
        var finalizers: [JSONValue] = []
        while let field = try reader.next() {
            switch field.number {
            // Kubernetes' encoder writes every string field, set or not: an empty one is unset.
            case 1, 2, 3:
                let value = try field.string()
                guard !value.isEmpty else { continue }
                metadata[field.number == 1 ? "name" : field.number == 2 ? "generateName" : "namespace"] = .string(value)
            case 11:
                let (key, value) = try mapEntry(field.bytes())
                labels[key] = .string(String(decoding: value, as: UTF8.self))
            case 12:
                let (key, value) = try mapEntry(field.bytes())
                annotations[key] = .string(String(decoding: value, as: UTF8.self))
            case 14: finalizers.append(.string(try field.string()))
            default: break
            }
        }
        if !labels.isEmpty { metadata["labels"] = .object(labels) }
        if !annotations.isEmpty { metadata["annotations"] = .object(annotations) }
        if !finalizers.isEmpty { metadata["finalizers"] = .array(finalizers) }
        return .object(metadata)
    }

    /// A map entry: `key = 1`, `value = 2`.
    private static func mapEntry(_ bytes: ArraySlice<UInt8>) throws -> (String, ArraySlice<UInt8>) {
        var reader = ProtobufReader(bytes)
        var key = ""
        var value: ArraySlice<UInt8> = []
        while let field = try reader.next() {
            if field.number == 1 { key = try field.string() }
            if field.number == 2 { value = try field.bytes() }
        }
        return (key, value)
    }
}

struct ProtobufError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Reads Protocol Buffers wire format, refusing truncated or malformed input.
struct ProtobufReader {
    struct Field {
        enum Payload {
            case varint(UInt64)
            case bytes(ArraySlice<UInt8>)
            case fixed
        }

        var number: Int
        var payload: Payload

        func bytes() throws -> ArraySlice<UInt8> {
            guard case .bytes(let bytes) = payload else { throw ProtobufError("field \(number) is not length-delimited") }
            return bytes
        }

        func string() throws -> String {
            guard let text = String(validating: try bytes(), as: UTF8.self) else { throw ProtobufError("field \(number) is not UTF-8") }
            return text
        }

        func varint() throws -> UInt64 {
            guard case .varint(let value) = payload else { throw ProtobufError("field \(number) is not a varint") }
            return value
        }
    }

    private var rest: ArraySlice<UInt8>

    init(_ bytes: ArraySlice<UInt8>) {
        self.rest = bytes
    }

    mutating func next() throws -> Field? {
        guard !rest.isEmpty else { return nil }
        let key = try readVarint()
        let number = Int(key >> 3)
        guard number > 0 else { throw ProtobufError("field number 0") }
        switch key & 7 {
        case 0: return Field(number: number, payload: .varint(try readVarint()))
        case 1: try skip(8)
        case 2:
            let length = try readVarint()
            guard length <= UInt64(rest.count) else { throw ProtobufError("field \(number) claims \(length) bytes; \(rest.count) remain") }
            let bytes = rest.prefix(Int(length))
            rest = rest.dropFirst(Int(length))
            return Field(number: number, payload: .bytes(bytes))
        case 5: try skip(4)
        default: throw ProtobufError("wire type \(key & 7) is not supported")
        }
        return Field(number: number, payload: .fixed)
    }

    /// The next varint of a packed run, or nil at its end.
    mutating func nextPackedVarint() throws -> UInt64? {
        rest.isEmpty ? nil : try readVarint()
    }

    private mutating func skip(_ count: Int) throws {
        guard rest.count >= count else { throw ProtobufError("truncated fixed-width field") }
        rest = rest.dropFirst(count)
    }

    private mutating func readVarint() throws -> UInt64 {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 64, by: 7) {
            guard let byte = rest.popFirst() else { throw ProtobufError("truncated varint") }
            value |= UInt64(byte & 0x7F) << UInt64(shift)
            if byte < 0x80 { return value }
        }
        throw ProtobufError("varint longer than 10 bytes")
    }
}
