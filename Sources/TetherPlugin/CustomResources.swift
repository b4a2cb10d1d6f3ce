import Foundation
import TetherJSON
import TetherModel

/// A CustomResourceDefinition (`apiextensions.k8s.io/v1`) as Tether serves it: the kind it
/// defines, its storage version with that version's structural schema, and the other versions
/// it serves.
///
/// Several served versions are served with `conversion: None`, as kube-apiserver does: objects
/// are stored at the storage version, and a request at another version is checked against that
/// version's schema and only changes `apiVersion`. A definition asking for a conversion webhook
/// is refused: Tether calls none.
public struct CustomResourceDefinition: Sendable {
    public static let group = "apiextensions.k8s.io"
    /// Held by a definition until the objects of its kind are gone (kube-apiserver's own name).
    public static let cleanupFinalizer = "customresourcecleanup.apiextensions.k8s.io"

    public let name: String
    public let group: String
    public let version: String
    public let kind: String
    public let plural: String
    public let singular: String
    public let listKind: String
    public let namespaced: Bool
    public let shortNames: [String]
    public let categories: [String]
    public let schema: StructuralSchema
    /// The versions served besides the storage version, each with its own schema.
    public let otherVersions: [(name: String, schema: StructuralSchema)]
    /// The webhook converting objects between versions (`strategy: Webhook`); nil for `None`.
    public let conversionWebhook: ConversionWebhook?
    public let printerColumns: [Column]
    public let statusSubresource: Bool
    /// `.spec.replicas` and the like when the definition has a `scale` subresource.
    public let scale: (specReplicasPath: String, statusReplicasPath: String)?
    public let terminating: Bool
    /// The stored object's resource version: a changed definition has a new one.
    public let resourceVersion: UInt64?

    public struct Column: Sendable {
        public var name: String
        public var type: String
        public var jsonPath: ObjectPath
        public var description: String
        public var priority: Int
    }

