import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle
import TetherModel
import TetherPlugin
import TetherSecurity
import TetherStore
import TetherWire

/// Turns federated objects at the hub into each cluster's desired set, pushes it to the
/// cluster's agent, and writes what agents report back into the federated objects' status.
///
/// Placement (this stage): every known cluster (one with a `Cluster` object, which an agent's
/// first session creates) receives every object of a propagated kind; replica counts are
/// divided with ``ReplicaDivision``; the kind's plugin prepares each copy. A cluster's
/// revision is the hub store's resourceVersion of the last change to its desired set, so it
/// only grows, across hub restarts too. Only the latest desired set is kept per cluster: while
/// a push is being written, further changes coalesce into the next delta.
/// How the engine reacts to clusters that go quiet.
public struct FederationSettings: Sendable {
    /// A cluster without an agent session this long has its divided replicas moved to the
    /// others, and gets them back when its agent returns.
    public var rebalanceAfter: Duration = .seconds(60)
    /// A cluster without an agent session this long is `Offline` (before that, `NotReady`).
    public var offlineAfter: Duration = .seconds(300)
    /// Where each cluster's revision and a digest of its desired set are kept across restarts
    /// (`D/federation-revisions.json`); nil keeps them in memory only.
    public var revisionsPath: String?
    /// Register a cluster when its agent first connects (demo, development). Off, a cluster must
    /// be joined (`tetherctl join`) before its agent is admitted.
    public var autoJoin = false
    /// How long an unjoin waits for the agent to prune before it lets go anyway.
    public var unjoinPruneTimeout: Duration = .seconds(30)
    /// About how many bytes of objects one snapshot chunk (or one delta) carries; a larger
    /// change goes as a snapshot in several chunks, so no desired set outgrows a frame.
    public var chunkBytes = 4 * 1_048_576
    /// Waits between attempts after a push to an agent failed, and after the store failed a list or watch.
    public var retryBackoff = Backoff(initial: .milliseconds(500), maximum: .seconds(30))

    public init() {}
}

