import TetherJSON
import TetherModel

/// How a version of a kind served besides its storage version maps to it. Objects are stored
/// at the storage version only (one collection, one sequence of resource versions); the API
/// converts what a client sends at the other version on the way in, and what it answers on
/// the way out, as kube-apiserver does.
public struct VersionConversion: Sendable {
    /// The version objects are stored at (`v1` for `batch/v1beta1` CronJobs).
    public var storageVersion: String
    /// An object at the served version, as stored; throws ``VersionConversionError`` for one
    /// that has no stored form.
    public var toStorage: @Sendable (JSONValue) throws -> JSONValue
    /// A stored object, as the served version shows it.
    public var fromStorage: @Sendable (JSONValue) -> JSONValue
    /// The webhook that converts whole objects between the versions (a CustomResourceDefinition's
    /// `strategy: Webhook`); ``toStorage`` then only checks an object at the served version, and
    /// the API calls the webhook each way.
    public var webhook: ConversionWebhook?

    public init(
        storageVersion: String, toStorage: @escaping @Sendable (JSONValue) throws -> JSONValue,
        fromStorage: @escaping @Sendable (JSONValue) -> JSONValue
    ) {
        self.storageVersion = storageVersion
        self.toStorage = toStorage
        self.fromStorage = fromStorage
    }

    /// Versions with the same fields: only `apiVersion` changes (a CustomResourceDefinition's
    /// `conversion: None`, `batch/v1beta1` CronJobs).
    public static func renaming(group: String, served: String, storage: String) -> VersionConversion {
        let servedAPIVersion = group.isEmpty ? served : "\(group)/\(served)"
        let storageAPIVersion = group.isEmpty ? storage : "\(group)/\(storage)"
        return VersionConversion(
            storageVersion: storage,
            toStorage: { object in
                var stored = object
                stored[member: "apiVersion"] = .string(storageAPIVersion)
                return stored
            },
            fromStorage: { object in
                var shown = object
                shown[member: "apiVersion"] = .string(servedAPIVersion)
                return shown
            })
    }
}

/// An object sent at a served version that has no form at the storage version, or that its
/// version's own schema refuses (`invalid`, answered 422 as a validation failure).
public struct VersionConversionError: Error, CustomStringConvertible {
    public var description: String
    public var invalid: Bool

    public init(_ description: String) {
        self.description = description
        self.invalid = false
    }

    public init(invalid description: String) {
        self.description = description
        self.invalid = true
    }
}

extension KindDescriptor {
    /// This kind served at `version` as well, its objects stored at this kind's version.
    /// `fields` and `protobufNumbers` describe the served version (by default the same as
    /// this one's); `conversion` maps it (by default only `apiVersion` changes). The other
    /// version has no short names or categories of its own: kubectl finds the kind by them at
    /// its preferred version.
    public func alsoServed(
        as version: String, fields: [String: FieldSchema]? = nil, protobufNumbers: [String: Int]? = nil, summary: String? = nil,
        conversion: VersionConversion? = nil
    ) -> KindDescriptor {
        var other = self
        other.version = version
        other.categories = []
        if let fields { other.fields = fields }
        if let protobufNumbers { other.protobufNumbers = protobufNumbers }
        if let summary { other.summary = summary }
        other.conversion = conversion ?? .renaming(group: group, served: version, storage: self.version)
        return other
    }
}

/// A conversion webhook a CustomResourceDefinition names: the API posts a `ConversionReview`
/// (`apiextensions.k8s.io/v1`) of the objects to convert and takes back the converted ones.
public struct ConversionWebhook: Sendable, Equatable {
    /// `https://HOST[:PORT]/PATH`.
    public var url: String
    /// PEM certificates the webhook's server certificate must chain to; nil: the system's trust store.
    public var caBundle: String?

    public init(url: String, caBundle: String?) {
        self.url = url
        self.caBundle = caBundle
    }
}
