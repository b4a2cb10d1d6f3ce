import TetherJSON
import TetherModel

/// A kind of stored object, named as the API names it: group and plural resource.
///
/// The store keeps no other knowledge of kinds: which ones exist, their schemas and scopes
/// come from the kind registry above it.
public struct ResourceType: Sendable, Hashable, CustomStringConvertible {
    /// The API group; empty for the core group.
    public var group: String
    /// The plural resource name, as in URLs: `replicasets`.
    public var resource: String
    public var namespaced: Bool

    public init(group: String, resource: String, namespaced: Bool) {
        self.group = group
        self.resource = resource
        self.namespaced = namespaced
    }

    /// `apps/replicasets`, or `core/namespaces` for the core group: the key rows are stored under.
    public var storageKey: String { "\(group.isEmpty ? "core" : group)/\(resource)" }

    public var description: String { group.isEmpty ? resource : "\(resource).\(group)" }
}

/// One change in the store, as a watch delivers it.
public struct WatchEvent: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        case added = "ADDED"
        case modified = "MODIFIED"
        case deleted = "DELETED"
    }

    public var kind: Kind
    /// The object after the change (before it, for a deletion), with its `resourceVersion` set.
    public var object: JSONValue
    public var resourceVersion: UInt64

    public init(kind: Kind, object: JSONValue, resourceVersion: UInt64) {
        self.kind = kind
        self.object = object
        self.resourceVersion = resourceVersion
    }
}

/// A page of a list.
public struct ListPage: Sendable {
    public var objects: [JSONValue]
    /// The store's resource version when the page was read.
    public var resourceVersion: UInt64
    /// Where the next page starts; nil on the last page.
    public var next: ListPosition?

    public init(objects: [JSONValue], resourceVersion: UInt64, next: ListPosition?) {
        self.objects = objects
        self.resourceVersion = resourceVersion
        self.next = next
    }
}

/// The last (namespace, name) a page returned; the next page starts after it.
public struct ListPosition: Sendable, Hashable, Codable {
    public var namespace: String
    public var name: String

    public init(namespace: String, name: String) {
        self.namespace = namespace
        self.name = name
    }
}

/// What to list: a namespace (nil for all), selectors, and paging.
public struct ListOptions: Sendable {
    public var namespace: String?
    public var labelSelector: LabelSelector
    public var fieldSelector: FieldSelector?
    /// At most this many objects per page; nil for all.
    public var limit: Int?
    public var after: ListPosition?

    public init(
        namespace: String? = nil,
        labelSelector: LabelSelector = .everything,
        fieldSelector: FieldSelector? = nil,
        limit: Int? = nil,
        after: ListPosition? = nil
    ) {
        self.namespace = namespace
        self.labelSelector = labelSelector
        self.fieldSelector = fieldSelector
        self.limit = limit
        self.after = after
    }
}

/// What a delete did.
public enum DeleteOutcome: Sendable, Hashable {
    /// The object is gone; this is its last state.
    case deleted(JSONValue)
    /// The object has finalizers: it now carries `deletionTimestamp` and goes once they are removed.
    case finalizing(JSONValue)
}

/// Conditions a delete must meet, as in `DeleteOptions.preconditions`.
public struct DeletePreconditions: Sendable, Hashable {
    public var uid: String?
    public var resourceVersion: UInt64?
    /// Finalizers the deletion adds before it starts, such as Kubernetes' `orphan` for
    /// `propagationPolicy: Orphan`: whoever handles them removes them to finish the deletion.
    public var addingFinalizers: [String]
    /// A graceful deletion (a scheduled Pod's, as kube-apiserver deletes it): above zero, the
    /// object is only marked, `deletionTimestamp` this many seconds ahead and
    /// `deletionGracePeriodSeconds`, and goes when deleted again with zero (its kubelet's
    /// part). Nil or zero deletes at once.
    public var gracePeriodSeconds: Int64?

    public init(uid: String? = nil, resourceVersion: UInt64? = nil, addingFinalizers: [String] = [], gracePeriodSeconds: Int64? = nil) {
        self.uid = uid
        self.resourceVersion = resourceVersion
        self.addingFinalizers = addingFinalizers
        self.gracePeriodSeconds = gracePeriodSeconds
    }
}

