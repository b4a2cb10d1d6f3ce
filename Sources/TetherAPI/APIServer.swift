import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import ServiceLifecycle
import TetherJSON
import TetherModel
import TetherPlugin
import TetherSecurity
import TetherStore
import TetherWire
import X509

/// How the API server listens and what it accepts.
public struct APIServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Largest request body read, in bytes (Kubernetes: 3 MiB).
    public var maximumBodyBytes: Int
    /// What an object may be: its size (etcd's 1.5 MiB) and nesting, checked on every body and
    /// after every patch.
    public var limits: ObjectLimits
    /// Requests in flight, watches per user, request and watch timeouts.
    public var requests: APIRequestLimits
    /// Caps on connections and on connections that have sent no request yet.
    public var connections: ListenerLimits
    /// An API connection with no request in flight is closed after this.
    public var idleTimeout: TimeAmount
    public var serverVersion: String
    /// Why a Pod's `log`, `exec`, `attach` and `portforward` have no answer here, sent with 400:
    /// no container runs in this process, and the reason says where one does.
    public var containerlessReason: String
    /// Whether a kubelet here ends deleted Pods: then, as kube-apiserver, a scheduled Pod that
    /// has not finished is deleted gracefully (marked for its grace period, gone when the
    /// kubelet deletes it with zero). The hub has no kubelet, so its Pods go at once.
    public var podsEndedByKubelet: Bool
    /// Whether a disruption controller here keeps PodDisruptionBudgets' status: only then is a
    /// Pod's `eviction` subresource served (``ResourceOperation/evict(dryRun:)``), and
    /// `kubectl drain` evicts; without it drain finds none in discovery and deletes.
    public var servesEviction: Bool
    /// Whether no deployment controller runs here (the hub): then a Deployment's revisions,
    /// kept as ReplicaSets, show the replicas its members run of each template.
    public var revisionsShowMemberCounts: Bool
    /// Whether creates are held to the namespace's LimitRanges (Pods defaulted and checked) and
    /// ResourceQuotas, whose usage a quota controller here counts (a simulated member). The
    /// hub's are templates for its members: each member enforces its own.
    public var enforcesNamespaceLimits: Bool
    /// What `metrics.k8s.io` serves (`kubectl top`); nil where nothing measures Pods (the hub).
    public var metrics: (any ResourceMetricsSource)?

    public init(
        host: String = "127.0.0.1",
        port: Int = 6443,
        maximumBodyBytes: Int = 3 * 1024 * 1024,
        limits: ObjectLimits = .default,
        requests: APIRequestLimits = APIRequestLimits(),
        connections: ListenerLimits = ListenerLimits(maximumConnections: 1_024, maximumConnectionsPerAddress: 512, maximumStrangers: 256),
        idleTimeout: TimeAmount = .seconds(120),
        serverVersion: String = "0.1.0",
        containerlessReason: String = "this server runs no containers",
        podsEndedByKubelet: Bool = false,
        servesEviction: Bool = false,
        revisionsShowMemberCounts: Bool = false,
        enforcesNamespaceLimits: Bool = false,
        metrics: (any ResourceMetricsSource)? = nil
    ) {
        self.host = host
        self.port = port
        self.maximumBodyBytes = maximumBodyBytes
        self.limits = limits
        self.requests = requests
        self.connections = connections
        self.idleTimeout = idleTimeout
        self.serverVersion = serverVersion
        self.containerlessReason = containerlessReason
        self.podsEndedByKubelet = podsEndedByKubelet
        self.servesEviction = servesEviction
        self.revisionsShowMemberCounts = revisionsShowMemberCounts
        self.enforcesNamespaceLimits = enforcesNamespaceLimits
        self.metrics = metrics
    }

    /// Largest object a client may write, in bytes.
    public var maximumObjectBytes: Int { limits.maximumBytes }
}

