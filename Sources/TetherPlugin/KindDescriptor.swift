import Foundation
import TetherJSON
import TetherModel

/// A column of `kubectl get` output, computed from an object.
public struct PrinterColumn: Sendable {
    public var name: String
    /// The OpenAPI type Kubernetes tables use: `string`, `integer`, `date`, ...
    public var type: String
    public var description: String
    /// 0: always shown; 1: only with `-o wide`.
    public var priority: Int
    public var cell: @Sendable (JSONValue) -> JSONValue

    public init(
        name: String,
        type: String = "string",
        description: String = "",
        priority: Int = 0,
        cell: @escaping @Sendable (JSONValue) -> JSONValue
    ) {
        self.name = name
        self.type = type
        self.description = description
        self.priority = priority
        self.cell = cell
    }
}

/// Everything the API needs to serve one kind: its names, its scope, and how to print it.
public struct KindDescriptor: Sendable {
    /// Empty for the core group.
    public var group: String
    public var version: String
    public var kind: String
    public var plural: String
    public var singular: String
    public var namespaced: Bool
    public var shortNames: [String]
    public var categories: [String]
    /// Columns between NAME (always first) and AGE (always last).
    public var printerColumns: [PrinterColumn]
    public var hasStatus: Bool
    /// Serves the `scale` subresource over `spec.replicas` (what `kubectl scale` uses).
    public var hasScale: Bool
    /// Dotted paths a `fieldSelector` may name besides `metadata.name` and `metadata.namespace`.
    public var selectableFields: Set<String>
    /// The object's fields besides `apiVersion`, `kind` and `metadata` (`spec`, `status`, or
    /// `data` for a ConfigMap). Nil: a free `spec` and `status`.
    public var fields: [String: FieldSchema]?
    /// One line on what the kind is, for OpenAPI and `kubectl explain`.
    public var summary: String
    /// The rule object names follow; the API refuses a create that breaks it.
    public var nameRule: KubernetesNames.Rule
    /// The protobuf field number of each top-level field besides `metadata` (always 1), for
    /// kinds whose fields are `message`s all the way down: a protobuf body of the kind is then
    /// decoded from `fields`. Nil: the kind takes JSON only.
    public var protobufNumbers: [String: Int]?
    /// The CustomResourceDefinition that defines the kind (`crontabs.stable.example.com`); nil for
    /// the kinds plugins declare. Its schema's findings are 422s, as kube-apiserver answers them.
    public var definition: String?
    /// For a version served besides the storage version (``alsoServed(as:fields:protobufNumbers:summary:conversion:)``):
    /// how its objects map to the stored ones. Nil for the storage version itself.
    public var conversion: VersionConversion?
    /// What each field means, for OpenAPI and `kubectl explain`, by its path from the object's
    /// root (`spec.placement.clusterNames`; an array's or a map's members continue its path).
    public var fieldDescriptions: [String: String] = [:]
    /// Where AGE goes among ``printerColumns`` when not where kube-apiserver's tables usually put
    /// it (before the first `-o wide` column): a Node's is between ROLES and VERSION.
    public var ageColumnAt: Int?
    /// The NAME cell, when kube-apiserver's table adds to the name: a default StorageClass is
    /// `standard (default)`. Nil: the name.
    public var displayedName: (@Sendable (JSONValue) -> String)?

    public init(
        group: String,
        version: String,
        kind: String,
        plural: String,
        namespaced: Bool,
        shortNames: [String] = [],
        categories: [String] = [],
        printerColumns: [PrinterColumn] = [],
        hasStatus: Bool = true,
        hasScale: Bool = false,
        selectableFields: Set<String> = [],
        fields: [String: FieldSchema]? = nil,
        summary: String = "",
        nameRule: KubernetesNames.Rule = .dns1123Subdomain,
        protobufNumbers: [String: Int]? = nil
    ) {
        self.group = group
        self.version = version
        self.kind = kind
        self.plural = plural
        self.singular = kind.lowercased()
        self.namespaced = namespaced
        self.shortNames = shortNames
        self.categories = categories
        self.printerColumns = printerColumns
        self.hasStatus = hasStatus
        self.hasScale = hasScale
        self.selectableFields = selectableFields
        self.fields = fields
        self.summary = summary
        self.nameRule = nameRule
        self.protobufNumbers = protobufNumbers
    }

    /// The whole object's schema: `apiVersion`, `kind`, `metadata` and the kind's fields.
    public var schema: FieldSchema {
        .resource(fields ?? ["spec": .free, "status": .free])
    }

    /// The kind with `descriptions` of its fields (by path from the object's root) added.
    public func describing(_ descriptions: [String: String]) -> KindDescriptor {
        var described = self
        described.fieldDescriptions.merge(descriptions) { $1 }
        return described
    }

