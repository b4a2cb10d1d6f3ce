import Foundation
import Logging
import TetherJSON
import TetherModel
import TetherWire

/// Agents' sessions: what each is pushed, and what happens while one is away.
extension FederationState {
    mutating func attach(_ cluster: String, session: String, hello: Hello, at now: Date) {
        guard members[cluster] != nil else {
            // Auto-join: the Cluster object is made first; the session is attached when it arrives.
            // Before the clusters are listed (a restart), an admitted cluster's object is on its way.
            if settings.autoJoin || !settled {
                awaitingRegistration[cluster] = (session, hello)
                if settings.autoJoin { emit(.registerCluster(cluster)) }
            }
            return
        }
        members[cluster]?.session = session
        members[cluster]?.outage += 1
        members[cluster]?.pushRetry = nil
        if let hub = sharedHub {
            members[cluster]?.sent = nil
            members[cluster]?.unsent = [:]
            members[cluster]?.announced = hello.lastAppliedRevision
            members[cluster]?.announcedDigest = hello.lastAppliedDigest
            attachShared(cluster, session: session, hello: hello, hub: hub, at: now)
            return
        }
        if members[cluster]?.excluded == true, unjoining[cluster] == nil {
            members[cluster]?.excluded = false
            log(.info, "cluster is back; placing on it again", ["tether.event": "federation.rebalanced_back", "tether.cluster": cluster])
            emit(
                .updateClusterStatus(
                    cluster: cluster,
                    .movedAway(false, message: "an agent session is up; the cluster runs its share of divided replicas again", at: now)
                ))
            // No store change did this: the revision moves by one, not to the store's version (which the
            // hub's own status writes raise), so a restored hub stays below what its agents hold.
            recomputeAll(version: 0, after: cluster)
        }
        members[cluster]?.sent = nil
        members[cluster]?.unsent = [:]
        members[cluster]?.announced = hello.lastAppliedRevision
        members[cluster]?.announcedDigest = hello.lastAppliedDigest
        // The desired state first; the Cluster's status is written behind it, off this path.
        push(cluster)
        emit(.updateClusterStatus(cluster: cluster, .phase("Ready", reason: nil, message: "an agent session is up", at: now)))
        emit(.updateClusterStatus(cluster: cluster, .agent(version: hello.agentVersion, kinds: hello.kinds, proxy: hello.proxy)))
    }

    mutating func detach(_ cluster: String, session: String, at now: Date) {
        if awaitingRegistration[cluster]?.session == session { awaitingRegistration[cluster] = nil }
        guard members[cluster]?.session == session else { return }
        members[cluster]?.session = nil
        members[cluster]?.sent = nil
        members[cluster]?.unsent = [:]
        members[cluster]?.pushRetry = nil
        if sharedHub != nil {
            detachShared(cluster, session: session, at: now)
            return
        }
        let lost = kubernetesTimestamp(now)
        emit(
            .updateClusterStatus(
                cluster: cluster, .phase("NotReady", reason: nil, message: "the agent session ended at \(lost); waiting for it to return", at: now)))
        startOutage(cluster, since: lost)
    }

    /// The cluster has no agent session since `since`: its divided replicas move after the
    /// rebalance grace, and it is Offline after the offline time, unless its agent returns first.
    mutating func startOutage(_ cluster: String, since: String) {
        guard let outage = members[cluster].map({ $0.outage + 1 }) else { return }
        members[cluster]?.outage = outage
        emit(.schedule(.rebalance(cluster: cluster, outage: outage), after: settings.rebalanceAfter))
        emit(.schedule(.offline(cluster: cluster, outage: outage, since: since), after: max(settings.offlineAfter, settings.rebalanceAfter)))
    }

    /// The cluster stayed away past the grace period: its share of divided replicas moves to the others.
    mutating func rebalanceAway(_ cluster: String, at now: Date) {
        guard members[cluster]?.session == nil, members[cluster]?.excluded == false, !heldAnywhere(cluster) else { return }
        // With agents on every hub, every hub (this one too) places anew when the condition
        // comes round in the store, at that write's version.
        if sharedHub == nil { members[cluster]?.excluded = true }
        log(
            .warning, "cluster still unreachable; moving its replicas to the others",
            ["tether.event": "federation.rebalanced_away", "tether.cluster": cluster])
        emit(
            .updateClusterStatus(
                cluster: cluster,
                .movedAway(
                    true, message: "no agent session for longer than the rebalance grace; its share of divided replicas runs in the other clusters",
                    at: now)))
        guard sharedHub == nil else { return }
        // No store change did this: the revision moves by one, not to the store's version (which the
        // hub's own status writes raise), so a restored hub stays below what its agents hold.
        recomputeAll(version: 0, after: cluster)
    }

