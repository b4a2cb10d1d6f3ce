import Foundation
import Logging
import TetherJSON
import TetherModel
import TetherPlugin
import TetherSecurity
import TetherStore
import TetherWire

/// Every decision of the federation engine, as a value: told what happened
/// (``FederationEvent``), it answers with what to do (``FederationAction``). No task, channel,
/// store or clock inside; ``FederationEngine`` feeds it and performs its actions.
///
/// ```
///  store lists/watches ─┐                      ┌─> push / end session      (agent links)
///  sessions, messages ──┼─> FederationState ───┼─> write status, finalizer  (store)
///  push outcomes, timers┘       .on(event)     ├─> schedule timer, persist revisions
///                                              └─> log, metric, admit/refuse a cluster
/// ```
///
/// Placement: every joined cluster not rebalanced away receives every object of a propagated
/// kind that its policies send there (``Placement``); divided replicas are split with
/// ``ReplicaDivision``; the kind's plugin prepares each copy. A cluster's revision is the
/// store's resourceVersion of the last change to its desired set, so it only grows, across
/// restarts too (``RevisionRecord``). Pushes wait until every collection was listed once: a
/// set computed from a half-read store would make agents prune what the rest still wants.
struct FederationState: Sendable {
    struct Settings: Sendable {
        var rebalanceAfter: Duration = .seconds(60)
        var offlineAfter: Duration = .seconds(300)
        var unjoinPruneTimeout: Duration = .seconds(30)
        var chunkBytes = 4 * 1_048_576
        var retryBackoff = Backoff(initial: .milliseconds(500), maximum: .seconds(30))
        var autoJoin = false
        /// Whether revisions are persisted at all (a path is configured).
        var persistsRevisions = false
        /// Agents hold sessions on every hub: this hub's name in session records (nil: one hub
        /// drives the federation, and holds every session).
        var hub: String?
    }

    static let orphanAnnotation = "tether.io/orphan"
    /// Kubernetes' finalizer for `propagationPolicy: Orphan`, which the API adds on such a delete.
    static let orphanFinalizer = "orphan"
    static let unjoinFinalizer = "tether.io/unjoin"
    static let unjoinModeAnnotation = "tether.io/unjoin"
    static let systemNamespaces: Set<String> = ["default", "kube-system", "kube-public", "kube-node-lease"]
    static let clusterType = ResourceType(group: "core.tether.io", resource: "clusters", namespaced: false)

    let settings: Settings
    /// The kinds served now (custom kinds change it).
    var registry: KindRegistry

    var members: [String: ClusterMember] = [:]
    private(set) var clusterObjects: [String: JSONValue] = [:]
    /// Each cluster's labels, what placement reads of it.
    private(set) var clusterLabels: [String: [String: String]] = [:]
    var propagationPolicies: [ObjectReference: PropagationPolicy] = [:]
    var overridePolicies: [ObjectReference: OverridePolicy] = [:]
    var federated: [ObjectReference: JSONValue] = [:]
    /// What each object placed under a policy with `propagateDeps` depends on, as last placed,
    /// and the reverse: each dependency's dependents, whose clusters it goes to as well.
    var dependenciesFollowing: [ObjectReference: [ObjectReference]] = [:]
    var dependents: [ObjectReference: Set<ObjectReference>] = [:]
    /// Per federated object, each cluster's last report.
    var reports: [ObjectReference: [String: StatusReport.ObjectStatus]] = [:]
    /// Reports that arrived before every collection was listed, per cluster and object, taken
    /// when the state settles: until then an object may be unknown only because its list is late.
    var reportsBeforeSettled: [String: [ObjectReference: StatusReport.ObjectStatus]] = [:]
    /// What the stored `Propagation`s held at the start, taken when the state settles.
    var storedReports: [ObjectReference: StoredReports] = [:]
    /// How many objects' early reports are kept per cluster; the rest wait for the agent's next report.
    static let maximumReportsBeforeSettled = 50_000
    /// Federated objects deleted with `tether.io/orphan: "true"`: members keep their copies.
    var orphaned: Set<ObjectReference> = []
    /// The certificate each cluster's agent holds, as last presented or signed.
    var certificates: [String: CertificateSummary] = [:]
    /// Objects whose latest generation is on its way to members: the revision that carries it to
    /// each cluster not yet acknowledged. When none is left, the generation is observed.
    var generationsInFlight: [ObjectReference: (generation: Int64, revisions: [String: UInt64])] = [:]
    /// The last generation of each object every placed cluster acknowledged (while another is in flight).
    var observedGenerations: [ObjectReference: Int64] = [:]
    /// Clusters being unjoined, with the revision whose ack means their agent has pruned.
    var unjoining: [String: UInt64?] = [:]
    /// Sessions that arrived before their cluster's object was registered (auto-join).
    var awaitingRegistration: [String: (session: String, hello: Hello)] = [:]
    /// The highest version the store has made durable, as far as the state knows.
    var storeVersion: UInt64 = 0
    /// The version a `raiseStoreVersion` in flight asks for, and the clusters whose push waits for it.
    var raisingStoreVersion: UInt64 = 0
    var awaitingDurableVersion: Set<String> = []

