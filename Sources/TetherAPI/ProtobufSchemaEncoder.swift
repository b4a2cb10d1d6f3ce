import Foundation
import TetherJSON
import TetherModel
import TetherPlugin

/// Encodes an object as Kubernetes' protobuf message of its kind, driven by the kind's
/// ``FieldSchema``: the inverse of ``ProtobufSchemaDecoder``, from the same description.
///
/// What Go's decoder reads back is what the JSON says: a member that is absent or `null` is not
/// written (Go reads it as its zero, or a nil pointer), a member that is present is written even
/// when it is zero (so a pointer's `0` or `false` stays set). Nothing is guessed: a member the
/// schema does not know, a value of another type than the schema's, or a `free` part that holds
/// anything but an empty object (whose fields this server has no numbers for) throws
/// ``NotEncodable``, and the caller answers in JSON instead.
enum ProtobufSchemaEncoder {
    struct NotEncodable: Error, CustomStringConvertible {
        var path: String
        var reason: String
        var description: String { "\(path.isEmpty ? "the object" : path): \(reason)" }
    }

    /// The kind's message for `object` (what goes inside the envelope).
    static func encode(_ object: JSONValue, kind: KindDescriptor, numbers: [String: Int]) throws -> [UInt8] {
        guard case .object(var members) = object else { throw NotEncodable(path: "", reason: "not an object") }
        members["apiVersion"] = nil
        members["kind"] = nil
        var writer = ProtobufWriter()
        try encodeMessage(members, fields: kind.protobufFields(numbers), path: "", into: &writer)
        return writer.bytes
    }

    /// A message of `fields` for `members` (a `Status`, which is no kind of the registry).
    static func encode(_ members: [String: JSONValue], message fields: [ProtoField]) throws -> [UInt8] {
        var writer = ProtobufWriter()
        try encodeMessage(members, fields: fields, path: "", into: &writer)
        return writer.bytes
    }

    private static func encodeMessage(_ members: [String: JSONValue], fields: [ProtoField], path: String, into writer: inout ProtobufWriter)
        throws
    {
        var remaining = members
        // Field order is the fields' numbers, as Go's encoder writes them; decoders accept any.
        for field in fields.sorted(by: { $0.number < $1.number }) {
            if field.inline, case .message(let embedded) = field.schema {
                let names = Set(embedded.map(\.name))
                let inner = remaining.filter { names.contains($0.key) }
                guard !inner.isEmpty else { continue }
                for name in inner.keys { remaining[name] = nil }
                var message = ProtobufWriter()
                try encodeMessage(inner, fields: embedded, path: path, into: &message)
                writer.message(field.number, message)
                continue
            }
            guard let value = remaining.removeValue(forKey: field.name) else { continue }
            try encodeField(value, field.schema, number: field.number, path: path.isEmpty ? field.name : "\(path).\(field.name)", into: &writer)
        }
        if let unknown = remaining.first(where: { $0.value != .null }) {
            throw NotEncodable(path: path.isEmpty ? unknown.key : "\(path).\(unknown.key)", reason: "the field has no protobuf number here")
        }
    }

    /// One member: a repeated field's every element, a map's every entry, or one value.
    private static func encodeField(_ value: JSONValue, _ schema: FieldSchema, number: Int, path: String, into writer: inout ProtobufWriter)
        throws
    {
        switch (schema, value) {
        case (_, .null):
            return
        case (.array(let element), .array(let items)), (.keyedList(let element, _), .array(let items)):
            for (index, item) in items.enumerated() {
                try encodeValue(item, element, number: number, path: "\(path)[\(index)]", into: &writer)
            }
        case (.map(let element), .object(let entries)):
            for (key, entryValue) in entries.sorted(by: { $0.key < $1.key }) {
                var entry = ProtobufWriter()
                entry.string(1, key)
                try encodeValue(entryValue, element, number: 2, path: "\(path).\(key)", into: &entry)
                writer.message(number, entry)
            }
        default:
            try encodeValue(value, schema, number: number, path: path, into: &writer)
        }
    }