/// The per-request context: Hummingbird's, plus the connection (so the caller's certificate can
/// be read), the query as parsed once, and the caller once authenticated.
public struct APIRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    let channel: any Channel
    var query = RequestQuery(nil)
    var caller: Caller?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }
}

/// A Kubernetes-compatible API over a ``ResourceStore``, on Hummingbird 2 over TLS.
///
/// Independent of federation: the hub serves it over its store, and the simulated member
/// cluster will serve it over its own. Clients authenticate with a certificate from the CA
/// bundle (`spiffe://<td>/user/NAME`) or a bearer token; ``AccessPolicy`` gives their role.
public final class APIServer: Service, Sendable {
    private struct Credentials: Sendable {
        var material: TLSMaterial
        var presented: NIOSSLContextConfigurationOverride
        var verifier: PeerVerifier
    }

    private let configuration: APIServerConfiguration
    private let handler: ResourceHandler
    private let material: TLSMaterial
    /// What new handshakes present and verify against; replaced by ``reload(_:)``.
    private let credentials: NIOLockedValueBox<Credentials>
    private let logger: Logger
    private let onBound: @Sendable (Int) async -> Void
    private let gate: ConnectionGate
    /// Who may do what; ``updateAccess(_:)`` replaces it.
    public let access: AccessControl
    /// Serves the kinds CustomResourceDefinitions define; nil when the registry has no such kind.
    private let definitions: CustomResourceDefinitionController?
    /// Deletes a deleted namespace's contents before it.
    private let namespaces: NamespaceController
    /// At the hub: revisions that show what the members run.
    private let revisionCounts: RevisionCountFollower?
    private let garbageCollector: GarbageCollector

    public init(
        configuration: APIServerConfiguration,
        store: any ResourceStore,
        registry: KindRegistry,
        catalog: KindCatalog? = nil,
        material: TLSMaterial,
        revocations: RevocationList = RevocationList(),
        access: AccessControl,
        faults: FaultInjector? = nil,
        metrics: (@Sendable () -> [UInt8])? = nil,
        tunnel: (any MemberTunnel)? = nil,
        logger: Logger,
        onBound: @escaping @Sendable (Int) async -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.material = material
        self.credentials = NIOLockedValueBox(
            Credentials(
                material: material,
                presented: (try? TetherTLS.presentedCredentials(material)) ?? NIOSSLContextConfigurationOverride(),
                verifier: PeerVerifier(trustRoots: material.trustRoots, trustDomain: material.identity.trustDomain, revocations: revocations)
            )
        )
        self.logger = logger
        self.onBound = onBound
        self.access = access
        self.gate = ConnectionGate(name: "api", limits: configuration.connections, logger: logger)
        let catalog = catalog ?? KindCatalog(builtin: registry)
        self.definitions =
            catalog.servesDefinitions || catalog.servesCustomizations
            ? CustomResourceDefinitionController(store: store, catalog: catalog, logger: logger) : nil
        self.namespaces = NamespaceController(store: store, catalog: catalog, logger: logger)
        self.garbageCollector = GarbageCollector(
            store: store, catalog: catalog, podsEndedByKubelet: configuration.podsEndedByKubelet,
            logger: logger)
        self.revisionCounts = configuration.revisionsShowMemberCounts ? RevisionCountFollower(store: store, logger: logger) : nil
        self.handler = ResourceHandler(
            store: store,
            catalog: catalog,
            access: access,
            limiter: InFlightLimiter(limits: configuration.requests),
            trustDomain: material.identity.trustDomain,
            configuration: configuration,
            faults: faults,
            metrics: metrics,
            logger: logger,
            openAPIDocuments: OpenAPICache(),
            memberProxy: tunnel.map { MemberProxy(tunnel: $0, access: access, maximumBodyBytes: configuration.maximumBodyBytes, logger: logger) }
        )
    }

    /// Creates the `default` namespace if the store has none, as every Kubernetes API has one,
    /// and serves the kinds the stored CustomResourceDefinitions define.
    public func prepare() async throws {
        try await handler.ensureDefaultNamespace()
        try await definitions?.load()
    }

