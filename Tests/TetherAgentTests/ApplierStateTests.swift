import BuiltinPlugins
import Testing
import TetherJSON
import TetherModel
import TetherWire

@testable import TetherAgent

/// Drives an ``ApplierState`` against a member kept as a dictionary, the way the shell's workers
/// do: each object's steps in turn, reads answered from the member, writes made to it.
struct ApplierHarness {
    var state: ApplierState
    var member: [ObjectReference: JSONValue] = [:]
    /// Every write the member saw, in order: `apply ConfigMap/x`, `delete ...`, `release ...`.
    var writes: [String] = []
    var failNextApply: String?
    var actions: [ApplierAction] = []
    private var uids = 0
    let welcome = Welcome(
        protocolVersion: 1, sessionID: "s", heartbeatIntervalMilliseconds: 1_000, hubVersion: "test", federation: "fed", epoch: "e1")

    init(kinds: Set<String> = ["/ConfigMap", "/Namespace", "apps/Deployment"]) {
        state = ApplierState(
            settings: .init(
                cluster: "m1", origin: "hub", retryBackoff: Backoff(initial: .seconds(1), maximum: .seconds(30)), resyncInterval: .seconds(300),
                fencing: Fencing(), allowList: AllowList(kinds: kinds)
            ),
            registry: BuiltinPlugins.agent
        )
        state.resume(nil, inventory: [:])
        actions += state.takeActions()
    }

    /// Hands the state a message from the hub, then works every queued object to the end.
    mutating func receive(_ message: WireMessage) {
        state.received(message, from: welcome)
        work()
    }

    mutating func work() {
        actions += state.takeActions()
        while let reference = state.takeWork() {
            var step = state.step(reference, .start)
            while step != .done {
                switch step {
                case .read(let target):
                    step = state.step(target, .read(member[target]))
                case .apply(let target, let object, _):
                    if let failure = failNextApply {
                        failNextApply = nil
                        step = state.step(target, .failed(failure))
                        continue
                    }
                    writes.append("apply \(target.kind)/\(target.name)")
                    var stored = object
                    uids += 1
                    stored.metadata["uid"] = member[target]?.uid.map { .string($0) } ?? .string("uid-\(uids)")
                    stored.metadata["resourceVersion"] = .string("\(uids)")
                    member[target] = stored
                    step = state.step(target, .applied(stored))
                case .delete(let target, _):
                    writes.append("delete \(target.kind)/\(target.name)")
                    member[target] = nil
                    step = state.step(target, .deleted)
                case .release(let target):
                    writes.append("release \(target.kind)/\(target.name)")
                    step = state.step(target, .released)
                case .done:
                    break
                }
            }
            state.finished(reference)
            actions += state.takeActions()
        }
    }

    mutating func takeWrites() -> [String] {
        defer { writes = [] }
        return writes
    }

    static func configMap(_ name: String, namespace: String = "shop", data: String = "v1") -> JSONValue {
        [
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": .string(name), "namespace": .string(namespace)],
            "data": ["k": .string(data)],
        ]
    }

    static func reference(_ name: String, kind: String = "ConfigMap", apiVersion: String = "v1", namespace: String? = "shop") -> ObjectReference {
        ObjectReference(apiVersion: apiVersion, kind: kind, namespace: namespace, name: name)
    }

    static func snapshot(_ revision: UInt64, _ objects: [JSONValue], digest: String? = nil, terms: DesiredStateTerms? = nil) -> WireMessage {
        .snapshot(Snapshot(revision: revision, objects: objects, terms: terms, digest: digest ?? "d\(revision)"))
    }
}

@Suite("applier state: what to apply, in what order, what to prune, when to retry, what to report")
struct ApplierStateTests {
    typealias A = ApplierHarness