    var listsPending = 0
    var settled = false
    var persisted: [String: RevisionRecord] = [:]
    /// Members that have never been given a revision (just joined).
    var unrevisioned: Set<String> = []
    var revisionsScheduled = false
    /// Whether this hub does what is done once (outage timers, rebalancing, collecting records):
    /// always with one hub; with agents on every hub, while it holds the hub lock.
    var leading: Bool
    /// Agents on every hub: the sessions this hub claimed in their Clusters' status.
    var claims: [String: SessionClaim] = [:]
    /// Agents on every hub, on the leader: the clusters whose outage it runs (no hub holds their session).
    var awayEverywhere: Set<String> = []

    /// What the current event decided, in order.
    private(set) var actions: [FederationAction] = []

    init(settings: Settings, registry: KindRegistry) {
        self.settings = settings
        self.leading = settings.hub == nil
        self.registry = registry
    }

    /// Takes one event; returns what to do, in order.
    mutating func on(_ event: FederationEvent) -> [FederationAction] {
        switch event {
        case .started(let version, let revisions, let collections, _):
            storeVersion = version
            persisted = revisions
            listsPending = collections
        case .reportsStored(let records):
            storedReports = Dictionary(records.map { ($0.reference, $0) }, uniquingKeysWith: { _, later in later })
            if settled { adoptStoredReports() }
        case .listed(let collection, let objects, let version, let first, let at):
            listed(objects, in: collection, version: version, at: at)
            if first { listSettled(at: at) }
        case .changed(let collection, let object, let deleted, let version, let at):
            changed(object, in: collection, deleted: deleted, version: version, at: at)
        case .sessionEstablished(let cluster, let session, let hello, let at):
            attach(cluster, session: session, hello: hello, at: at)
        case .sessionEnded(let cluster, let session, let at):
            detach(cluster, session: session, at: at)
        case .received(let message, let cluster, let at):
            take(message, from: cluster, at: at)
        case .certificate(let certificate, let cluster, let at):
            certificates[cluster] = certificate
            emit(.metric(.certificateExpiry(cluster: cluster, notAfter: certificate.notAfter)))
            emit(.updateClusterStatus(cluster: cluster, .certificate(certificate, at: at)))
        case .pushed(let cluster, let session, let revision, let changes, let failure, let at):
            pushed(cluster, session: session, revision: revision, changes: changes, failure: failure, at: at)
        case .timerFired(let timer, let at):
            fired(timer, at: at)
        case .revisionsWritten(let records):
            persisted = records
        case .storeVersionRaised(let version):
            storeVersion = max(storeVersion, version)
            if raisingStoreVersion <= version { raisingStoreVersion = 0 }
        case .statusAffected(let references):
            for reference in references { statusChanged(reference) }
        case .kindsChanged(let registry):
            let before = self.registry
            self.registry = registry
            // A customization or plugin that came or went changes how objects of its kind are
            // divided and aggregated: those objects are placed and summed again.
            let affected = federated.keys.filter { reference in
                before.plugin(apiVersion: reference.apiVersion, kind: reference.kind).name
                    != registry.plugin(apiVersion: reference.apiVersion, kind: reference.kind).name
            }
            if settled, !affected.isEmpty {
                recompute(affected, version: storeVersion, everyCluster: true)
                for reference in affected where reports[reference] != nil { statusChanged(reference) }
            }
        case .stopping:
            if revisionsScheduled { writeRevisions() }
        case .leading(let at):
            becameLeader(at: at)
        case .sessionClaimed(let cluster, let session, let epoch):
            sessionClaimed(cluster, session: session, epoch: epoch)
        case .liveHubs(let alive, let asked, let at):
            hubsAlive(alive, among: asked, at: at)
        }
        if !awaitingDurableVersion.isEmpty { pushAwaitingDurableVersion() }
        defer { actions = [] }
        return actions
    }

    /// Pushes what waited for the store's version to reach its revision, once it has.
    private mutating func pushAwaitingDurableVersion() {
        let ready = awaitingDurableVersion.filter { (members[$0]?.revision ?? 0) <= storeVersion }
        guard !ready.isEmpty else { return }
        awaitingDurableVersion.subtract(ready)
        for name in ready.sorted() { push(name) }
    }

    /// Whether agents of `cluster` may hold a session now.
    func admits(_ cluster: String) -> Bool {
        settings.autoJoin || (members[cluster] != nil && unjoining[cluster] == nil)
    }

