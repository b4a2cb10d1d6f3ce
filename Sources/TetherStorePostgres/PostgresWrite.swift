import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization
import TetherJSON
import TetherModel
import TetherStore

/// One write transaction on PostgreSQL: holds the counter, allocates versions, and records the
/// changes in the feed.
struct PostgresWrite: Sendable {
    let connection: PostgresConnection
    /// The counter's value: the last version taken.
    private(set) var version: UInt64
    let limits: ObjectLimits
    let logger: Logger
    private(set) var changed = false
    private var firstVersion: UInt64?

    init(connection: PostgresConnection, version: UInt64, limits: ObjectLimits, logger: Logger) {
        self.connection = connection
        self.version = version
        self.limits = limits
        self.logger = logger
    }

    func fetch(_ key: ObjectKey) async throws -> JSONValue? {
        var body: String?
        for try await found in try await connection.query(PostgresResourceStore.bodyQuery(key), logger: logger).decode(String.self) {
            body = found
        }
        return try body.map(PostgresResourceStore.decode)
    }

    mutating func raise(to minimum: UInt64) {
        guard minimum > version else { return }
        version = minimum
        changed = true
    }

    /// Does what ``ObjectRules`` decided; returns the object as stored.
    mutating func apply(_ change: StoredChange, key: ObjectKey) async throws -> JSONValue {
        switch change {
        case .keep(let object):
            return object
        case .store(var object, let kind):
            version += 1
            object.resourceVersion = version
            let body = try ObjectRules.storedBody(object, key: key, limits: limits)
            let stored = Int64(clamping: version)
            try await connection.query(
                """
                INSERT INTO tether_objects (resource, namespace, name, resource_version, body)
                VALUES (\(key.type.storageKey), \(key.namespace), \(key.name), \(stored), \(body))
                ON CONFLICT (resource, namespace, name) DO UPDATE SET resource_version = excluded.resource_version, body = excluded.body
                """, logger: logger)
            try await record(kind, key: key, body: body)
            return object
        case .remove(let object):
            version += 1
            var last = object
            last.resourceVersion = version
            try await connection.query(
                "DELETE FROM tether_objects WHERE resource = \(key.type.storageKey) AND namespace = \(key.namespace) AND name = \(key.name)",
                logger: logger)
            try await record(.deleted, key: key, body: try ObjectRules.storedBody(last, key: key, limits: limits))
            return object
        }
    }

    private mutating func record(_ kind: WatchEvent.Kind, key: ObjectKey, body: String) async throws {
        try await connection.query(
            """
            INSERT INTO tether_events (resource_version, resource, namespace, type, body)
            VALUES (\(Int64(clamping: version)), \(key.type.storageKey), \(key.namespace), \(kind.rawValue), \(body))
            """, logger: logger)
        changed = true
    }

    /// Moves the counter, cuts the feed to its window, and notifies listeners (delivered on commit).
    func finish(retaining retained: Int) async throws {
        let latest = Int64(clamping: version)
        try await connection.query("UPDATE tether_counters SET value = \(latest) WHERE name = 'resourceVersion'", logger: logger)
        if version > UInt64(retained) {
            let horizon = Int64(clamping: version - UInt64(retained))
            try await connection.query("DELETE FROM tether_events WHERE resource_version <= \(horizon)", logger: logger)
            try await connection.query(
                "UPDATE tether_counters SET value = greatest(value, \(horizon)) WHERE name = 'compactedThrough'", logger: logger)
        }
        try await connection.query("SELECT pg_notify(\(PostgresResourceStore.changesChannel), \(String(version)))", logger: logger)
    }
}