    // MARK: Push

    /// Sends the cluster's latest desired set to its agent: a snapshot the first time in a
    /// session, then deltas. One push at a time per cluster, its messages written one after the
    /// other (a chunked snapshot never sits whole in the channel); changes meanwhile coalesce.
    mutating func push(_ cluster: String) {
        // Decided in place: copying the member out and back costs a retain of each of its
        // collections per push, thousands of times per change.
        guard settled, let session = members[cluster]?.session, members[cluster]?.pushing == false, members[cluster]?.pushRetry == nil,
            let revision = members[cluster]?.revision
        else { return }
        // No revision is sent above a version the store has made durable: a hub that restarts
        // then knows that every revision it ever sent is at most the version it finds, and an
        // agent holding more from an earlier run applied what a restore lost (Welcome.historyThrough).
        guard revision <= storeVersion else {
            awaitingDurableVersion.insert(cluster)
            if raisingStoreVersion < revision {
                raisingStoreVersion = revision
                emit(.raiseStoreVersion(to: revision))
            }
            return
        }
        guard let step = members[cluster]?.nextPush(orphaned: orphaned, chunkBytes: settings.chunkBytes) else { return }
        switch step {
        case .nothing:
            return
        case .current(let revision):
            if !generationsInFlight.isEmpty { generationsAcknowledged(by: cluster, revision: revision) }
            log(
                .info, "agent already holds the current desired state",
                ["tether.event": "federation.resumed", "tether.cluster": cluster, "tether.revision": "\(revision)"])
        case .send(let messages, let revision, let changes):
            emit(.push(cluster: cluster, session: session, messages: messages, revision: revision, changes: changes))
        }
    }

    mutating func pushed(_ cluster: String, session: String, revision: UInt64, changes: [ObjectReference: Bool], failure: String?, at now: Date) {
        members[cluster]?.pushing = false
        guard members[cluster]?.session == session else { return }
        guard let failure else {
            members[cluster]?.sent = revision
            emit(.metric(.pushWritten(cluster: cluster, revision: revision)))
            if let failures = members[cluster]?.pushFailures, failures > 0 {
                members[cluster]?.pushFailures = 0
                log(
                    .notice, "desired state pushed again after failures",
                    ["tether.event": "federation.push_recovered", "tether.cluster": cluster, "tether.revision": "\(revision)"])
                emit(
                    .updateClusterStatus(
                        cluster: cluster,
                        .delivery(delivered: true, reason: "Pushed", message: "revision \(revision) was written to the agent", at: now)))
            }
            log(.debug, "desired state pushed", ["tether.event": "federation.pushed", "tether.cluster": cluster, "tether.revision": "\(revision)"])
            push(cluster)
            return
        }
        // The agent still holds what it held before this push: what it held then stands. The
        // push is tried again after a backoff, never at once (a write that fails the same way
        // every time would spin), and the Cluster says why it waits.
        members[cluster]?.unsent.merge(changes) { _, heldBeforePush in heldBeforePush }
        let failures = (members[cluster]?.pushFailures ?? 0) + 1
        members[cluster]?.pushFailures = failures
        log(
            .warning, "cannot push the desired state to the agent; retrying after a backoff",
            [
                "tether.event": "federation.push_failed", "tether.cluster": cluster, "tether.revision": "\(revision)", "tether.error": failure,
                "tether.failures": "\(failures)",
            ]
        )
        emit(.metric(.pushFailure(cluster: cluster)))
        emit(
            .updateClusterStatus(
                cluster: cluster,
                .delivery(
                    delivered: false, reason: "PushFailed",
                    message: "revision \(revision) could not be written to the agent (\(failures) attempts): \(failure)", at: now
                )
            )
        )
        let retry = FederationTimer.pushRetry(cluster: cluster, attempt: failures)
        members[cluster]?.pushRetry = retry
        emit(.schedule(retry, after: settings.retryBackoff.delay(attempt: failures - 1)))
    }
}