    /// `apps/v1`, or `v1` for the core group.
    public var apiVersion: String { group.isEmpty ? version : "\(group)/\(version)" }

    /// `replicasets.apps`, or `namespaces` for the core group.
    public var resourceName: String { group.isEmpty ? plural : "\(plural).\(group)" }
}

/// The kinds a server serves and the plugin behind each, found by group, version and plural
/// (URLs) or by apiVersion and kind (bodies). A kind no plugin declares gets ``GenericPlugin``.
extension KindDescriptor {
    /// Whether the kind's status may hold `field`: a status not modelled, or free, holds anything.
    public func statusHas(_ field: String) -> Bool {
        guard hasStatus else { return false }
        guard let fields else { return true }
        switch fields["status"]?.jsonShape {
        case .object(let members): return members[field] != nil
        case .free: return true
        default: return false
        }
    }
}

public struct KindRegistry: Sendable {
    public let kinds: [KindDescriptor]
    /// Versions served besides the storage versions of `kinds` (`batch/v1beta1` CronJobs): the
    /// API serves and converts them; nothing else sees them, since every object is stored,
    /// watched and propagated at its storage version.
    public let otherVersions: [KindDescriptor]
    public let plugins: [any ResourcePlugin]

    /// The kinds an agent writes when its allow-list does not name kinds.
    public var kindsAllowedByDefault: [KindDescriptor] {
        kinds.filter { kind in
            let plugin = plugin(apiVersion: kind.apiVersion, kind: kind.kind)
            return plugin.propagates(kind) && plugin.allowedByDefault(kind)
        }
    }
    private let pluginByKind: [String: Int]
    /// Plugins that take precedence for a kind (`apiVersion/Kind`): interpreter customizations.
    private let overrides: [String: any ResourcePlugin]
    private static let generic = GenericPlugin()

    /// Registers every plugin's kinds in order; a kind declared twice keeps its first plugin.
    /// `overrides` answer for their kinds before any plugin.
    public init(plugins: [any ResourcePlugin], overrides: [String: any ResourcePlugin] = [:]) {
        self.overrides = overrides
        var kinds: [KindDescriptor] = []
        var pluginByKind: [String: Int] = [:]
        for (index, plugin) in plugins.enumerated() {
            for kind in plugin.kinds where pluginByKind[Self.key(kind.apiVersion, kind.kind)] == nil {
                pluginByKind[Self.key(kind.apiVersion, kind.kind)] = index
                kinds.append(kind)
            }
        }
        self.kinds = kinds
        var otherVersions: [KindDescriptor] = []
        for plugin in plugins {
            for other in plugin.otherVersions {
                let stored = kinds.contains { $0.group == other.group && $0.kind == other.kind && $0.version == other.conversion?.storageVersion }
                let taken = (kinds + otherVersions).contains { $0.apiVersion == other.apiVersion && $0.kind == other.kind }
                if stored, !taken { otherVersions.append(other) }
            }
        }
        self.otherVersions = otherVersions
        self.plugins = plugins
        self.pluginByKind = pluginByKind
    }

    /// The kind a URL names, at any version served.
    public func kind(group: String, version: String, plural: String) -> KindDescriptor? {
        servedKinds.first { $0.group == group && $0.version == version && $0.plural == plural }
    }

    /// The kind a body names, at any version served.
    public func kind(apiVersion: String, kind: String) -> KindDescriptor? {
        servedKinds.first { $0.apiVersion == apiVersion && $0.kind == kind }
    }

    /// The kind `served` is stored as: itself, or the storage version of another version served.
    public func storageKind(of served: KindDescriptor) -> KindDescriptor? {
        guard let conversion = served.conversion else { return served }
        return kinds.first { $0.group == served.group && $0.kind == served.kind && $0.version == conversion.storageVersion }
    }

    /// Every kind at every version served: the storage versions first.
    public var servedKinds: [KindDescriptor] { kinds + otherVersions }

    /// The plugin for a kind, or the generic one.
    public func plugin(apiVersion: String, kind: String) -> any ResourcePlugin {
        let key = Self.key(apiVersion, kind)
        if let override = overrides[key] { return override }
        return pluginByKind[key].map { plugins[$0] } ?? Self.generic
    }

    /// The plugin for a kind without interpreter customizations in front of it.
    public func basePlugin(apiVersion: String, kind: String) -> any ResourcePlugin {
        pluginByKind[Self.key(apiVersion, kind)].map { plugins[$0] } ?? Self.generic
    }

    /// The plugin for an object, from its `apiVersion` and `kind`.
    public func plugin(for object: JSONValue) -> any ResourcePlugin {
        plugin(apiVersion: object.apiVersion ?? "", kind: object.kind ?? "")
    }

