import Foundation
import Logging
import TetherJSON
import TetherModel
import TetherWire

/// Agents on every hub of a shared store (`--agent-sessions every-hub`, docs/ha.md).
///
/// Every hub runs this state over the same store and pushes to the sessions it holds. The
/// Cluster's `status.session` (hub, session, epoch) says which hub holds its session: a hub
/// claims it when a session comes up (the epoch one higher), and a hub whose own session is
/// named by an older epoch than the Cluster now shows ends it with `goaway`. Only the holder
/// writes what its agent says into the Cluster, and `NotReady` only if the session it ends is
/// still the one named. One hub, the leader (the hub lock's holder), does what is done once:
/// outage timers from the Cluster's session record rather than from its own sessions,
/// rebalancing, unjoins of clusters no hub holds, and releasing the sessions of hubs that are
/// gone. Every hub follows rebalancing from the Cluster's `ReplicasMovedAway` condition.
extension FederationState {
    /// This hub's name in session records, when agents hold sessions on every hub.
    var sharedHub: String? { settings.hub }

    /// The session record the Cluster's stored status holds.
    func sessionRecord(of cluster: String) -> ClusterStatus.SessionRecord? {
        ClusterStatus.session(of: clusterObjects[cluster])
    }

    /// Whether some hub (this one or another) holds a session of the cluster, as far as this hub
    /// knows. With one hub, only its own sessions count: a record left by hubs that ran with
    /// agents on every hub names no one now.
    func heldAnywhere(_ cluster: String) -> Bool {
        members[cluster]?.session != nil || (sharedHub != nil && sessionRecord(of: cluster) != nil)
    }

    /// The clusters whose sessions this hub holds, among `clusters`.
    func heldHere(_ clusters: [String]) -> Set<String> {
        Set(clusters.filter { members[$0]?.session != nil })
    }

    // MARK: Sessions

    mutating func attachShared(_ cluster: String, session: String, hello: Hello, hub: String, at now: Date) {
        claims[cluster] = SessionClaim(session: session, epoch: nil)
        if members[cluster]?.excluded == true, unjoining[cluster] == nil {
            // Back: every hub places on it again when the condition comes round in the store.
            log(.info, "cluster is back; placing on it again", ["tether.event": "federation.rebalanced_back", "tether.cluster": cluster])
            emit(
                .updateClusterStatus(
                    cluster: cluster,
                    .movedAway(false, message: "an agent session is up; the cluster runs its share of divided replicas again", at: now)))
        }
        // What another hub sent this agent is numbered by that hub: a set below what the agent
        // holds would read to it as a store gone back in time. The agent's number is one this
        // federation's store gave (the hubs share one run), so this hub continues from it.
        if let announced = hello.lastAppliedRevision, let revision = members[cluster]?.revision, announced > revision {
            let current = hello.lastAppliedDigest == members[cluster]?.digest
            members[cluster]?.revision = current ? announced : announced + 1
            persistRevisions()
        }
        // Until the agent acknowledges, each of its objects may lack its newest generation.
        if let revision = members[cluster]?.revision {
            for reference in (members[cluster]?.desired.keys).map(Array.init) ?? [] where federated[reference]?.generation != nil {
                trackGeneration(of: reference, to: cluster, at: revision)
            }
        }
        push(cluster)
        emit(.updateClusterStatus(cluster: cluster, .claim(hub: hub, session: session, api: nil, at: now)))
        emit(.updateClusterStatus(cluster: cluster, .agent(version: hello.agentVersion, kinds: hello.kinds, proxy: hello.proxy)))
    }

    mutating func detachShared(_ cluster: String, session: String, at now: Date) {
        claims[cluster] = nil
        let lost = kubernetesTimestamp(now)
        emit(
            .updateClusterStatus(
                cluster: cluster, .release(session: session, message: "the agent session ended at \(lost); waiting for it to return", at: now)))
    }

    mutating func sessionClaimed(_ cluster: String, session: String, epoch: UInt64) {
        guard claims[cluster]?.session == session else { return }
        claims[cluster]?.epoch = epoch
        supersedeIfOlder(cluster)
    }

    /// The Cluster names a newer session than this hub's: this hub's ends.
    private mutating func supersedeIfOlder(_ cluster: String) {
        guard let local = members[cluster]?.session, let claim = claims[cluster], claim.session == local, let mine = claim.epoch,
            let record = sessionRecord(of: cluster), record.epoch > mine, record.id != local
        else { return }
        log(
            .notice, "a newer session of the cluster is up on another hub; ending this one",
            ["tether.event": "federation.session_superseded", "tether.cluster": cluster, "tether.hub": record.hub, "tether.session": record.id])
        let goaway = GoAway(
            code: .replaced, reason: "replaced by session \(record.id) of the same cluster on hub \(record.hub)", reconnectAfterMilliseconds: 5_000)
        emit(.endSession(cluster: cluster, session: local, goaway: goaway))
        claims[cluster] = nil
        members[cluster]?.session = nil
        members[cluster]?.sent = nil
        members[cluster]?.unsent = [:]
        members[cluster]?.pushRetry = nil
    }

