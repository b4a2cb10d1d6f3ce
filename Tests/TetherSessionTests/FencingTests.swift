import Testing
import TetherJSON
import TetherModel
import TetherWire

@testable import TetherAgent

@Suite("agent fencing: what a desired state may do before anything is applied")
struct FencingTests {
    let fencing = Fencing()
    let trusted = FencingBaseline(federation: "fed-a", epoch: "e1", revision: 575)

    static func references(_ count: Int) -> Set<ObjectReference> {
        Set((0..<count).map { ObjectReference(apiVersion: "v1", kind: "ConfigMap", namespace: "shop", name: "c\($0)") })
    }

    @Test("the same federation and epoch, a newer revision, few removals: applied in full, baseline moves")
    func ordinary() {
        let decision = fencing.decide(
            baseline: trusted, federation: "fed-a", epoch: "e1", revision: 580, terms: nil, removals: Self.references(1), managed: 10)
        #expect(decision.action == .apply(prune: true) && decision.hold == nil)
        #expect(decision.baseline == FencingBaseline(federation: "fed-a", epoch: "e1", revision: 580))
    }

    @Test("another federation: refused, and no confirmation lifts it")
    func foreign() {
        let decision = fencing.decide(
            baseline: trusted, federation: "fed-b", epoch: "e9", revision: 1, terms: nil, removals: Self.references(10), managed: 10)
        #expect(decision.action == .refuse && decision.hold?.reason == .foreignFederation && decision.baseline == trusted)
        let confirmed = fencing.decide(
            baseline: trusted, federation: "fed-b", epoch: "e9", revision: 1, terms: DesiredStateTerms(confirmedHold: decision.hold?.token),
            removals: Self.references(10), managed: 10
        )
        #expect(confirmed.action == .refuse)
    }

    @Test("a new epoch (a hub that lost its database): applied without pruning until confirmed; confirming prunes")
    func newEpoch() throws {
        let held = fencing.decide(
            baseline: trusted, federation: "fed-a", epoch: "e2", revision: 4, terms: nil, removals: Self.references(10), managed: 10)
        #expect(held.action == .apply(prune: false))
        let hold = try #require(held.hold)
        #expect(hold.reason == .newEpoch && hold.wouldRemove == 10 && hold.managed == 10)
        #expect(held.baseline == trusted, "the new epoch is not trusted until confirmed")
        let wrongToken = fencing.decide(
            baseline: trusted, federation: "fed-a", epoch: "e2", revision: 5, terms: DesiredStateTerms(confirmedHold: "epoch:e3"),
            removals: Self.references(10), managed: 10
        )
        #expect(wrongToken.action == .apply(prune: false))
        let confirmed = fencing.decide(
            baseline: trusted, federation: "fed-a", epoch: "e2", revision: 5, terms: DesiredStateTerms(confirmedHold: hold.token),
            removals: Self.references(10), managed: 10
        )
        #expect(confirmed.action == .apply(prune: true) && confirmed.hold == nil)
        #expect(confirmed.baseline == FencingBaseline(federation: "fed-a", epoch: "e2", revision: 5))
    }

    @Test("a revision older than the one applied, in the same epoch: refused until confirmed")
    func regressed() throws {
        let refused = fencing.decide(baseline: trusted, federation: "fed-a", epoch: "e1", revision: 3, terms: nil, removals: [], managed: 10)
        #expect(refused.action == .refuse)
        let hold = try #require(refused.hold)
        #expect(hold.reason == .revisionRegressed && hold.token == "rewind:e1:575")
        let confirmed = fencing.decide(
            baseline: trusted, federation: "fed-a", epoch: "e1", revision: 4, terms: DesiredStateTerms(confirmedHold: hold.token), removals: [],
            managed: 10)
        #expect(confirmed.action == .apply(prune: true) && confirmed.baseline.revision == 4)
    }

    @Test("a rewind stays held when the restored hub's revisions later pass the one applied; only the confirmation lifts it")
    func rewindIsSticky() throws {
        let refused = fencing.decide(baseline: trusted, federation: "fed-a", epoch: "e1", revision: 3, terms: nil, removals: [], managed: 10)
        let hold = try #require(refused.hold)
        let later = fencing.decide(
            baseline: trusted, federation: "fed-a", epoch: "e1", revision: 900, terms: nil, removals: Self.references(3), managed: 10, holding: hold)
        #expect(later.action == .refuse && later.hold == hold)
        let confirmed = fencing.decide(
            baseline: trusted, federation: "fed-a", epoch: "e1", revision: 901, terms: DesiredStateTerms(confirmedHold: hold.token),
            removals: Self.references(3), managed: 10, holding: hold)
        #expect(confirmed.action == .apply(prune: true) && confirmed.hold == nil && confirmed.baseline.revision == 901)
    }

