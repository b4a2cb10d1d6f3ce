import Foundation
import Logging
import Testing
import TetherLocal
import TetherStore
import TetherStorePostgres
import TetherTestSupport

/// Hubs' presence and shared run on one database (agents on every hub, docs/ha.md).
@Suite("PostgreSQL hub presence", .serialized, .enabled(if: StoreBackend.postgresEnabled, "make test-postgres runs it"))
struct PostgresHubPresenceTests {
    @Test(
        "a hub is alive while it holds its presence, and gone once its connection is; the run is shared while any hub lives, and new after all left")
    func presenceAndSharedRun() async throws {
        let server = try await PostgresServer.shared()
        let location = try PostgresLocation(url: server.url(database: try await server.createDatabase("presence")))
        let store = try await PostgresResourceStore.open(location)
        // Names whose hashes are negative as PostgreSQL's int4 and positive: both must be found.
        let names = (0..<6).map { "hub-\($0)-\(UUID().uuidString.prefix(8))" }
        var present: [PostgresHubPresence] = []
        for name in names.prefix(4) { present.append(try await PostgresHubPresence.join(location, hub: name, logger: .init(label: "test"))) }
        #expect(try await present[0].alive(among: Set(names)) == Set(names.prefix(4)))

        let first = try await present[0].sharedRun(proposed: ("run-1", 10))
        let second = try await present[1].sharedRun(proposed: ("run-2", 20))
        #expect(first.id == "run-1" && second.id == "run-1" && second.historyThrough == 10, "a hub joining live hubs takes their run")

        await present[1].leave()
        await present[2].leave()
        // PostgreSQL drops a lock when the server side of its connection ends, a moment after the client closed it.
        #expect(try await Self.alive(among: Set(names), by: present[0], becomes: [names[0], names[3]], within: .seconds(10)))
        await present[0].leave()
        await present[3].leave()
        let watcher = try await PostgresHubPresence.join(location, hub: names[5], logger: .init(label: "test"))
        #expect(try await Self.alive(among: Set(names.prefix(4)), by: watcher, becomes: [], within: .seconds(10)))
        await watcher.leave()
        #expect(try await Self.alive(among: [names[5]], by: nil, location: location, becomes: [], within: .seconds(10)))
        let again = try await PostgresHubPresence.join(location, hub: names[4], logger: .init(label: "test"))
        #expect(try await again.sharedRun(proposed: ("run-3", 30)) == ("run-3", 30), "the first hub after all left begins a run")
        await again.leave()
        store.close()
    }

    /// Whether `alive(among:)` answers `expected` within the deadline: asked again every 20 ms
    /// until then, since nothing tells when PostgreSQL has dropped a lock. With no presence to
    /// ask through, one joins under a throwaway name for each question.
    static func alive(
        among hubs: Set<String>, by presence: PostgresHubPresence?, location: PostgresLocation? = nil, becomes expected: Set<String>,
        within timeout: Duration
    ) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            var asker = presence
            if asker == nil, let location {
                asker = try await PostgresHubPresence.join(location, hub: "asker-\(UUID().uuidString)", logger: .init(label: "test"))
            }
            guard let asker else { return false }
            let alive = try await asker.alive(among: hubs)
            if presence == nil { await asker.leave() }
            if alive == expected { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }
}
