import Foundation
import Synchronization
import Testing
import TetherJSON
import TetherLocal
import TetherModel
import TetherStore
import TetherStorePostgres
import TetherTestSupport

/// What only the PostgreSQL store promises: several stores (hubs) on one database, each
/// seeing every other's writes, across lost notifications and a restarted server. One test at
/// a time: some hold PostgreSQL to a deadline, and a neighbour writing 16,000 rows made one miss it.
@Suite("PostgreSQL store shared by several hubs", .serialized, .enabled(if: StoreBackend.postgresEnabled, "make test-postgres runs it"))
struct PostgresStoreTests {
    @Test("a watch on store B sees every write made on A and on B, in order, once each")
    func watchAcrossStores() async throws {
        let server = try await PostgresServer.shared()
        let location = try PostgresLocation(url: server.url(database: try await server.createDatabase("shared")))
        let storeA = try await PostgresResourceStore.open(location)
        let storeB = try await PostgresResourceStore.open(location)
        let watch = try await storeB.watch(replicaSets, namespace: nil, from: 0)
        // Two writers at once, one per store: the versions interleave.
        async let fromA: Void = {
            for index in 0..<100 { _ = try await storeA.create(replicaSet("a-\(index)"), as: replicaSets, dryRun: false) }
        }()
        async let fromB: Void = {
            for index in 0..<100 { _ = try await storeB.create(replicaSet("b-\(index)"), as: replicaSets, dryRun: false) }
        }()
        _ = try await (fromA, fromB)
        let events = try await next(200, of: watch, within: .seconds(30))
        #expect(events.map(\.resourceVersion) == Array(1...200))
        #expect(Set(events.compactMap(\.object.name)).count == 200)
        // A third store opened now agrees on the version and reads everything.
        let storeC = try await PostgresResourceStore.open(location)
        #expect(try await storeC.currentResourceVersion() == 200)
        #expect(try await storeC.list(replicaSets, options: .init()).objects.count == 200)
        for store in [storeA, storeB, storeC] { store.close() }
    }

    @Test("a store whose notifications are cut reconnects and delivers what it missed, with no gap and no duplicate")
    func lostNotifications() async throws {
        let server = try await PostgresServer.shared()
        let database = try await server.createDatabase("lost")
        let location = try PostgresLocation(url: server.url(database: database))
        let writer = try await PostgresResourceStore.open(location)
        let reader = try await PostgresResourceStore.open(location)
        let watch = try await reader.watch(replicaSets, namespace: nil, from: 0)
        for index in 0..<20 { _ = try await writer.create(replicaSet("before-\(index)"), as: replicaSets, dryRun: false) }
        #expect(try await next(20, of: watch).count == 20)
        // Cut every listening connection on this database while writes go on.
        let cutter = Task {
            for _ in 0..<3 {
                try await server.psql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '\(database)' AND query LIKE 'LISTEN%'")
            }
        }
        for index in 0..<60 { _ = try await writer.create(replicaSet("during-\(index)"), as: replicaSets, dryRun: false) }
        try await cutter.value
        let events = try await next(60, of: watch, within: .seconds(30))
        #expect(events.map(\.resourceVersion) == Array(21...80))
        writer.close()
        reader.close()
    }

    @Test("a write that waits on PostgreSQL past the store's deadline fails with a storage error, and the store goes on")
    func writeDeadline() async throws {
        let server = try await PostgresServer.shared()
        let database = try await server.createDatabase("deadline")
        let location = try PostgresLocation(url: server.url(database: database))
        let store = try await PostgresResourceStore.open(location, operationTimeout: .seconds(1))
        _ = try await store.create(replicaSet("first"), as: replicaSets, dryRun: false)
        // Another session holds the resource-version counter, as a stuck writer would.
        let holder = Task {
            try await server.psql(
                "BEGIN; SELECT value FROM tether_counters WHERE name = 'resourceVersion' FOR UPDATE; SELECT pg_sleep(6); COMMIT;",
                database: database)
        }
        let refused = Inbox<StoreError>()
        let writer = Task {
            for index in 0..<20 {
                do {
                    _ = try await store.create(replicaSet("during-\(index)"), as: replicaSets, dryRun: false)
                } catch let error as StoreError {
                    refused.append(error)
                    return
                }
            }
        }
        let error = try await refused.waitFor("a write refused by the deadline", within: .seconds(5)) { _ in true }
        writer.cancel()
        #expect(error.code == .storage)
        #expect(error.message.contains("did not answer within 1.0 seconds"))
        try await holder.value
        _ = try await store.create(replicaSet("after"), as: replicaSets, dryRun: false)
        #expect(try await store.get(replicaSets, namespace: "default", name: "after").name == "after")
        store.close()
    }

    @Test("PostgreSQL restarted under writes: writes fail with a storage error meanwhile, then succeed; nothing acknowledged is lost")
    func serverRestart() async throws {
        // A server of its own: the shared one must stay up for the other tests.
        let server = try await PostgresServer.start()
        let database = try await server.createDatabase("restart")
        let location = try PostgresLocation(url: server.url(database: database))
        // A short deadline: a write caught by the restart fails soon (ConnectionDeadline.swift says why it can hang).
        let writer = try await PostgresResourceStore.open(location, operationTimeout: .seconds(3))
        let watcher = try await PostgresResourceStore.open(location)
        let watch = try await watcher.watch(replicaSets, namespace: nil, from: 0)

        let acknowledged = Mutex<[String]>([])
        let failures = Mutex<[StoreError]>([])
        let load = Task {
            for index in 0..<400 {
                do {
                    let created = try await writer.create(replicaSet("rs-\(index)"), as: replicaSets, dryRun: false)
                    acknowledged.withLock { $0.append(created.name ?? "") }
                } catch {
                    failures.withLock { $0.append(error as? StoreError ?? StoreError(.invalid, "not a store error: \(error)")) }
                    try? await Task.sleep(for: .milliseconds(20))
                }
                if acknowledged.withLock({ $0.count }) >= 150 { return }
            }
        }
        // Let some writes land, then stop and restart the server under them.
        _ = try await next(10, of: watch, within: .seconds(30))
        await server.stop()
        try await server.start()
        await load.value

        let written = acknowledged.withLock { $0 }
        #expect(written.count >= 150)
        #expect(failures.withLock { $0 }.allSatisfy { $0.code == .storage })
        let stored = try await writer.list(replicaSets, options: .init()).objects.compactMap(\.name)
        #expect(Set(written).isSubset(of: Set(stored)))
        // The watch stayed open across the restart and delivers every stored object's creation once.
        let version = try await writer.currentResourceVersion()
        let events = try await next(Int(version) - 10, of: watch, within: .seconds(60))
        #expect(events.map(\.resourceVersion) == Array(11...version))
        writer.close()
        watcher.close()
        await server.stop()
    }
}