    /// Every group with its versions, in registration order; the core group ("") included.
    public var groups: [(name: String, versions: [String])] {
        var result: [(name: String, versions: [String])] = []
        for kind in servedKinds {
            if let index = result.firstIndex(where: { $0.name == kind.group }) {
                if !result[index].versions.contains(kind.version) { result[index].versions.append(kind.version) }
            } else {
                result.append((kind.group, [kind.version]))
            }
        }
        return result
    }

    /// The kinds served at one group version (discovery, OpenAPI).
    public func kinds(group: String, version: String) -> [KindDescriptor] {
        servedKinds.filter { $0.group == group && $0.version == version }
    }

    /// `group/version/Kind` of every kind whose objects go to members, as agents announce them in `hello`.
    public var propagatedKindNames: [String] {
        kinds.filter { plugin(apiVersion: $0.apiVersion, kind: $0.kind).propagates($0) }
            .map { "\($0.group)/\($0.version)/\($0.kind)" }
    }

    private static func key(_ apiVersion: String, _ kind: String) -> String { "\(apiVersion)/\(kind)" }
}

extension PrinterColumn {
    /// A string column.
    public static func text(
        _ name: String,
        priority: Int = 0,
        _ cell: @escaping @Sendable (JSONValue) -> String
    ) -> PrinterColumn {
        PrinterColumn(name: name, priority: priority) { .string(cell($0)) }
    }

    /// A time shown as its age (`45s`, `12m`), as kube-apiserver's printers show one; `<none>` when unset.
    public static func age(_ name: String, priority: Int = 0, _ time: @escaping @Sendable (JSONValue) -> String?) -> PrinterColumn {
        PrinterColumn(name: name, priority: priority) { object in
            guard let text = time(object), let parts = kubernetesTimeParts(text) else { return "<none>" }
            return .string(ObjectAge.since(Date(timeIntervalSince1970: TimeInterval(parts.seconds)), now: Date()))
        }
    }

    /// An integer column.
    public static func count(_ name: String, priority: Int = 0, _ cell: @escaping @Sendable (JSONValue) -> Int64) -> PrinterColumn {
        PrinterColumn(name: name, type: "integer", priority: priority) { .integer(cell($0)) }
    }

    /// `-o wide`'s CONTAINERS and IMAGES of the Pod template at `template` (`spec.template`), as kubectl prints them.
    public static func podTemplate(at template: [String]) -> [PrinterColumn] {
        let containers: @Sendable (JSONValue) -> [JSONValue] = { $0.value(at: template + ["spec", "containers"])?.arrayElements ?? [] }
        return [
            .text("CONTAINERS", priority: 1) { containers($0).compactMap { $0["name"]?.stringValue }.joined(separator: ",") },
            .text("IMAGES", priority: 1) { containers($0).compactMap { $0["image"]?.stringValue }.joined(separator: ",") },
        ]
    }

    /// `-o wide`'s SELECTOR: the label selector at `path` as Kubernetes writes one (`app=web,tier in (a,b)`), `<none>` when empty.
    public static func selector(at path: [String]) -> PrinterColumn {
        .text("SELECTOR", priority: 1) { LabelSelectorText.format($0.value(at: path)) }
    }
}

/// Label selectors and label maps as kubectl prints them.
public enum LabelSelectorText {
    /// A `LabelSelector` object (`matchLabels`, `matchExpressions`), its requirements sorted by key.
    public static func format(_ selector: JSONValue?) -> String {
        var terms: [(key: String, text: String)] = []
        for (key, value) in selector?["matchLabels"]?.objectMembers ?? [:] {
            terms.append((key, "\(key)=\(value.stringValue ?? "")"))
        }
        for requirement in selector?["matchExpressions"]?.arrayElements ?? [] {
            guard let key = requirement["key"]?.stringValue else { continue }
            let values = (requirement["values"]?.arrayElements ?? []).compactMap(\.stringValue).sorted().joined(separator: ",")
            switch requirement["operator"]?.stringValue {
            case "In": terms.append((key, "\(key) in (\(values))"))
            case "NotIn": terms.append((key, "\(key) notin (\(values))"))
            case "Exists": terms.append((key, key))
            case "DoesNotExist": terms.append((key, "!\(key)"))
            default: continue
            }
        }
        guard !terms.isEmpty else { return "<none>" }
        return terms.sorted { $0.key < $1.key }.map(\.text).joined(separator: ",")
    }

    /// A map of labels (a Service's `selector`, a node selector): `k=v` pairs sorted by key, `<none>` when empty.
    public static func labels(_ map: JSONValue?) -> String {
        let pairs = (map?.objectMembers ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.stringValue ?? "")" }
        return pairs.isEmpty ? "<none>" : pairs.joined(separator: ",")
    }
}
