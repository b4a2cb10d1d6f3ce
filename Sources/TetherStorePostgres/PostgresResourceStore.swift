import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization
import TetherJSON
import TetherModel
import TetherStore

/// The ``ResourceStore`` on PostgreSQL, for hubs that share one federation (docs/ha.md).
///
/// The same contract as ``SQLiteResourceStore``, with the same rules (``ObjectRules``):
///
/// - **One resource-version sequence.** Every write transaction starts by locking the counter
///   row, so writers run one at a time across every hub on the database, each sees the latest
///   committed objects, and versions commit in the order they were taken. A reader that has
///   seen version N has seen every change below it.
/// - **The change feed** is the `tether_events` table, cut to the last `retainedEvents` changes.
///   A commit notifies the channel `tether_changes`; each store listens on a connection of its
///   own and reads the feed from the last change it published, so a notification that is lost
///   (a dropped connection) costs a delay, never a change, and none is published twice.
/// - **Lists** read in one `REPEATABLE READ` snapshot: the objects and the resource version
///   agree, and a continue position is a (namespace, name) like SQLite's.
public final class PostgresResourceStore: ResourceStore {
    static let changesChannel = "tether_changes"

    private let client: PostgresClient
    let location: PostgresLocation
    private let feed = ChangeFeed()
    private let retainedEvents: Int
    private let watchBuffer: Int
    private let limits: ObjectLimits
    /// The longest one use of a connection may take (see ``PostgresClient/withConnection(within:_:)``).
    let operationTimeout: Duration
    private let now: @Sendable () -> Date
    let logger: Logger
    private let tasks: Mutex<[Task<Void, Never>]>

    private init(
        location: PostgresLocation, configuration: PostgresClient.Configuration, retainedEvents: Int, watchBuffer: Int,
        limits: ObjectLimits, operationTimeout: Duration, now: @escaping @Sendable () -> Date, logger: Logger
    ) {
        self.location = location
        // The pool's own chatter (such as a lease asked for in the moment before `run()` starts)
        // stays out of the hub's log; what fails reaches it as the store's own errors.
        var poolLogger = logger
        poolLogger.logLevel = .error
        self.client = PostgresClient(configuration: configuration, backgroundLogger: poolLogger)
        self.retainedEvents = max(1, retainedEvents)
        self.watchBuffer = max(1, watchBuffer)
        self.limits = limits
        self.operationTimeout = operationTimeout
        self.now = now
        self.logger = logger
        let client = self.client
        self.tasks = Mutex([Task { await client.run() }])
    }

    /// Connects, applies the schema's migrations (several hubs starting at once apply each once),
    /// and starts following the change feed.
    ///
    /// - Parameters:
    ///   - retainedEvents: how many changes the feed keeps for watches to resume from.
    ///   - watchBuffer: how many undelivered live events a watcher may fall behind before its stream ends.
    ///   - connections: the most connections this store opens besides its listener.
    ///   - operationTimeout: how long one read or write may wait for PostgreSQL before it fails
    ///     with a storage error and its connection is closed.
    public static func open(
        _ location: PostgresLocation,
        retainedEvents: Int = 10_000,
        watchBuffer: Int = 1_024,
        limits: ObjectLimits = .default,
        connections: Int = 8,
        operationTimeout: Duration = .seconds(15),
        now: @escaping @Sendable () -> Date = Date.init,
        logger: Logger = Logger(label: "tether.store")
    ) async throws(StoreError) -> PostgresResourceStore {
        var configuration = try location.clientConfiguration()
        configuration.options.maximumConnections = max(1, connections)
        configuration.options.connectTimeout = .seconds(5)
        let store = PostgresResourceStore(
            location: location, configuration: configuration, retainedEvents: retainedEvents, watchBuffer: watchBuffer,
            limits: limits, operationTimeout: operationTimeout, now: now, logger: logger)
        do {
            try await store.migrate()
            let start = try await store.currentResourceVersion()
            try store.follow(from: start)
        } catch {
            store.close()
            throw error
        }
        return store
    }

    /// Stops the store's connections; every live watch ends.
    public func close() {
        for task in tasks.withLock({ $0 }) { task.cancel() }
        feed.finishAll(throwing: StoreError(.storage, "the store was closed"))
    }

    deinit { close() }

    // MARK: Identity

    public func epoch() async throws(StoreError) -> String {
        guard let epoch = try await meta("epoch") else {
            throw StoreError(.storage, "the store has no epoch; its migrations did not run")
        }
        return epoch
    }