    /// The definition in `object`, or every problem with it (as a kube-apiserver 422 words them).
    public init(parsing object: JSONValue) throws(DefinitionProblems) {
        var problems: [ValidationProblem] = []
        func problem(_ field: String, _ message: String) { problems.append(ValidationProblem(field: field, message)) }
        let spec = object["spec"] ?? .null
        let names = spec["names"] ?? .null
        group = spec["group"]?.stringValue ?? ""
        kind = names["kind"]?.stringValue ?? ""
        plural = names["plural"]?.stringValue ?? ""
        singular = names["singular"]?.stringValue ?? kind.lowercased()
        listKind = names["listKind"]?.stringValue ?? "\(kind)List"
        shortNames = names["shortNames"]?.arrayElements.compactMap(\.stringValue) ?? []
        categories = names["categories"]?.arrayElements.compactMap(\.stringValue) ?? []
        name = object.name ?? ""
        terminating = object.deletionTimestamp != nil
        resourceVersion = object.resourceVersion

        if group.isEmpty {
            problem("spec.group", "Required value")
        } else if !group.contains(".") || KubernetesNames.problem(name: group, rule: .dns1123Subdomain) != nil {
            problem("spec.group", "Invalid value: \"\(group)\": should be a domain with at least one dot")
        }
        for (field, value) in [("plural", plural), ("singular", singular)] {
            if value.isEmpty {
                problem("spec.names.\(field)", "Required value")
            } else if KubernetesNames.problem(name: value, rule: .dns1123Label) != nil {
                problem("spec.names.\(field)", "Invalid value: \"\(value)\": a lowercase RFC 1123 label (lower case alphanumerics and '-')")
            }
        }
        for shortName in shortNames where KubernetesNames.problem(name: shortName, rule: .dns1123Label) != nil {
            problem("spec.names.shortNames", "Invalid value: \"\(shortName)\": a lowercase RFC 1123 label")
        }
        if kind.isEmpty {
            problem("spec.names.kind", "Required value")
        } else if kind.first?.isLetter != true || kind.contains(where: { !$0.isLetter && !$0.isNumber }) {
            problem("spec.names.kind", "Invalid value: \"\(kind)\": letters and digits, starting with a letter")
        }
        if !plural.isEmpty, !group.isEmpty, name != "\(plural).\(group)" {
            problem("metadata.name", "Invalid value: \"\(name)\": must be spec.names.plural+\".\"+spec.group (\(plural).\(group))")
        }
        switch spec["scope"]?.stringValue {
        case "Namespaced": namespaced = true
        case "Cluster": namespaced = false
        case let other:
            namespaced = true
            problem(
                "spec.scope", other == nil ? "Required value" : "Unsupported value: \"\(other ?? "")\": supported values: \"Cluster\", \"Namespaced\""
            )
        }

        let versions = spec["versions"]?.arrayElements ?? []
        let served = versions.enumerated().filter { $0.element["served"] == .bool(true) }
        let storage = versions.enumerated().filter { $0.element["storage"] == .bool(true) }
        if versions.isEmpty { problem("spec.versions", "Required value: at least one version") }
        if storage.count != 1, !versions.isEmpty {
            problem("spec.versions", "Invalid value: must have exactly one version marked as storage version")
        }
        var webhookProblems: [ValidationProblem] = []
        conversionWebhook = Self.conversionWebhook(in: spec["conversion"] ?? .null, problems: &webhookProblems)
        problems += webhookProblems
        if let only = storage.first, only.element["served"] != .bool(true) {
            problem("spec.versions[\(only.offset)].served", "Invalid value: false: the storage version must be served")
        }
        let (index, chosen) = storage.first ?? (0, versions.first ?? .null)
        version = chosen["name"]?.stringValue ?? ""
        if version.isEmpty, !versions.isEmpty { problem("spec.versions[\(index)].name", "Required value") }

        func parseSchema(of version: JSONValue, at index: Int) -> StructuralSchema? {
            let schemaPath = "spec.versions[\(index)].schema.openAPIV3Schema"
            guard let node = version["schema"]?["openAPIV3Schema"] else {
                problem(schemaPath, "Required value: a structural schema is required")
                return nil
            }
            do {
                let schema = try StructuralSchema(parsing: node, path: schemaPath)
                if schema.type != "object" { problem("\(schemaPath).type", "Invalid value: must be object at the root") }
                return schema
            } catch {
                problems.append(error)
                return nil
            }
        }
        let parsed = versions.isEmpty ? nil : parseSchema(of: chosen, at: index)
        var others: [(name: String, schema: StructuralSchema)] = []
        var seen: Set<String> = [version]
        for (offset, other) in served where offset != index {
            let name = other["name"]?.stringValue ?? ""
            if name.isEmpty {
                problem("spec.versions[\(offset)].name", "Required value")
            } else if !seen.insert(name).inserted {
                problem("spec.versions[\(offset)].name", "Duplicate value: \"\(name)\"")
            } else if let schema = parseSchema(of: other, at: offset) {
                others.append((name, schema))
            }
        }
        otherVersions = others

        let subresources = chosen["subresources"] ?? .null
        statusSubresource = subresources["status"] != nil
        if let scale = subresources["scale"] {
            let specPath = scale["specReplicasPath"]?.stringValue ?? ""
            let statusPath = scale["statusReplicasPath"]?.stringValue ?? ""
            if specPath != ".spec.replicas" {
                problem(
                    "spec.versions[\(index)].subresources.scale.specReplicasPath",
                    "Unsupported value: \"\(specPath)\": Tether's scale subresource reads .spec.replicas")
            }
            self.scale = (specPath, statusPath)
        } else {
            self.scale = nil
        }

        var columns: [Column] = []
        for (position, column) in (chosen["additionalPrinterColumns"]?.arrayElements ?? []).enumerated() {
            let field = "spec.versions[\(index)].additionalPrinterColumns[\(position)]"
            let columnName = column["name"]?.stringValue ?? ""
            let columnType = column["type"]?.stringValue ?? ""
            if columnName.isEmpty { problem("\(field).name", "Required value") }
            if !["integer", "number", "string", "boolean", "date"].contains(columnType) {
                problem(
                    "\(field).type",
                    "Unsupported value: \"\(columnType)\": supported values: \"boolean\", \"date\", \"integer\", \"number\", \"string\"")
            }
            do {
                let path = try ObjectPath(parsing: column["jsonPath"]?.stringValue ?? "")
                columns.append(
                    Column(
                        name: columnName, type: columnType, jsonPath: path, description: column["description"]?.stringValue ?? "",
                        priority: Int(column["priority"]?.integerValue ?? 0)))
            } catch {
                problem("\(field).jsonPath", "Invalid value: \(error.message)")
            }
        }
        printerColumns = columns

        guard problems.isEmpty, let parsed else { throw DefinitionProblems(problems: problems) }
        schema = parsed
    }

