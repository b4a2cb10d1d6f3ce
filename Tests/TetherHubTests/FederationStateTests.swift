import Foundation
import Testing
import TetherJSON
import TetherModel
import TetherStore
import TetherWire

@testable import TetherHub

/// The engine's decisions, in milliseconds: events in, actions out, no process, store or clock.
@Suite("federation state: events in, actions out")
struct FederationStateTests {
    typealias H = FederationHarness

    static let web = ObjectReference(apiVersion: "apps/v1", kind: "Deployment", namespace: "shop", name: "web")

    @Test("nothing is pushed until every collection was listed once; then each connected agent gets a snapshot of what is placed on it")
    func settlesBeforePushing() throws {
        var harness = H()
        harness.send(.started(storeVersion: 100, revisions: [:], collections: 5, at: H.start))
        harness.send(.listed(.clusters, objects: [H.cluster("a"), H.cluster("b")], version: 100, first: true, at: H.start))
        harness.connect("a")
        harness.connect("b")
        harness.send(.listed(.propagationPolicies, objects: [], version: 100, first: true, at: H.start))
        harness.send(.listed(.overridePolicies, objects: [], version: 100, first: true, at: H.start))
        harness.send(.listed(.federated(H.configMaps), objects: [H.configMap("one"), H.configMap("two")], version: 100, first: true, at: H.start))
        #expect(harness.actions.pushedClusters.isEmpty, "a set computed from a half-read store would make agents prune")
        harness.send(.listed(.federated(H.deployments), objects: [], version: 100, first: true, at: H.start))
        #expect(harness.actions.events.contains("federation.settled"))
        let pushes = harness.deliverPushes()
        #expect(pushes.map(\.cluster).sorted() == ["a", "b"])
        for push in pushes {
            guard case .snapshot(let snapshot) = try #require(push.messages.first) else {
                Issue.record("not a snapshot")
                continue
            }
            #expect(snapshot.objects.compactMap(\.name).sorted() == ["one", "two"])
            #expect(snapshot.digest != nil, "pushes name the digest of the set")
        }
    }

    @Test("an object a controller owns (a Deployment's revision, kept as a ReplicaSet) is not federated; its owner is")
    func controlledObjectsStayAtTheHub() throws {
        var harness = H()
        var owned = H.configMap("revision")
        owned.metadata["ownerReferences"] = [["apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u-1", "controller": true]]
        var referenced = H.configMap("referenced")
        referenced.metadata["ownerReferences"] = [["apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "u-2"]]
        harness.settle(clusters: ["a": [:]], objects: [H.configMap("plain"), owned, referenced])
        harness.connect("a")
        let pushes = harness.deliverPushes()
        guard case .snapshot(let snapshot) = try #require(pushes.first?.messages.first) else {
            Issue.record("not a snapshot")
            return
        }
        // An owner that is not a controller does not keep an object at the hub.
        #expect(snapshot.objects.compactMap(\.name).sorted() == ["plain", "referenced"])
        // A federated object that gains a controller leaves the members.
        var adopted = H.configMap("plain")
        adopted.metadata["ownerReferences"] = owned.metadata["ownerReferences"]
        harness.change(adopted)
        #expect(harness.state.federated.keys.map(\.name).sorted() == ["referenced"])
    }

    @Test("a PropagationPolicy's cluster names and label selector choose the clusters; excluded clusters get an empty set")
    func placementFollowsPolicies() throws {
        var harness = H()
        let policy = H.propagationPolicy(
            "eu-only",
            spec: [
                "resourceSelectors": [["apiVersion": "v1", "kind": "ConfigMap"]],
                "placement": ["clusterSelector": ["matchLabels": ["region": "eu"]], "excludeClusters": ["c"]],
            ]
        )
        harness.settle(
            clusters: ["a": ["region": "eu"], "b": ["region": "us"], "c": ["region": "eu"]], objects: [H.configMap("one")],
            propagationPolicies: [policy])
        for name in ["a", "b", "c"] { harness.connect(name) }
        let pushes = Dictionary(uniqueKeysWithValues: harness.deliverPushes().map { ($0.cluster, $0.messages.flatMap(\.objectNames)) })
        #expect(pushes == ["a": ["one"], "b": [], "c": []])

        // Relabelling a cluster places again.
        harness.change(H.cluster("b", labels: ["region": "eu"]))
        let after = harness.deliverPushes()
        #expect(after.map(\.cluster) == ["b"])
        #expect(after.first?.messages.flatMap(\.objectNames) == ["one"])
    }

    @Test("under propagateDeps a Deployment's ConfigMap goes wherever the Deployment goes, besides its own clusters, and leaves with it")
    func dependenciesFollowTheirDependent() throws {
        var harness = H()
        var web = H.deployment("web", replicas: 2)
        web.set([["name": "config", "configMap": ["name": "settings"]]], at: ["spec", "template", "spec", "volumes"])
        let configsToA = H.propagationPolicy(
            "a-configs", spec: ["resourceSelectors": [["apiVersion": "v1", "kind": "ConfigMap"]], "placement": ["clusterNames": ["a"]]])
        let webToAB = H.propagationPolicy(
            "b-web",
            spec: [
                "resourceSelectors": [["apiVersion": "apps/v1", "kind": "Deployment"]], "placement": ["clusterNames": ["a", "b"]],
                "propagateDeps": true,
            ])
        harness.settle(
            clusters: ["a": [:], "b": [:], "c": [:]], objects: [H.configMap("settings"), H.configMap("other"), web],
            propagationPolicies: [configsToA, webToAB])
        for name in ["a", "b", "c"] { harness.connect(name) }
        var pushes = Dictionary(uniqueKeysWithValues: harness.deliverPushes().map { ($0.cluster, $0.messages.flatMap(\.objectNames)) })
        #expect(pushes == ["a": ["other", "settings", "web"], "b": ["settings", "web"], "c": []])

        // The Deployment stops naming it: it is back to its own clusters.
        var plain = web
        plain.set(nil, at: ["spec", "template", "spec", "volumes"])
        harness.change(plain)
        var deletes = harness.deliverPushes().flatMap { push in
            push.messages.compactMap { if case .delta(let delta) = $0 { delta.deletes.map { "\(push.cluster)/\($0.name)" } } else { nil } }.joined()
        }
        #expect(deletes == ["b/settings"])

        // Named again, it follows again; a policy without propagateDeps takes it back.
        harness.change(web)
        pushes = Dictionary(uniqueKeysWithValues: harness.deliverPushes().map { ($0.cluster, $0.messages.flatMap(\.objectNames)) })
        #expect(pushes["b"] == ["settings", "web"] || pushes["b"] == ["settings"])
        var withoutDeps = webToAB
        withoutDeps.set(nil, at: ["spec", "propagateDeps"])
        harness.change(withoutDeps)
        deletes = harness.deliverPushes().flatMap { push in
            push.messages.compactMap { if case .delta(let delta) = $0 { delta.deletes.map { "\(push.cluster)/\($0.name)" } } else { nil } }.joined()
        }
        #expect(deletes == ["b/settings"])
    }

    @Test("replicas are divided by weight among the target clusters; an OverridePolicy changes one cluster's copy")
    func divisionAndOverrides() throws {
        var harness = H()
        let policy = H.propagationPolicy(
            "weighted",
            spec: [
                "resourceSelectors": [["apiVersion": "apps/v1", "kind": "Deployment"]],
                "replicaScheduling": ["type": "Divided", "weights": ["a": 2, "b": 1]],
            ]
        )
        let override = H.overridePolicy(
            "canary",
            spec: [
                "resourceSelectors": [["apiVersion": "apps/v1", "kind": "Deployment"]],
                "overrides": [["clusterNames": ["b"], "image": "nginx:1.28"]],
            ]
        )
        harness.settle(
            clusters: ["a": [:], "b": [:]], objects: [H.deployment("web", replicas: 9)], propagationPolicies: [policy], overridePolicies: [override])
        harness.connect("a")
        harness.connect("b")
        var copies: [String: JSONValue] = [:]
        for push in harness.deliverPushes() {
            guard case .snapshot(let snapshot) = push.messages[0] else { continue }
            copies[push.cluster] = snapshot.objects.first
        }
        #expect(copies["a"]?["spec"]?["replicas"]?.integerValue == 6)
        #expect(copies["b"]?["spec"]?["replicas"]?.integerValue == 3)
        #expect(copies["a"]?.value(at: "spec", "template", "spec", "containers")?.arrayElements.first?["image"]?.stringValue == "nginx:1.27")
        #expect(copies["b"]?.value(at: "spec", "template", "spec", "containers")?.arrayElements.first?["image"]?.stringValue == "nginx:1.28")
    }

    @Test("after a snapshot, changes go as deltas: upserts, deletes, and orphans for an object deleted with tether.io/orphan")
    func deltas() throws {
        var harness = H()
        harness.settle(clusters: ["a": [:]], objects: [H.configMap("one"), H.configMap("two"), H.configMap("three")])
        harness.connect("a")
        let snapshot = harness.deliverPushes()
        #expect(snapshot.count == 1)

        harness.change(H.configMap("one", data: "v2"))
        let upsert = harness.deliverPushes()
        guard case .delta(let delta)? = upsert.first?.messages.first else {
            Issue.record("no delta: \(upsert)")
            return
        }
        #expect(delta.fromRevision == snapshot[0].revision && delta.toRevision > delta.fromRevision)
        #expect(delta.upserts.compactMap(\.name) == ["one"] && delta.deletes.isEmpty)

        harness.change(H.configMap("two"), deleted: true)
        harness.change(H.configMap("three", annotations: ["tether.io/orphan": "true"]), deleted: true)
        let removals = harness.deliverPushes()
        let deltas = removals.flatMap(\.messages).compactMap { if case .delta(let delta) = $0 { delta } else { nil } }
        #expect(deltas.flatMap(\.deletes).map(\.name) == ["two"])
        #expect(deltas.flatMap { $0.orphans ?? [] }.map(\.name) == ["three"])
    }

    @Test("a write that changes only the status, or nothing placement reads, pushes nothing")
    func statusWritesPushNothing() {
        var harness = H()
        harness.settle(clusters: ["a": [:]], objects: [H.configMap("one")])
        harness.connect("a")
        _ = harness.deliverPushes()
        var withStatus = H.configMap("one")
        withStatus[member: "status"] = ["clusters": [["name": "a"]]]
        harness.change(withStatus)
        #expect(harness.take().pushedClusters.isEmpty)
    }

    @Test(
        "every report kind: an ack of a revision never sent and status of an object not placed on the cluster are refused; honest status is written")
    func reports() throws {
        var harness = H()
        let policy = H.propagationPolicy(
            "only-a", spec: ["resourceSelectors": [["apiVersion": "v1", "kind": "ConfigMap"]], "placement": ["clusterNames": ["a"]]])
        harness.settle(clusters: ["a": [:], "b": [:]], objects: [H.configMap("one")], propagationPolicies: [policy])
        harness.connect("a")
        harness.connect("b")
        let revisions = Dictionary(uniqueKeysWithValues: harness.deliverPushes().map { ($0.cluster, $0.revision) })
        _ = harness.take()
        let one = H.reference(H.configMap("one"))

        harness.send(.received(.ack(Ack(revision: revisions["a"]! + 1_000)), cluster: "a", at: H.start))
        #expect(harness.take().securityEvents == ["ack.unknown_revision"])

        let spoofed = StatusReport(objects: [StatusReport.ObjectStatus(object: one, state: .applied, health: .healthy)])
        harness.send(.received(.status(spoofed), cluster: "b", at: H.start))
        let refused = harness.take()
        #expect(refused.securityEvents == ["status.not_placed"])
        #expect(!refused.contains { if case .writeFederatedStatus = $0 { true } else { false } })

        harness.send(.received(.status(spoofed), cluster: "a", at: H.start))
        let written = harness.take().compactMap {
            if case .writeFederatedStatus(let write) = $0 { (write.reference, write.reports) } else { nil }
        }
        #expect(written.count == 1 && written.first?.0 == one && written.first?.1.map(\.cluster) == ["a"])

        // A hold in an ack is shown on the Cluster.
        let hold = Ack.Hold(reason: .massDeletion, message: "held", token: "prune:9:x", wouldRemove: 9, managed: 10)
        harness.send(.received(.ack(Ack(revision: revisions["a"]!, hold: hold)), cluster: "a", at: H.start))
        #expect(harness.take().contains { if case .updateClusterStatus("a", .hold(let shown, _, _)) = $0 { shown == hold } else { false } })
    }

    @Test(
        "after a restart, an agent that connects and reports before the hub has listed everything counts: its session and its report are kept until the state settles"
    )
    func reportsBeforeSettling() throws {
        var harness = H()
        let one = H.reference(H.configMap("one"))
        harness.send(.started(storeVersion: 100, revisions: [:], collections: 5, at: H.start))
        // The session arrives before even the clusters are listed, and reports at once.
        harness.connect("a")
        let report = StatusReport(objects: [StatusReport.ObjectStatus(object: one, state: .applied, health: .healthy)])
        harness.send(.received(.status(report), cluster: "a", at: H.start))
        harness.send(.listed(.clusters, objects: [H.cluster("a"), H.cluster("b")], version: 100, first: true, at: H.start))
        harness.connect("b")
        harness.send(.received(.status(report), cluster: "b", at: H.start))
        harness.send(.listed(.propagationPolicies, objects: [], version: 100, first: true, at: H.start))
        harness.send(.listed(.overridePolicies, objects: [], version: 100, first: true, at: H.start))
        harness.send(.listed(.federated(H.configMaps), objects: [H.configMap("one")], version: 100, first: true, at: H.start))
        #expect(!harness.actions.contains { if case .writeFederatedStatus = $0 { true } else { false } })
        harness.send(.listed(.federated(H.deployments), objects: [], version: 100, first: true, at: H.start))
        let pushes = harness.deliverPushes()
        let settled = harness.take()
        let written = settled.compactMap {
            if case .writeFederatedStatus(let write) = $0 { (write.reference, write.reports.map(\.cluster)) } else { nil }
        }
        #expect(written.last?.0 == one && written.last?.1 == ["a", "b"], "\(written)")
        #expect(pushes.map(\.cluster).sorted() == ["a", "b"], "the session that came before its Cluster was listed is attached")
        #expect(!settled.contains { if case .updateClusterStatus("a", .phase("NotReady", _, _, _)) = $0 { true } else { false } })
    }

    @Test("an agent away past the grace loses its divided replicas to the others, and gets them back when it returns; a stale timer does nothing")
    func outageAndRebalance() throws {
        var harness = H()
        harness.settle(clusters: ["a": [:], "b": [:]], objects: [H.deployment("web", replicas: 6)])
        harness.connect("a")
        harness.connect("b")
        _ = harness.deliverPushes()
        _ = harness.take()

        harness.send(.sessionEnded(cluster: "b", session: "s-b", at: H.start))
        let timers = harness.take().schedules
        let rebalance = try #require(timers.first { if case .rebalance = $0 { true } else { false } })
        #expect(timers.contains { if case .offline = $0 { true } else { false } })

        // The agent came and went again meanwhile: the first outage's timer is stale.
        harness.connect("b")
        harness.send(.sessionEnded(cluster: "b", session: "s-b", at: H.start))
        _ = harness.deliverPushes()
        _ = harness.take()
        harness.send(.timerFired(rebalance, at: H.start))
        #expect(!harness.take().events.contains("federation.rebalanced_away"))

        let current = try #require(harness.state.members["b"]?.outage)
        harness.send(.timerFired(.rebalance(cluster: "b", outage: current), at: H.start))
        #expect(harness.actions.events.contains("federation.rebalanced_away"))
        let moved = harness.deliverPushes()
        guard case .delta(let delta)? = moved.first(where: { $0.cluster == "a" })?.messages.first else {
            Issue.record("no delta to a")
            return
        }
        #expect(delta.upserts.first?["spec"]?["replicas"]?.integerValue == 6)

        harness.connect("b")
        #expect(harness.actions.events.contains("federation.rebalanced_back"))
        let back = Dictionary(uniqueKeysWithValues: harness.deliverPushes().map { ($0.cluster, $0.messages) })
        guard case .snapshot(let snapshot)? = back["b"]?.first else {
            Issue.record("no snapshot to b")
            return
        }
        #expect(snapshot.objects.first?["spec"]?["replicas"]?.integerValue == 3)
    }

    @Test("a cluster rebalanced away says so in its status, and a hub started from that status keeps it away and Offline stays Offline")
    func rebalancedAwaySurvivesRestart() throws {
        var harness = H()
        harness.settle(clusters: ["a": [:], "b": [:]], objects: [H.deployment("web", replicas: 6)])
        harness.connect("a")
        _ = harness.deliverPushes()
        let outage = try #require(harness.state.members["b"]?.outage)
        _ = harness.take()
        harness.send(.timerFired(.rebalance(cluster: "b", outage: outage), at: H.start))
        let written = harness.take()
        #expect(written.contains { if case .updateClusterStatus("b", .movedAway(true, _, _)) = $0 { true } else { false } })

        // The status as the writer keeps it, and a new hub that lists it.
        var status: [String: JSONValue] = [:]
        ClusterStatus.apply(.phase("Offline", reason: nil, message: "no agent session since then", at: H.start), to: &status)
        ClusterStatus.apply(.movedAway(true, message: "moved", at: H.start), to: &status)
        var away = H.cluster("b")
        away[member: "status"] = .object(status)
        var restarted = H()
        restarted.send(.started(storeVersion: 100, revisions: [:], collections: 5, at: H.start))
        restarted.send(.listed(.clusters, objects: [H.cluster("a"), away], version: 100, first: true, at: H.start))
        restarted.send(.listed(.propagationPolicies, objects: [], version: 100, first: true, at: H.start))
        restarted.send(.listed(.overridePolicies, objects: [], version: 100, first: true, at: H.start))
        restarted.send(.listed(.federated(H.configMaps), objects: [], version: 100, first: true, at: H.start))
        restarted.send(.listed(.federated(H.deployments), objects: [H.deployment("web", replicas: 6)], version: 100, first: true, at: H.start))
        #expect(restarted.state.members["b"]?.excluded == true)
        let settled = restarted.take()
        #expect(!settled.contains { if case .updateClusterStatus("b", .phase) = $0 { true } else { false } }, "an Offline cluster turned NotReady")
        #expect(settled.contains { if case .updateClusterStatus("a", .phase("NotReady", _, _, _)) = $0 { true } else { false } })
        restarted.connect("a")
        guard case .snapshot(let snapshot)? = restarted.deliverPushes().first(where: { $0.cluster == "a" })?.messages.first else {
            Issue.record("no snapshot to a")
            return
        }
        #expect(snapshot.objects.first?["spec"]?["replicas"]?.integerValue == 6, "the restarted hub gave the away cluster its share back")

        restarted.connect("b")
        #expect(restarted.actions.events.contains("federation.rebalanced_back"))
        #expect(restarted.actions.contains { if case .updateClusterStatus("b", .movedAway(false, _, _)) = $0 { true } else { false } })
    }

    @Test("no revision is sent above a version the store has made durable: a rebalance with no store change waits for the raise")
    func revisionsWaitForDurableVersion() throws {
        var harness = H()
        harness.settle(clusters: ["a": [:], "b": [:]], objects: [H.deployment("web", replicas: 6)])
        harness.connect("a")
        _ = harness.deliverPushes()
        _ = harness.take()
        let outage = try #require(harness.state.members["b"]?.outage)
        harness.send(.timerFired(.rebalance(cluster: "b", outage: outage), at: H.start))
        let revision = try #require(harness.state.members["a"]?.revision)
        #expect(revision > harness.version, "the rebalance moved a's revision past the store's version")
        #expect(!harness.actions.contains { if case .push = $0 { true } else { false } })
        #expect(harness.actions.contains { if case .raiseStoreVersion(revision) = $0 { true } else { false } })
        let pushed = harness.deliverPushes()
        #expect(pushed.map(\.cluster) == ["a"] && pushed.allSatisfy { $0.revision <= harness.version })
    }

    @Test("a new generation is observed when every placed cluster acknowledges the revision carrying it (what rollout status waits for)")
    func observedGeneration() throws {
        var harness = H()
        var web = H.deployment("web", replicas: 4)
        web[member: "metadata"]?[member: "generation"] = .integer(1)
        harness.settle(clusters: ["a": [:], "b": [:]], objects: [web])
        harness.connect("a")
        harness.connect("b")
        _ = harness.deliverPushes()
        #expect(harness.state.observedGeneration(of: Self.web) == 1)

        web[member: "metadata"]?[member: "generation"] = .integer(2)
        web[member: "spec"]?[member: "replicas"] = .integer(6)
        harness.change(web)
        let pushed = harness.deliverPushes()
        #expect(harness.state.observedGeneration(of: Self.web) == 1, "pushed, not yet acknowledged")
        let revisions = Dictionary(uniqueKeysWithValues: pushed.map { ($0.cluster, $0.revision) })
        _ = harness.take()
        harness.send(.received(.ack(Ack(revision: revisions["a"]!)), cluster: "a", at: H.start))
        #expect(harness.state.observedGeneration(of: Self.web) == 1, "one of two clusters")
        harness.send(.received(.ack(Ack(revision: revisions["b"]!)), cluster: "b", at: H.start))
        #expect(harness.state.observedGeneration(of: Self.web) == 2)
        #expect(
            harness.take().contains {
                if case .writeFederatedStatus(let write) = $0 { write.observedGeneration == 2 } else { false }
            })
    }

    @Test("unjoin: the agent is sent an empty set marked as an unjoin; its ack ends the session and releases the finalizer")
    func unjoin() throws {
        var harness = H()
        harness.settle(clusters: ["a": [:]], objects: [H.configMap("one")])
        harness.connect("a")
        _ = harness.deliverPushes()
        var leaving = H.cluster("a")
        leaving[member: "metadata"]?[member: "deletionTimestamp"] = "2027-01-01T00:00:00Z"
        harness.change(leaving)
        #expect(harness.actions.contains { if case .admit("a", false) = $0 { true } else { false } })
        let pushes = harness.deliverPushes()
        guard case .delta(let delta)? = pushes.first?.messages.first else {
            Issue.record("no delta")
            return
        }
        #expect(delta.deletes.map(\.name) == ["one"] && delta.terms?.unjoining == true)
        _ = harness.take()
        harness.send(.received(.ack(Ack(revision: delta.toRevision)), cluster: "a", at: H.start))
        let finished = harness.take()
        #expect(finished.contains { if case .endSession("a", "s-a", let goaway) = $0 { goaway.code == .unjoined } else { false } })
        #expect(finished.contains { if case .setFinalizer("tether.io/unjoin", false, _, _, "a") = $0 { true } else { false } })
    }

    @Test("a restarted hub resumes an agent that holds its revision and digest, and resends when only the revision matches")
    func restartAndDigest() throws {
        var first = H()
        first.settle(clusters: ["a": [:]], objects: [H.configMap("one")])
        first.connect("a")
        let pushed = try #require(first.deliverPushes().first)
        guard case .snapshot(let snapshot) = pushed.messages[0] else {
            Issue.record("no snapshot")
            return
        }
        let digest = try #require(snapshot.digest)

        // The same store, the revisions persisted: the agent is current.
        var restarted = H()
        restarted.version = first.version
        restarted.settle(
            clusters: ["a": [:]], objects: [H.configMap("one")], revisions: ["a": RevisionRecord(revision: pushed.revision, digest: digest)])
        restarted.connect("a", revision: pushed.revision, digest: digest)
        #expect(restarted.actions.pushedClusters.isEmpty)
        #expect(restarted.actions.events.contains("federation.resumed"))

        // A restored store whose revisions file lagged: the same revision names another set.
        var restored = H()
        restored.version = first.version
        restored.settle(
            clusters: ["a": [:]], objects: [H.configMap("one", data: "older")],
            revisions: ["a": RevisionRecord(revision: pushed.revision - 1, digest: "0")])
        let revision = try #require(restored.state.members["a"]?.revision)
        restored.connect("a", revision: revision, digest: digest)
        #expect(restored.actions.pushedClusters == ["a"], "revision \(revision) with another digest is not current")

        // A hub killed before it wrote the revision it sent: the next one numbers the same set
        // higher, and renumbers what the agent holds with an empty delta instead of resending it.
        var lagging = H()
        lagging.version = first.version + 5
        lagging.settle(
            clusters: ["a": [:]], objects: [H.configMap("one")], revisions: ["a": RevisionRecord(revision: pushed.revision - 1, digest: "0")])
        let higher = try #require(lagging.state.members["a"]?.revision)
        #expect(higher > pushed.revision)
        lagging.connect("a", revision: pushed.revision, digest: digest)
        guard case .delta(let renumbering)? = lagging.deliverPushes().first?.messages.first else {
            Issue.record("no delta to a")
            return
        }
        #expect(renumbering.fromRevision == pushed.revision && renumbering.toRevision == higher)
        #expect(renumbering.upserts.isEmpty && renumbering.deletes.isEmpty && renumbering.digest == digest)

        // The same, but the operator confirmed a hold: the agent lifts a hold only on a whole
        // set that carries the confirmation, so the set goes again, with its terms.
        var confirming = H()
        confirming.version = first.version + 5
        confirming.settle(
            clusters: ["a": [:]], objects: [H.configMap("one")], revisions: ["a": RevisionRecord(revision: pushed.revision - 1, digest: "0")])
        var confirmed = H.cluster("a")
        confirmed[member: "spec"] = ["confirmedHold": "prune:9:x"]
        confirming.change(confirmed)
        confirming.connect("a", revision: pushed.revision, digest: digest)
        guard case .snapshot(let resent)? = confirming.deliverPushes().first?.messages.first else {
            Issue.record("no snapshot to a while a hold is confirmed")
            return
        }
        #expect(resent.objects.count == 1 && resent.terms?.confirmedHold == "prune:9:x")
    }

    @Test("a push that cannot be written is retried after a backoff, never at once")
    func pushRetry() throws {
        var harness = H()
        harness.settle(clusters: ["a": [:]], objects: [H.configMap("one")])
        harness.connect("a")
        let actions = harness.take()
        guard case .push(_, let session, _, let revision, let changes)? = actions.first(where: { if case .push = $0 { true } else { false } }) else {
            Issue.record("no push")
            return
        }
        harness.send(.pushed(cluster: "a", session: session, revision: revision, changes: changes, failure: "connection reset", at: H.start))
        let failed = harness.take()
        #expect(failed.pushedClusters.isEmpty)
        #expect(failed.contains { if case .updateClusterStatus("a", .delivery(false, "PushFailed", _, _)) = $0 { true } else { false } })
        let retry = try #require(failed.schedules.first)
        #expect(retry == .pushRetry(cluster: "a", attempt: 1))
        harness.send(.timerFired(retry, at: H.start))
        #expect(harness.take().pushedClusters == ["a"])
    }
}