    public func claimFederation(_ uid: String) async throws(StoreError) {
        let logger = self.logger
        try await transaction("claiming the store") { connection in
            try await connection.query("SELECT value FROM tether_counters WHERE name = 'resourceVersion' FOR UPDATE", logger: logger)
            var held: String?
            for try await value in try await connection.query("SELECT value FROM tether_meta WHERE name = 'federation'", logger: logger)
                .decode(String.self)
            {
                held = value
            }
            if let held {
                guard held == uid else {
                    throw StoreError(
                        .conflict,
                        "the store belongs to federation \(held), not \(uid); point the hub at its own federation's database"
                    )
                }
                return true
            }
            try await connection.query("INSERT INTO tether_meta VALUES ('federation', \(uid))", logger: logger)
            return true
        }
    }

    public func document(_ name: String) async throws(StoreError) -> String? {
        try await meta("document:" + name)
    }

    public func setDocument(_ name: String, to text: String) async throws(StoreError) {
        let key = "document:" + name
        let logger = self.logger
        _ = try await Self.mappingErrors("store write") {
            try await self.client.withConnection(within: self.operationTimeout) { connection in
                try await connection.query(
                    "INSERT INTO tether_meta VALUES (\(key), \(text)) ON CONFLICT (name) DO UPDATE SET value = excluded.value", logger: logger)
            }
        }
    }

    private func meta(_ name: String) async throws(StoreError) -> String? {
        try await readOne("SELECT value FROM tether_meta WHERE name = \(name)", as: String.self)
    }

    // MARK: Reads

    public func get(_ type: ResourceType, namespace: String?, name: String) async throws(StoreError) -> JSONValue {
        let key = try ObjectKey(type: type, namespace: namespace, name: name)
        let body = try await readOne(Self.bodyQuery(key), as: String.self)
        guard let body else { throw StoreError.notFound(key) }
        return try Self.decode(body)
    }

    public func list(_ type: ResourceType, options: ListOptions) async throws(StoreError) -> ListPage {
        let namespace = type.namespaced ? options.namespace : nil
        let logger = self.logger
        return try await snapshot("store read") { connection in
            let resourceVersion = try await Self.counter("resourceVersion", on: connection, logger: logger)
            var objects: [JSONValue] = []
            var position = options.after
            let batch = min(max((options.limit ?? 500) + 1, 64), 1_000)
            while true {
                var sql = "SELECT namespace, name, body FROM tether_objects WHERE resource = $1"
                var binds = PostgresBindings()
                binds.append(type.storageKey)
                if let namespace {
                    binds.append(namespace)
                    sql += " AND namespace = $\(binds.count)"
                }
                if let position {
                    binds.append(position.namespace)
                    binds.append(position.name)
                    sql += " AND (namespace, name) > ($\(binds.count - 1), $\(binds.count))"
                }
                sql += " ORDER BY namespace, name LIMIT \(batch)"
                var rows = 0
                for try await (rowNamespace, rowName, body) in try await connection.query(
                    PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger
                ).decode((String, String, String).self) {
                    rows += 1
                    position = ListPosition(namespace: rowNamespace, name: rowName)
                    if let limit = options.limit, objects.count == limit { continue }
                    let object = try Self.decode(body)
                    guard options.labelSelector.matches(object.labels), options.fieldSelector?.matches(object) ?? true else { continue }
                    objects.append(object)
                }
                if let limit = options.limit, objects.count == limit {
                    // More follow only if some row after the last returned one matches.
                    let last = objects[objects.count - 1]
                    let next = ListPosition(namespace: last.namespace ?? "", name: last.name ?? "")
                    let more = try await Self.anyMatch(
                        type, namespace: namespace, after: next, options: options, on: connection, logger: logger)
                    return ListPage(objects: objects, resourceVersion: resourceVersion, next: more ? next : nil)
                }
                if rows < batch { return ListPage(objects: objects, resourceVersion: resourceVersion, next: nil) }
            }
        }
    }

    /// Whether any object after `position` passes the list's selectors, read in the same snapshot.
    private static func anyMatch(
        _ type: ResourceType, namespace: String?, after position: ListPosition, options: ListOptions,
        on connection: PostgresConnection, logger: Logger
    ) async throws -> Bool {
        var cursor = position
        while true {
            let query: PostgresQuery =
                if let namespace {
                    """
                    SELECT namespace, name, body FROM tether_objects WHERE resource = \(type.storageKey) AND namespace = \(namespace)
                    AND (namespace, name) > (\(cursor.namespace), \(cursor.name)) ORDER BY namespace, name LIMIT 256
                    """
                } else {
                    """
                    SELECT namespace, name, body FROM tether_objects WHERE resource = \(type.storageKey)
                    AND (namespace, name) > (\(cursor.namespace), \(cursor.name)) ORDER BY namespace, name LIMIT 256
                    """
                }
            var rows = 0
            var found = false
            for try await (rowNamespace, rowName, body) in try await connection.query(query, logger: logger).decode((String, String, String).self) {
                rows += 1
                cursor = ListPosition(namespace: rowNamespace, name: rowName)
                guard !found else { continue }
                let object = try decode(body)
                if options.labelSelector.matches(object.labels), options.fieldSelector?.matches(object) ?? true { found = true }
            }
            if found { return true }
            if rows < 256 { return false }
        }
    }

