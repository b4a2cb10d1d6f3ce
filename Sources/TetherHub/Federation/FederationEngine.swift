import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle
import TetherFiles
import TetherJSON
import TetherModel
import TetherPlugin
import TetherSecurity
import TetherStore
import TetherWire

/// How the engine reacts to clusters that go quiet, and where it keeps what survives a restart.
public struct FederationSettings: Sendable {
    /// A cluster without an agent session this long has its divided replicas moved to the
    /// others, and gets them back when its agent returns.
    public var rebalanceAfter: Duration = .seconds(60)
    /// A cluster without an agent session this long is `Offline` (before that, `NotReady`).
    public var offlineAfter: Duration = .seconds(300)
    /// Where each cluster's revision and a digest of its desired set are kept across restarts
    /// (`D/federation-revisions.json`); nil keeps them in memory only.
    public var revisionsPath: String?
    /// Keep them in the store instead (``ResourceStore/document(_:)``), where every hub on a
    /// shared store finds them: a standby that takes over resumes each agent with a delta.
    public var revisionsInStore = false
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
    /// Where DNS records of federated Services and Ingresses are published; nil publishes none.
    public var dns: DNSSettings?
    /// Agents hold sessions on every hub of a shared store (docs/ha.md); nil: one hub drives the federation.
    public var shared: SharedSessions?

    public init() {}

    var state: FederationState.Settings {
        FederationState.Settings(
            rebalanceAfter: rebalanceAfter, offlineAfter: offlineAfter, unjoinPruneTimeout: unjoinPruneTimeout, chunkBytes: chunkBytes,
            retryBackoff: retryBackoff, autoJoin: autoJoin, persistsRevisions: revisionsPath != nil || revisionsInStore,
            hub: shared?.hub
        )
    }
}

/// What an engine needs to hold agent sessions beside other hubs on one store.
public struct SharedSessions: Sendable {
    /// This hub's name in the Clusters' session records: unique per hub process.
    public var hub: String
    /// This hub's API address (`https://HOST:PORT`) once its listener is bound, where the others
    /// send member-proxy requests for the clusters whose sessions it holds.
    public var api: @Sendable () -> String?
    /// Which of the named hubs are alive now (each holds a presence lock in the store).
    public var liveHubs: @Sendable (Set<String>) async throws -> Set<String>

    public init(hub: String, api: @escaping @Sendable () -> String?, liveHubs: @escaping @Sendable (Set<String>) async throws -> Set<String>) {
        self.hub = hub
        self.api = api
        self.liveHubs = liveHubs
    }
}

