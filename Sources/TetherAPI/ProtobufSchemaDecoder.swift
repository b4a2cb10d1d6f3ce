import Foundation
import TetherJSON
import TetherModel
import TetherPlugin

/// Decodes a protobuf body into the JSON object a client would have sent, driven by the kind's
/// ``FieldSchema``: the same description that checks JSON and publishes OpenAPI names each
/// field's number (`FieldSchema.message`).
///
/// Kubernetes' encoder writes every field that is not a pointer, set or not, so a zero there
/// means unset and is left out, as the JSON encoder's `omitempty` would; a pointer field
/// (`optional`) is written only when set, so its zero is kept. A field this server does not
/// know, or a part it does not model (`free`), is refused if it carries a value, with the JSON
/// route in the error: nothing is silently dropped.
enum ProtobufSchemaDecoder {
    static let maximumDepth = 48

    /// The object of `kind` whose message is `raw` (the envelope's contents). A status is the
    /// server's: Kubernetes ignores it on create and update, and so does this, unless asked to keep it.
    static func decode(_ raw: ArraySlice<UInt8>, kind: KindDescriptor, numbers: [String: Int], keepingStatus: Bool = false) throws -> JSONValue {
        let ignored = keepingStatus ? [] : Set(numbers["status"].map { [$0] } ?? [])
        var object = try decodeMessage(raw, fields: kind.protobufFields(numbers), ignoring: ignored, path: "", depth: 0)
        object["apiVersion"] = .string(kind.apiVersion)
        object["kind"] = .string(kind.kind)
        return .object(object)
    }

    /// A message that is not a kind (`DeleteOptions`), described by its fields.
    static func decode(_ raw: ArraySlice<UInt8>, message fields: [ProtoField]) throws -> JSONValue {
        .object(try decodeMessage(raw, fields: fields, path: "", depth: 0))
    }

    private static func decodeMessage(
        _ bytes: ArraySlice<UInt8>, fields: [ProtoField], ignoring ignored: Set<Int> = [], path: String, depth: Int
    ) throws -> [String: JSONValue] {
        guard depth < maximumDepth else { throw ProtobufError("\(path) is nested deeper than \(maximumDepth) levels") }
        let byNumber = Dictionary(fields.map { ($0.number, $0) }, uniquingKeysWith: { first, _ in first })
        var object: [String: JSONValue] = [:]
        var reader = ProtobufReader(bytes)
        while let field = try reader.next() {
            if ignored.contains(field.number) { continue }
            guard let known = byNumber[field.number] else {
                guard field.isZero else {
                    throw ProtobufError("\(path.isEmpty ? "the object" : path) has field number \(field.number), which this server does not know")
                }
                continue
            }
            if known.inline, case .message(let embedded) = known.schema {
                object.merge(try decodeMessage(try field.bytes(), fields: embedded, path: path, depth: depth + 1)) { _, embedded in embedded }
                continue
            }
            let name = path.isEmpty ? known.name : "\(path).\(known.name)"
            switch known.schema {
            case .array(let element), .keyedList(let element, _):
                var items: [JSONValue]
                if case .array(let held)? = object[known.name] { items = held } else { items = [] }
                if case .integer = element, case .bytes(let packed) = field.payload {
                    // A packed repeated integer (proto3's encoding, which Kubernetes' decoder also accepts).
                    var numbers = ProtobufReader(packed)
                    while let number = try numbers.nextPackedVarint() { items.append(.integer(Int64(bitPattern: number))) }
                } else {
                    items.append(try value(of: field, element, path: "\(name)[\(items.count)]", depth: depth + 1, keepZero: true) ?? .null)
                }
                object[known.name] = .array(items)
            case .map(let element):
                var entry = ProtobufReader(try field.bytes())
                var key = ""
                var entryValue: JSONValue = .string("")
                while let part = try entry.next() {
                    if part.number == 1 { key = try part.string() }
                    if part.number == 2 {
                        entryValue = try value(of: part, element, path: "\(name).\(key)", depth: depth + 1, keepZero: true) ?? .null
                    }
                }
                var map = object[known.name]?.objectMembers ?? [:]
                map[key] = entryValue
                object[known.name] = .object(map)
            default:
                if let decoded = try value(of: field, known.schema, path: name, depth: depth + 1, keepZero: known.optional) {
                    object[known.name] = decoded
                }
            }
        }
        return object
    }

