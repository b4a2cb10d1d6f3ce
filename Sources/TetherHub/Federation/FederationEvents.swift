import Foundation
import Logging
import TetherJSON
import TetherModel
import TetherPlugin
import TetherSecurity
import TetherStore
import TetherWire

/// A collection of the hub's store the engine follows.
enum FederationCollection: Hashable, Sendable {
    case clusters
    case propagationPolicies
    case overridePolicies
    /// Objects of a propagated kind.
    case federated(ResourceType)
    /// The `Propagation` records, followed when agents hold sessions on every hub: the lines
    /// other hubs write are the reports of the clusters whose sessions they hold.
    case propagations
}

/// A cluster's revision and the digest of the desired set it names, as persisted across restarts.
typealias RevisionRecord = ClusterRevision

/// What ``FederationState`` is told: the store's collections as listed and watched, the agents'
/// sessions and messages, how its own actions went, and its timers.
enum FederationEvent: Sendable {
    /// The engine starts: the store's version and the revisions persisted by the last run.
    /// `collections` is how many collections will be listed before anything is pushed.
    case started(storeVersion: UInt64, revisions: [String: RevisionRecord], collections: Int, at: Date)
    /// What the stored `Propagation` records say each cluster last reported, read at the start.
    case reportsStored([StoredReports])
    /// A full list of a collection at `version`; `first` for its first list since the start.
    case listed(FederationCollection, objects: [JSONValue], version: UInt64, first: Bool, at: Date)
    case changed(FederationCollection, object: JSONValue, deleted: Bool, version: UInt64, at: Date)
    case sessionEstablished(cluster: String, session: String, hello: Hello, at: Date)
    case sessionEnded(cluster: String, session: String, at: Date)
    case received(WireMessage, cluster: String, at: Date)
    /// The certificate a cluster's agent holds: presented at its handshake, or signed on renewal.
    case certificate(CertificateSummary, cluster: String, at: Date)
    /// A `push` action was written (`failure` nil) or could not be.
    case pushed(cluster: String, session: String, revision: UInt64, changes: [ObjectReference: Bool], failure: String?, at: Date)
    case timerFired(FederationTimer, at: Date)
    /// A `writeRevisions` action reached the disk.
    case revisionsWritten([String: RevisionRecord])
    /// A `raiseStoreVersion` action reached the disk: the store's version is now `version`.
    case storeVersionRaised(UInt64)
    /// What the status of these objects shows besides their reports changed (their published
    /// DNS name): their status is written again.
    case statusAffected([ObjectReference])
    /// The kinds served changed (a CustomResourceDefinition came, changed or went).
    case kindsChanged(KindRegistry)
    /// The engine is stopping: what must not be lost is written now.
    case stopping
    /// Agents on every hub: this hub now leads (it took the hub lock), and does what is done once.
    case leading(at: Date)
    /// Agents on every hub: the claim of a session was written into its Cluster's status, with this epoch.
    case sessionClaimed(cluster: String, session: String, epoch: UInt64)
    /// Agents on every hub: which of the hubs asked about (`among`) are alive (a `findLiveHubs` answered).
    case liveHubs(Set<String>, among: Set<String>, at: Date)
}

extension FederationEvent {
    /// Whether DNS records can change with this event: sessions, placement and labels, the
    /// federated objects themselves, and reports (the engine's publisher recomputes on each).
    var mayChangeDNS: Bool {
        switch self {
        case .started, .reportsStored, .pushed, .revisionsWritten, .sessionClaimed, .liveHubs, .storeVersionRaised, .statusAffected, .stopping,
            .certificate, .kindsChanged:
            return false
        case .listed, .changed, .sessionEstablished, .sessionEnded, .timerFired, .leading: return true
        case .received(let message, _, _):
            guard case .status(let report) = message else { return false }
            return report.objects.contains { $0.object.kind == "Service" || $0.object.kind == "Ingress" }
        }
    }
}

/// A timer the state asks for. Each names what it was set for (an outage, an attempt), so
/// one that fires after its reason has passed is recognised and ignored.
enum FederationTimer: Hashable, Sendable {
    /// The cluster's agent has been away for the rebalance grace.
    case rebalance(cluster: String, outage: Int)
    /// The cluster's agent has been away for the offline time, since `since`.
    case offline(cluster: String, outage: Int, since: String)
    /// A failed push waited out its backoff.
    case pushRetry(cluster: String, attempt: Int)
    /// An unjoin waited long enough for the agent to prune.
    case unjoinTimeout(cluster: String)
    /// Revisions changed a while ago: write them.
    case persistRevisions
    /// Agents on every hub: time for the leader to look for sessions held by hubs that are gone.
    case sweepSessions
}