    private static func encodeValue(_ value: JSONValue, _ schema: FieldSchema, number: Int, path: String, into writer: inout ProtobufWriter)
        throws
    {
        func wrong(_ expected: String) -> NotEncodable { NotEncodable(path: path, reason: "expected \(expected), found \(value.kindName)") }
        switch schema {
        case .string:
            guard case .string(let text) = value else { throw wrong("a string") }
            writer.string(number, text)
        case .integer:
            guard let integer = value.exactInteger else { throw wrong("an integer") }
            writer.varint(number, UInt64(bitPattern: integer))
        case .boolean:
            guard case .bool(let flag) = value else { throw wrong("a boolean") }
            writer.varint(number, flag ? 1 : 0)
        case .intOrString:
            var message = ProtobufWriter()
            if case .string(let text) = value {
                message.varint(1, 1)
                message.string(3, text)
            } else if let integer = value.exactInteger {
                message.varint(1, 0)
                message.varint(2, UInt64(bitPattern: integer))
            } else {
                throw wrong("an integer or a string")
            }
            writer.message(number, message)
        case .time:
            guard case .string(let text) = value, let date = try? Date(text, strategy: .iso8601) else { throw wrong("an RFC 3339 time") }
            var message = ProtobufWriter()
            let seconds = date.timeIntervalSince1970.rounded(.down)
            message.varint(1, UInt64(bitPattern: Int64(seconds)))
            let nanos = Int64(((date.timeIntervalSince1970 - seconds) * 1e9).rounded())
            if nanos > 0 { message.varint(2, UInt64(nanos)) }
            writer.message(number, message)
        case .microTime:
            guard case .string(let text) = value, let (seconds, nanos) = kubernetesTimeParts(text) else { throw wrong("an RFC 3339 time") }
            var message = ProtobufWriter()
            message.varint(1, UInt64(bitPattern: seconds))
            if nanos > 0 { message.varint(2, UInt64(nanos)) }
            writer.message(number, message)
        case .quantity:
            let text: String
            switch value {
            case .string(let quantity): text = quantity
            case .integer(let integer): text = String(integer)
            default: throw wrong("a quantity")
            }
            var message = ProtobufWriter()
            message.string(1, text)
            writer.message(number, message)
        case .bytes:
            guard case .string(let text) = value, let data = Data(base64Encoded: text) else { throw wrong("base64 text") }
            writer.lengthDelimited(number, Array(data))
        case .rawJSON:
            guard case .object = value, let text = try? value.serialized() else { throw wrong("an object") }
            var message = ProtobufWriter()
            message.lengthDelimited(1, text)
            writer.message(number, message)
        case .message(let fields):
            guard case .object(let members) = value else { throw wrong("an object") }
            var message = ProtobufWriter()
            try encodeMessage(members, fields: fields, path: path, into: &message)
            writer.message(number, message)
        case .free:
            // Every free part of the built-in kinds is a message (a probe, an affinity); its
            // zero, `{}`, is an empty message. Anything more has no numbers here.
            guard case .object(let members) = value, members.isEmpty else {
                throw NotEncodable(path: path, reason: "this part is not described field by field")
            }
            writer.lengthDelimited(number, [])
        case .array, .keyedList, .map:
            // A list of lists or of maps: no kind served has one.
            throw NotEncodable(path: path, reason: "a nested collection")
        case .object, .number:
            throw NotEncodable(path: path, reason: "the field has no protobuf encoding here")
        }
    }
}

extension JSONValue {
    /// The value as an integer when it is one (`3`, or `3.0` from a client that writes numbers as doubles).
    fileprivate var exactInteger: Int64? {
        switch self {
        case .integer(let integer): integer
        case .double(let double) where double.rounded() == double && abs(double) < 9.2e18: Int64(double)
        default: nil
        }
    }
}
