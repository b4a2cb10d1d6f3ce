import Foundation
import Logging
import PostgresNIO
import TetherJSON
import TetherModel
import TetherStore

/// The queries and conversions the store's reads, writes and change tail share.
extension PostgresResourceStore {
    static func counter(_ name: String, on connection: PostgresConnection, forUpdate: Bool = false, logger: Logger) async throws -> UInt64 {
        let query: PostgresQuery =
            forUpdate
            ? "SELECT value FROM tether_counters WHERE name = \(name) FOR UPDATE"
            : "SELECT value FROM tether_counters WHERE name = \(name)"
        var value: Int64 = 0
        for try await found in try await connection.query(query, logger: logger).decode(Int64.self) { value = found }
        return UInt64(max(0, value))
    }

    static func bodyQuery(_ key: ObjectKey) -> PostgresQuery {
        "SELECT body FROM tether_objects WHERE resource = \(key.type.storageKey) AND namespace = \(key.namespace) AND name = \(key.name)"
    }

    static func decode(_ body: String) throws(StoreError) -> JSONValue {
        do {
            return try JSONValue(parsing: body)
        } catch {
            throw StoreError(.storage, "a stored object is not valid JSON: \(error)")
        }
    }

    /// Passes ``StoreError``s through and reports anything else (PostgreSQL, the network) as
    /// `.storage`, with the server's own message where it sent one.
    static func mappingErrors<T: Sendable>(_ what: String, _ body: () async throws -> T) async throws(StoreError) -> T {
        do {
            return try await body()
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.storage, "\(what) failed: \(describe(error))")
        }
    }

    static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        if let message = error.serverInfo?[.message] {
            return "PostgreSQL: \(message) (SQLSTATE \(error.serverInfo?[.sqlState] ?? "?"))"
        }
        if let underlying = error.underlying { return "PostgreSQL \(error.code): \(underlying)" }
        return "PostgreSQL \(error.code)"
    }
}