/// The federation engine's shell: it follows the store's collections and the agents' sessions,
/// hands each event to ``FederationState``, and performs the actions it returns (pushes, store
/// writes, timers, logs, metrics). Every decision is the state's.
public actor FederationEngine: Service, HubSessionObserver {
    let store: any ResourceStore
    /// The kinds served now; custom kinds come and go with their definitions.
    let catalog: KindCatalog
    var registry: KindRegistry { catalog.registry }
    let logger: Logger
    let settings: FederationSettings
    var state: FederationState
    let writers: FederationWriters
    let measures = FederationMeasures()
    let dnsPublisher: DNSPublisher?

    /// Each session's link to its agent, by session ID.
    var links: [String: AgentLink] = [:]
    /// Clusters whose agents may hold a session, readable from event loops at handshake time.
    private let admitted = NIOLockedValueBox<Set<String>>([])

    func admit(_ cluster: String, _ admitted: Bool) {
        self.admitted.withLockedValue { set in
            if admitted { set.insert(cluster) } else { set.remove(cluster) }
        }
    }

    func enqueue(_ item: FederationWork) {
        work.yield(item)
    }

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
    /// I/O the actions ask for, started as children of the engine's task group.
    private nonisolated let work: AsyncStream<FederationWork>.Continuation
    private let workStream: AsyncStream<FederationWork>

    public init(store: any ResourceStore, registry: KindRegistry, settings: FederationSettings = FederationSettings(), logger: Logger) {
        self.init(store: store, catalog: KindCatalog(builtin: registry), settings: settings, logger: logger)
    }

    /// An engine over the kinds `catalog` serves, following custom kinds as definitions add them.
    /// The catalog must hold the stored definitions before ``run()``, so the first lists include them.
    public init(store: any ResourceStore, catalog: KindCatalog, settings: FederationSettings = FederationSettings(), logger: Logger) {
        self.store = store
        self.catalog = catalog
        self.logger = logger
        self.settings = settings
        self.state = FederationState(settings: settings.state, registry: catalog.registry)
        let dnsPublisher = settings.dns.map { DNSPublisher(settings: $0, store: store, logger: logger) }
        self.dnsPublisher = dnsPublisher
        self.writers = FederationWriters(store: store, catalog: catalog, dnsNames: dnsPublisher?.names, hub: settings.shared?.hub, logger: logger)
        (sessionEventStream, sessionEvents) = AsyncStream.makeStream(
            of: SessionEvent.self, bufferingPolicy: .bufferingOldest(Self.sessionEventCapacity))
        (workStream, work) = AsyncStream.makeStream(of: FederationWork.self)
    }

    // MARK: Sessions (called on event loops; work moves onto the actor)

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
                links[sessionID] = AgentLink(channel: channel)
                handle(.sessionEstablished(cluster: cluster, session: sessionID, hello: hello, at: Date()))
            case .ended(let cluster, let sessionID):
                links[sessionID] = nil
                handle(.sessionEnded(cluster: cluster, session: sessionID, at: Date()))
            case .received(let message, let cluster):
                handle(.received(message, cluster: cluster, at: Date()))
            case .certificate(let certificate, let cluster):
                handle(.certificate(certificate, cluster: cluster, at: Date()))
            }
        }
    }

    public nonisolated func refusal(cluster: String) -> String? {
        if settings.autoJoin || admitted.withLockedValue({ $0.contains(cluster) }) { return nil }
        return "cluster \(cluster) has not joined this federation, or was unjoined; run `tetherctl join \(cluster)` at the hub"
    }

    /// Reads the joined clusters before the agent listener opens, so admission is right from the first handshake.
    public func prepare() async throws {
        let (clusters, _) = try await StoreListWatch(store: store, type: FederationState.clusterType).list()
        let names = clusters.filter { $0.deletionTimestamp == nil }.compactMap(\.name)
        admitted.withLockedValue { $0.formUnion(names) }
    }

    // MARK: Running

    /// The collections the engine follows: clusters, both policies, every propagated kind.
    private static func collections(of registry: KindRegistry, shared: Bool) -> [(FederationCollection, ResourceType)] {
        (shared ? [(.propagations, PropagationRecord.type)] : []) + [
            (.clusters, FederationState.clusterType),
            (.propagationPolicies, ResourceType(group: "core.tether.io", resource: "propagationpolicies", namespaced: true)),
            (.overridePolicies, ResourceType(group: "core.tether.io", resource: "overridepolicies", namespaced: true)),
        ] + propagatedTypes(of: registry).map { (.federated($0), $0) }
    }

    private static func propagatedTypes(of registry: KindRegistry) -> [ResourceType] {
        registry.kinds.filter { registry.plugin(apiVersion: $0.apiVersion, kind: $0.kind).propagates($0) }.map { kind in
            ResourceType(group: kind.group, resource: kind.plural, namespaced: kind.namespaced)
        }
    }

    public func run() async throws {
        let revisions = await readRevisions()
        // With agents on every hub the engine follows the records, and takes them from its first list.
        let storedReports = settings.shared == nil ? await readStoredReports() : []
        let kindChanges = catalog.changes()
        let collections = Self.collections(of: registry, shared: settings.shared != nil)
        handle(
            .started(storeVersion: try await store.currentResourceVersion(), revisions: revisions ?? [:], collections: collections.count, at: Date()))
        handle(.reportsStored(storedReports))
        await withDiscardingTaskGroup { group in
            group.addTask { await self.consumeSessionEvents() }
            group.addTask { await self.writers.run() }
            group.addTask {
                for await claim in self.writers.claimed {
                    await self.handle(.sessionClaimed(cluster: claim.cluster, session: claim.session, epoch: claim.epoch))
                }
            }
            for (collection, type) in collections {
                group.addTask { await self.follow(collection, type) }
            }
            // A kind a CustomResourceDefinition adds is followed from then on. One whose
            // definition goes keeps its follower: its objects were deleted first, and a kind
            // defined again is followed already.
            group.addTask {
                var followed = Set(collections.map(\.1))
                for await registry in kindChanges {
                    await self.handle(.kindsChanged(registry))
                    for type in Self.propagatedTypes(of: registry) where followed.insert(type).inserted {
                        await self.enqueue(.follow(type))
                    }
                }
            }
            group.addTask {
                // Ends on graceful shutdown, and on cancellation (another service of the group failed).
                try? await gracefulShutdown()
                await self.stop()
            }
            for await item in workStream {
                group.addTask { await self.perform(item) }
            }
            group.cancelAll()
        }
    }

    /// Writes what must outlive the process, then ends the engine's work.
    private func stop() async {
        for action in state.on(.stopping) {
            if case .writeRevisions(let records) = action { await writeRevisions(records) } else { perform(action) }
        }
        sessionEvents.finish()
        writers.finish()
        work.finish()
    }

    /// Lists then watches one collection of the store for as long as the engine runs.
    func follow(_ collection: FederationCollection, _ type: ResourceType) async {
        var first = true
        await Informer(StoreListWatch(store: store, type: type), backoff: settings.retryBackoff).run { event in
            switch event {
            case .listed(let objects, let version):
                self.handle(.listed(collection, objects: objects, version: UInt64(version) ?? 0, first: first, at: Date()))
                first = false
            case .changed(.upserted(let object, let version)):
                self.handle(.changed(collection, object: object, deleted: false, version: version.flatMap(UInt64.init) ?? 0, at: Date()))
            case .changed(.deleted(let object, let version)):
                self.handle(.changed(collection, object: object, deleted: true, version: version.flatMap(UInt64.init) ?? 0, at: Date()))
            case .changed(.bookmark):
                break
            case .failed(let error, let failures, let delay):
                // A store that fails is given time (a store error repeated in a tight loop was
                // 190,000 log lines in 12 s).
                self.logger.log(
                    level: failures > 1 ? .debug : .warning, "federation watch ended; listing again",
                    metadata: [
                        "tether.event": "federation.watch_restart", "tether.resource": "\(type)", "tether.error": "\(error)",
                        "tether.failures": "\(failures)",
                        "tether.retry_in_ms": "\(delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)",
                    ]
                )
            }
        }
    }

    /// DNS publishing as a service of its own, when the federation has a DNS zone: list it after
    /// the agent listener, so that on shutdown it stops before the listener ends the sessions
    /// (a stopping hub must not withdraw every record because its own agents left).
    public nonisolated var dnsPublishing: (any Service)? {
        dnsPublisher.map { DNSPublishing(publisher: $0, engine: self) }
    }

    /// With agents on every hub: this hub took the hub lock, and now does what is done once.
    public func lead() {
        handle(.leading(at: Date()))
    }

    /// DNS's snapshot of the state; the publisher builds its view from it off the actor.
    func dnsInputs() -> DNSInputs { state.dnsInputs() }

    /// One event through the state, and its actions performed.
    func handle(_ event: FederationEvent) {
        for action in state.on(event) { perform(action) }
        if let dnsPublisher, event.mayChangeDNS { dnsPublisher.wake() }
    }
}

/// Runs the engine's ``DNSPublisher`` until graceful shutdown.
struct DNSPublishing: Service {
    let publisher: DNSPublisher
    let engine: FederationEngine

    func run() async throws {
        await withGracefulShutdownHandler {
            await publisher.run(
                view: { await engine.dnsInputs().view() }, renamed: { references in await engine.handle(.statusAffected(references)) })
        } onGracefulShutdown: {
            publisher.finish()
        }
    }
}