public actor FederationEngine: Service, HubSessionObserver {
    private let store: any ResourceStore
    private let registry: KindRegistry
    private let logger: Logger
    private let clusterType = ResourceType(group: "core.tether.io", resource: "clusters", namespaced: false)
    /// Made on first use, after the hub has bootstrapped its metrics backend.
    private lazy var pushToAck = Timer(label: "tether_hub_push_to_ack_seconds")

    /// A cluster's revision and the digest of the desired set it names, as persisted.
    struct RevisionRecord: Codable, Equatable {
        var revision: UInt64
        var digest: String
    }

    /// Pushes wait until every followed resource has been listed once: a set computed from a
    /// half-read store would make agents prune what the rest of the store still wants.
    private var listsPending = 0
    private var settled = false
    private var persisted: [String: RevisionRecord] = [:]
    /// Members that have never been given a revision (just joined).
    private var unrevisioned: Set<String> = []
    private var revisionsWrite: Task<Void, Never>?

    private enum Role: Sendable { case clusters, federated, propagationPolicies, overridePolicies }

    private var members: [String: ClusterMember] = [:]
    /// The certificate each cluster's agent holds, as last presented or signed.
    private var certificates: [String: CertificateSummary] = [:]
    private var clusterObjects: [String: JSONValue] = [:]
    private var propagationPolicies: [ObjectReference: JSONValue] = [:]
    private var overridePolicies: [ObjectReference: JSONValue] = [:]
    private var federated: [ObjectReference: JSONValue] = [:]
    /// Per federated object, each cluster's last report.
    private var reports: [ObjectReference: [String: StatusReport.ObjectStatus]] = [:]
    /// Federated objects deleted with `tether.io/orphan: "true"`: members keep their copies.
    private var orphaned: Set<ObjectReference> = []
    static let orphanAnnotation = "tether.io/orphan"
    /// Kubernetes' finalizer for `propagationPolicy: Orphan`, which the API adds on such a delete.
    static let orphanFinalizer = "orphan"
    private var storeVersion: UInt64 = 0
    static let systemNamespaces: Set<String> = ["default", "kube-system", "kube-public", "kube-node-lease"]

    private let settings: FederationSettings
    private let events: MemberEvents
    /// Clusters whose agents may hold a session, readable from event loops at handshake time.
    private let joined = NIOLockedValueBox<Set<String>>([])
    /// Clusters being unjoined, with the revision whose ack means their agent has pruned.
    private var unjoining: [String: UInt64?] = [:]
    static let unjoinFinalizer = "tether.io/unjoin"
    static let unjoinModeAnnotation = "tether.io/unjoin"

    public init(store: any ResourceStore, registry: KindRegistry, settings: FederationSettings = FederationSettings(), logger: Logger) {
        self.settings = settings
        (sessionEventStream, sessionEvents) = AsyncStream.makeStream(
            of: SessionEvent.self,
            bufferingPolicy: .bufferingOldest(Self.sessionEventCapacity)
        )
        self.store = store
        self.registry = registry
        self.logger = logger
        self.events = MemberEvents(store: store, logger: logger)
    }

    // MARK: Sessions (called on event loops; work moves onto the actor)

    /// What sessions report, in the order their event loops saw it: one consumer keeps a
    /// cluster's `status` messages in sequence (an older report never overwrites a newer one).
    private enum SessionEvent: Sendable {
        case established(cluster: String, sessionID: String, hello: Hello, channel: any Channel)
        case ended(cluster: String, sessionID: String)
        case received(WireMessage, cluster: String)
        case certificate(CertificateSummary, cluster: String)
    }

    private static let sessionEventCapacity = 65_536
    private nonisolated let sessionEvents: AsyncStream<SessionEvent>.Continuation
    private let sessionEventStream: AsyncStream<SessionEvent>

    public nonisolated func sessionEstablished(cluster: String, sessionID: String, hello: Hello, channel: any Channel) {
        deliver(.established(cluster: cluster, sessionID: sessionID, hello: hello, channel: channel))
    }

    public nonisolated func certificateHeld(cluster: String, sessionID: String, certificate: CertificateSummary) {
        deliver(.certificate(certificate, cluster: cluster))
    }

    public nonisolated func sessionEnded(cluster: String, sessionID: String) {
        deliver(.ended(cluster: cluster, sessionID: sessionID))
    }

    public nonisolated func received(_ message: WireMessage, cluster: String, sessionID: String) {
        deliver(.received(message, cluster: cluster))
    }

    private nonisolated func deliver(_ event: SessionEvent) {
        if case .dropped = sessionEvents.yield(event) {
            logger.error(
                "session events backlog full; event dropped",
                metadata: ["tether.event": "federation.backlog_full", "tether.capacity": "\(Self.sessionEventCapacity)"]
            )
        }
    }

    private func consumeSessionEvents() async {
        for await event in sessionEventStream {
            switch event {
            case .established(let cluster, let sessionID, let hello, let channel):
                await attach(cluster: cluster, sessionID: sessionID, hello: hello, channel: channel)
            case .ended(let cluster, let sessionID):
                await detach(cluster: cluster, sessionID: sessionID)
            case .received(let message, let cluster):
                await take(message, from: cluster)
            case .certificate(let certificate, let cluster):
                certificates[cluster] = certificate
                Gauge(label: "tether_hub_cluster_certificate_expiry_timestamp_seconds", dimensions: [("cluster", cluster)])
                    .record(certificate.notAfter.timeIntervalSince1970)
                updateClusterSoon(cluster, .certificate) { status in Self.describe(certificate, into: &status) }
            }
        }
    }

    public nonisolated func refusal(cluster: String) -> String? {
        if settings.autoJoin || joined.withLockedValue({ $0.contains(cluster) }) { return nil }
        return "cluster \(cluster) has not joined this federation, or was unjoined; run `tetherctl join \(cluster)` at the hub"
    }

    /// Reads the joined clusters before the agent listener opens, so admission is right from the first handshake.
    public func prepare() async throws {
        var position: ListPosition?
        repeat {
            var options = ListOptions()
            options.after = position
            let page = try await store.list(clusterType, options: options)
            let names = page.objects.filter { $0.deletionTimestamp == nil }.compactMap(\.name)
            joined.withLockedValue { $0.formUnion(names) }
            position = page.next
        } while position != nil
    }

    // MARK: Running

    public func run() async throws {
        storeVersion = try await store.currentResourceVersion()
        if let path = settings.revisionsPath, FileManager.default.fileExists(atPath: path) {
            persisted = (try? PEMFiles.readJSON([String: RevisionRecord].self, from: path)) ?? [:]
        }
        listsPending = 3 + registry.kinds.filter { registry.plugin(apiVersion: $0.apiVersion, kind: $0.kind).propagates($0) }.count
        await withDiscardingTaskGroup { group in
            group.addTask { await self.consumeSessionEvents() }
            group.addTask { await self.follow(self.clusterType, role: .clusters) }
            group.addTask {
                await self.follow(ResourceType(group: "core.tether.io", resource: "propagationpolicies", namespaced: true), role: .propagationPolicies)
            }
            group.addTask {
                await self.follow(ResourceType(group: "core.tether.io", resource: "overridepolicies", namespaced: true), role: .overridePolicies)
            }
            for kind in registry.kinds where registry.plugin(apiVersion: kind.apiVersion, kind: kind.kind).propagates(kind) {
                let type = ResourceType(group: kind.group, resource: kind.plural, namespaced: kind.namespaced)
                group.addTask { await self.follow(type, role: .federated) }
            }
            // Ends on graceful shutdown, and on cancellation (another service of the group failed).
            await withTaskCancellationHandler {
                await withGracefulShutdownHandler {
                    await self.waitForShutdown()
                } onGracefulShutdown: {
                    Task { await self.shutdown() }
                }
            } onCancel: {
                Task { await self.shutdown() }
            }
            group.cancelAll()
        }
    }

    private var shutdownWaiters: [CheckedContinuation<Void, Never>] = []
    private var isShutDown = false

    private func waitForShutdown() async {
        if isShutDown { return }
        await withCheckedContinuation { shutdownWaiters.append($0) }
    }

    private func shutdown() {
        if revisionsWrite != nil { writeRevisions() }
        isShutDown = true
        sessionEvents.finish()
        for waiter in shutdownWaiters { waiter.resume() }
        shutdownWaiters.removeAll()
    }

    /// Lists then watches one resource of the hub's store for as long as the hub runs.
    private func follow(_ type: ResourceType, role: Role) async {
        var firstList = true
        var failures = 0
        while !Task.isCancelled {
            do {
                var objects: [JSONValue] = []
                var position: ListPosition?
                var version: UInt64 = 0
                repeat {
                    var options = ListOptions()
                    options.limit = 500
                    options.after = position
                    let page = try await store.list(type, options: options)
                    objects += page.objects
                    position = page.next
                    version = page.resourceVersion
                } while position != nil
                listed(objects, version: version, role: role, type: type)
                if firstList {
                    firstList = false
                    listSettled()
                }
                failures = 0
                for try await event in try await store.watch(type, namespace: nil, from: version) {
                    changed(event.object, deleted: event.kind == .deleted, version: event.resourceVersion, role: role)
                }
            } catch {
                if Task.isCancelled { return }
                // A watch that fell behind lists again at once; a store that fails is given time
                // (a store error repeated in a tight loop was 190,000 log lines in 12 s).
                let overflow = (error as? StoreError)?.code == .watchOverflow || (error as? StoreError)?.code == .expired
                let delay = overflow ? Duration.zero : settings.retryBackoff.delay(attempt: failures)
                if !overflow { failures += 1 }
                logger.log(
                    level: failures > 1 ? .debug : .warning,
                    "federation watch ended; listing again",
                    metadata: [
                        "tether.event": "federation.watch_restart", "tether.resource": "\(type)", "tether.error": "\(error)",
                        "tether.failures": "\(failures)", "tether.retry_in_ms": "\(delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)",
                    ]
                )
                do {
                    try await Task.sleep(for: delay)
                } catch {
                    return
                }
            }
        }
    }

    /// Every followed resource was listed: revisions are settled against what was persisted, and pushes start.
    private func listSettled() {
        listsPending -= 1
        guard listsPending == 0, !settled else { return }
        settled = true
        for name in members.keys.sorted() {
            guard var member = members[name] else { continue }
            let digest = String(member.digestSum, radix: 16)
            if let record = persisted[name], record.digest == digest {
                member.revision = record.revision
            } else {
                member.revision = max(member.revision, (persisted[name]?.revision ?? 0) + 1)
            }
            members[name] = member
            unrevisioned.remove(name)
        }
        logger.info("federation state settled", metadata: ["tether.event": "federation.settled", "tether.clusters": "\(members.count)"])
        persistRevisions()
        // After a restart nothing is known of any agent until it returns: a cluster whose agent
        // has not come back is NotReady, and its outage runs from now, so a cluster that never
        // comes back is rebalanced away and goes Offline like any other.
        let since = kubernetesTimestamp()
        for name in members.keys.sorted() where members[name]?.session == nil {
            setClusterPhase(name, phase: "NotReady", reason: "WaitingForAgent", message: "the hub started at \(since); waiting for the cluster's agent to connect")
            startOutage(name, since: since)
        }
        for name in members.keys.sorted() { push(name) }
    }

    /// Writes the clusters' revisions soon: changes within a second share one write, and digests
    /// are kept object by object, so a burst of changes over thousands of clusters costs one
    /// file write per interval, not one digest of every set per change.
    private func persistRevisions() {
        guard settled, settings.revisionsPath != nil, revisionsWrite == nil else { return }
        revisionsWrite = Task {
            try? await Task.sleep(for: .seconds(1))
            self.writeRevisions()
        }
    }

    private func writeRevisions() {
        revisionsWrite?.cancel()
        revisionsWrite = nil
        guard settled, let path = settings.revisionsPath else { return }
        var records: [String: RevisionRecord] = [:]
        for (name, member) in members {
            records[name] = RevisionRecord(revision: member.revision, digest: String(member.digestSum, radix: 16))
        }
        guard records != persisted else { return }
        do {
            // Compact, with sorted keys: one line per write for thousands of clusters.
            let text = String(decoding: try JSONValueEncoder().encode(records), as: UTF8.self)
            try PEMFiles.writeAtomically(text + "\n", to: path, mode: PEMFiles.certificateMode)
            persisted = records
        } catch {
            logger.error("cannot persist cluster revisions", metadata: ["tether.event": "federation.persist_failed", "tether.error": "\(error)"])
        }
    }

    /// What placement and the members' copies are made from: the object without its status and
    /// without the version every write changes.
    static func placementContent(of object: JSONValue) -> JSONValue {
        var content = object
        content[member: "status"] = nil
        content.metadata["resourceVersion"] = nil
        return content
    }

    /// FNV-1a over the reference and a canonical walk of the object (keys sorted, types tagged):
    /// stable across runs, unlike `Hasher`, and without encoding JSON.
    static func contribution(_ reference: ObjectReference, _ value: JSONValue) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix<Bytes: Sequence<UInt8>>(_ bytes: Bytes) {
            for byte in bytes {
                hash ^= UInt64(byte)
                hash &*= 0x100_0000_01b3
            }
        }
        func mix(_ number: UInt64) { withUnsafeBytes(of: number.littleEndian) { mix($0) } }
        func walk(_ value: JSONValue) {
            switch value {
            case .null: mix([0])
            case .bool(let flag): mix([1, flag ? 1 : 0])
            case .integer(let number):
                mix([2])
                mix(UInt64(bitPattern: number))
            case .double(let number):
                mix([3])
                mix(number.bitPattern)
            case .string(let text):
                mix([4])
                mix(text.utf8)
                mix([0xFF])
            case .array(let items):
                mix([5])
                mix(UInt64(items.count))
                items.forEach(walk)
            case .object(let members):
                mix([6])
                mix(UInt64(members.count))
                for key in members.keys.sorted() {
                    mix(key.utf8)
                    mix([0xFF])
                    walk(members[key] ?? .null)
                }
            }
        }
        mix(reference.description.utf8)
        mix([0xFE])
        walk(value)
        return hash
    }

    private func listed(_ objects: [JSONValue], version: UInt64, role: Role, type: ResourceType) {
        storeVersion = max(storeVersion, version)
        let present = Set(objects.compactMap(\.federatedReference))
        let known: [ObjectReference: JSONValue] =
            switch role {
            case .clusters: Dictionary(uniqueKeysWithValues: clusterObjects.map { (ObjectReference(apiVersion: "core.tether.io/v1alpha1", kind: "Cluster", name: $0.key), $0.value) })
            case .federated: federated.filter { $0.key.resourceType(registry) == type }
            case .propagationPolicies: propagationPolicies
            case .overridePolicies: overridePolicies
            }
        for (reference, object) in known where !present.contains(reference) {
            changed(object, deleted: true, version: version, role: role)
        }
        for object in objects { changed(object, deleted: false, version: version, role: role) }
    }

    private func changed(_ object: JSONValue, deleted: Bool, version: UInt64, role: Role) {
        storeVersion = max(storeVersion, version)
        guard let reference = object.federatedReference else { return }
        switch role {
        case .clusters:
            clusterChanged(object, deleted: deleted, version: version)
        case .propagationPolicies, .overridePolicies:
            let gone = deleted || object.deletionTimestamp != nil
            let previous = role == .propagationPolicies ? propagationPolicies[reference] : overridePolicies[reference]
            // Only a change to the spec moves objects.
            guard gone ? previous != nil : previous?.specPart != object.specPart else { return }
            if role == .propagationPolicies {
                propagationPolicies[reference] = gone ? nil : object
            } else {
                overridePolicies[reference] = gone ? nil : object
            }
            logger.info(
                "policy changed; placing again",
                metadata: ["tether.event": "federation.policy_changed", "tether.object": "\(reference)", "tether.deleted": "\(gone)"]
            )
            recomputeAll(version: version)
        case .federated:
            if deleted {
                if object.annotations[Self.orphanAnnotation] == "true" || federated[reference]?.annotations[Self.orphanAnnotation] == "true" {
                    orphaned.insert(reference)
                }
                federated[reference] = nil
                reports[reference] = nil
                if let uid = object.uid {
                    Task { [events] in await events.forget(namespace: reference.namespace, uid: uid) }
                }
            } else if object.deletionTimestamp != nil, object.finalizers.contains(Self.orphanFinalizer) {
                // `kubectl delete --cascade=orphan`: the API added Kubernetes' `orphan` finalizer.
                // Members keep their copies; the finalizer goes once the orphaning is decided.
                federated[reference] = object
                orphaned.insert(reference)
                recompute([reference], version: version)
                if let type = reference.resourceType(registry) {
                    Task { await self.setFinalizer(Self.orphanFinalizer, present: false, type: type, namespace: reference.namespace, name: reference.name) }
                }
                return
            } else {
                let previous = federated[reference]
                federated[reference] = object
                if object.deletionTimestamp == nil { orphaned.remove(reference) }
                // The engine's own status writes come back here: nothing placement reads changed,
                // so nothing is placed again (hashing a large object per report was the cost).
                if let previous, Self.placementContent(of: previous) == Self.placementContent(of: object) { return }
            }
            recompute([reference], version: version)
        }
    }

    private func clusterChanged(_ object: JSONValue, deleted: Bool, version: UInt64) {
        guard let name = object.name else { return }
        if deleted {
            clusterObjects[name] = nil
            joined.withLockedValue { _ = $0.remove(name) }
            unjoining[name] = nil
            unrevisioned.remove(name)
            guard let member = members.removeValue(forKey: name) else { return }
            member.outage?.cancel()
            logger.info("cluster left the federation", metadata: ["tether.event": "federation.cluster_removed", "tether.cluster": "\(name)"])
        } else if object.deletionTimestamp != nil {
            clusterObjects[name] = object
            beginUnjoin(name, orphan: object.annotations[Self.unjoinModeAnnotation] == "orphan")
            return
        } else if members[name] == nil {
            clusterObjects[name] = object
            members[name] = ClusterMember(gauges: ClusterGauges(cluster: name))
            members[name]?.terms.confirmedHold = object["spec"]?["confirmedHold"]?.stringValue
            unrevisioned.insert(name)
            joined.withLockedValue { _ = $0.insert(name) }
            if !object.finalizers.contains(Self.unjoinFinalizer) { Task { await self.setFinalizer(on: name, present: true) } }
            logger.info("cluster joined the federation", metadata: ["tether.event": "federation.cluster_added", "tether.cluster": "\(name)"])
        } else {
            // Status writes change nothing here; a change of labels can change placement, and a
            // confirmed hold must reach the agent.
            let labelsChanged = clusterObjects[name]?.labels != object.labels
            clusterObjects[name] = object
            let confirmed = object["spec"]?["confirmedHold"]?.stringValue
            if confirmed != members[name]?.terms.confirmedHold {
                members[name]?.terms.confirmedHold = confirmed
                logger.notice(
                    "an operator confirmed the cluster's hold",
                    metadata: ["tether.event": "federation.hold_confirmed", "tether.cluster": "\(name)", "tether.token": "\(confirmed ?? "none")"]
                )
                touch(name, version: version)
            }
            guard labelsChanged else { return }
        }
        recomputeAll(version: version, after: name)
    }

    /// Gives the cluster a new revision with the same objects, and pushes it: how something
    /// besides objects (the terms of its desired state) reaches the agent.
    private func touch(_ cluster: String, version: UInt64) {
        guard let current = members[cluster]?.revision else { return }
        members[cluster]?.revision = max(version, current + 1)
        persistRevisions()
        push(cluster)
    }

    // MARK: Unjoin

    /// The Cluster is being deleted: refuse its identity from now on, have its agent prune
    /// (unless orphaning), then end its session and let the object go.
    private func beginUnjoin(_ cluster: String, orphan: Bool) {
        guard unjoining[cluster] == nil else { return }
        joined.withLockedValue { _ = $0.remove(cluster) }
        logger.notice(
            "unjoining cluster",
            metadata: ["tether.event": "federation.unjoining", "tether.cluster": "\(cluster)", "tether.orphan": "\(orphan)"]
        )
        guard !orphan, members[cluster]?.session != nil, members[cluster] != nil else {
            unjoining[cluster] = .some(nil)
            Task { await self.finishUnjoin(cluster) }
            return
        }
        // An empty desired set makes the agent prune every object it manages there; the terms say
        // it is an unjoin, so the agent's guard against mass deletion lets it through.
        members[cluster]?.excluded = true
        members[cluster]?.terms.unjoining = true
        recomputeAll(version: storeVersion, after: cluster)
        unjoining[cluster] = members[cluster]?.revision
        let timeout = settings.unjoinPruneTimeout
        Task {
            try? await Task.sleep(for: timeout)
            await self.finishUnjoin(cluster)
        }
    }

    private func finishUnjoin(_ cluster: String) async {
        guard unjoining[cluster] != nil else { return }
        unjoining[cluster] = nil
        if let channel = members[cluster]?.session?.channel {
            let goaway = GoAway(code: .unjoined, reason: "cluster \(cluster) was unjoined from the federation", reconnectAfterMilliseconds: 60_000)
            try? await channel.writeAndFlush(WireMessage.goaway(goaway))
            try? await channel.close()
        }
        await setFinalizer(on: cluster, present: false)
        logger.notice("cluster unjoined", metadata: ["tether.event": "federation.unjoined", "tether.cluster": "\(cluster)"])
    }

    private func setFinalizer(on cluster: String, present: Bool) async {
        await setFinalizer(Self.unjoinFinalizer, present: present, type: clusterType, namespace: nil, name: cluster)
    }

    /// Adds or removes one finalizer of a stored object, retried over conflicting writes.
    private func setFinalizer(_ finalizer: String, present: Bool, type: ResourceType, namespace: String?, name: String) async {
        for _ in 0..<5 {
            guard var object = try? await store.get(type, namespace: namespace, name: name) else { return }
            var finalizers = object.finalizers.filter { $0 != finalizer }
            if present { finalizers.append(finalizer) }
            guard finalizers != object.finalizers else { return }
            object.finalizers = finalizers
            do {
                _ = try await store.update(object, as: type, dryRun: false)
                return
            } catch {
                guard error.code == .conflict else { return }
            }
        }
    }

    // MARK: Desired state

    private func recomputeAll(version: UInt64) {
        recompute(Array(federated.keys), version: version, everyCluster: true)
    }

    /// Every object again after one cluster joined, left, changed labels or was rebalanced
    /// away or back: only objects whose replicas are divided among clusters can change
    /// elsewhere, so the others are placed on `cluster` alone. A storm of joins then costs each
    /// join its own objects, not a pass over every cluster.
    private func recomputeAll(version: UInt64, after cluster: String) {
        recompute(Array(federated.keys), version: version, everyCluster: true, onlyOn: cluster)
    }

    /// Whether `reference`'s copies depend on which other clusters take part (divided replicas).
    private func dividesReplicas(_ reference: ObjectReference) -> Bool {
        guard let object = federated[reference] else { return false }
        return registry.plugin(for: object).replicas(of: object) != nil
    }

    /// Each cluster's copy of `references`; a cluster whose set changed gets revision `version` and a push.
    /// With `onlyOn`, objects that do not divide replicas are placed on that cluster alone.
    private func recompute(_ references: [ObjectReference], version: UInt64, everyCluster: Bool = false, onlyOn scope: String? = nil) {
        // Only when there are objects to place: a join with none must not cost a pass over every cluster.
        // Every cluster is listed only if some object needs them all: N joins must not cost N passes.
        lazy var everyName = Array(members.keys)
        lazy var everyPlaceable = Set(everyName.filter { members[$0]?.excluded == false })
        let scopedName = scope.flatMap { members[$0] == nil ? nil : [$0] } ?? []
        let scopedPlaceable = Set(scopedName.filter { members[$0]?.excluded == false })
        var touched: Set<String> = []
        for reference in references {
            let wide = scope == nil || dividesReplicas(reference)
            let names = wide ? everyName : scopedName
            let copies = copiesPerCluster(of: reference, clusters: wide ? everyPlaceable : scopedPlaceable)
            for name in names {
                let copy = copies[name]
                if copy == nil, reports[reference]?[name] != nil {
                    // No longer placed there: its last report must not count any more.
                    reports[reference]?[name] = nil
                    statusDirty.insert(reference)
                }
                if members[name]?.place(reference, copy) == true { touched.insert(name) }
            }
        }
        if everyCluster {
            // A cluster that just joined holds nothing yet; give it a revision even with an empty set.
            for name in unrevisioned where members[name]?.revision == 0 { touched.insert(name) }
        }
        for name in touched {
            let next = max(version, (members[name]?.revision ?? 0) + 1)
            members[name]?.revision = next
            unrevisioned.remove(name)
            let acked = members[name]?.acked ?? 0
            members[name]?.gauges.lag.record(Double(next > acked ? next - acked : 0))
            push(name)
        }
        if !touched.isEmpty { persistRevisions() }
        flushStatuses()
    }

    private func copiesPerCluster(of reference: ObjectReference, clusters: Set<String>) -> [String: PlacedCopy] {
        guard let object = federated[reference], object.deletionTimestamp == nil, !clusters.isEmpty else { return [:] }
        // Every member has its own system namespaces; the hub's are not sent.
        if reference.kind == "Namespace", Self.systemNamespaces.contains(reference.name) { return [:] }
        let plugin = registry.plugin(for: object)
        let placement = Placement(
            clusters: Dictionary(uniqueKeysWithValues: clusters.compactMap { name in clusterObjects[name].map { (name, $0) } }),
            propagationPolicies: Array(propagationPolicies.values),
            overridePolicies: Array(overridePolicies.values)
        )
        // Clusters given the same copy share one prepared value: one instance in memory for all
        // of them (a thousand clusters held a thousand copies of each object), hashed once. The
        // comparison is by identity first, so the common case costs no walk of the object.
        var prepared: [(placed: JSONValue, copy: PlacedCopy)] = []
        return placement.copies(of: object, plugin: plugin).mapValues { placed in
            if let known = prepared.first(where: { $0.placed == placed }) { return known.copy }
            let value = plugin.prepareForMember(placed)
            let copy = PlacedCopy(value: value, contribution: Self.contribution(reference, value), size: value.encodedSize())
            if prepared.count == 8 { prepared.removeFirst() }
            prepared.append((placed, copy))
            return copy
        }
    }

    // MARK: Push

    private func attach(cluster: String, sessionID: String, hello: Hello, channel: any Channel) async {
        let lastAppliedRevision = hello.lastAppliedRevision
        if members[cluster] == nil, settings.autoJoin { await register(cluster) }
        guard members[cluster] != nil else { return }
        members[cluster]?.session = (sessionID, channel)
        members[cluster]?.outage?.cancel()
        members[cluster]?.outage = nil
        members[cluster]?.pushRetry?.cancel()
        members[cluster]?.pushRetry = nil
        if members[cluster]?.excluded == true {
            members[cluster]?.excluded = false
            logger.info("cluster is back; placing on it again", metadata: ["tether.event": "federation.rebalanced_back", "tether.cluster": "\(cluster)"])
            recomputeAll(version: storeVersion, after: cluster)
        }
        members[cluster]?.sent = nil
        members[cluster]?.unsent = [:]
        members[cluster]?.announced = lastAppliedRevision
        // The desired state first; the Cluster's status is written behind it, off this path.
        push(cluster)
        setClusterPhase(cluster, phase: "Ready", message: "an agent session is up")
        updateClusterSoon(cluster, .agent) { status in
            status["agentVersion"] = .string(hello.agentVersion)
            status["kinds"] = .array(hello.kinds.map(JSONValue.string))
        }
    }

    private func detach(cluster: String, sessionID: String) async {
        guard members[cluster]?.session?.id == sessionID else { return }
        members[cluster]?.session = nil
        members[cluster]?.sent = nil
        members[cluster]?.unsent = [:]
        members[cluster]?.pushRetry?.cancel()
        members[cluster]?.pushRetry = nil
        let lost = kubernetesTimestamp()
        setClusterPhase(cluster, phase: "NotReady", message: "the agent session ended at \(lost); waiting for it to return")
        startOutage(cluster, since: lost)
    }

    /// The cluster has no agent session since `since`: its divided replicas move after the
    /// rebalance grace, and it is Offline after the offline time, unless its agent returns first.
    private func startOutage(_ cluster: String, since: String) {
        let settings = settings
        members[cluster]?.outage?.cancel()
        members[cluster]?.outage = Task {
            do {
                try await Task.sleep(for: settings.rebalanceAfter)
                self.rebalanceAway(cluster)
                try await Task.sleep(for: max(.zero, settings.offlineAfter - settings.rebalanceAfter))
                self.setClusterPhase(cluster, phase: "Offline", message: "no agent session since \(since)")
            } catch {
                return
            }
        }
    }

    /// The cluster stayed away past the grace period: its share of divided replicas moves to the others.
    private func rebalanceAway(_ cluster: String) {
        guard members[cluster]?.session == nil, members[cluster]?.excluded == false else { return }
        members[cluster]?.excluded = true
        logger.warning(
            "cluster still unreachable; moving its replicas to the others",
            metadata: ["tether.event": "federation.rebalanced_away", "tether.cluster": "\(cluster)"]
        )
        recomputeAll(version: storeVersion, after: cluster)
    }

    /// A cluster seen for the first time (its agent holds a certificate from the federation CA) gets a `Cluster` object.
    private func register(_ cluster: String) async {
        let object: JSONValue = [
            "apiVersion": "core.tether.io/v1alpha1", "kind": "Cluster",
            "metadata": ["name": .string(cluster)], "spec": [:],
        ]
        do {
            let created = try await store.create(object, as: clusterType, dryRun: false)
            changed(created, deleted: false, version: created.resourceVersion ?? storeVersion + 1, role: .clusters)
        } catch {
            guard error.code == .alreadyExists else {
                logger.error("cannot register cluster", metadata: ["tether.cluster": "\(cluster)", "tether.error": "\(error)"])
                return
            }
            if let existing = try? await store.get(clusterType, namespace: nil, name: cluster) {
                changed(existing, deleted: false, version: existing.resourceVersion ?? storeVersion, role: .clusters)
            }
        }
    }

    /// Writes the cluster's latest desired set to its agent: a snapshot the first time in a
    /// session, then deltas. One push at a time per cluster, its messages written one after the
    /// other (a chunked snapshot never sits whole in the channel); changes meanwhile coalesce.
    private func push(_ cluster: String) {
        // Decided in place: copying the member out and back costs a retain of each of its
        // collections per push, thousands of times per change.
        guard settled, let session = members[cluster]?.session, members[cluster]?.pushing == false,
            members[cluster]?.pushRetry == nil,
            let step = members[cluster]?.nextPush(orphaned: orphaned, chunkBytes: settings.chunkBytes)
        else { return }
        switch step {
        case .nothing:
            return
        case .current(let revision):
            logger.info(
                "agent already holds the current desired state",
                metadata: ["tether.event": "federation.resumed", "tether.cluster": "\(cluster)", "tether.revision": "\(revision)"]
            )
        case .send(let messages, let revision, let changes):
            let channel = session.channel
            Task {
                var failure: (any Error)?
                for message in messages {
                    do {
                        try await channel.writeAndFlush(message)
                    } catch {
                        failure = error
                        break
                    }
                }
                self.pushed(cluster, sessionID: session.id, revision: revision, changes: changes, failure: failure)
            }
        }
    }

    private func pushed(_ cluster: String, sessionID: String, revision: UInt64, changes: [ObjectReference: Bool], failure: (any Error)?) {
        members[cluster]?.pushing = false
        guard members[cluster]?.session?.id == sessionID else { return }
        guard let failure else {
            members[cluster]?.sent = revision
            members[cluster]?.lastPush = (revision, .now)
            members[cluster]?.gauges.revision.record(Double(revision))
            if (members[cluster]?.pushFailures ?? 0) > 0 {
                members[cluster]?.pushFailures = 0
                logger.notice("desired state pushed again after failures", metadata: ["tether.event": "federation.push_recovered", "tether.cluster": "\(cluster)", "tether.revision": "\(revision)"])
                updateClusterSoon(cluster, .push) { status in
                    Self.setCondition("DesiredStateDelivered", true, reason: "Pushed", message: "revision \(revision) was written to the agent", in: &status)
                }
            }
            logger.debug("desired state pushed", metadata: ["tether.event": "federation.pushed", "tether.cluster": "\(cluster)", "tether.revision": "\(revision)"])
            push(cluster)
            return
        }
        // The agent still holds what it held before this push: what it held then stands. The
        // push is tried again after a backoff, never at once (a write that fails the same way
        // every time would spin), and the Cluster says why it waits.
        members[cluster]?.unsent.merge(changes) { _, heldBeforePush in heldBeforePush }
        let failures = (members[cluster]?.pushFailures ?? 0) + 1
        members[cluster]?.pushFailures = failures
        let delay = settings.retryBackoff.delay(attempt: failures - 1)
        let reason = "\(failure)"
        logger.warning(
            "cannot push the desired state to the agent; retrying after a backoff",
            metadata: [
                "tether.event": "federation.push_failed", "tether.cluster": "\(cluster)", "tether.revision": "\(revision)",
                "tether.error": "\(reason)", "tether.failures": "\(failures)",
            ]
        )
        Counter(label: "tether_hub_push_failures_total", dimensions: [("cluster", cluster)]).increment()
        updateClusterSoon(cluster, .push) { status in
            Self.setCondition(
                "DesiredStateDelivered", false, reason: "PushFailed",
                message: "revision \(revision) could not be written to the agent (\(failures) attempts): \(reason)", in: &status
            )
        }
        members[cluster]?.pushRetry = Task {
            try? await Task.sleep(for: delay)
            self.retryPush(cluster)
        }
    }

    private func retryPush(_ cluster: String) {
        members[cluster]?.pushRetry = nil
        push(cluster)
    }

    // MARK: Reports

    private func take(_ message: WireMessage, from cluster: String) async {
        switch message {
        case .ack(let ack):
            guard ack.revision <= (members[cluster]?.revision ?? 0) else {
                securityEvent("ack.unknown_revision", cluster: cluster, "the agent acknowledged revision \(ack.revision), which the hub never sent it")
                return
            }
            members[cluster]?.acked = ack.revision
            if ack.hold != members[cluster]?.reportedHold {
                members[cluster]?.reportedHold = ack.hold
                recordHold(ack.hold, of: cluster)
            }
            if let push = members[cluster]?.lastPush, push.revision == ack.revision {
                let elapsed = ContinuousClock.now - push.at
                pushToAck.recordNanoseconds(
                    elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
                )
            }
            let desiredRevision = members[cluster]?.revision ?? ack.revision
            members[cluster]?.gauges.ackedRevision.record(Double(ack.revision))
            members[cluster]?.gauges.lag
                .record(Double(desiredRevision > ack.revision ? desiredRevision - ack.revision : 0))
            for failure in ack.failures {
                // Kinds the hub serves only: an agent's words must not mint metric series.
                let kind = registry.kind(apiVersion: failure.object.apiVersion, kind: failure.object.kind) == nil ? "other" : failure.object.kind
                Counter(label: "tether_hub_apply_failures_total", dimensions: [("cluster", cluster), ("kind", kind)]).increment()
            }
            if let awaited = unjoining[cluster], let revision = awaited, ack.revision >= revision {
                await finishUnjoin(cluster)
            }
            // Per acknowledgement: debug, or a hub with thousands of agents logs thousands of lines per change.
            logger.debug(
                "agent applied a revision",
                metadata: [
                    "tether.event": "federation.acked", "tether.cluster": "\(cluster)", "tether.revision": "\(ack.revision)",
                    "tether.failures": "\(ack.failures.count)",
                ]
            )
        case .status(let report):
            var touched: Set<ObjectReference> = []
            var refused: [ObjectReference] = []
            for status in report.objects {
                // The session is bound to its cluster's identity, so a report can only ever be that
                // cluster's; and it counts only for objects placed on that cluster. (An object
                // that is no longer federated was deleted meanwhile: its report is moot.)
                guard let reference = federatedReference(of: status.object), federated[reference] != nil else { continue }
                switch status.state {
                case .pruned, .orphaned:
                    // Gone from the member: this cluster's own entry goes, whatever it was.
                    guard reports[reference]?[cluster] != nil else { continue }
                    reports[reference]?[cluster] = nil
                case .applied, .failed, .pending:
                    guard members[cluster]?.desired[reference] != nil else {
                        refused.append(reference)
                        continue
                    }
                    reports[reference, default: [:]][cluster] = status
                }
                touched.insert(reference)
            }
            if !refused.isEmpty {
                securityEvent(
                    "status.not_placed", cluster: cluster,
                    "the agent reported status of \(refused.count) object(s) not placed on its cluster, e.g. \(refused[0]); refused",
                    count: refused.count
                )
            }
            statusDirty.formUnion(touched)
            flushStatuses()
        case .heartbeat(let heartbeat):
            members[cluster]?.gauges.lastHeartbeat.record(Date().timeIntervalSince1970)
            if let health = heartbeat.cluster { recordHealth(cluster, health) }
        default:
            break
        }
    }

    /// A report refused because no honest agent would send it: counted, and logged at most once
    /// a minute per cluster and kind of event, so a hostile agent cannot flood the log either.
    private func securityEvent(_ event: String, cluster: String, _ message: String, count: Int = 1) {
        Counter(label: "tether_hub_security_events_total", dimensions: [("event", event)]).increment(by: count)
        let key = "\(cluster)|\(event)"
        let now = ContinuousClock.now
        if let last = securityLogged[key], now - last < .seconds(60) { return }
        securityLogged[key] = now
        if securityLogged.count > 4_096 { securityLogged = securityLogged.filter { now - $0.value < .seconds(60) } }
        logger.warning(
            "SECURITY: agent report refused",
            metadata: ["tether.event": "federation.report_refused", "tether.security": "true", "tether.cluster": "\(cluster)", "tether.refusal": "\(event)", "tether.reason": "\(message)"]
        )
    }

    private var securityLogged: [String: ContinuousClock.Instant] = [:]

    private func federatedReference(of member: ObjectReference) -> ObjectReference? {
        ObjectReference(apiVersion: member.apiVersion, kind: member.kind, namespace: member.namespace, name: member.name)
    }

    /// The federated object's `status`: the plugin's aggregate plus one entry per cluster.
    /// Federated objects whose status must be written again.
    private var statusDirty: Set<ObjectReference> = []
    private var flushingStatuses = false

    /// One writer of federated status at a time, so two reports for one object never race
    /// each other into conflicts; reports arriving meanwhile are picked up by the same loop.
    private func flushStatuses() {
        guard !flushingStatuses, !statusDirty.isEmpty else { return }
        flushingStatuses = true
        Task {
            while let reference = self.statusDirty.popFirst() {
                await self.writeStatus(of: reference)
            }
            self.flushingStatuses = false
        }
    }

    private func writeStatus(of reference: ObjectReference) async {
        guard let type = reference.resourceType(registry) else { return }
        for _ in 0..<5 {
            guard var object = try? await store.get(type, namespace: reference.namespace, name: reference.name) else { return }
            let plugin = registry.plugin(for: object)
            let perCluster = (reports[reference] ?? [:]).sorted { $0.key < $1.key }
            let members = perCluster.map { name, report in
                MemberObjectStatus(
                    cluster: name,
                    health: Health(report.health, report.message ?? ""),
                    summary: report.summary
                )
            }
            var status = plugin.aggregateStatus(of: object, members: members)?.objectMembers ?? [:]
            if let generation = object.generation { status["observedGeneration"] = .integer(generation) }
            status["clusters"] = .array(
                perCluster.map { name, report in
                    var entry: [String: JSONValue] = [
                        "name": .string(name), "state": .string(report.state.rawValue), "health": .string(report.health.rawValue),
                    ]
                    if let message = report.message { entry["message"] = .string(message) }
                    if let revision = self.members[name]?.acked { entry["revision"] = .integer(Int64(revision)) }
                    return .object(entry)
                }
            )
            object[member: "status"] = .object(status)
            do {
                _ = try await store.updateStatus(object, as: type, dryRun: false)
                if let uid = object.uid, federated[reference]?.uid == uid {
                    for (cluster, report) in perCluster {
                        await events.observe(.init(object: reference, uid: uid, cluster: cluster, report: report))
                    }
                }
                return
            } catch {
                guard error.code == .conflict else {
                    logger.warning("cannot write federated status", metadata: ["tether.object": "\(reference)", "tether.error": "\(error)"])
                    return
                }
            }
        }
    }

    /// What the agent holds back, on the Cluster: `status.hold` (with the token `tetherctl
    /// cluster confirm` sends back) and a `DesiredStateHeld` condition.
    private func recordHold(_ hold: Ack.Hold?, of cluster: String) {
        if let hold {
            logger.warning(
                "the cluster's agent holds back from its desired state until an operator confirms",
                metadata: [
                    "tether.event": "federation.held", "tether.cluster": "\(cluster)", "tether.reason": "\(hold.reason.rawValue)",
                    "tether.message": "\(hold.message)", "tether.token": "\(hold.token)",
                ]
            )
        }
        updateClusterSoon(cluster, .hold) { status in
            if let hold {
                status["hold"] = [
                    "reason": .string(hold.reason.rawValue), "message": .string(hold.message), "token": .string(hold.token),
                    "wouldRemove": .integer(Int64(hold.wouldRemove)), "managed": .integer(Int64(hold.managed)),
                ]
                let next = hold.reason == .foreignFederation
                    ? "give the agent a bundle of this federation, or clear its state directory"
                    : "check, then run `tetherctl cluster confirm \(cluster)`"
                Self.setCondition("DesiredStateHeld", true, reason: hold.reason.rawValue, message: hold.message + "; " + next, in: &status)
            } else {
                status["hold"] = nil
                Self.setCondition("DesiredStateHeld", false, reason: "Applied", message: "the agent applies its desired state in full", in: &status)
            }
        }
    }

    private func setClusterPhase(_ cluster: String, phase: String, reason: String? = nil, message: String) {
        updateClusterSoon(cluster, .phase) { status in
            status["phase"] = .string(phase)
            Self.setCondition(
                "Ready", phase == "Ready",
                reason: reason ?? (phase == "Ready" ? "SessionUp" : phase == "NotReady" ? "SessionLost" : "Offline"),
                message: message, in: &status
            )
        }
    }

    /// Sets one condition of a status, keeping the others; its transition time moves only when its status does.
    private static func setCondition(_ type: String, _ value: Bool, reason: String, message: String, in status: inout [String: JSONValue]) {
        var conditions = status["conditions"]?.arrayElements ?? []
        let index = conditions.firstIndex { $0["type"]?.stringValue == type }
        let previous = index.map { conditions[$0] }
        let text = value ? "True" : "False"
        let transition = previous?["status"]?.stringValue == text ? previous?["lastTransitionTime"] ?? .string(kubernetesTimestamp()) : .string(kubernetesTimestamp())
        let condition: JSONValue = [
            "type": .string(type), "status": .string(text), "reason": .string(reason), "message": .string(message),
            "lastTransitionTime": transition,
        ]
        if let index { conditions[index] = condition } else { conditions.append(condition) }
        status["conditions"] = .array(conditions)
    }

    /// The agent's certificate in a Cluster's status, a `CertificateExpiring` condition once less
    /// than a quarter of its lifetime is left (renewal is due at two thirds), and a metric.
    private static func describe(_ certificate: CertificateSummary, into status: inout [String: JSONValue], now: Date = Date()) {
        status["certificate"] = [
            "serial": .string(certificate.serial), "issuer": .string(certificate.issuer),
            "notBefore": .string(kubernetesTimestamp(certificate.notBefore)), "notAfter": .string(kubernetesTimestamp(certificate.notAfter)),
        ]
        let lifetime = certificate.notAfter.timeIntervalSince(certificate.notBefore)
        let left = certificate.notAfter.timeIntervalSince(now)
        let expiring = left < lifetime / 4
        let message = expiring
            ? "the agent's certificate (serial \(certificate.serial)) expires at \(kubernetesTimestamp(certificate.notAfter)) and was not renewed; "
                + "see the agent's certificates.renewal_* log events, or renew with `tetherctl certs renew --cluster`"
            : "the agent's certificate is valid until \(kubernetesTimestamp(certificate.notAfter))"
        setCondition("CertificateExpiring", expiring, reason: expiring ? "NotRenewed" : "Valid", message: message, in: &status)
    }

    private func recordHealth(_ cluster: String, _ health: Heartbeat.ClusterHealth) {
        let certificate = certificates[cluster]
        if let certificate {
            Gauge(label: "tether_hub_cluster_certificate_expiry_timestamp_seconds", dimensions: [("cluster", cluster)])
                .record(certificate.notAfter.timeIntervalSince1970)
        }
        updateClusterSoon(cluster, .health) { status in
            if let certificate { Self.describe(certificate, into: &status) }
            status["lastHeartbeatTime"] = .string(kubernetesTimestamp())
            status["kubernetesVersion"] = health.kubernetesVersion.map(JSONValue.string)
            status["nodeCount"] = health.nodeCount.map { .integer(Int64($0)) }
            status["apiReachable"] = .bool(health.apiReachable)
            if let allocatable = health.allocatable {
                status["allocatable"] = .object(allocatable.mapValues(JSONValue.integer))
            }
        }
    }

    // MARK: Cluster status

    /// What a pending change to a Cluster's status is about; a newer change of the same aspect
    /// replaces an older one not yet written.
    private enum ClusterStatusAspect: Hashable {
        case phase, agent, certificate, health, push, hold
    }

    /// Changes to Cluster status waiting to be written, per cluster and aspect, with the
    /// clusters in the order they first had one. Sessions coming and going and heartbeats
    /// never wait for these durable writes; one writer applies each cluster's pending changes
    /// in a single write, so a storm of thousands of sessions costs at most one write per
    /// cluster in flight, and memory of at most four changes per cluster.
    private var clusterStatusPending: [String: [ClusterStatusAspect: (inout [String: JSONValue]) -> Void]] = [:]
    private var clusterStatusQueue: [String] = []
    private var clusterStatusQueueHead = 0
    private var writingClusterStatus = false

    private func updateClusterSoon(
        _ cluster: String, _ aspect: ClusterStatusAspect, _ change: @escaping (inout [String: JSONValue]) -> Void
    ) {
        if clusterStatusPending[cluster] == nil { clusterStatusQueue.append(cluster) }
        clusterStatusPending[cluster, default: [:]][aspect] = change
        guard !writingClusterStatus else { return }
        writingClusterStatus = true
        Task { await self.writeClusterStatuses() }
    }

    private func writeClusterStatuses() async {
        while clusterStatusQueueHead < clusterStatusQueue.count {
            let cluster = clusterStatusQueue[clusterStatusQueueHead]
            clusterStatusQueueHead += 1
            guard let changes = clusterStatusPending.removeValue(forKey: cluster) else { continue }
            // Phase first: the other aspects do not depend on it, and it is what operators read.
            let ordered = [ClusterStatusAspect.phase, .agent, .certificate, .health, .push, .hold].compactMap { changes[$0] }
            await updateCluster(cluster) { status in
                for change in ordered { change(&status) }
            }
        }
        clusterStatusQueue.removeAll(keepingCapacity: clusterStatusQueue.count < 4096)
        clusterStatusQueueHead = 0
        writingClusterStatus = false
    }

    private func updateCluster(_ cluster: String, _ change: (inout [String: JSONValue]) -> Void) async {
        for _ in 0..<3 {
            guard var object = try? await store.get(clusterType, namespace: nil, name: cluster) else { return }
            var status = object["status"]?.objectMembers ?? [:]
            let before = status
            change(&status)
            if status == before { return }
            object[member: "status"] = .object(status)
            do {
                _ = try await store.updateStatus(object, as: clusterType, dryRun: false)
                return
            } catch {
                guard error.code == .conflict else { return }
            }
        }
    }

}

/// A time as Kubernetes writes it in objects: `2026-11-25T09:15:02Z`.
func kubernetesTimestamp(_ date: Date = Date()) -> String {
    date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: false).timeZone(separator: .omitted))
}

extension JSONValue {
    fileprivate var federatedReference: ObjectReference? {
        guard let apiVersion, let kind, let name else { return nil }
        return ObjectReference(apiVersion: apiVersion, kind: kind, namespace: namespace, name: name)
    }
}

extension ObjectReference {
    fileprivate func resourceType(_ registry: KindRegistry) -> ResourceType? {
        registry.kind(apiVersion: apiVersion, kind: kind).map { ResourceType(group: $0.group, resource: $0.plural, namespaced: $0.namespaced) }
    }
}