    public func currentResourceVersion() async throws(StoreError) -> UInt64 {
        let value = try await readOne("SELECT value FROM tether_counters WHERE name = 'resourceVersion'", as: Int64.self)
        return UInt64(max(0, value ?? 0))
    }

    public func raiseResourceVersion(to minimum: UInt64) async throws(StoreError) -> UInt64 {
        try await write(dryRun: false) { transaction in
            transaction.raise(to: minimum)
            return transaction.version
        }
    }

    // MARK: Writes

    public func create(_ object: JSONValue, as type: ResourceType, dryRun: Bool) async throws(StoreError) -> JSONValue {
        let (candidate, key) = try ObjectRules.prepareCreate(object, as: type)
        let timestamp = kubernetesTimestamp(now())
        return try await write(dryRun: dryRun) { transaction in
            let change = try ObjectRules.create(candidate, key: key, existing: try await transaction.fetch(key), timestamp: timestamp)
            return try await transaction.apply(change, key: key)
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
        return try await write(dryRun: dryRun) { transaction in
            let change = try ObjectRules.replace(object, key: key, existing: try await transaction.fetch(key), merge: merge)
            return try await transaction.apply(change, key: key)
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
        return try await write(dryRun: dryRun) { transaction in
            let change = try ObjectRules.delete(
                key: key, existing: try await transaction.fetch(key), preconditions: preconditions, timestamp: timestamp)
            return ObjectRules.deleteOutcome(change, written: try await transaction.apply(change, key: key))
        }
    }

    // MARK: Watch

    public func watch(_ type: ResourceType, namespace: String?, from resourceVersion: UInt64?) async throws(StoreError) -> WatchStream {
        let namespace = type.namespaced ? namespace : nil
        // As on SQLite: subscribe to live changes first, then replay the history from the table a
        // page at a time; a change in both is passed over the second time by its version.
        if let resourceVersion {
            _ = try await historyPage(type, namespace: namespace, after: resourceVersion, limit: 0)
        }
        let live = feed.subscribe(type: type, namespace: namespace, replay: [], liveLimit: watchBuffer)
        guard let resourceVersion else { return live }
        return HistoryReplay(after: resourceVersion, live: live) { [self] after in
            try await historyPage(type, namespace: namespace, after: after)
        }.stream
    }

    /// One page of `type`'s history after `version`, read in one snapshot with the compaction
    /// mark so a page never silently skips what compaction removed.
    private func historyPage(
        _ type: ResourceType, namespace: String?, after version: UInt64, limit: Int = 100, byteBudget: Int = 1_048_576
    ) async throws(StoreError) -> [WatchEvent] {
        let logger = self.logger
        return try await snapshot("store read") { connection in
            let compacted = try await Self.counter("compactedThrough", on: connection, logger: logger)
            if let expired = ObjectRules.expired(version, compactedThrough: compacted) { throw expired }
            guard limit > 0 else { return [] }
            let query: PostgresQuery =
                if let namespace {
                    """
                    SELECT resource_version, type, body FROM tether_events WHERE resource = \(type.storageKey)
                    AND resource_version > \(Int64(clamping: version)) AND namespace = \(namespace) ORDER BY resource_version LIMIT \(limit)
                    """
                } else {
                    """
                    SELECT resource_version, type, body FROM tether_events WHERE resource = \(type.storageKey)
                    AND resource_version > \(Int64(clamping: version)) ORDER BY resource_version LIMIT \(limit)
                    """
                }
            var page: [WatchEvent] = []
            var bytes = 0
            for try await (eventVersion, kind, body) in try await connection.query(query, logger: logger).decode((Int64, String, String).self) {
                guard bytes < byteBudget else { continue }
                page.append(
                    WatchEvent(
                        kind: WatchEvent.Kind(rawValue: kind) ?? .modified, object: try Self.decode(body), resourceVersion: UInt64(eventVersion)))
                bytes += body.utf8.count
            }
            return page
        }
    }

    /// Starts the listener that feeds this store's live watches from the table.
    private func follow(from start: UInt64) throws(StoreError) {
        let tail = ChangeTail(client: client, feed: feed, after: start, operationTimeout: operationTimeout, logger: logger)
        let configuration = try location.connectionConfiguration()
        let (location, logger) = (self.location, self.logger)
        let listener = Task {
            await Self.listen(configuration: configuration, location: location, tail: tail, logger: logger)
        }
        tasks.withLock { $0.append(listener) }
    }

    /// Holds a connection that listens on ``changesChannel``, reconnecting with backoff; reads the
    /// feed on connecting (what passed while it was away) and on every notification.
    private static func listen(
        configuration: PostgresConnection.Configuration, location: PostgresLocation, tail: ChangeTail, logger: Logger
    ) async {
        let backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(5))
        var attempt = 0
        while !Task.isCancelled {
            do {
                let connection = try await PostgresConnection.connect(
                    on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration, id: 0, logger: logger
                ).get()
                // Closed on every path: PostgresNIO requires it of every connection it hands out.
                let outcome: Result<Void, any Error>
                do {
                    try await withTaskCancellationHandler {
                        try await connection.listen(on: changesChannel) { notifications in
                            attempt = 0
                            logger.debug("following the store's changes", metadata: ["tether.event": "store.following"])
                            try await tail.catchUp()
                            for try await _ in notifications { try await tail.catchUp() }
                        }
                    } onCancel: {
                        let closing: EventLoopFuture<Void> = connection.close()
                        closing.whenComplete { _ in }
                    }
                    outcome = .success(())
                } catch {
                    outcome = .failure(error)
                }
                try? await connection.close()
                try outcome.get()
            } catch {
                guard !Task.isCancelled else { return }
                logger.warning(
                    "cannot follow the store's changes; watches wait while it reconnects and reads again",
                    metadata: [
                        "tether.event": "store.listen_failed", "tether.store": "\(location)",
                        "tether.error": "\(describe(error))",
                    ])
            }
            guard !Task.isCancelled else { return }
            try? await Task.sleep(for: backoff.delay(attempt: attempt))
            attempt += 1
        }
    }

    // MARK: Plumbing

    /// Runs `body` in a write transaction that holds the resource-version counter, committed
    /// unless `dryRun` or nothing changed; its changes are announced on commit.
    private func write<T: Sendable>(
        dryRun: Bool,
        _ body: @escaping @Sendable (inout PostgresWrite) async throws -> T
    ) async throws(StoreError) -> T {
        let (logger, limits, retained) = (self.logger, self.limits, retainedEvents)
        return try await inTransaction("store write") { connection in
            let current = try await Self.counter("resourceVersion", on: connection, forUpdate: true, logger: logger)
            var transaction = PostgresWrite(connection: connection, version: current, limits: limits, logger: logger)
            let result = try await body(&transaction)
            let commit = !dryRun && transaction.changed
            if commit { try await transaction.finish(retaining: retained) }
            return (result, commit)
        }
    }

    /// Runs `body` in a read-only `REPEATABLE READ` transaction: one snapshot throughout.
    func snapshot<T: Sendable>(
        _ what: String, _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws(StoreError) -> T {
        try await inTransaction(what, begin: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") { (try await body($0), true) }
    }

    /// Runs `body` in a plain transaction, committed when it returns; it may wait for PostgreSQL
    /// up to `deadline` (the store's operation timeout by default).
    func transaction(
        _ what: String, within deadline: Duration? = nil, _ body: @escaping @Sendable (PostgresConnection) async throws -> Bool
    ) async throws(StoreError) {
        _ = try await inTransaction(what, within: deadline) { (try await body($0), true) }
    }

    /// The last value of the one column `query` selects, or nil when no row matches.
    private func readOne<Value: PostgresDecodable & Sendable>(_ query: PostgresQuery, as type: Value.Type) async throws(StoreError) -> Value? {
        let logger = self.logger
        return try await Self.mappingErrors("store read") {
            try await self.client.withConnection(within: self.operationTimeout) { connection in
                var value: Value?
                for try await found in try await connection.query(query, logger: logger).decode(Value.self) { value = found }
                return value
            }
        }
    }

    /// The one place a transaction begins and ends: `body` says whether to commit; a throw rolls back.
    private func inTransaction<T: Sendable>(
        _ what: String, begin: PostgresQuery = "BEGIN", within deadline: Duration? = nil,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> (result: T, commit: Bool)
    ) async throws(StoreError) -> T {
        let logger = self.logger
        return try await Self.mappingErrors(what) {
            try await self.client.withConnection(within: deadline ?? self.operationTimeout) { connection in
                try await connection.query(begin, logger: logger)
                do {
                    let (result, commit) = try await body(connection)
                    try await connection.query(commit ? "COMMIT" : "ROLLBACK", logger: logger)
                    return result
                } catch {
                    _ = try? await connection.query("ROLLBACK", logger: logger)
                    throw error
                }
            }
        }
    }
}