    /// Keeps the Cluster object and its labels (what placement reads) together.
    mutating func setClusterObject(_ object: JSONValue?, of name: String) {
        clusterObjects[name] = object
        clusterLabels[name] = object?.labels
    }

    mutating func emit(_ action: FederationAction) {
        actions.append(action)
    }

    mutating func log(_ level: Logging.Logger.Level, _ message: String, _ metadata: [String: String]) {
        emit(.log(level, message, metadata: metadata))
    }

    // MARK: Revisions

    /// Every collection was listed: revisions are settled against what was persisted, and pushes start.
    private mutating func listSettled(at now: Date) {
        listsPending -= 1
        guard listsPending == 0, !settled else { return }
        settled = true
        for name in members.keys.sorted() {
            guard var member = members[name] else { continue }
            if let record = persisted[name], record.digest == member.digest {
                member.revision = record.revision
            } else {
                member.revision = max(member.revision, (persisted[name]?.revision ?? 0) + 1)
            }
            members[name] = member
            unrevisioned.remove(name)
        }
        log(.info, "federation state settled", ["tether.event": "federation.settled", "tether.clusters": "\(members.count)"])
        adoptStoredReports()
        takeReportsBeforeSettled()
        if leading { emit(.collectPropagations(keep: Set(federated.keys.map(PropagationRecord.name(for:))), before: now)) }
        persistRevisions()
        if sharedHub != nil {
            // The leader runs outages from the clusters' session records; the others wait for it.
            if leading { for name in members.keys.sorted() { followOutage(name, at: now) } }
            for name in members.keys.sorted() { push(name) }
            return
        }
        // After a restart nothing is known of any agent until it returns: a cluster whose agent
        // has not come back is NotReady, and its outage runs from now, so a cluster that never
        // comes back is rebalanced away and goes Offline like any other.
        let started = kubernetesTimestamp(now)
        for name in members.keys.sorted() where members[name]?.session == nil {
            // A cluster the stored status already shows without a session keeps the time it
            // was lost, and an Offline one stays Offline: a restart is not news about it.
            let lost = clusterObjects[name].flatMap(ClusterStatus.sessionLostAt)
            if clusterObjects[name]?["status"]?["phase"]?.stringValue != "Offline" {
                let message =
                    lost.map { "no agent session since \($0); the hub started again at \(started) and waits for the cluster's agent" }
                    ?? "the hub started at \(started); waiting for the cluster's agent to connect"
                emit(.updateClusterStatus(cluster: name, .phase("NotReady", reason: "WaitingForAgent", message: message, at: now)))
            }
            startOutage(name, since: lost ?? started)
        }
        for name in members.keys.sorted() { push(name) }
    }

    /// Revisions are written a second after they change: changes within it share one write, so
    /// a burst over thousands of clusters costs one file write per interval.
    mutating func persistRevisions() {
        guard settled, settings.persistsRevisions, !revisionsScheduled else { return }
        revisionsScheduled = true
        emit(.schedule(.persistRevisions, after: .seconds(1)))
    }

    mutating func writeRevisions() {
        revisionsScheduled = false
        guard settled, settings.persistsRevisions else { return }
        // With agents on every hub, each hub records the clusters whose sessions it holds and
        // leaves the others' records as it last saw them: another hub's to write.
        var records = sharedHub == nil ? [:] : persisted.filter { members[$0.key] != nil }
        for (name, member) in members where sharedHub == nil || member.session != nil {
            records[name] = RevisionRecord(revision: member.revision, digest: member.digest)
        }
        if records != persisted { emit(.writeRevisions(records)) }
    }

    /// The object's share of its cluster's digest: a stable hash of the reference and the copy.
    static func contribution(_ reference: ObjectReference, _ value: JSONValue) -> UInt64 {
        var hash = StableHash()
        hash.combine(bytes: reference.description.utf8)
        hash.combine(bytes: CollectionOfOne(0xFE))
        hash.combine(value)
        return hash.value
    }

    // MARK: Timers

    private mutating func fired(_ timer: FederationTimer, at now: Date) {
        switch timer {
        case .rebalance(let cluster, let outage):
            guard members[cluster]?.outage == outage else { return }
            rebalanceAway(cluster, at: now)
        case .offline(let cluster, let outage, let since):
            guard members[cluster]?.outage == outage else { return }
            emit(.updateClusterStatus(cluster: cluster, .phase("Offline", reason: nil, message: "no agent session since \(since)", at: now)))
        case .pushRetry(let cluster, _):
            guard members[cluster]?.pushRetry == timer else { return }
            members[cluster]?.pushRetry = nil
            push(cluster)
        case .unjoinTimeout(let cluster):
            finishUnjoin(cluster)
        case .persistRevisions:
            writeRevisions()
        case .sweepSessions:
            if leading { emit(.findLiveHubs(among: recordedHubs())) }
        }
    }
}
