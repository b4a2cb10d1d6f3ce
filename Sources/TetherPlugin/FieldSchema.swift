import TetherJSON
import TetherModel

/// The shape of a field, as far as the API checks it and publishes it in OpenAPI.
///
/// A plugin describes its kinds' fields with these; the API turns them into `/openapi/v2`
/// (protobuf, for kubectl's client-side validation), `/openapi/v3` (JSON, for server-side field
/// validation and `kubectl explain`) and checks writes against them (`fieldValidation`). An
/// `object` names every field it may hold: anything else is an unknown field. Parts a plugin
/// does not model (a Pod spec, a status) are `free`: anything goes and is kept as sent.
public indirect enum FieldSchema: Sendable, Hashable {
    case string
    case integer
    case number
    case boolean
    /// An integer or a string, such as a port name or `25%` (`x-kubernetes-int-or-string`).
    case intOrString
    /// Exactly these fields.
    case object([String: FieldSchema])
    /// Any keys, every value of one shape (labels: `map(.string)`).
    case map(FieldSchema)
    case array(FieldSchema)
    /// Not checked: kept as sent (`x-kubernetes-preserve-unknown-fields`).
    case free
    /// Exactly these fields, each with the number Kubernetes' protobuf encoding gives it: in
    /// JSON an `object`, and the same description decodes a protobuf body (`ProtobufSchemaDecoder`).
    case message([ProtoField])
    /// `metav1.Time`: an RFC 3339 string in JSON; `{seconds = 1, nanos = 2}` in protobuf.
    case time
    /// `metav1.MicroTime` (an Event's `eventTime`): RFC 3339 with six fractional digits in
    /// JSON; `{seconds = 1, nanos = 2}` in protobuf, as a `time`.
    case microTime
    /// `resource.Quantity` (`500m`, `1Gi`, or a number): `{string = 1}` in protobuf.
    case quantity
    /// A list whose elements a strategic merge patch merges by `mergeKey` (containers by
    /// `name`): an array in JSON, published in OpenAPI with `x-kubernetes-patch-merge-key`, which
    /// kubectl's client-side apply needs to patch one element, not replace the list.
    case keyedList(FieldSchema, mergeKey: String)
    /// `[]byte`: base64 text in JSON, the bytes themselves in protobuf (a Secret's `data`).
    case bytes
    /// `metav1.FieldsV1` (a managed-fields entry's field set) and `runtime.RawExtension` (a
    /// ControllerRevision's `data`): any JSON object in JSON; in protobuf a message whose
    /// field 1 holds that object's JSON text.
    case rawJSON

    /// A message from its fields: `.numbered(.field(1, "replicas", .integer, optional: true), ...)`.
    public static func numbered(_ fields: ProtoField...) -> FieldSchema { .message(fields) }

    /// The JSON shape alone: a message is an object, a time a string, a quantity an int-or-string.
    public var jsonShape: FieldSchema {
        switch self {
        case .message(let fields):
            .object(
                Dictionary(
                    fields.flatMap { field -> [(String, FieldSchema)] in
                        // An embedded struct's fields are the parent's in JSON.
                        guard field.inline, case .object(let members) = field.schema.jsonShape else { return [(field.name, field.schema)] }
                        return members.map { ($0.key, $0.value) }
                    },
                    uniquingKeysWith: { first, _ in first }))
        case .time, .microTime: .string
        case .quantity: .intOrString
        case .bytes: .string
        case .rawJSON: .free
        case .keyedList(let element, _): .array(element)
        default: self
        }
    }

    public static let stringMap = FieldSchema.map(.string)
    public static let stringList = FieldSchema.array(.string)
    public static let freeList = FieldSchema.array(.free)

    /// `metav1.ObjectMeta`, every field of it.
    public static let objectMeta = FieldSchema.numbered(
        .field(1, "name", .string), .field(2, "generateName", .string), .field(3, "namespace", .string),
        .field(4, "selfLink", .string), .field(5, "uid", .string), .field(6, "resourceVersion", .string),
        .field(7, "generation", .integer), .field(8, "creationTimestamp", .time), .field(9, "deletionTimestamp", .time),
        .field(10, "deletionGracePeriodSeconds", .integer, optional: true), .field(11, "labels", stringMap),
        .field(12, "annotations", stringMap),
        .field(
            13, "ownerReferences",
            .array(
                .numbered(
                    .field(5, "apiVersion", .string), .field(1, "kind", .string), .field(3, "name", .string), .field(4, "uid", .string),
                    .field(6, "controller", .boolean, optional: true), .field(7, "blockOwnerDeletion", .boolean, optional: true)
                ))),
        .field(14, "finalizers", stringList), .field(17, "managedFields", .array(managedFieldsEntry))
    )

    /// `metav1.ManagedFieldsEntry`: who set which fields (server-side apply).
    public static let managedFieldsEntry = FieldSchema.numbered(
        .field(1, "manager", .string), .field(2, "operation", .string), .field(3, "apiVersion", .string), .field(4, "time", .time),
        .field(6, "fieldsType", .string), .field(7, "fieldsV1", .rawJSON), .field(8, "subresource", .string)
    )

    /// `metav1.Condition`, the condition type of newer kinds (a Service's, a PodDisruptionBudget's).
    public static let condition = FieldSchema.numbered(
        .field(1, "type", .string), .field(2, "status", .string), .field(3, "observedGeneration", .integer),
        .field(4, "lastTransitionTime", .time), .field(5, "reason", .string), .field(6, "message", .string)
    )

    /// The condition of the apps kinds (ReplicaSet, StatefulSet, DaemonSet) and of a Namespace:
    /// `type`, `status`, `lastTransitionTime`, `reason`, `message`, numbered as each kind numbers them.
    public static func transitionCondition(lastTransitionTime: Int, reason: Int, message: Int) -> FieldSchema {
        .numbered(
            .field(1, "type", .string), .field(2, "status", .string), .field(lastTransitionTime, "lastTransitionTime", .time),
            .field(reason, "reason", .string), .field(message, "message", .string))
    }

    /// The condition of a Job, a Pod and a PersistentVolumeClaim, numbered alike: `type`,
    /// `status`, `lastProbeTime`, `lastTransitionTime`, `reason`, `message` (1 to 6), and what a
    /// kind adds (a Pod's `observedGeneration`, 7).
    public static func probedCondition(_ added: ProtoField...) -> FieldSchema {
        .message(
            [
                .field(1, "type", .string), .field(2, "status", .string), .field(3, "lastProbeTime", .time),
                .field(4, "lastTransitionTime", .time), .field(5, "reason", .string), .field(6, "message", .string),
            ] + added)
    }

    /// `core/v1.ObjectReference` (a CronJob's active Jobs).
    public static let objectReference = FieldSchema.numbered(
        .field(1, "kind", .string), .field(2, "namespace", .string), .field(3, "name", .string), .field(4, "uid", .string),
        .field(5, "apiVersion", .string), .field(6, "resourceVersion", .string), .field(7, "fieldPath", .string)
    )

    /// `metav1.LabelSelector`.
    public static let labelSelector = FieldSchema.numbered(
        .field(1, "matchLabels", stringMap),
        .field(2, "matchExpressions", .array(.numbered(.field(1, "key", .string), .field(2, "operator", .string), .field(3, "values", stringList))))
    )

    /// `core/v1.PodTemplateSpec`.
    public static let podTemplate = FieldSchema.numbered(.field(1, "metadata", objectMeta), .field(2, "spec", podSpec))

    /// The fields of an object: `apiVersion`, `kind`, `metadata`, then `fields`.
    public static func resource(_ fields: [String: FieldSchema]) -> FieldSchema {
        var all = fields
        all["apiVersion"] = .string
        all["kind"] = .string
        all["metadata"] = objectMeta
        return .object(all)
    }
}

