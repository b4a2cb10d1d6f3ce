import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import TetherStore

/// A hub's presence on a shared store, when agents hold sessions on every hub: a session-level
/// advisory lock named after the hub, held on a connection of its own for as long as the hub
/// lives. PostgreSQL drops it with the connection, when the process dies or (by keepalive) its
/// machine goes away, so the leader can tell which hubs named in session records are gone.
public final class PostgresHubPresence: Sendable {
    /// The presence locks' first key: "teti" in ASCII; the second is a hash of the hub's name.
    static let presenceKey: Int32 = 0x7465_7469
    /// The lock under which a hub joins the hubs' shared run: "tetr".
    static let runKey: Int32 = 0x7465_7472

    private let connection: PostgresConnection
    private let logger: Logger
    public let hub: String

    private init(connection: PostgresConnection, hub: String, logger: Logger) {
        self.connection = connection
        self.hub = hub
        self.logger = logger
    }

    /// The second key of a hub's presence lock: FNV-1a of its name, as PostgreSQL's `int4`.
    static func key(of hub: String) -> Int32 {
        var hash: UInt32 = 2_166_136_261
        for byte in hub.utf8 {
            hash ^= UInt32(byte)
            hash = hash &* 16_777_619
        }
        return Int32(bitPattern: hash)
    }

    /// Announces the hub: takes its presence lock on a connection it keeps.
    public static func join(_ location: PostgresLocation, hub: String, logger: Logger) async throws(StoreError) -> PostgresHubPresence {
        let connection = try await location.holdingConnection(named: "tether-hub presence \(hub)", toDo: "announce this hub", logger: logger)
        do {
            try await connection.query("SELECT pg_advisory_lock(\(presenceKey), \(key(of: hub)))", logger: logger)
        } catch {
            try? await connection.close()
            throw StoreError(.storage, "cannot announce this hub in the store \(location): \(PostgresResourceStore.describe(error))")
        }
        return PostgresHubPresence(connection: connection, hub: hub, logger: logger)
    }

    /// Which of `hubs` hold their presence lock now.
    public func alive(among hubs: Set<String>) async throws(StoreError) -> Set<String> {
        let held: Set<Int64>
        do {
            held = Set(try await Self.presentKeys(on: connection, logger: logger))
        } catch {
            throw StoreError(.storage, "cannot read which hubs are present: \(PostgresResourceStore.describe(error))")
        }
        return hubs.filter { held.contains(Int64(UInt32(bitPattern: Self.key(of: $0)))) }
    }

    /// The second keys of the presence locks held now in this database, one per live hub.
    private static func presentKeys(on connection: PostgresConnection, logger: Logger) async throws -> [Int64] {
        var keys: [Int64] = []
        let rows = try await connection.query(
            """
            SELECT objid::int8 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND classid::int8 = \(Int64(presenceKey))
            """, logger: logger)
        for try await objid in rows.decode(Int64.self) { keys.append(objid) }
        return keys
    }

    /// The run every hub on the store shares while any is alive: the one the live hubs use, or,
    /// when this hub is the first to start, `proposed` (recorded for the hubs that follow). An
    /// agent moving between live hubs then stays in one run; after every hub stopped (a restore
    /// of the database is one such time) the next run begins where the store stands.
    public func sharedRun(proposed: (id: String, historyThrough: UInt64)) async throws(StoreError) -> (id: String, historyThrough: UInt64) {
        let logger = self.logger
        let proposal = "\(proposed.id) \(proposed.historyThrough)"
        do {
            try await connection.query("BEGIN", logger: logger)
            do {
                try await connection.query("SELECT pg_advisory_xact_lock(\(Self.runKey), 0)", logger: logger)
                let present = try await Self.presentKeys(on: connection, logger: logger).count
                var stored: String?
                for try await value in try await connection.query("SELECT value FROM tether_meta WHERE name = 'shared-run'", logger: logger)
                    .decode(String.self)
                {
                    stored = value
                }
                let parts = stored?.split(separator: " ")
                if present > 1, let parts, parts.count == 2, let through = UInt64(parts[1]) {
                    try await connection.query("COMMIT", logger: logger)
                    return (String(parts[0]), through)
                }
                try await connection.query(
                    "INSERT INTO tether_meta VALUES ('shared-run', \(proposal)) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    logger: logger)
                try await connection.query("COMMIT", logger: logger)
                return proposed
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
        } catch {
            throw StoreError(.storage, "cannot join the hubs' shared run: \(PostgresResourceStore.describe(error))")
        }
    }

    /// Returns when the presence is gone: its connection closed.
    public func lost() async {
        try? await connection.closeFuture.get()
    }

    /// Leaves: the lock goes with the connection.
    public func leave() async {
        try? await connection.close()
    }
}
