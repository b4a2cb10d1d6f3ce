import Foundation
import Synchronization
import TetherLocal

/// A real PostgreSQL server (Debian's, `postgresql-15`) for the tests: a cluster made with
/// `initdb` in a temporary directory, listening only on a Unix socket there, owned by the
/// `postgres` system user (PostgreSQL refuses to run as root).
///
/// A watcher process stops the server when the test process goes away (its standard input, a
/// pipe from this process, reaches end of file), so a crashed test run leaves no server behind.
public final class PostgresServer: Sendable {
    public let directory: String
    public var socketDirectory: String { directory + "/socket" }
    public var dataDirectory: String { directory + "/data" }
    public static let port = 5432
    private let binaries: String
    private let process = Mutex<(server: ManagedProcess, watcher: ManagedProcess)?>(nil)
    private let databases = Atomic<Int>(0)

    /// `initdb` into a new directory, then start; fails with what to install when PostgreSQL is missing.
    public static func start() async throws -> PostgresServer {
        let server = try PostgresServer()
        try await server.initialize()
        try await server.start()
        return server
    }

    /// One server per test process, started on first use: databases are cheap, servers are not.
    public static func shared() async throws -> PostgresServer { try await SharedServer.instance.server() }

    private init() throws {
        guard let binaries = Self.findBinaries() else {
            throw PostgresServerError(
                "PostgreSQL's server programs are not installed (no /usr/lib/postgresql/*/bin/postgres); `make test` installs postgresql-15, or run `apt-get install postgresql-15`"
            )
        }
        self.binaries = binaries
        directory = (NSTemporaryDirectory() as NSString).appendingPathComponent("tether-pg-\(UUID().uuidString.prefix(8).lowercased())")
        for (path, mode) in [(directory, 0o755), (directory + "/data", 0o700), (directory + "/socket", 0o755)] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false, attributes: [.posixPermissions: mode])
        }
        for path in [directory + "/data", directory + "/socket"] {
            try FileManager.default.setAttributes([.ownerAccountName: "postgres", .groupOwnerAccountName: "postgres"], ofItemAtPath: path)
        }
    }

    deinit {
        // A running server stops when its shell's input (held by the process object) closes,
        // and that shell removes the directory; a stopped one is removed here.
        let running = process.withLock { $0.map { $0.server.exitStatus == nil } ?? false }
        if !running { try? FileManager.default.removeItem(atPath: directory) }
    }

    private static func findBinaries() -> String? {
        if let configured = ProcessInfo.processInfo.environment["TETHER_POSTGRES_BIN"] { return configured }
        let root = "/usr/lib/postgresql"
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return
            versions
            .compactMap { version in Int(version).map { ($0, "\(root)/\(version)/bin") } }
            .filter { FileManager.default.isExecutableFile(atPath: $0.1 + "/postgres") }
            .max { $0.0 < $1.0 }?.1
    }

    private func initialize() async throws {
        let initdb = ManagedProcess(
            name: "initdb", executable: URL(fileURLWithPath: "/bin/sh"),
            arguments: [
                "-c",
                "cd \"$1\" && exec setpriv --reuid=postgres --regid=postgres --clear-groups -- \"$2/initdb\" -D \"$1/data\" -U tether --auth=trust -E UTF8 --no-sync --no-instructions",
                "initdb", directory, binaries,
            ])
        try initdb.start()
        guard let status = await initdb.waitForExit(within: .seconds(120)), status == 0 else {
            initdb.send(SIGKILL)
            throw PostgresServerError("initdb failed: \(initdb.tail(20))")
        }
    }

    /// Starts the server on the existing data directory (again, after ``stop()`` or ``kill()``).
    public func start() async throws {
        let server = ManagedProcess(
            name: "postgres", executable: URL(fileURLWithPath: "/usr/bin/setpriv"),
            arguments: [
                "--reuid=postgres", "--regid=postgres", "--clear-groups", "--", binaries + "/postgres", "-D", dataDirectory,
                "-k", socketDirectory, "-c", "listen_addresses=", "-p", "\(Self.port)", "-c", "fsync=off", "-c", "max_connections=300",
                "-c", "log_min_messages=warning", "-c", "log_min_error_statement=panic",
            ])
        try server.start()
        // A second process holds a pipe from this one: when the test process goes away, however
        // it ends, the pipe's end of file stops the server and removes its directory.
        let watcher = ManagedProcess(
            name: "postgres-watch", executable: URL(fileURLWithPath: "/bin/sh"),
            arguments: [
                "-c", "cat >/dev/null; kill -INT $1 2>/dev/null; while kill -0 $1 2>/dev/null; do sleep 0.2; done; rm -rf \"$2\"",
                "postgres-watch", "\(server.processIdentifier)", directory,
            ],
            keepStandardInputOpen: true)
        try watcher.start()
        process.withLock { $0 = (server, watcher) }
        try await server.waitForLine(within: .seconds(60), "PostgreSQL ready") { $0.raw.contains("ready to accept connections") }
    }

    /// A fast shutdown (SIGINT): connections are closed, nothing committed is lost.
    public func stop() async { await signalServer(SIGINT) }

    /// A crash: the server process is killed outright (its children follow).
    public func kill() async { await signalServer(SIGKILL) }

    private func signalServer(_ signal: Int32) async {
        guard let (server, watcher) = process.withLock({ $0 }) else { return }
        watcher.send(SIGKILL)
        server.send(signal)
        if await server.waitForExit(within: .seconds(30)) == nil { server.send(SIGKILL) }
    }

    /// A new, empty database; its URL for `tether-hub --store` or ``url(database:)``.
    public func createDatabase(_ prefix: String = "tether") async throws -> String {
        let name = "\(prefix)_\(databases.add(1, ordering: .relaxed).newValue)_\(UUID().uuidString.prefix(6).lowercased())"
        try await psql("CREATE DATABASE \(name)")
        return name
    }

    /// Runs SQL as the superuser, in database `database`.
    public func psql(_ sql: String, database: String = "postgres") async throws {
        let run = ManagedProcess(
            name: "psql", executable: URL(fileURLWithPath: "/usr/bin/env"),
            arguments: [
                "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", socketDirectory, "-p", "\(Self.port)", "-U", "tether", "-d", database, "-c", sql,
            ])
        try run.start()
        guard let status = await run.waitForExit(within: .seconds(60)), status == 0 else {
            run.send(SIGKILL)
            throw PostgresServerError("psql `\(sql)` failed: \(run.tail(10))")
        }
    }

    /// The value `query` selects (one row, one column), as psql prints it unaligned.
    public func value(_ query: String, database: String = "postgres") async throws -> String {
        let run = ManagedProcess(
            name: "psql", executable: URL(fileURLWithPath: "/usr/bin/env"),
            arguments: ["psql", "-X", "-At", "-h", socketDirectory, "-p", "\(Self.port)", "-U", "tether", "-d", database, "-c", query])
        try run.start()
        guard let status = await run.waitForExit(within: .seconds(60)), status == 0, let line = run.lines.last?.raw else {
            run.send(SIGKILL)
            throw PostgresServerError("psql `\(query)` failed: \(run.tail(10))")
        }
        return line
    }

    public func url(database: String) -> String {
        "postgres://tether@/\(database)?host=\(socketDirectory)&port=\(Self.port)"
    }
}

public struct PostgresServerError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

private actor SharedServer {
    static let instance = SharedServer()
    private var starting: Task<PostgresServer, any Error>?

    func server() async throws -> PostgresServer {
        if let starting { return try await starting.value }
        let task = Task { try await PostgresServer.start() }
        starting = task
        return try await task.value
    }
}