    public var apiVersion: String { "\(group)/\(version)" }

    /// How the API serves the kind: names, scope, columns, subresources and published fields.
    public var descriptor: KindDescriptor {
        let columns = printerColumns.compactMap { column -> PrinterColumn? in
            // Every table ends with AGE already.
            if column.type == "date", column.jsonPath.text == ".metadata.creationTimestamp" { return nil }
            let (path, type) = (column.jsonPath, column.type)
            return PrinterColumn(
                name: column.name, type: type == "date" ? "string" : type, description: column.description, priority: column.priority
            ) {
                Self.cell(path.values(in: $0), type: type)
            }
        }
        var fields: [String: FieldSchema] = [:]
        if case .object(let published) = schema.fieldSchema {
            fields = published
            for reserved in ["apiVersion", "kind", "metadata"] { fields[reserved] = nil }
        } else {
            fields = ["spec": .free, "status": .free]
        }
        var descriptor = KindDescriptor(
            group: group, version: version, kind: kind, plural: plural, namespaced: namespaced, shortNames: shortNames, categories: categories,
            printerColumns: columns, hasStatus: statusSubresource || schema.properties["status"] != nil, hasScale: scale != nil, fields: fields,
            summary: schema.description ?? "\(kind) is defined by the CustomResourceDefinition \(name)."
        )
        descriptor.singular = singular
        descriptor.definition = name
        descriptor.fieldDescriptions = Self.descriptions(in: schema)
        return descriptor
    }

    /// The `description` of every field of `schema` that has one, by path (`spec.cronSpec`).
    static func descriptions(in schema: StructuralSchema, at path: String = "") -> [String: String] {
        var found: [String: String] = [:]
        for (name, field) in schema.properties where !(path.isEmpty && ["apiVersion", "kind", "metadata"].contains(name)) {
            let fieldPath = path.isEmpty ? name : "\(path).\(name)"
            if let text = field.description { found[fieldPath] = text }
            found.merge(descriptions(in: field, at: fieldPath)) { first, _ in first }
        }
        for element in [schema.items, schema.additionalProperties].compactMap({ $0 }) {
            found.merge(descriptions(in: element, at: path)) { first, _ in first }
        }
        return found
    }

    /// The kind at each version served besides the storage version: its own schema, the same
    /// names, columns and subresources, converted by renaming after a check and pruning by its schema.
    public var otherDescriptors: [KindDescriptor] {
        let storage = descriptor
        return otherVersions.map { version in
            var fields: [String: FieldSchema] = ["spec": .free, "status": .free]
            if case .object(let published) = version.schema.fieldSchema {
                fields = published
                for reserved in ["apiVersion", "kind", "metadata"] { fields[reserved] = nil }
            }
            let renaming = VersionConversion.renaming(group: group, served: version.name, storage: self.version)
            let schema = version.schema
            let kind = self.kind
            let checked: @Sendable (JSONValue) throws -> JSONValue = { object in
                try CustomResourcePlugin.checked(object, against: schema, kind: kind, version: version.name)
            }
            // With a webhook, an object is only checked and pruned at its own version here; the
            // webhook converts it each way. Without one, only its apiVersion changes.
            var conversion =
                conversionWebhook == nil
                ? VersionConversion(
                    storageVersion: self.version, toStorage: { try renaming.toStorage(checked($0)) }, fromStorage: renaming.fromStorage)
                : VersionConversion(storageVersion: self.version, toStorage: checked, fromStorage: { $0 })
            conversion.webhook = conversionWebhook
            var served = storage.alsoServed(as: version.name, fields: fields, conversion: conversion)
            served.fieldDescriptions = Self.descriptions(in: schema)
            return served
        }
    }