/// A change to one aspect of a Cluster's status. The engine's writer applies the latest change
/// of each aspect in one write (``ClusterStatus``).
enum ClusterStatusChange: Sendable {
    case phase(String, reason: String?, message: String, at: Date)
    /// Agents on every hub: this hub holds the cluster's session now (`status.session`, its
    /// epoch one more than the last), and the cluster is Ready.
    case claim(hub: String, session: String, api: String?, at: Date)
    /// Agents on every hub: the session ended; if it is still the one the status names, the
    /// status names none and the cluster is NotReady. A newer session elsewhere is left alone.
    case release(session: String, message: String, at: Date)
    case agent(version: String, kinds: [String], proxy: String?)
    case certificate(CertificateSummary, at: Date)
    case health(Heartbeat.ClusterHealth, certificate: CertificateSummary?, at: Date)
    /// Whether pushes reach the agent (`DesiredStateDelivered`).
    case delivery(delivered: Bool, reason: String, message: String, at: Date)
    /// What the agent holds back (`status.hold`, `DesiredStateHeld`).
    case hold(Ack.Hold?, cluster: String, at: Date)
    /// Whether its share of divided replicas runs elsewhere (`ReplicasMovedAway`): kept in the
    /// store, so a hub that starts (or takes over) places exactly as the one before it did.
    case movedAway(Bool, message: String, at: Date)

    enum Aspect: Int, Hashable, Sendable, CaseIterable {
        case session, phase, agent, certificate, health, delivery, hold, movedAway
    }

    var aspect: Aspect {
        switch self {
        case .claim, .release: .session
        case .phase: .phase
        case .agent: .agent
        case .certificate: .certificate
        case .health: .health
        case .delivery: .delivery
        case .hold: .hold
        case .movedAway: .movedAway
        }
    }
}

/// One cluster's last report on a federated object, and the revision its agent acknowledged.
/// What a federated object's status is written from.
struct FederatedStatusWrite: Sendable, Equatable {
    var reference: ObjectReference
    /// Its UID as the state knows it: what was written for an earlier object of the name is not touched.
    var uid: String?
    var reports: [ClusterReport]
    var placedOn: [String]
    /// The generation each cluster holds, where the state knows it.
    var generations: [String: Int64]
    /// The generation every placed cluster has acknowledged.
    var observedGeneration: Int64?
    /// Agents on every hub: the clusters whose lines this hub writes (those whose sessions it
    /// holds); every other line stays as the hub holding that cluster wrote it, and the counts,
    /// the aggregate and the observed generation are taken from all of them. Nil: every line is this hub's.
    var speaksFor: Set<String>? = nil
}

/// One stored `Propagation`'s lines: each cluster's last report of the object it names.
struct StoredReports: Sendable, Equatable {
    var reference: ObjectReference
    /// The object's uid when the record was written: a record of an earlier object of the same name does not count.
    var uid: String?
    var statuses: [String: StatusReport.ObjectStatus]
    /// The generation of the object each cluster's line says it holds (lines a hub older than
    /// these wrote say none).
    var generations: [String: Int64] = [:]
    /// The revision each cluster's line says it acknowledged.
    var revisions: [String: UInt64] = [:]
}

struct ClusterReport: Sendable, Equatable {
    var cluster: String
    var report: StatusReport.ObjectStatus
    var ackedRevision: UInt64?
}

/// What the engine's shell does for the state.
enum FederationAction: Sendable {
    /// Write `messages` to the session in order; report the outcome as `pushed`.
    case push(cluster: String, session: String, messages: [WireMessage], revision: UInt64, changes: [ObjectReference: Bool])
    /// Say `goaway` and close the session.
    case endSession(cluster: String, session: String, goaway: GoAway)
    /// Create the `Cluster` object (auto-join); the created object comes back as `changed`.
    case registerCluster(String)
    /// Add or remove a finalizer of a stored object.
    case setFinalizer(String, present: Bool, type: ResourceType, namespace: String?, name: String)
    /// Write a federated object's status and its `Propagation`.
    case writeFederatedStatus(FederatedStatusWrite)
    /// The federated object is gone: so is its `Propagation`.
    case deletePropagation(ObjectReference)
    /// After a restart: delete every `Propagation` made before `before` whose name is not in
    /// `keep` (its object was deleted while the hub was down).
    case collectPropagations(keep: Set<String>, before: Date)
    case updateClusterStatus(cluster: String, ClusterStatusChange)
    /// Fire `timer` as `timerFired` after `delay`.
    case schedule(FederationTimer, after: Duration)
    /// Persist each cluster's revision; report success as `revisionsWritten`.
    case writeRevisions([String: RevisionRecord])
    /// Raise the store's version to at least this, durably; report it as `storeVersionRaised`.
    case raiseStoreVersion(to: UInt64)
    /// Let the cluster's agents hold a session (`true`), or refuse them from the next handshake.
    case admit(cluster: String, Bool)
    /// Agents on every hub: ask the store which of these hubs are alive (answered as `liveHubs`).
    case findLiveHubs(among: Set<String>)
    /// The Events recorded about a federated object that is gone.
    case forgetEvents(namespace: String?, uid: String)
    case log(Logger.Level, String, metadata: [String: String])
    /// A report refused as no honest agent would send it: counted, logged within a budget.
    case securityEvent(String, cluster: String, message: String, count: Int)
    case metric(FederationMetric)
}

/// What the shell measures for the state.
enum FederationMetric: Sendable {
    case revision(cluster: String, desired: UInt64, acked: UInt64?)
    /// A push of `revision` was written: push-to-ack latency runs from now.
    case pushWritten(cluster: String, revision: UInt64)
    case acknowledged(cluster: String, revision: UInt64)
    case heartbeat(cluster: String, at: Date)
    case applyFailures(cluster: String, kinds: [String])
    case pushFailure(cluster: String)
    case certificateExpiry(cluster: String, notAfter: Date)
}
