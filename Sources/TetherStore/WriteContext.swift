import GRDB
import TetherJSON
import TetherModel

/// Where one object is stored.
package struct ObjectKey: Sendable, Hashable {
    package var type: ResourceType
    /// Empty for cluster-scoped kinds.
    package var namespace: String
    package var name: String

    package init(type: ResourceType, namespace: String?, name: String) throws(StoreError) {
        guard !name.isEmpty else { throw StoreError(.invalid, "metadata.name is required") }
        if type.namespaced {
            guard let namespace, !namespace.isEmpty else {
                throw StoreError(.invalid, "\(type) is namespaced: a namespace is required")
            }
            self.namespace = namespace
        } else {
            self.namespace = ""
        }
        self.type = type
        self.name = name
    }

    package var inNamespace: String { namespace.isEmpty ? "" : " in namespace \"\(namespace)\"" }
}

/// One write transaction's view: allocates resource versions and collects the change events.
struct WriteContext {
    let db: Database
    let limits: ObjectLimits
    private(set) var events: [(event: WatchEvent, key: ObjectKey)] = []
    /// Each event's body as stored in the change feed, encoded once with the object's row.
    private var bodies: [String] = []

    init(db: Database, limits: ObjectLimits) {
        self.db = db
        self.limits = limits
    }

    private mutating func nextResourceVersion() throws -> UInt64 {
        try db.execute(sql: "UPDATE counters SET value = value + 1 WHERE name = 'resourceVersion'")
        return try SQLiteResourceStore.counter("resourceVersion", in: db)
    }

    /// Does what ``ObjectRules`` decided; returns the object as stored.
    mutating func apply(_ change: StoredChange, key: ObjectKey) throws -> JSONValue {
        switch change {
        case .keep(let object):
            return object
        case .store(var object, let kind):
            try store(&object, key: key, event: kind)
            return object
        case .remove(let object):
            try remove(object, key: key)
            return object
        }
    }

    /// Stores `object` with a new resource version, written into it.
    mutating func store(_ object: inout JSONValue, key: ObjectKey, event: WatchEvent.Kind) throws {
        let version = try nextResourceVersion()
        object.resourceVersion = version
        let body = try ObjectRules.storedBody(object, key: key, limits: limits)
        try db.execute(
            sql: "INSERT OR REPLACE INTO objects (resource, namespace, name, resourceVersion, body) VALUES (?, ?, ?, ?, ?)",
            arguments: [key.type.storageKey, key.namespace, key.name, version, body]
        )
        events.append((WatchEvent(kind: event, object: object, resourceVersion: version), key))
        bodies.append(body)
    }

    /// Removes the object; its deletion event carries the deletion's resource version.
    mutating func remove(_ object: JSONValue, key: ObjectKey) throws {
        let version = try nextResourceVersion()
        var last = object
        last.resourceVersion = version
        try db.execute(
            sql: "DELETE FROM objects WHERE resource = ? AND namespace = ? AND name = ?",
            arguments: [key.type.storageKey, key.namespace, key.name]
        )
        events.append((WatchEvent(kind: .deleted, object: last, resourceVersion: version), key))
        bodies.append(try SQLiteResourceStore.encode(last))
    }

    /// Appends this transaction's events to the feed and drops what falls out of the window.
    func commitEvents(retaining retained: Int) throws {
        guard let latest = events.last?.event.resourceVersion else { return }
        for ((event, key), body) in zip(events, bodies) {
            try db.execute(
                sql: "INSERT INTO events (resourceVersion, resource, namespace, type, body) VALUES (?, ?, ?, ?, ?)",
                arguments: [event.resourceVersion, key.type.storageKey, key.namespace, event.kind.rawValue, body]
            )
        }
        guard latest > UInt64(retained) else { return }
        let horizon = latest - UInt64(retained)
        try db.execute(sql: "DELETE FROM events WHERE resourceVersion <= ?", arguments: [horizon])
        try db.execute(
            sql: "UPDATE counters SET value = MAX(value, ?) WHERE name = 'compactedThrough'",
            arguments: [horizon]
        )
    }
}

extension StoreError {
    package static func notFound(_ key: ObjectKey) -> StoreError {
        StoreError(.notFound, "\(key.type) \"\(key.name)\" not found\(key.inNamespace)").about(key)
    }

    package static func alreadyExists(_ key: ObjectKey) -> StoreError {
        StoreError(.alreadyExists, "\(key.type) \"\(key.name)\" already exists\(key.inNamespace)").about(key)
    }

    package static func conflict(_ key: ObjectKey, _ detail: String) -> StoreError {
        StoreError(.conflict, "Operation cannot be fulfilled on \(key.type) \"\(key.name)\": \(detail)").about(key)
    }

    private func about(_ key: ObjectKey) -> StoreError {
        var error = self
        error.subject = (key.type, key.name)
        return error
    }
}