    private static func cell(_ values: [JSONValue], type: String) -> JSONValue {
        guard let first = values.first else { return .null }
        switch type {
        case "integer": return first.integerValue.map(JSONValue.integer) ?? .null
        case "number":
            if case .double = first { return first }
            return first.integerValue.map { .double(Double($0)) } ?? .null
        case "boolean": return first
        case "date":
            guard let stamp = first.stringValue, let date = try? Date(stamp, strategy: .iso8601) else { return .null }
            return .string(ObjectAge.since(date, now: Date()))
        default:
            let texts = values.map { $0.stringValue ?? (try? $0.serializedText()) ?? "" }
            return .string(texts.joined(separator: ","))
        }
    }

    /// The `status` kube-apiserver gives an accepted definition: its names, and the conditions
    /// `kubectl wait --for condition=established` waits for.
    public func acceptedStatus(now: Date) -> JSONValue {
        let stamp = JSONValue.string(kubernetesTimestamp(now))
        func condition(_ type: String, _ reason: String, _ message: String) -> JSONValue {
            ["type": .string(type), "status": "True", "lastTransitionTime": stamp, "reason": .string(reason), "message": .string(message)]
        }
        var conditions: [JSONValue] = [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ]
        if terminating { conditions.append(condition("Terminating", "InstanceDeletionInProgress", "CustomResource deletion is in progress")) }
        var accepted: [String: JSONValue] = [
            "kind": .string(kind), "plural": .string(plural), "singular": .string(singular), "listKind": .string(listKind),
        ]
        if !shortNames.isEmpty { accepted["shortNames"] = .array(shortNames.map(JSONValue.string)) }
        if !categories.isEmpty { accepted["categories"] = .array(categories.map(JSONValue.string)) }
        return ["acceptedNames": .object(accepted), "conditions": .array(conditions), "storedVersions": [.string(version)]]
    }
}

/// Every problem with a CustomResourceDefinition.
public struct DefinitionProblems: Error, Sendable {
    public var problems: [ValidationProblem]
}

/// What a custom kind gets from its definition: validation by its schema, defaults, pruning.
/// Everything else is the generic behaviour (health from conditions, propagated as is).
public struct CustomResourcePlugin: ResourcePlugin {
    public let name = "customresources"
    public let kinds: [KindDescriptor]
    private let schemas: [String: StructuralSchema]

    public let otherVersions: [KindDescriptor]

    public init(definitions: [CustomResourceDefinition]) {
        kinds = definitions.map(\.descriptor)
        otherVersions = definitions.flatMap(\.otherDescriptors)
        schemas = Dictionary(definitions.map { ("\($0.apiVersion)/\($0.kind)", $0.schema) }, uniquingKeysWith: { first, _ in first })
    }

    func schema(for object: JSONValue) -> StructuralSchema? { schemas["\(object.apiVersion ?? "")/\(object.kind ?? "")"] }

    public func validate(_ object: JSONValue) -> [ValidationProblem] {
        guard let schema = schema(for: object) else { return [] }
        var problems: [ValidationProblem] = []
        schema.validate(Self.body(of: object), path: "", into: &problems)
        // Validation rules see the object as it will be stored: defaults in, unknown fields out.
        if problems.isEmpty {
            var pruned: [String] = []
            schema.checkRules(schema.normalized(Self.body(of: object), pruned: &pruned), into: &problems)
        }
        return problems
    }

