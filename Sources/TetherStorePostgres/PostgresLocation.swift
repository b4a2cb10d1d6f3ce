import Foundation
import NIOSSL
import PostgresNIO
import TetherStore

/// Where a PostgreSQL store is, from a `postgres://` URL as libpq writes them:
/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE?sslmode=MODE`, or over a Unix socket
/// `postgres://USER@/DATABASE?host=/run/postgresql` (the directory that holds `.s.PGSQL.PORT`).
///
/// A password may also come from `PGPASSWORD`, so it need not appear in a process listing.
/// `sslmode` is `disable`, `prefer` (the default over TCP, as libpq's), `require` (encrypted,
/// certificate not checked) or `verify-full` (checked against `sslrootcert`, or the system's
/// trust store).
public struct PostgresLocation: Sendable, CustomStringConvertible {
    public enum Endpoint: Sendable, Hashable {
        case tcp(host: String, port: Int)
        /// The socket file itself: `DIRECTORY/.s.PGSQL.PORT`.
        case unixSocket(path: String)
    }

    public enum TLSMode: String, Sendable, CaseIterable {
        case disable
        case prefer
        case require
        case verifyFull = "verify-full"
    }

    public var endpoint: Endpoint
    public var user: String
    public var password: String?
    public var database: String
    public var tls: TLSMode
    public var rootCertificatePath: String?

    public init(url text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(StoreError) {
        func refuse(_ why: String) -> StoreError {
            StoreError(
                .invalid,
                "the store URL \(Self.redacting(text)) \(why); write it as postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE or postgres://USER@/DATABASE?host=/socket/directory"
            )
        }
        guard let components = URLComponents(string: text), let scheme = components.scheme,
            scheme == "postgres" || scheme == "postgresql"
        else { throw refuse("is not a postgres:// URL") }
        let query = Dictionary((components.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { _, last in last })
        let known: Set<String> = ["host", "port", "sslmode", "sslrootcert", "user", "password", "dbname"]
        if let unknown = query.keys.sorted().first(where: { !known.contains($0) }) {
            throw refuse("has the parameter \(unknown), which Tether does not use (it knows \(known.sorted().joined(separator: ", ")))")
        }
        let port = components.port ?? Int(query["port"] ?? "") ?? 5432
        user = (components.user?.removingPercentEncoding).flatMap { $0.isEmpty ? nil : $0 } ?? query["user"] ?? "postgres"
        password = components.password?.removingPercentEncoding ?? query["password"] ?? environment["PGPASSWORD"]
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        database = path.removingPercentEncoding.flatMap { $0.isEmpty ? nil : $0 } ?? query["dbname"] ?? user
        let host = components.host.flatMap { $0.isEmpty ? nil : $0 } ?? query["host"]
        switch host {
        case .some(let directory) where directory.hasPrefix("/"):
            endpoint = .unixSocket(path: (directory as NSString).appendingPathComponent(".s.PGSQL.\(port)"))
        case .some(let name):
            endpoint = .tcp(host: name, port: port)
        case .none:
            throw refuse("names no host (for a Unix socket, add ?host=/socket/directory)")
        }
        if let mode = query["sslmode"] {
            guard let parsed = TLSMode(rawValue: mode) else {
                throw refuse("has sslmode=\(mode); use one of \(TLSMode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            tls = parsed
        } else {
            tls = if case .unixSocket = endpoint { .disable } else { .prefer }
        }
        rootCertificatePath = query["sslrootcert"]
    }

    /// The URL without its password, for logs and errors.
    public var description: String {
        switch endpoint {
        case .tcp(let host, let port): "postgres://\(user)@\(host):\(port)/\(database)?sslmode=\(tls.rawValue)"
        case .unixSocket(let path): "postgres://\(user)@/\(database)?host=\((path as NSString).deletingLastPathComponent)"
        }
    }

    static func redacting(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.password != nil else { return url }
        components.password = "***"
        return components.string ?? "(a URL)"
    }

    func clientConfiguration() throws(StoreError) -> PostgresClient.Configuration {
        switch endpoint {
        case .tcp(let host, let port):
            return PostgresClient.Configuration(
                host: host, port: port, username: user, password: password, database: database, tls: try clientTLS())
        case .unixSocket(let path):
            return PostgresClient.Configuration(unixSocketPath: path, username: user, password: password, database: database)
        }
    }

    func connectionConfiguration() throws(StoreError) -> PostgresConnection.Configuration {
        switch endpoint {
        case .tcp(let host, let port):
            let tls: PostgresConnection.Configuration.TLS = self.tls == .disable ? .disable : try connectionTLS()
            return PostgresConnection.Configuration(host: host, port: port, username: user, password: password, database: database, tls: tls)
        case .unixSocket(let path):
            return PostgresConnection.Configuration(unixSocketPath: path, username: user, password: password, database: database)
        }
    }

    private func tlsConfiguration() throws(StoreError) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        switch tls {
        case .disable, .prefer, .require:
            configuration.certificateVerification = .none
        case .verifyFull:
            configuration.certificateVerification = .fullVerification
            if let rootCertificatePath {
                do {
                    configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(rootCertificatePath))
                } catch {
                    throw StoreError(.invalid, "cannot read sslrootcert \(rootCertificatePath): \(error)")
                }
            }
        }
        return configuration
    }

    private func clientTLS() throws(StoreError) -> PostgresClient.Configuration.TLS {
        switch tls {
        case .disable: .disable
        case .prefer: .prefer(try tlsConfiguration())
        case .require, .verifyFull: .require(try tlsConfiguration())
        }
    }

    private func connectionTLS() throws(StoreError) -> PostgresConnection.Configuration.TLS {
        do {
            let context = try NIOSSLContext(configuration: try tlsConfiguration())
            return tls == .prefer ? .prefer(context) : .require(context)
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.invalid, "cannot set up TLS for \(self): \(error)")
        }
    }
}