    public func run() async throws {
        try await prepare()
        try await withThrowingDiscardingTaskGroup { group in
            if let definitions { group.addTask { await definitions.run() } }
            group.addTask { await self.namespaces.run() }
            if let revisionCounts { group.addTask { await revisionCounts.run() } }
            group.addTask { await self.garbageCollector.run() }
            try await serve()
            group.cancelAll()
        }
    }

    private func serve() async throws {
        let router = APIRoutes.router(handler)
        var tls = try TetherTLS.apiServerConfiguration(material)
        let credentials = self.credentials
        // Each handshake presents the current certificate, so a reload needs no restart.
        tls.sslContextCallback = { _, promise in
            promise.succeed(credentials.withLockedValue { $0.presented })
        }
        let logger = self.logger
        let bound = OnceFlag()
        let (gate, idleTimeout) = (self.gate, configuration.idleTimeout)
        let verification = TLSChannelConfiguration(tlsConfiguration: tls) { certificates in
            let chain = try certificates.map { try TetherTLS.certificate(from: $0) }
            let verifier = credentials.withLockedValue { $0.verifier }
            switch await verifier.verify(chain: chain) {
            case .trusted: return .certificateVerified
            case .refused(let refusal):
                logger.warning(
                    "API client certificate refused",
                    metadata: ["tether.event": "api.refused", "tether.refusal": "\(refusal.code.rawValue)", "tether.reason": "\(refusal.reason)"]
                )
                return .failed
            }
        }
        // Every connection passes the listener's gate before TLS, and counts as authenticated
        // (for the gate's caps) once its first request arrives.
        let server = HTTPServerBuilder { responder in
            let http = HTTP1Channel(
                responder: responder,
                configuration: .init(additionalChannelHandlers: [FirstRequestMarker(gate: gate)], idleTimeout: idleTimeout)
            )
            return GatedChannel(base: try TLSChannel(http, configuration: verification), gate: gate)
        }
        let app = Application(
            router: router,
            server: server,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil, backlog: 1024),
            onServerRunning: { [onBound, logger] channel in
                bound.mark()
                let port = channel.localAddress?.port ?? 0
                logger.info("API server ready", metadata: ["tether.event": "api.ready", "tether.port": "\(port)"])
                await onBound(port)
            },
            logger: logger
        )
        do {
            try await app.run()
        } catch  where !bound.isMarked {
            throw APIListenFailure(
                description: "cannot serve the API on \(configuration.host):\(configuration.port): \(error); choose another address"
            )
        }
    }
}

extension APIServer {
    /// New handshakes present `material`'s certificate and trust its CA bundle; open
    /// connections keep theirs. Checked first (hub identity, valid now); on failure nothing changes.
    public func reload(_ material: TLSMaterial, now: Date = Date()) throws(SecurityError) {
        try material.requireValid(at: now, describing: "the new API certificate")
        let presented = try TetherTLS.presentedCredentials(material)
        credentials.withLockedValue { current in
            current = Credentials(
                material: material,
                presented: presented,
                verifier: PeerVerifier(
                    trustRoots: material.trustRoots, trustDomain: material.identity.trustDomain, revocations: current.verifier.revocations
                )
            )
        }
    }

    /// Open connections, and those that have not sent a request yet.
    public var connectionCounts: (open: Int, strangers: Int) { gate.counts }

    /// Client certificates `revocations` covers are refused from the next handshake on.
    public func updateRevocations(_ revocations: RevocationList) {
        credentials.withLockedValue { current in
            current.verifier = PeerVerifier(
                trustRoots: current.material.trustRoots, trustDomain: current.material.identity.trustDomain, revocations: revocations
            )
        }
    }
}

/// The API server could not start listening, with the address and what to do.
public struct APIListenFailure: Error, CustomStringConvertible {
    public var description: String
}