    @Test("a snapshot is applied in phase order (namespace, configuration, workloads), marked as managed, then acknowledged")
    func appliesInPhaseOrder() throws {
        var harness = A()
        let deployment: JSONValue = [
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": ["name": "web", "namespace": "shop"],
            "spec": [
                "replicas": 2, "selector": ["matchLabels": ["app": "web"]],
                "template": ["metadata": ["labels": ["app": "web"]], "spec": ["containers": [["name": "w", "image": "nginx"]]]],
            ],
        ]
        let namespace: JSONValue = ["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": "shop"]]
        harness.receive(A.snapshot(3, [deployment, A.configMap("settings"), namespace]))
        #expect(harness.takeWrites() == ["apply Namespace/shop", "apply ConfigMap/settings", "apply Deployment/web"])
        let applied = try #require(harness.member[A.reference("settings")])
        #expect(applied.labels["tether.io/managed-by"] == "m1")
        let taken = harness.state.takeAck()
        let ack = try #require(taken)
        #expect(ack.revision == 3 && ack.failures.isEmpty && ack.hold == nil)
    }

    @Test("an object already in place as desired is adopted without a write")
    func inPlaceIsAdopted() {
        var harness = A()
        harness.receive(A.snapshot(1, [A.configMap("a")]))
        _ = harness.takeWrites()
        harness.receive(.delta(Delta(fromRevision: 1, toRevision: 2, upserts: [A.configMap("a")], deletes: [], digest: "d2")))
        #expect(harness.takeWrites().isEmpty)
    }

    @Test("a field or label no longer desired is applied away, though every field still desired is in place; then nothing is written")
    func droppedFieldIsApplied() throws {
        var harness = A()
        var before = A.configMap("a")
        before.set(["k": "v1", "old": "x"], at: ["data"])
        before.labels["tier"] = "web"
        harness.receive(A.snapshot(1, [before]))
        #expect(harness.takeWrites() == ["apply ConfigMap/a"])
        harness.receive(.delta(Delta(fromRevision: 1, toRevision: 2, upserts: [A.configMap("a")], deletes: [], digest: "d2")))
        #expect(harness.takeWrites() == ["apply ConfigMap/a"], "the member still holds data.old and the label, which only an apply removes")
        let applied = try #require(harness.member[A.reference("a")])
        #expect(applied["data"] == ["k": "v1"] && applied.labels["tier"] == nil)
        harness.receive(.delta(Delta(fromRevision: 2, toRevision: 3, upserts: [A.configMap("a")], deletes: [], digest: "d3")))
        #expect(harness.takeWrites().isEmpty)
    }

    @Test("prunes only what it made: not an unmanaged look-alike, not an object replaced behind its back")
    func prunesOnlyItsOwn() {
        var harness = A()
        harness.receive(A.snapshot(1, [A.configMap("mine"), A.configMap("replaced")]))
        _ = harness.takeWrites()
        // A member user labels their own object as if Tether managed it.
        var lookAlike = A.configMap("theirs")
        lookAlike.labels["tether.io/managed-by"] = "m1"
        lookAlike.metadata["uid"] = "their-uid"
        harness.member[A.reference("theirs")] = lookAlike
        // Someone deletes and recreates one of the agent's objects; the member's watch says so.
        harness.member[A.reference("replaced")]?.metadata["uid"] = "someone-elses"
        harness.state.observed(harness.member[A.reference("replaced")]!, deleted: false)
        harness.state.observed(lookAlike, deleted: false)
        harness.receive(
            .delta(
                Delta(
                    fromRevision: 1, toRevision: 2, upserts: [], deletes: [A.reference("mine"), A.reference("replaced"), A.reference("theirs")],
                    digest: "d2")))
        #expect(harness.takeWrites() == ["delete ConfigMap/mine"])
        #expect(harness.member[A.reference("theirs")] != nil && harness.member[A.reference("replaced")] != nil)
    }

    @Test("a set that would remove most of what it manages is applied without pruning and held; the confirmed token prunes")
    func massDeletionHeld() throws {
        var harness = A()
        let ten = (0..<10).map { A.configMap("c\($0)") }
        harness.receive(A.snapshot(1, ten))
        _ = harness.takeWrites()
        harness.receive(A.snapshot(2, [ten[0]]))
        #expect(harness.takeWrites().isEmpty)
        let hold = try #require(harness.state.hold)
        #expect(hold.reason == .massDeletion && hold.wouldRemove == 9)
        harness.receive(A.snapshot(3, [ten[0]], terms: DesiredStateTerms(confirmedHold: hold.token)))
        #expect(harness.takeWrites().count == 9)
        #expect(harness.state.hold == nil)
    }

    @Test("an older revision, or the same revision with another digest, is refused: nothing is written")
    func rewoundRefused() throws {
        var harness = A()
        harness.receive(A.snapshot(50, [A.configMap("a"), A.configMap("b")]))
        _ = harness.takeWrites()
        harness.receive(A.snapshot(3, []))
        #expect(harness.takeWrites().isEmpty)
        #expect(harness.state.hold?.reason == .revisionRegressed)
        let refusal = harness.state.takeAck()
        #expect(refusal?.hold?.reason == .revisionRegressed)

        var again = A()
        again.receive(A.snapshot(50, [A.configMap("a"), A.configMap("b")], digest: "one"))
        _ = again.takeWrites()
        again.receive(A.snapshot(50, [A.configMap("a", data: "other")], digest: "two"))
        #expect(again.takeWrites().isEmpty)
        #expect(again.state.hold?.reason == .revisionRegressed)
    }

    @Test("a failed apply is reported, and retried after its backoff, not before")
    func failureRetried() throws {
        var harness = A()
        harness.failNextApply = "member answered 503"
        harness.receive(A.snapshot(1, [A.configMap("a")]))
        #expect(harness.takeWrites().isEmpty)
        let taken = harness.state.takeAck()
        let ack = try #require(taken)
        #expect(ack.failures.map(\.message) == ["member answered 503"])
        #expect(harness.state.statuses[A.reference("a")]?.state == .failed)
        let retry = try #require(
            harness.actions.compactMap { if case .schedule(let timer, let delay) = $0, case .retry = timer { (timer, delay) } else { nil } }.first)
        #expect(retry.1 >= .zero && retry.1 <= .seconds(1), "the first retry waits within the initial backoff (full jitter)")
        harness.work()
        #expect(harness.takeWrites().isEmpty, "nothing is retried before the timer")
        harness.state.fired(retry.0)
        harness.work()
        #expect(harness.takeWrites() == ["apply ConfigMap/a"])
        #expect(harness.state.statuses[A.reference("a")]?.state == .applied)
    }

    @Test("what the allow-list refuses is reported, never written")
    func allowListRefuses() throws {
        var harness = A(kinds: ["/ConfigMap"])
        let node: JSONValue = ["apiVersion": "v1", "kind": "Node", "metadata": ["name": "n1"]]
        harness.receive(A.snapshot(1, [A.configMap("a"), A.configMap("k", namespace: "kube-system"), node]))
        #expect(harness.takeWrites() == ["apply ConfigMap/a"])
        let taken = harness.state.takeAck()
        let ack = try #require(taken)
        #expect(ack.failures.count == 2 && ack.failures.allSatisfy { $0.message.contains("allow-list") })
    }

    @Test("chunks out of order, or a delta that does not follow the held revision, end the session to resync")
    func outOfStep() {
        var harness = A()
        harness.receive(.snapshot(Snapshot(revision: 4, objects: [], chunkIndex: 1, chunkCount: 2)))
        #expect(harness.actions.contains { if case .resync = $0 { true } else { false } })
        var delta = A()
        delta.receive(A.snapshot(1, [A.configMap("a")]))
        delta.receive(.delta(Delta(fromRevision: 7, toRevision: 8, upserts: [], deletes: [])))
        #expect(delta.actions.contains { if case .resync = $0 { true } else { false } })
        #expect(delta.state.revision == 1)
    }

    @Test("without any desired state nothing is pruned: a fresh agent with an inventory waits for the hub")
    func noPruningWithoutDesiredState() {
        var harness = A()
        harness.state.resume(nil, inventory: [A.reference("old"): "uid-old"])
        var old = A.configMap("old")
        old.labels["tether.io/managed-by"] = "m1"
        old.metadata["uid"] = "uid-old"
        harness.member[A.reference("old")] = old
        harness.state.enqueue(A.reference("old"))
        harness.work()
        #expect(harness.takeWrites().isEmpty)
    }

    static func persisted(in actions: [ApplierAction], revision: UInt64) -> PersistedDesiredState? {
        actions.compactMap { if case .persistDesired(let state) = $0, state.revision == revision { state } else { nil } }.last
    }

    @Test("an object made just before the agent died, before its inventory was written, is still pruned after a restart; a look-alike is not")
    func unrecordedCreatesArePruned() throws {
        var before = A()
        before.receive(A.snapshot(1, [A.configMap("made")]))
        #expect(before.takeWrites() == ["apply ConfigMap/made"])
        // The inventory is written a second later (the timer never fires: the agent is killed).
        let saved = try #require(Self.persisted(in: before.actions, revision: 1))
        #expect(saved.unrecorded?.map(\.name) == ["made"])

        var after = A()
        after.member = before.member
        var lookAlike = A.configMap("theirs")
        lookAlike.labels["tether.io/managed-by"] = "m1"
        lookAlike.metadata["uid"] = "their-uid"
        after.member[A.reference("theirs")] = lookAlike
        var state = saved
        state.unrecorded = (state.unrecorded ?? []) + [A.reference("theirs")]
        after.state.resume(state, inventory: [:])
        after.work()
        #expect(after.takeWrites().isEmpty, "the object is still desired: adopted, not rewritten")
        after.receive(A.snapshot(2, []))
        #expect(after.takeWrites() == ["delete ConfigMap/made"], "the agent's own object goes; the look-alike without the origin stays")
        #expect(after.member[A.reference("theirs")] != nil)
    }

    @Test("a field the hub dropped while the agent was down is applied away after a restart; an unchanged object is not rewritten")
    func droppedWhileDown() throws {
        var before = A()
        var old = A.configMap("a")
        old.set(["k": "v1", "old": "x"], at: ["data"])
        before.receive(A.snapshot(1, [old, A.configMap("b")]))
        #expect(Set(before.takeWrites()) == ["apply ConfigMap/a", "apply ConfigMap/b"])
        let saved = try #require(Self.persisted(in: before.actions, revision: 1))

        var after = A()
        after.member = before.member
        after.state.resume(saved, inventory: [A.reference("a"): "uid-1", A.reference("b"): "uid-2"])
        after.work()
        #expect(after.takeWrites().isEmpty, "as persisted: adopted, not rewritten")
        after.receive(A.snapshot(2, [A.configMap("a"), A.configMap("b")]))
        #expect(after.takeWrites() == ["apply ConfigMap/a"], "only the object whose field the hub dropped")
        #expect(after.member[A.reference("a")]?["data"] == ["k": "v1"])
    }

    @Test("a set accepted after a create but before the inventory was written carries the create, so a restart still prunes it")
    func unrecordedSurvivesTheNextSet() throws {
        var before = A()
        before.receive(A.snapshot(1, [A.configMap("made")]))
        _ = before.takeWrites()
        // The hub drops the object; the agent saves that set and dies before pruning.
        before.state.received(A.snapshot(2, []), from: before.welcome)
        let saved = try #require(Self.persisted(in: before.state.takeActions(), revision: 2))
        #expect(saved.objects.isEmpty && saved.unrecorded?.map(\.name) == ["made"])

        var after = A()
        after.member = before.member
        after.state.resume(saved, inventory: [:])
        after.work()
        #expect(after.takeWrites() == ["delete ConfigMap/made"])
    }

    @Test("once the inventory is written, nothing stays unrecorded")
    func writtenInventoryClearsUnrecorded() {
        var harness = A()
        harness.receive(A.snapshot(1, [A.configMap("made")]))
        #expect(harness.state.unrecorded == [A.reference("made")])
        harness.state.fired(.persistInventory)
        #expect(harness.state.unrecorded.isEmpty)
        #expect(harness.state.persistedInventory == [A.reference("made")])
    }
}
