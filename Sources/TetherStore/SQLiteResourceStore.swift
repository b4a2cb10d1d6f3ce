import Foundation
import GRDB
import TetherJSON
import TetherModel

/// The ``ResourceStore`` on SQLite (GRDB): WAL journal, `synchronous = FULL`, so a write that
/// returned survives a crash of the process or the machine.
///
/// Objects live in `objects` (JSON bodies keyed by resource, namespace and name); every change
/// is also appended to `events`, the change feed watches replay from. The feed keeps the last
/// `retainedEvents` changes; a watch from before them gets ``StoreError/Code/expired``. Writes
/// are serialised by SQLite's single writer, and live watchers are told of each change on
/// commit, in commit order.
public final class SQLiteResourceStore: ResourceStore {
    private let pool: DatabasePool
    private let feed = ChangeFeed()
    private let retainedEvents: Int
    private let watchBuffer: Int
    private let limits: ObjectLimits
    private let now: @Sendable () -> Date

    /// - Parameters:
    ///   - retainedEvents: how many changes the feed keeps for watches to resume from.
    ///   - watchBuffer: how many undelivered live events a watcher may fall behind before its stream ends.
    ///   - limits: every write is refused beyond these (size against `maximumStoredBytes`).
    public init(
        path: String,
        retainedEvents: Int = 10_000,
        watchBuffer: Int = 1_024,
        limits: ObjectLimits = .default,
        now: @escaping @Sendable () -> Date = Date.init
    ) throws(StoreError) {
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(pool)
        } catch {
            throw StoreError(.storage, "cannot open the store at \(path): \(error)")
        }
        self.retainedEvents = max(1, retainedEvents)
        self.watchBuffer = max(1, watchBuffer)
        self.limits = limits
        self.now = now
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE objects (
                        resource TEXT NOT NULL,
                        namespace TEXT NOT NULL,
                        name TEXT NOT NULL,
                        resourceVersion INTEGER NOT NULL,
                        body TEXT NOT NULL,
                        PRIMARY KEY (resource, namespace, name)
                    ) WITHOUT ROWID;
                    CREATE TABLE events (
                        resourceVersion INTEGER PRIMARY KEY,
                        resource TEXT NOT NULL,
                        namespace TEXT NOT NULL,
                        type TEXT NOT NULL,
                        body TEXT NOT NULL
                    );
                    CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
                    INSERT INTO counters VALUES ('resourceVersion', 0), ('compactedThrough', 0);
                    """
            )
        }
        migrator.registerMigration("v2: identity") { db in
            try db.execute(sql: "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")
            try db.execute(sql: "INSERT INTO meta VALUES ('epoch', ?)", arguments: [UUID().uuidString.lowercased()])
        }
        return migrator
    }

    public func epoch() async throws(StoreError) -> String {
        try await read { db in
            guard let epoch = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE name = 'epoch'") else {
                throw StoreError(.storage, "the store has no epoch; its migrations did not run")
            }
            return epoch
        }
    }

    public func claimFederation(_ uid: String) async throws(StoreError) {
        try await write(dryRun: false) { context in
            let db = context.db
            if let held = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE name = 'federation'") {
                guard held == uid else {
                    throw StoreError(
                        .conflict,
                        "the store belongs to federation \(held), not \(uid); point the hub at its own federation directory"
                    )
                }
                return
            }
            try db.execute(sql: "INSERT INTO meta VALUES ('federation', ?)", arguments: [uid])
        }
    }

    public func document(_ name: String) async throws(StoreError) -> String? {
        try await read { db in try String.fetchOne(db, sql: "SELECT value FROM meta WHERE name = ?", arguments: ["document:" + name]) }
    }

    public func setDocument(_ name: String, to text: String) async throws(StoreError) {
        try await write(dryRun: false) { context in
            try context.db.execute(sql: "INSERT OR REPLACE INTO meta VALUES (?, ?)", arguments: ["document:" + name, text])
        }
    }

    // MARK: Reads

    public func get(_ type: ResourceType, namespace: String?, name: String) async throws(StoreError) -> JSONValue {
        let key = try ObjectKey(type: type, namespace: namespace, name: name)
        return try await read { db in
            guard let object = try Self.fetch(key, in: db) else { throw StoreError.notFound(key) }
            return object
        }
    }

    public func list(_ type: ResourceType, options: ListOptions) async throws(StoreError) -> ListPage {
        let namespace = type.namespaced ? options.namespace : nil
        return try await read { db in
            let resourceVersion = try Self.counter("resourceVersion", in: db)
            var sql = "SELECT namespace, name, body FROM objects WHERE resource = ?"
            var arguments: StatementArguments = [type.storageKey]
            if let namespace {
                sql += " AND namespace = ?"
                _ = arguments.append(contentsOf: [namespace])
            }
            if let after = options.after {
                sql += " AND (namespace > ? OR (namespace = ? AND name > ?))"
                _ = arguments.append(contentsOf: [after.namespace, after.namespace, after.name])
            }
            sql += " ORDER BY namespace, name"
            var objects: [JSONValue] = []
            var next: ListPosition?
            let rows = try Row.fetchCursor(db, sql: sql, arguments: arguments)
            while let row = try rows.next() {
                let object = try Self.decode(row["body"])
                guard options.labelSelector.matches(object.labels), options.fieldSelector?.matches(object) ?? true else {
                    continue
                }
                if let limit = options.limit, objects.count == limit {
                    let last = objects[objects.count - 1]
                    next = ListPosition(namespace: last.namespace ?? "", name: last.name ?? "")
                    break
                }
                objects.append(object)
            }
            return ListPage(objects: objects, resourceVersion: resourceVersion, next: next)
        }
    }

    public func currentResourceVersion() async throws(StoreError) -> UInt64 {
        try await read { db in try Self.counter("resourceVersion", in: db) }
    }

    public func raiseResourceVersion(to minimum: UInt64) async throws(StoreError) -> UInt64 {
        try await write(dryRun: false) { context in
            try context.db.execute(
                sql: "UPDATE counters SET value = MAX(value, ?) WHERE name = 'resourceVersion'", arguments: [Int64(clamping: minimum)])
            return try Self.counter("resourceVersion", in: context.db)
        }
    }

    // MARK: Writes

    public func create(_ object: JSONValue, as type: ResourceType, dryRun: Bool) async throws(StoreError) -> JSONValue {
        let (candidate, key) = try ObjectRules.prepareCreate(object, as: type)
        let timestamp = kubernetesTimestamp(now())
        return try await write(dryRun: dryRun) { context in
            let change = try ObjectRules.create(candidate, key: key, existing: try Self.fetch(key, in: context.db), timestamp: timestamp)
            return try context.apply(change, key: key)
        }
    }

    public func update(_ object: JSONValue, as type: ResourceType, dryRun: Bool) async throws(StoreError) -> JSONValue {
        try await replace(object, as: type, dryRun: dryRun, merge: ObjectRules.mergeUpdate)
    }

    public func updateStatus(_ object: JSONValue, as type: ResourceType, dryRun: Bool) async throws(StoreError) -> JSONValue {
        try await replace(object, as: type, dryRun: dryRun, merge: ObjectRules.mergeStatus)
    }

    private func replace(
        _ object: JSONValue,
        as type: ResourceType,
        dryRun: Bool,
        merge: @escaping @Sendable (_ existing: JSONValue, _ incoming: JSONValue) -> JSONValue
    ) async throws(StoreError) -> JSONValue {
        let key = try ObjectRules.replaceKey(object, as: type)
        return try await write(dryRun: dryRun) { context in
            let change = try ObjectRules.replace(object, key: key, existing: try Self.fetch(key, in: context.db), merge: merge)
            return try context.apply(change, key: key)
        }
    }

    public func delete(
        _ type: ResourceType,
        namespace: String?,
        name: String,
        preconditions: DeletePreconditions,
        dryRun: Bool
    ) async throws(StoreError) -> DeleteOutcome {
        let key = try ObjectKey(type: type, namespace: namespace, name: name)
        let timestamp = kubernetesTimestamp(now())
        return try await write(dryRun: dryRun) { context in
            let change = try ObjectRules.delete(
                key: key, existing: try Self.fetch(key, in: context.db), preconditions: preconditions, timestamp: timestamp)
            return ObjectRules.deleteOutcome(change, written: try context.apply(change, key: key))
        }
    }

    // MARK: Watch

    public func watch(_ type: ResourceType, namespace: String?, from resourceVersion: UInt64?) async throws(StoreError) -> WatchStream {
        let namespace = type.namespaced ? namespace : nil
        // Live changes are subscribed first and the history replayed after, from readers, a page
        // at a time as the watcher asks for it: a replay never holds the writer, and never more
        // than a page in memory. A change committed meanwhile is in both and is passed over the
        // second time by its version, so nothing falls between the two.
        if let resourceVersion {
            try await read { db in try Self.requireRetained(resourceVersion, in: db) }
        }
        let live = feed.subscribe(type: type, namespace: namespace, replay: [], liveLimit: watchBuffer)
        guard let resourceVersion else { return live }
        return HistoryReplay(after: resourceVersion, live: live) { [self] after in
            try await historyPage(type, namespace: namespace, after: after)
        }.stream
    }

    /// One page of the change history of `type` after `version`: at most `limit` events and about
    /// `byteBudget` bytes of bodies (at least one event), so a replaying watch holds about a
    /// megabyte of history however large the objects. Fails as expired if compaction passed `version`.
    private func historyPage(
        _ type: ResourceType, namespace: String?, after version: UInt64, limit: Int = 100, byteBudget: Int = 1_048_576
    ) async throws(StoreError) -> [WatchEvent] {
        try await read { db in
            try Self.requireRetained(version, in: db)
            var sql = "SELECT resourceVersion, type, body FROM events WHERE resource = ? AND resourceVersion > ?"
            var arguments: StatementArguments = [type.storageKey, version]
            if let namespace {
                sql += " AND namespace = ?"
                _ = arguments.append(contentsOf: [namespace])
            }
            var page: [WatchEvent] = []
            var bytes = 0
            let rows = try Row.fetchCursor(db, sql: sql + " ORDER BY resourceVersion LIMIT \(limit)", arguments: arguments)
            while let row = try rows.next() {
                let body: String = row["body"]
                page.append(
                    WatchEvent(
                        kind: WatchEvent.Kind(rawValue: row["type"]) ?? .modified, object: try Self.decode(body),
                        resourceVersion: row["resourceVersion"])
                )
                bytes += body.utf8.count
                if bytes >= byteBudget { break }
            }
            return page
        }
    }

    private static func requireRetained(_ resourceVersion: UInt64, in db: Database) throws {
        if let expired = ObjectRules.expired(resourceVersion, compactedThrough: try counter("compactedThrough", in: db)) { throw expired }
    }

    // MARK: Plumbing

    private func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws(StoreError) -> T {
        try await Self.mappingErrors("store read") { try await self.pool.read(body) }
    }

    /// Runs `body`, passing ``StoreError``s through and reporting anything else (SQLite, I/O) as `.storage`.
    private static func mappingErrors<T: Sendable>(
        _ what: String,
        _ body: () async throws -> T
    ) async throws(StoreError) -> T {
        do {
            return try await body()
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.storage, "\(what) failed: \(error)")
        }
    }

    /// Runs `body` in a write transaction, committed unless `dryRun` (then rolled back: every check
    /// runs, nothing is stored and no watcher hears of it).
    private func write<T: Sendable>(
        dryRun: Bool,
        _ body: @escaping @Sendable (inout WriteContext) throws -> T
    ) async throws(StoreError) -> T {
        let (feed, retained, limits) = (self.feed, retainedEvents, self.limits)
        return try await Self.mappingErrors("store write") {
            try await self.pool.writeWithoutTransaction { db in
                var result: T?
                try db.inTransaction {
                    var context = WriteContext(db: db, limits: limits)
                    result = try body(&context)
                    if dryRun { return .rollback }
                    try context.commitEvents(retaining: retained)
                    let events = context.events.map { ($0.event, $0.key.type.storageKey, $0.key.namespace) }
                    if !events.isEmpty {
                        db.afterNextTransaction(onCommit: { _ in feed.publish(events) })
                    }
                    return .commit
                }
                return result!
            }
        }
    }

    static func fetch(_ key: ObjectKey, in db: Database) throws -> JSONValue? {
        let body = try String.fetchOne(
            db,
            sql: "SELECT body FROM objects WHERE resource = ? AND namespace = ? AND name = ?",
            arguments: [key.type.storageKey, key.namespace, key.name]
        )
        return try body.map(decode)
    }

    static func counter(_ name: String, in db: Database) throws -> UInt64 {
        UInt64(try Int64.fetchOne(db, sql: "SELECT value FROM counters WHERE name = ?", arguments: [name]) ?? 0)
    }

    static func encode(_ object: JSONValue) throws -> String {
        try object.serializedText()
    }

    static func decode(_ body: String) throws -> JSONValue {
        try JSONValue(parsing: body)
    }
}
