import Foundation
import Testing
import TetherJSON
import TetherModel
import TetherStore
import TetherTestSupport

@Suite("Resource store limits and paged watch replay")
struct StoreLimitsTests {
    static let configMaps = ResourceType(group: "", resource: "configmaps", namespaced: true)

    static func configMap(_ name: String, bytes: Int = 10, depth: Int = 0) -> JSONValue {
        var data: JSONValue = .string(String(repeating: "x", count: bytes))
        for _ in 0..<depth { data = ["d": data] }
        return ["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": .string(name), "namespace": "default"], "data": ["k": data]]
    }

    @Test("the store refuses an object past its limits on every kind of write, whoever writes", arguments: StoreBackend.tested)
    func limits(_ backend: StoreBackend) async throws {
        let limits = ObjectLimits(maximumBytes: 2_000, maximumStoredBytes: 4_000, maximumDepth: 10)
        let fixture = try await StoreFixture(backend, limits: limits)
        let store = fixture.store

        let large = await #expect(throws: StoreError.self) {
            try await store.create(Self.configMap("big", bytes: 5_000), as: Self.configMaps, dryRun: false)
        }
        #expect(large?.code == .tooLarge)
        let deep = await #expect(throws: StoreError.self) {
            try await store.create(Self.configMap("deep", depth: 20), as: Self.configMaps, dryRun: false)
        }
        #expect(deep?.code == .invalid)

        // The stored limit leaves room for status over what a client may write.
        var created = try await store.create(Self.configMap("ok", bytes: 1_500), as: Self.configMaps, dryRun: false)
        created[member: "status"] = ["note": .string(String(repeating: "s", count: 1_500))]
        _ = try await store.updateStatus(created, as: Self.configMaps, dryRun: false)
        var grown = try await store.get(Self.configMaps, namespace: "default", name: "ok")
        grown[member: "status"] = ["note": .string(String(repeating: "s", count: 3_000))]
        let status = await #expect(throws: StoreError.self) { try await store.updateStatus(grown, as: Self.configMaps, dryRun: false) }
        #expect(status?.code == .tooLarge)
        var nested = try await store.get(Self.configMaps, namespace: "default", name: "ok")
        nested[member: "data"] = Self.configMap("x", depth: 12)["data"]
        let update = await #expect(throws: StoreError.self) { try await store.update(nested, as: Self.configMaps, dryRun: false) }
        #expect(update?.code == .invalid)
        // Nothing refused was kept, and the store still reads back.
        #expect(try await store.list(Self.configMaps, options: ListOptions()).objects.map(\.name) == ["ok"])
    }

    @Test(
        "a watch from an old version replays the whole history in pages, then live changes, none twice and none missed",
        arguments: StoreBackend.tested)
    func pagedReplay(_ backend: StoreBackend) async throws {
        let fixture = try await StoreFixture(backend, retainedEvents: 100_000)
        let store = fixture.store
        // More history than several pages (100 events, 4 MiB), some of it large.
        for index in 0..<450 {
            _ = try await store.create(Self.configMap("c\(index)", bytes: index % 50 == 0 ? 200_000 : 100), as: Self.configMaps, dryRun: false)
        }
        let stream = try await store.watch(Self.configMaps, namespace: nil, from: 0)
        // Writes keep coming while the replay runs: they must appear exactly once, in order.
        let writer = Task {
            for index in 450..<600 {
                _ = try await store.create(Self.configMap("c\(index)"), as: Self.configMaps, dryRun: false)
            }
        }
        let events = try await next(600, of: stream, within: .seconds(60))
        try await writer.value
        #expect(events.map(\.resourceVersion) == Array(1...600))
        #expect(Set(events.compactMap(\.object.name)).count == 600)
    }

    @Test("a watch whose history is compacted away while it replays ends as expired", arguments: StoreBackend.tested)
    func compactedDuringReplay(_ backend: StoreBackend) async throws {
        let fixture = try await StoreFixture(backend, retainedEvents: 150)
        let store = fixture.store
        for index in 0..<150 { _ = try await store.create(Self.configMap("c\(index)"), as: Self.configMaps, dryRun: false) }
        let stream = try await store.watch(Self.configMaps, namespace: nil, from: 0)
        var iterator = stream.makeAsyncIterator()
        _ = try await iterator.next()  // the first page (100 events) is read
        for index in 150..<400 { _ = try await store.create(Self.configMap("c\(index)"), as: Self.configMaps, dryRun: false) }
        var failure: StoreError?
        do {
            while try await iterator.next() != nil {}
        } catch let error as StoreError {
            failure = error
        }
        #expect(failure?.code == .expired)
    }
}
