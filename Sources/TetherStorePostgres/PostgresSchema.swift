import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization
import TetherJSON
import TetherModel
import TetherStore

/// The store's tables, and the migrations that make them.
extension PostgresResourceStore {
    // MARK: Schema

    /// The schema's versions in order; a database is at the last one applied. Never edit one
    /// that has shipped: add the next.
    static let migrations: [(version: Int, description: String, sql: [String])] = [
        (
            1, "objects, change feed, counters, identity",
            [
                """
                CREATE TABLE tether_objects (
                    resource text COLLATE "C" NOT NULL,
                    namespace text COLLATE "C" NOT NULL,
                    name text COLLATE "C" NOT NULL,
                    resource_version bigint NOT NULL,
                    body text NOT NULL,
                    PRIMARY KEY (resource, namespace, name))
                """,
                """
                CREATE TABLE tether_events (
                    resource_version bigint PRIMARY KEY,
                    resource text COLLATE "C" NOT NULL,
                    namespace text COLLATE "C" NOT NULL,
                    type text NOT NULL,
                    body text NOT NULL)
                """,
                "CREATE INDEX tether_events_by_resource ON tether_events (resource, resource_version)",
                "CREATE TABLE tether_counters (name text PRIMARY KEY, value bigint NOT NULL)",
                "INSERT INTO tether_counters VALUES ('resourceVersion', 0), ('compactedThrough', 0)",
                "CREATE TABLE tether_meta (name text PRIMARY KEY, value text NOT NULL)",
                "INSERT INTO tether_meta VALUES ('epoch', gen_random_uuid()::text)",
            ]
        ),
        (
            2, "a row per cluster's revision, moved out of the revisions document",
            [
                """
                CREATE TABLE tether_cluster_revisions (
                    cluster text COLLATE "C" PRIMARY KEY,
                    revision bigint NOT NULL,
                    digest text NOT NULL)
                """,
                """
                INSERT INTO tether_cluster_revisions (cluster, revision, digest)
                SELECT record.key, (record.value->>'revision')::bigint, record.value->>'digest'
                FROM tether_meta, jsonb_each(tether_meta.value::jsonb) AS record
                WHERE tether_meta.name = 'document:federation-revisions'
                """,
                "DELETE FROM tether_meta WHERE name = 'document:federation-revisions'",
            ]
        ),
    ]

    /// How long the migrations at start may wait: DDL on a busy server, or behind another hub
    /// applying the same migrations under the lock, takes longer than one request should.
    static let migrationDeadline: Duration = .seconds(60)

    /// Applies what is missing under a transaction-scoped advisory lock, so hubs starting
    /// together wait for each other and each migration runs once.
    func migrate() async throws(StoreError) {
        let logger = self.logger
        try await transaction("schema migration", within: max(operationTimeout, Self.migrationDeadline)) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.migrationLock))", logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS tether_schema (
                    version integer PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())
                """, logger: logger)
            var applied = 0
            for try await version in try await connection.query("SELECT coalesce(max(version), 0) FROM tether_schema", logger: logger)
                .decode(Int.self)
            {
                applied = version
            }
            let known = Self.migrations.last?.version ?? 0
            guard applied <= known else {
                throw StoreError(
                    .storage,
                    "the database \(self.location) has schema version \(applied), newer than this hub's \(known); run a hub at least as new as the one that migrated it"
                )
            }
            for migration in Self.migrations where migration.version > applied {
                for statement in migration.sql { try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
                try await connection.query(
                    "INSERT INTO tether_schema (version, description) VALUES (\(migration.version), \(migration.description))", logger: logger)
                logger.info(
                    "store schema migrated",
                    metadata: [
                        "tether.event": "store.migrated", "tether.schema_version": "\(migration.version)",
                        "tether.description": "\(migration.description)",
                    ])
            }
            return true
        }
    }

    /// The advisory lock key migrations take: "tether" in ASCII.
    static let migrationLock: Int64 = 0x7465_7468_6572
}