    public func normalizeOnWrite(_ object: JSONValue) -> JSONValue {
        guard let schema = schema(for: object), case .object(var members) = object else { return object }
        var pruned: [String] = []
        guard case .object(let body) = schema.normalized(Self.body(of: object), pruned: &pruned) else { return object }
        for key in members.keys where !Self.envelope.contains(key) { members[key] = nil }
        members.merge(body) { _, new in new }
        return .object(members)
    }

    private static let envelope: Set<String> = ["apiVersion", "kind", "metadata"]

    /// An object sent at a version served besides the storage version, checked and pruned by
    /// that version's schema before it is renamed and stored.
    static func checked(_ object: JSONValue, against schema: StructuralSchema, kind: String, version: String) throws -> JSONValue {
        var problems: [ValidationProblem] = []
        schema.validate(body(of: object), path: "", into: &problems)
        if problems.isEmpty {
            var pruned: [String] = []
            schema.checkRules(schema.normalized(body(of: object), pruned: &pruned), into: &problems)
        }
        guard problems.isEmpty else {
            throw VersionConversionError(
                invalid: "\(kind) \"\(object.name ?? "")\" is invalid at version \(version): "
                    + problems.map { "\($0.field): \($0.message)" }.joined(separator: "; "))
        }
        guard case .object(var members) = object else { return object }
        var pruned: [String] = []
        guard case .object(let normalized) = schema.normalized(body(of: object), pruned: &pruned) else { return object }
        for key in members.keys where !envelope.contains(key) { members[key] = nil }
        members.merge(normalized) { _, new in new }
        return .object(members)
    }

    /// The object without `apiVersion`, `kind` and `metadata`, which the API checks itself.
    static func body(of object: JSONValue) -> JSONValue {
        guard case .object(var members) = object else { return object }
        for key in envelope { members[key] = nil }
        return .object(members)
    }
}

/// The kind CustomResourceDefinition itself: cluster-scoped, applied before the objects of the
/// kinds it defines (the definitions phase), never written by an agent unless allowed by name.
public struct CustomResourceDefinitionPlugin: ResourcePlugin {
    public let name = "apiextensions"
    public let kinds: [KindDescriptor] = [Self.definition]

    public init() {}

    public static let definition = KindDescriptor(
        group: CustomResourceDefinition.group, version: "v1", kind: "CustomResourceDefinition", plural: "customresourcedefinitions",
        namespaced: false, shortNames: ["crd", "crds"], categories: ["api-extensions"],
        printerColumns: [.text("CREATED AT") { $0.metadata["creationTimestamp"]?.stringValue ?? "" }],
        fields: ["spec": .free, "status": .free],
        summary: "CustomResourceDefinition defines a kind the API serves: its names, scope, schema, subresources and printer columns."
    )

    public func validate(_ object: JSONValue) -> [ValidationProblem] {
        do {
            _ = try CustomResourceDefinition(parsing: object)
            return []
        } catch {
            return error.problems
        }
    }

    /// A new definition holds the cleanup finalizer, so deleting it first deletes its objects.
    public func normalizeOnWrite(_ object: JSONValue) -> JSONValue {
        guard object.deletionTimestamp == nil, object.uid == nil, !object.finalizers.contains(CustomResourceDefinition.cleanupFinalizer) else {
            return object
        }
        var copy = object
        copy.metadata["finalizers"] = .array((object.finalizers + [CustomResourceDefinition.cleanupFinalizer]).map(JSONValue.string))
        return copy
    }

    public func prepareForMember(_ object: JSONValue) -> JSONValue {
        var copy = MemberCopy.stripServerFields(object)
        copy.metadata["finalizers"] = nil
        return copy
    }

    public func applyPhase(of kind: KindDescriptor) -> ApplyPhase { .definitions }

    /// A definition changes what a member serves for every namespace: an agent writes it only
    /// when its allow-list names it.
    public func allowedByDefault(_ kind: KindDescriptor) -> Bool { false }

    public func health(of live: JSONValue) -> Health {
        Conditions(live).has("Established", "True") ? .healthy : Health(.progressing, "waiting for the member to establish the definition")
    }
}