    @Test("a revision from an earlier run above where the hub's store now ends (a restore the store's own writes hid): refused until confirmed")
    func historyLost() throws {
        let applied = FencingBaseline(federation: "fed-a", epoch: "e1", revision: 8621, digest: "a1", run: "run-1")
        // The restored store ends at 8343, and its own writes carried its revisions to 8686.
        let restored = fencing.decide(
            baseline: applied, federation: "fed-a", epoch: "e1", run: "run-2", historyThrough: 8343, revision: 8686, digest: "b2", terms: nil,
            removals: Self.references(5), managed: 40)
        #expect(restored.action == .refuse)
        let hold = try #require(restored.hold)
        #expect(hold.reason == .revisionRegressed && hold.token == "rewind:e1:8621" && hold.message.contains("ends at revision 8343"))
        #expect(restored.baseline == applied)
        // A plain restart: the store holds every revision sent before it.
        let restarted = fencing.decide(
            baseline: applied, federation: "fed-a", epoch: "e1", run: "run-2", historyThrough: 8621, revision: 8623, digest: "b2", terms: nil,
            removals: Self.references(1), managed: 40)
        #expect(restarted.action == .apply(prune: true) && restarted.baseline.run == "run-2")
        // The same run, later in it: its revisions are above where its history began, and its own.
        let sameRun = fencing.decide(
            baseline: applied, federation: "fed-a", epoch: "e1", run: "run-1", historyThrough: 8000, revision: 8700, terms: nil, removals: [],
            managed: 40)
        #expect(sameRun.action == .apply(prune: true))
        let confirmed = fencing.decide(
            baseline: applied, federation: "fed-a", epoch: "e1", run: "run-2", historyThrough: 8343, revision: 8690,
            terms: DesiredStateTerms(confirmedHold: hold.token), removals: Self.references(5), managed: 40, holding: hold)
        #expect(confirmed.action == .apply(prune: true) && confirmed.hold == nil && confirmed.baseline.run == "run-2")
    }

    @Test("the held revision again with another digest (a restored store whose revisions file lagged): refused; the same digest is not")
    func revisionReused() throws {
        let applied = FencingBaseline(federation: "fed-a", epoch: "e1", revision: 575, digest: "a1")
        let reused = fencing.decide(
            baseline: applied, federation: "fed-a", epoch: "e1", revision: 575, digest: "b2", terms: nil, removals: [], managed: 10)
        #expect(reused.action == .refuse)
        #expect(try #require(reused.hold).reason == .revisionRegressed)
        let same = fencing.decide(
            baseline: applied, federation: "fed-a", epoch: "e1", revision: 575, digest: "a1", terms: nil, removals: [], managed: 10)
        #expect(same.action == .apply(prune: true) && same.hold == nil)
        let older = fencing.decide(
            baseline: trusted, federation: "fed-a", epoch: "e1", revision: 575, digest: "b2", terms: nil, removals: [], managed: 10)
        #expect(older.action == .apply(prune: true), "an agent that never learned a digest cannot tell, and trusts the revision")
    }

    @Test("removing 9 of 10 is held, 1 of 10 is not; an unjoin is never held; a confirmation covers exactly those removals")
    func massDeletion() throws {
        let nine = Self.references(9)
        let held = fencing.decide(baseline: trusted, federation: "fed-a", epoch: "e1", revision: 600, terms: nil, removals: nine, managed: 10)
        #expect(held.action == .apply(prune: false) && held.hold?.reason == .massDeletion)
        #expect(held.baseline.revision == 600, "the set itself is trusted; only its removals wait")
        let one = fencing.decide(
            baseline: trusted, federation: "fed-a", epoch: "e1", revision: 600, terms: nil, removals: Self.references(1), managed: 10)
        #expect(one.action == .apply(prune: true))
        let unjoin = fencing.decide(
            baseline: trusted, federation: "fed-a", epoch: "e1", revision: 600, terms: DesiredStateTerms(unjoining: true),
            removals: Self.references(10), managed: 10)
        #expect(unjoin.action == .apply(prune: true))
        let token = try #require(held.hold?.token)
        let confirmed = fencing.decide(
            baseline: trusted, federation: "fed-a", epoch: "e1", revision: 601, terms: DesiredStateTerms(confirmedHold: token), removals: nine,
            managed: 10)
        #expect(confirmed.action == .apply(prune: true))
        // One more object to remove is not what was confirmed.
        let more = fencing.decide(
            baseline: trusted, federation: "fed-a", epoch: "e1", revision: 602, terms: DesiredStateTerms(confirmedHold: token),
            removals: Self.references(10), managed: 10)
        #expect(more.action == .apply(prune: false))
        // Small federations are not held for deleting their few objects.
        let small = fencing.decide(
            baseline: trusted, federation: "fed-a", epoch: "e1", revision: 600, terms: nil, removals: Self.references(2), managed: 2)
        #expect(small.action == .apply(prune: true))
    }

    @Test("a first contact trusts the hub it meets; an older hub naming no epoch keeps working")
    func firstContact() {
        let first = fencing.decide(baseline: FencingBaseline(), federation: "fed-a", epoch: "e1", revision: 1, terms: nil, removals: [], managed: 0)
        #expect(first.action == .apply(prune: true) && first.baseline == FencingBaseline(federation: "fed-a", epoch: "e1", revision: 1))
        let legacy = fencing.decide(baseline: trusted, federation: nil, epoch: nil, revision: 600, terms: nil, removals: [], managed: 10)
        #expect(legacy.action == .apply(prune: true) && legacy.baseline.epoch == "e1")
    }

    @Test("the allow-list refuses kinds and namespaces it does not name")
    func allowList() {
        let list = AllowList(kinds: ["/ConfigMap", "apps/Deployment", "/Namespace"])
        #expect(list.refusal(of: ObjectReference(apiVersion: "v1", kind: "ConfigMap", namespace: "shop", name: "c")) == nil)
        #expect(list.refusal(of: ObjectReference(apiVersion: "v1", kind: "ConfigMap", namespace: "kube-system", name: "c")) != nil)
        #expect(list.refusal(of: ObjectReference(apiVersion: "v1", kind: "Namespace", name: "kube-system")) != nil)
        #expect(list.refusal(of: ObjectReference(apiVersion: "v1", kind: "Node", name: "n1")) != nil)
        #expect(list.refusal(of: ObjectReference(apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", name: "admin")) != nil)
        let narrow = AllowList(kinds: ["/ConfigMap"], namespaces: ["shop"])
        #expect(narrow.refusal(of: ObjectReference(apiVersion: "v1", kind: "ConfigMap", namespace: "other", name: "c")) != nil)
    }
}
