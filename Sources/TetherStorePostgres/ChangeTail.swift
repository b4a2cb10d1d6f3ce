import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization
import TetherJSON
import TetherModel
import TetherStore

/// Reads the change feed after the last change published to this store's watches, in order.
///
/// One reader at a time: a call that arrives while another reads only asks it to read again,
/// so a burst of notifications costs one pass, and no change is published twice. Only the
/// listener calls it, so a failed read always ends in a reconnect that reads again.
actor ChangeTail {
    private let client: PostgresClient
    private let feed: ChangeFeed
    private let operationTimeout: Duration
    private let logger: Logger
    private var last: UInt64
    private var reading = false
    private var again = false

    init(client: PostgresClient, feed: ChangeFeed, after last: UInt64, operationTimeout: Duration, logger: Logger) {
        self.client = client
        self.operationTimeout = operationTimeout
        self.feed = feed
        self.last = last
        self.logger = logger
    }

    /// Reads to the end of the feed. A failure leaves the position where it was: the listener
    /// reconnects and reads again.
    func catchUp() async throws {
        guard !reading else {
            again = true
            return
        }
        reading = true
        defer { reading = false }
        repeat {
            again = false
            while try await readPage() {}
        } while again
    }

    /// Publishes the next page of changes; true when a full page came (more may follow).
    private func readPage() async throws -> Bool {
        let (after, logger) = (last, self.logger)
        let page = try await client.withConnection(within: operationTimeout) { connection in
            try await connection.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger)
            do {
                let page = try await Self.read(after: after, on: connection, logger: logger)
                try await connection.query("COMMIT", logger: logger)
                return page
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
        }
        if page.compacted > last {
            // Changes this store never read were cut from the feed: its watches cannot be
            // told everything, so they end and their readers list again.
            feed.finishAll(
                throwing: StoreError(.watchOverflow, "this hub fell behind the store's change history and closed the watch; list again and resume"))
            logger.warning(
                "fell behind the store's change history; every watch ends and lists again",
                metadata: ["tether.event": "store.tail_compacted", "tether.after": "\(last)", "tether.compacted": "\(page.compacted)"])
            last = page.compacted
        }
        guard let newest = page.events.last?.event.resourceVersion else { return false }
        feed.publish(page.events)
        last = newest
        return page.events.count == 500
    }

    private static func read(after: UInt64, on connection: PostgresConnection, logger: Logger) async throws -> Page {
        let compacted = try await PostgresResourceStore.counter("compactedThrough", on: connection, logger: logger)
        var events: [(event: WatchEvent, resource: String, namespace: String)] = []
        for try await (version, resource, namespace, kind, body) in try await connection.query(
            """
            SELECT resource_version, resource, namespace, type, body FROM tether_events
            WHERE resource_version > \(Int64(clamping: after)) ORDER BY resource_version LIMIT 500
            """, logger: logger
        ).decode((Int64, String, String, String, String).self) {
            let event = WatchEvent(
                kind: WatchEvent.Kind(rawValue: kind) ?? .modified, object: try PostgresResourceStore.decode(body),
                resourceVersion: UInt64(version))
            events.append((event, resource, namespace))
        }
        return Page(compacted: compacted, events: events)
    }

    private struct Page: Sendable {
        var compacted: UInt64
        var events: [(event: WatchEvent, resource: String, namespace: String)]
    }
}
