import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import TetherStore

/// The right to drive the federation: one hub at a time per PostgreSQL database.
///
/// A session-level advisory lock held on a connection of its own. The hub that holds it runs
/// the federation engine and serves agents and the API; every other hub on the database waits
/// for it, as a standby, and takes over the moment the holder's connection ends, which
/// PostgreSQL notices when the holder's process dies or its machine goes away (the kernel
/// closes the socket, or TCP keepalive gives up). The lock is lost with its connection, so a
/// holder that loses it stops rather than drive the federation alongside its successor.
public final class PostgresHubLock: Sendable {
    private let connection: PostgresConnection

    /// The lock's two keys: "teth" in ASCII, and 1 for the hub role.
    static let keys: (Int32, Int32) = (0x7465_7468, 1)

    private init(connection: PostgresConnection) {
        self.connection = connection
    }

    /// Takes the lock, waiting while another hub holds it.
    ///
    /// - Parameters:
    ///   - holder: how this hub names itself to the others (`host:port pid N`), as PostgreSQL's
    ///     `application_name`; a waiting hub logs the holder's.
    ///   - waiting: called once, with the holder's name, when the lock is taken by another hub.
    public static func acquire(
        _ location: PostgresLocation,
        holder: String,
        logger: Logger,
        waiting: @Sendable (_ holder: String) -> Void
    ) async throws(StoreError) -> PostgresHubLock {
        let connection = try await location.holdingConnection(named: holder, toDo: "take the hub lock", logger: logger)
        do {
            if try await tryLock(on: connection, logger: logger) { return PostgresHubLock(connection: connection) }
            waiting(try await currentHolder(on: connection, logger: logger) ?? "another hub")
            _ = try await withTaskCancellationHandler {
                try await connection.query("SELECT pg_advisory_lock(\(keys.0), \(keys.1))", logger: logger)
            } onCancel: {
                let closing: EventLoopFuture<Void> = connection.close()
                closing.whenComplete { _ in }
            }
            return PostgresHubLock(connection: connection)
        } catch {
            try? await connection.close()
            throw StoreError(.storage, "lost the store \(location) while waiting for the hub lock: \(PostgresResourceStore.describe(error))")
        }
    }

    private static func tryLock(on connection: PostgresConnection, logger: Logger) async throws -> Bool {
        var taken = false
        for try await value in try await connection.query("SELECT pg_try_advisory_lock(\(keys.0), \(keys.1))", logger: logger)
            .decode(Bool.self)
        {
            taken = value
        }
        return taken
    }

    private static func currentHolder(on connection: PostgresConnection, logger: Logger) async throws -> String? {
        var holder: String?
        for try await name in try await connection.query(
            """
            SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND l.classid::int8 = \(Int64(keys.0)) AND l.objid::int8 = \(Int64(keys.1)) AND l.objsubid = 2
            """, logger: logger
        ).decode(String.self) {
            holder = name
        }
        return holder
    }

    /// Returns when the lock is gone: its connection closed, by PostgreSQL or by ``release()``.
    ///
    /// A cancelled wait gives the lock up: the hub is stopping (a service of its failed, or it
    /// was told to), and the connection's end is what a standby waits for. Without this, a hub
    /// whose agent port could not be bound never exited.
    public func lost() async {
        await withTaskCancellationHandler {
            try? await connection.closeFuture.get()
        } onCancel: {
            let closing: EventLoopFuture<Void> = connection.close()
            closing.whenComplete { _ in }
        }
    }

    /// Gives the lock up, so a standby takes over at once.
    public func release() async {
        try? await connection.close()
    }
}

extension PostgresLocation {
    /// A connection of its own, to hold a session-level advisory lock for as long as it lives,
    /// named `name` to PostgreSQL (`application_name`). PostgreSQL finds a vanished holder (its
    /// machine gone, no FIN) by keepalive: within about 25 s rather than the system's default two
    /// hours. Unix sockets ignore these.
    func holdingConnection(named name: String, toDo purpose: String, logger: Logger) async throws(StoreError) -> PostgresConnection {
        var configuration = try connectionConfiguration()
        configuration.options.additionalStartupParameters = [
            ("application_name", String(name.prefix(63))), ("tcp_keepalives_idle", "10"), ("tcp_keepalives_interval", "5"),
            ("tcp_keepalives_count", "3"),
        ]
        do {
            return try await PostgresConnection.connect(
                on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration, id: 0, logger: logger
            ).get()
        } catch {
            throw StoreError(.storage, "cannot reach the store \(self) to \(purpose): \(PostgresResourceStore.describe(error))")
        }
    }
}