/// One field of a ``FieldSchema/message(_:)``.
public struct ProtoField: Sendable, Hashable {
    public var number: Int
    public var name: String
    public var schema: FieldSchema
    /// Encoded only when set (a pointer in the Go type): a zero value that arrives is kept, where
    /// a zero in any other field means unset.
    public var optional: Bool
    /// An embedded Go struct: a message of its own in protobuf, its fields the parent's in JSON
    /// (an Ingress rule's `http`).
    public var inline: Bool = false

    public static func field(_ number: Int, _ name: String, _ schema: FieldSchema, optional: Bool = false) -> ProtoField {
        ProtoField(number: number, name: name, schema: schema, optional: optional)
    }

    public static func embedded(_ number: Int, _ schema: FieldSchema) -> ProtoField {
        ProtoField(number: number, name: "", schema: schema, optional: false, inline: true)
    }
}

/// What is wrong with an object against its kind's schema.
public struct SchemaFindings: Sendable, Hashable {
    public struct WrongType: Sendable, Hashable {
        public var path: String
        public var expected: String

        public init(path: String, expected: String) {
            self.path = path
            self.expected = expected
        }
    }

    /// Dotted paths of fields the schema does not know (`spec.replica`).
    public var unknownFields: [String] = []
    /// Fields whose value has the wrong type, with what was expected.
    public var wrongTypes: [WrongType] = []

    public var isEmpty: Bool { unknownFields.isEmpty && wrongTypes.isEmpty }
}

extension FieldSchema {
    /// Checks `value` against this shape. A `null` fits every shape, as in Kubernetes' decoding.
    public func check(_ value: JSONValue) -> SchemaFindings {
        var findings = SchemaFindings()
        check(value, path: "", into: &findings)
        return findings
    }

    private func check(_ value: JSONValue, path: String, into findings: inout SchemaFindings) {
        if case .null = value { return }
        func wrong(_ expected: String) { findings.wrongTypes.append(.init(path: path.isEmpty ? "<root>" : path, expected: expected)) }
        switch (jsonShape, value) {
        case (.free, _): return
        case (.string, .string), (.boolean, .bool), (.integer, .integer), (.number, .integer), (.number, .double): return
        case (.intOrString, .string), (.intOrString, .integer), (.intOrString, .double): return
        case (.integer, .double(let number)) where number.rounded() == number: return
        case (.string, _): wrong("string")
        case (.integer, _): wrong("integer")
        case (.number, _): wrong("number")
        case (.boolean, _): wrong("boolean")
        case (.intOrString, _): wrong("integer or string")
        case (.object(let fields), .object(let members)):
            for (name, member) in members.sorted(by: { $0.key < $1.key }) {
                let child = path.isEmpty ? name : "\(path).\(name)"
                guard let field = fields[name] else {
                    findings.unknownFields.append(child)
                    continue
                }
                field.check(member, path: child, into: &findings)
            }
        case (.object, _): wrong("object")
        case (.map(let element), .object(let members)):
            for (name, member) in members.sorted(by: { $0.key < $1.key }) {
                element.check(member, path: path.isEmpty ? name : "\(path).\(name)", into: &findings)
            }
        case (.array(let element), .array(let items)):
            for (index, item) in items.enumerated() { element.check(item, path: "\(path)[\(index)]", into: &findings) }
        case (.map, _): wrong("object")
        case (.array, _): wrong("array")
        // Shown as their JSON shapes above.
        case (.message, _), (.time, _), (.microTime, _), (.quantity, _), (.keyedList, _), (.bytes, _), (.rawJSON, _): return
        }
    }
}
