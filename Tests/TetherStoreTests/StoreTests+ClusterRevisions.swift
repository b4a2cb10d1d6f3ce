import Foundation
import Testing
import TetherStore
import TetherStorePostgres
import TetherTestSupport

extension StoreTests {
    @Test(
        "each cluster's revision is a record of its own: a write changes only the clusters it names, never lowers one, and survives reopening",
        arguments: StoreBackend.tested)
    func clusterRevisions(_ backend: StoreBackend) async throws {
        let fixture = try await StoreFixture(backend)
        #expect(try await fixture.store.clusterRevisions().isEmpty)
        try await fixture.store.updateClusterRevisions(
            ["eu-1": ClusterRevision(revision: 10, digest: "a"), "us-1": ClusterRevision(revision: 12, digest: "b")], removing: [])
        // Another store on the same data (a second hub, or the hub after a restart) records one cluster.
        let other = try await fixture.reopen()
        try await other.updateClusterRevisions(["us-1": ClusterRevision(revision: 15, digest: "c")], removing: [])
        #expect(
            try await fixture.store.clusterRevisions() == [
                "eu-1": ClusterRevision(revision: 10, digest: "a"), "us-1": ClusterRevision(revision: 15, digest: "c"),
            ])
        // A hub with an older view of a cluster cannot take its record back.
        try await fixture.store.updateClusterRevisions(["us-1": ClusterRevision(revision: 13, digest: "old")], removing: [])
        #expect(try await other.clusterRevisions()["us-1"] == ClusterRevision(revision: 15, digest: "c"))
        // An unjoined cluster's record goes; the others stay.
        try await other.updateClusterRevisions(["ap-1": ClusterRevision(revision: 1, digest: "d")], removing: ["eu-1"])
        #expect(
            try await fixture.reopen().clusterRevisions() == [
                "us-1": ClusterRevision(revision: 15, digest: "c"), "ap-1": ClusterRevision(revision: 1, digest: "d"),
            ])
    }
}

extension PostgresStoreTests {
    @Test("a database from before per-cluster rows has its revisions document moved into them when a newer hub starts")
    func revisionsDocumentMigrated() async throws {
        let server = try await PostgresServer.shared()
        let database = try await server.createDatabase("migrated")
        let location = try PostgresLocation(url: server.url(database: database))
        try await PostgresResourceStore.open(location).close()
        // Back to schema 1, with the revisions where a hub of that schema kept them.
        try await server.psql(
            """
            DROP TABLE tether_cluster_revisions;
            DELETE FROM tether_schema WHERE version >= 2;
            INSERT INTO tether_meta VALUES ('document:federation-revisions', '{"eu-1":{"revision":41,"digest":"9a"},"us-1":{"revision":7,"digest":"3"}}');
            """, database: database)
        let store = try await PostgresResourceStore.open(location)
        defer { store.close() }
        #expect(
            try await store.clusterRevisions() == [
                "eu-1": ClusterRevision(revision: 41, digest: "9a"), "us-1": ClusterRevision(revision: 7, digest: "3"),
            ])
        #expect(try await store.document("federation-revisions") == nil)
    }

    @Test("recording one cluster among 16,000 writes its row alone")
    func oneClusterAmongMany() async throws {
        let server = try await PostgresServer.shared()
        let database = try await server.createDatabase("many")
        let store = try await PostgresResourceStore.open(PostgresLocation(url: server.url(database: database)))
        defer { store.close() }
        let clusters = Dictionary(uniqueKeysWithValues: (0..<16_000).map { ("cluster-\($0)", ClusterRevision(revision: 100, digest: "d\($0)")) })
        try await store.updateClusterRevisions(clusters, removing: [])
        // The rows a transaction changed carry its id (xmin): the write of one cluster's record
        // changes that row alone.
        func rowsChangedSince(_ transaction: Int64) async throws -> Int {
            Int(try await server.value("SELECT count(*) FROM tether_cluster_revisions WHERE xmin::text::bigint > \(transaction)", database: database))
                ?? -1
        }
        let before = Int64(try await server.value("SELECT max(xmin::text::bigint) FROM tether_cluster_revisions", database: database)) ?? 0
        try await store.updateClusterRevisions(["cluster-7": ClusterRevision(revision: 101, digest: "e")], removing: [])
        #expect(try await rowsChangedSince(before) == 1)
        // What a write costs, as WAL and time; the WAL position is the server's, so tests running
        // beside this one add to it: printed, not asserted.
        func walPosition() async throws -> Int64 {
            Int64(try await server.value("SELECT pg_current_wal_lsn() - '0/0'")) ?? 0
        }
        let clock = ContinuousClock()
        let rounds = 5
        var start = try await walPosition()
        var time = Duration.zero
        for round in 0..<rounds {
            time += try await clock.measure {
                try await store.updateClusterRevisions(["cluster-\(round)": ClusterRevision(revision: 101, digest: "e")], removing: [])
            }
        }
        let oneRow = (try await walPosition() - start) / Int64(rounds)
        // What each write cost before: the whole set as one document.
        let document = String(decoding: try JSONEncoder().encode(clusters), as: UTF8.self)
        start = try await walPosition()
        var wholeTime = Duration.zero
        for _ in 0..<rounds { wholeTime += try await clock.measure { try await store.setDocument("revisions-as-before", to: document) } }
        let whole = (try await walPosition() - start) / Int64(rounds)
        print(
            "cluster revisions on PostgreSQL, one of 16,000 changed: \(oneRow) bytes of WAL and \(time / rounds) a write;"
                + " the whole set as one document (\(document.utf8.count) bytes): \(whole) bytes of WAL and \(wholeTime / rounds) a write")
        let stored = try await store.clusterRevisions()
        #expect(stored.count == 16_000)
        #expect(stored["cluster-4"] == ClusterRevision(revision: 101, digest: "e"))
        #expect(stored["cluster-20"] == ClusterRevision(revision: 100, digest: "d20"))
    }
}