/// Durable storage of API objects with Kubernetes semantics.
///
/// Every write takes the next value of one store-wide counter as the object's
/// `metadata.resourceVersion`. A create sets `uid`, `creationTimestamp` and `generation` 1; an
/// update bumps `generation` only when something outside `metadata` and `status` changed, and
/// fails with ``StoreError/Code/conflict`` when the object's `resourceVersion` is set and is not
/// the stored one. A delete of an object with finalizers only marks it; it goes when an update
/// empties the list. `dryRun` runs every check and returns the result without writing.
public protocol ResourceStore: Sendable {
    func create(_ object: JSONValue, as type: ResourceType, dryRun: Bool) async throws(StoreError) -> JSONValue
    func get(_ type: ResourceType, namespace: String?, name: String) async throws(StoreError) -> JSONValue
    func list(_ type: ResourceType, options: ListOptions) async throws(StoreError) -> ListPage
    /// Replaces everything but `status` (kept from the stored object).
    func update(_ object: JSONValue, as type: ResourceType, dryRun: Bool) async throws(StoreError) -> JSONValue
    /// Replaces only `status`: the status subresource.
    func updateStatus(_ object: JSONValue, as type: ResourceType, dryRun: Bool) async throws(StoreError) -> JSONValue
    func delete(
        _ type: ResourceType,
        namespace: String?,
        name: String,
        preconditions: DeletePreconditions,
        dryRun: Bool
    ) async throws(StoreError) -> DeleteOutcome
    /// Changes to `type` (in `namespace`, or all) after `resourceVersion`; from now when nil.
    ///
    /// Fails with ``StoreError/Code/expired`` when that version is older than the retained
    /// history. The stream ends with ``StoreError/Code/watchOverflow`` if its reader falls too
    /// far behind: the reader lists again and resumes from there.
    func watch(_ type: ResourceType, namespace: String?, from resourceVersion: UInt64?) async throws(StoreError) -> WatchStream
    /// The resource version of the latest write.
    func currentResourceVersion() async throws(StoreError) -> UInt64
    /// Raises the resource-version sequence to at least `minimum`, durably, with no change in
    /// the feed; returns the sequence's value. The federation engine never sends a revision
    /// above a version the store has made durable, so a restarted hub knows every revision it
    /// sent before is at most the version it finds.
    func raiseResourceVersion(to minimum: UInt64) async throws(StoreError) -> UInt64
    /// The store's identity: made when the store is created, kept for as long as it lives, new
    /// for a store made again. Agents apply desired state from a new epoch without pruning.
    func epoch() async throws(StoreError) -> String
    /// Binds the store to the federation `uid`: recorded the first time; an error if the store
    /// already belongs to another federation (a hub pointed at the wrong directory's database).
    func claimFederation(_ uid: String) async throws(StoreError)
    /// A small document the hub keeps beside the objects (each cluster's revision), outside the
    /// object space: not versioned, not watched, replaced whole. Nil when never written.
    func document(_ name: String) async throws(StoreError) -> String?
    func setDocument(_ name: String, to text: String) async throws(StoreError)
    /// Each cluster's revision as the federation engine last recorded it, outside the object
    /// space like a document, but one record per cluster.
    func clusterRevisions() async throws(StoreError) -> [String: ClusterRevision]
    /// Writes `changed` and removes the records of `removed`, leaving every other cluster's
    /// record as it is. A record never moves to a lower revision: a hub with an older view of a
    /// cluster cannot undo what a newer one recorded.
    func updateClusterRevisions(_ changed: [String: ClusterRevision], removing removed: Set<String>) async throws(StoreError)
}

/// A cluster's revision and the digest of the desired set it names: what lets a hub, after a
/// restart or on taking over, tell an agent it is current or send it a delta.
public struct ClusterRevision: Codable, Hashable, Sendable {
    public var revision: UInt64
    public var digest: String

    public init(revision: UInt64, digest: String) {
        self.revision = revision
        self.digest = digest
    }
}

extension ResourceStore {
    /// The document that holds every cluster's record where a store keeps no rows for them.
    static var clusterRevisionsDocument: String { "federation-revisions" }

    /// Every record in one document, read and replaced whole: for a store with one writer.
    public func clusterRevisions() async throws(StoreError) -> [String: ClusterRevision] {
        guard let text = try await document(Self.clusterRevisionsDocument) else { return [:] }
        do {
            return try JSONValueDecoder().decode([String: ClusterRevision].self, from: Array(text.utf8))
        } catch {
            throw StoreError(
                .storage, "the stored cluster revisions cannot be read (\(error)); the hub matches each agent by its desired set's digest instead")
        }
    }

    public func updateClusterRevisions(_ changed: [String: ClusterRevision], removing removed: Set<String>) async throws(StoreError) {
        // A document that cannot be read is replaced: the clusters it held are matched by digest once.
        var records = (try? await clusterRevisions()) ?? [:]
        for (cluster, record) in changed where (records[cluster]?.revision ?? 0) <= record.revision { records[cluster] = record }
        for cluster in removed { records[cluster] = nil }
        let encoded: [UInt8]
        do { encoded = Array(try JSONValueEncoder().encode(records)) } catch {
            throw StoreError(.storage, "cannot encode cluster revisions: \(error)")
        }
        try await setDocument(Self.clusterRevisionsDocument, to: String(decoding: encoded, as: UTF8.self))
    }
}

public typealias WatchStream = AsyncThrowingStream<WatchEvent, any Error>

/// Why a store operation failed. `code` maps to an HTTP status in the API layer, in one place.
public struct StoreError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        case notFound = "NotFound"
        case alreadyExists = "AlreadyExists"
        case conflict = "Conflict"
        /// The requested resource version is older than the retained history (HTTP 410).
        case expired = "Expired"
        case invalid = "Invalid"
        /// The object is larger than the store keeps (HTTP 413).
        case tooLarge = "TooLarge"
        case watchOverflow = "WatchOverflow"
        /// The database failed: disk, corruption, I/O.
        case storage = "Storage"
    }

    public var code: Code
    public var message: String
    /// The object the error is about, when it is about one: what kube-apiserver puts in a
    /// Status' `details` (clients tell a missing object from a missing route by it).
    public var subject: (type: ResourceType, name: String)? {
        get { subjectType.map { ($0, subjectName) } }
        set {
            subjectType = newValue?.type
            subjectName = newValue?.name ?? ""
        }
    }
    private var subjectType: ResourceType?
    private var subjectName = ""

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
