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

    public static let stringMap = FieldSchema.map(.string)
    public static let stringList = FieldSchema.array(.string)
    public static let freeList = FieldSchema.array(.free)

    /// `metav1.ObjectMeta`, every field of it.
    public static let objectMeta = FieldSchema.object([
        "name": .string, "generateName": .string, "namespace": .string, "selfLink": .string, "uid": .string,
        "resourceVersion": .string, "generation": .integer, "creationTimestamp": .string, "deletionTimestamp": .string,
        "deletionGracePeriodSeconds": .integer, "labels": stringMap, "annotations": stringMap,
        "ownerReferences": freeList, "finalizers": stringList, "managedFields": freeList,
    ])

    /// `metav1.LabelSelector`.
    public static let labelSelector = FieldSchema.object([
        "matchLabels": stringMap,
        "matchExpressions": .array(.object(["key": .string, "operator": .string, "values": stringList])),
    ])

    /// `core/v1.PodTemplateSpec`: its metadata checked, the Pod spec free.
    public static let podTemplate = FieldSchema.object(["metadata": objectMeta, "spec": .free])

    /// `metav1.Condition`-like status conditions.
    public static let conditions = FieldSchema.array(.free)

    /// The fields of an object: `apiVersion`, `kind`, `metadata`, then `fields`.
    public static func resource(_ fields: [String: FieldSchema]) -> FieldSchema {
        var all = fields
        all["apiVersion"] = .string
        all["kind"] = .string
        all["metadata"] = objectMeta
        return .object(all)
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
        switch (self, value) {
        case (.free, _): return
        case (.string, .string), (.boolean, .bool), (.integer, .integer), (.number, .integer), (.number, .double): return
        case (.intOrString, .string), (.intOrString, .integer): return
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
        }
    }
}