    // MARK: The store's view of the cluster

    /// A stored change of a Cluster this hub knows, as every hub sees it: a newer session
    /// elsewhere, rebalancing decided by the leader, and (on the leader) outages.
    mutating func clusterRecordChanged(_ cluster: String, version: UInt64, at now: Date) {
        supersedeIfOlder(cluster)
        guard let object = clusterObjects[cluster], members[cluster] != nil, unjoining[cluster] == nil else { return }
        let moved = ClusterStatus.movedAway(object)
        if moved != members[cluster]?.excluded {
            members[cluster]?.excluded = moved
            recomputeAll(version: version, after: cluster)
        }
        if leading, settled { followOutage(cluster, at: now) }
    }

    /// The leader runs a cluster's outage timers while no hub holds its session, and stops them when one does.
    mutating func followOutage(_ cluster: String, at now: Date) {
        if heldAnywhere(cluster) {
            if awayEverywhere.remove(cluster) != nil { members[cluster]?.outage += 1 }
            return
        }
        guard awayEverywhere.insert(cluster).inserted else { return }
        let object = clusterObjects[cluster]
        if object?.deletionTimestamp != nil {
            // Unjoined while no hub holds its session: nothing is left to prune through one.
            unjoining[cluster] = .some(nil)
            finishUnjoin(cluster)
            return
        }
        startOutage(cluster, since: object.flatMap(ClusterStatus.sessionLostAt) ?? kubernetesTimestamp(now))
    }

    /// This hub took the hub lock: it starts the outage timers of every cluster no hub holds,
    /// and looks for hubs that are gone.
    mutating func becameLeader(at now: Date) {
        guard !leading else { return }
        leading = true
        log(.notice, "this hub leads the federation's once-only work", ["tether.event": "federation.leading"])
        // Not at once: a leader that took the lock because its holder died would find that hub's
        // presence still there for the moment PostgreSQL takes to drop its other connection.
        emit(.schedule(.sweepSessions, after: Self.firstSweep))
        guard settled else { return }
        for name in members.keys.sorted() { followOutage(name, at: now) }
    }

    /// Sessions named by hubs that are no longer alive are released, as their hubs would have.
    /// Only hubs that were asked about count as gone: a session claimed by a new hub while the
    /// question was on its way names a hub nobody asked about.
    mutating func hubsAlive(_ alive: Set<String>, among asked: Set<String>, at now: Date) {
        guard leading, let hub = sharedHub else { return }
        for name in members.keys.sorted() {
            guard let record = sessionRecord(of: name), record.hub != hub, asked.contains(record.hub), !alive.contains(record.hub) else {
                continue
            }
            log(
                .warning, "the hub holding the cluster's session is gone; releasing it",
                ["tether.event": "federation.session_orphaned", "tether.cluster": name, "tether.hub": record.hub])
            emit(
                .updateClusterStatus(
                    cluster: name,
                    .release(session: record.id, message: "hub \(record.hub), which held its agent session, is gone; waiting for the agent", at: now))
            )
        }
        emit(.schedule(.sweepSessions, after: Self.sweepInterval))
    }

    /// How often the leader looks for sessions of hubs that are gone: a query of the store's locks.
    static let sweepInterval: Duration = .seconds(2)
    static let firstSweep: Duration = .milliseconds(500)

    /// The other hubs the Clusters' session records name.
    func recordedHubs() -> Set<String> {
        Set(members.keys.compactMap { sessionRecord(of: $0)?.hub }).subtracting(sharedHub.map { [$0] } ?? [])
    }

    // MARK: Other hubs' lines

    /// Another hub's lines of a `Propagation` are the reports of the clusters it holds: taken for
    /// every cluster whose session is not here (for DNS and for whatever this hub writes next).
    /// Before the state settles they are what the hubs knew, taken as a restarted hub takes them.
    mutating func propagationChanged(_ record: JSONValue, deleted: Bool) {
        guard let stored = PropagationRecord.reports(in: record) else { return }
        guard settled else {
            storedReports[stored.reference] = deleted ? nil : stored
            return
        }
        guard !deleted, let object = federated[stored.reference],
            stored.uid == nil || stored.uid == object.uid
        else { return }
        for (cluster, status) in stored.statuses where members[cluster]?.session == nil && members[cluster]?.desired[stored.reference] != nil {
            reports[stored.reference, default: [:]][cluster] = status
        }
    }
}

/// This hub's claim of a cluster's session, and the epoch it got once written.
struct SessionClaim: Sendable, Equatable {
    var session: String
    var epoch: UInt64?
}