    private static func value(of field: ProtobufReader.Field, _ schema: FieldSchema, path: String, depth: Int, keepZero: Bool) throws
        -> JSONValue?
    {
        do {
            switch schema {
            case .string:
                let text = try field.string()
                return text.isEmpty && !keepZero ? nil : .string(text)
            case .integer:
                // Negative int32 and int64 values are both ten-byte two's complement varints.
                let number = Int64(bitPattern: try field.varint())
                return number == 0 && !keepZero ? nil : .integer(number)
            case .boolean:
                let flag = try field.varint() != 0
                return !flag && !keepZero ? nil : .bool(flag)
            case .intOrString:
                var reader = ProtobufReader(try field.bytes())
                var type: UInt64 = 0
                var number: Int64 = 0
                var text = ""
                while let part = try reader.next() {
                    switch part.number {
                    case 1: type = try part.varint()
                    case 2: number = Int64(bitPattern: try part.varint())
                    case 3: text = try part.string()
                    default: break
                    }
                }
                return type == 1 ? .string(text) : .integer(number)
            case .time:
                var reader = ProtobufReader(try field.bytes())
                var seconds: Int64 = 0
                while let part = try reader.next() {
                    if part.number == 1 { seconds = Int64(bitPattern: try part.varint()) }
                }
                return seconds == 0 ? nil : .string(kubernetesTimestamp(Date(timeIntervalSince1970: TimeInterval(seconds))))
            case .microTime:
                var reader = ProtobufReader(try field.bytes())
                var (seconds, nanos): (Int64, Int32) = (0, 0)
                while let part = try reader.next() {
                    if part.number == 1 { seconds = Int64(bitPattern: try part.varint()) }
                    if part.number == 2 { nanos = Int32(truncatingIfNeeded: try part.varint()) }
                }
                guard (0..<1_000_000_000).contains(nanos) else { throw ProtobufError("\(path): nanoseconds \(nanos) out of range") }
                return seconds == 0 && nanos == 0 ? nil : .string(kubernetesMicroTimestamp(seconds: seconds, nanos: nanos))
            case .quantity:
                var reader = ProtobufReader(try field.bytes())
                var text = ""
                while let part = try reader.next() {
                    if part.number == 1 { text = try part.string() }
                }
                return .string(text)
            case .message(let fields):
                let object = try decodeMessage(try field.bytes(), fields: fields, path: path, depth: depth)
                return object.isEmpty && !keepZero ? nil : .object(object)
            case .bytes:
                return .string(Data(try field.bytes()).base64EncodedString())
            case .rawJSON:
                var reader = ProtobufReader(try field.bytes())
                var fields: JSONValue = [:]
                while let part = try reader.next() {
                    guard part.number == 1 else { continue }
                    do { fields = try JSONValue(parsing: try part.bytes()) } catch { throw ProtobufError("the field set is not JSON: \(error)") }
                }
                return fields
            case .free, .object, .number, .array, .keyedList, .map:
                guard field.isZero else { throw ProtobufError("\(path) cannot be read from protobuf by this server") }
                return nil
            }
        } catch let error as ProtobufError where !error.description.hasPrefix(path) {
            throw ProtobufError("\(path): \(error.description)")
        }
    }
}

extension KindDescriptor {
    /// The kind's top-level message: `metadata` as field 1, then each field `numbers` names,
    /// described by the kind's schema.
    func protobufFields(_ numbers: [String: Int]) -> [ProtoField] {
        var fields: [ProtoField] = [.field(1, "metadata", .objectMeta)]
        for (name, number) in numbers.sorted(by: { $0.value < $1.value }) {
            // The top-level scalars of the kinds served (`automountServiceAccountToken`, a
            // ConfigMap's `immutable`) are pointers.
            let schema = self.fields?[name] ?? .free
            fields.append(.field(number, name, schema, optional: schema == .boolean || schema == .integer))
        }
        return fields
    }
}

extension ProtobufReader.Field {
    /// Whether the field holds its type's zero: what Kubernetes writes for an unset non-pointer field.
    var isZero: Bool {
        switch payload {
        case .varint(let value): value == 0
        case .bytes(let bytes): bytes.isEmpty
        case .fixed: false
        }
    }
}
