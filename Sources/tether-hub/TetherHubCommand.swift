import ArgumentParser
import BuiltinPlugins
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import TetherAPI
import TetherHub
import TetherObservability
import TetherPlugin
import TetherSecurity
import TetherStore
import TetherStorePostgres
import TetherWire
import UnixSignals

@main
struct TetherHubCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tether-hub",
        abstract: "Run the Tether hub: the federation's control point, which member-cluster agents dial into.",
        discussion: """
            Reads its certificates from the federation directory made by `tetherctl init`, serves the \
            Kubernetes-compatible API (for kubectl, context `federation`) over TLS, listens for agents on \
            mutual TLS 1.3, keeps its objects in DIR/hub.db (or PostgreSQL, --store), and writes the ports it bound to \
            DIR/hub.ports.json. API users and roles come from DIR/access.json (default: the admin user). \
            It watches hub.crt, hub.key, ca.crt and revoked.json in DIR and reloads them when they change \
            and on SIGHUP, for both listeners: new handshakes use the new certificate (sessions continue; \
            a bad set is refused and logged), a revoked certificate's session ends at once, and a new CA \
            bundle is sent to every agent. Agents renew their certificates over their sessions; the hub \
            signs with DIR/ca.key, for the session's own identity only. Stops cleanly on SIGTERM or \
            SIGINT, telling connected agents to come back later.
            """
    )

    @Option(
        name: .long,
        help: "A directory of out-of-process plugins, one folder per plugin with a plugin.json (docs/plugins.md); none by default.")
    var pluginDir: String?

    @Option(name: .long, help: "The federation directory (from `tetherctl init`).")
    var dir: String

    @Option(name: .long, help: "Address of the Kubernetes API listener; ':0' picks a free port.")
    var apiListen: String = "127.0.0.1:\(FederationDirectory.defaultAPIPort)"

    @Option(name: .long, help: "Address of the agent listener; ':0' picks a free port.")
    var agentListen: String = "127.0.0.1:\(FederationDirectory.defaultAgentPort)"

    @Option(name: .long, help: "Seconds between agent heartbeats; a session silent for three is closed.")
    var heartbeatInterval: Double = 10

    @Option(
        name: .long,
        help: """
            Where the hub keeps its objects: `sqlite` (DIR/hub.db, the default) or a PostgreSQL URL, \
            postgres://USER@HOST:PORT/DATABASE?sslmode=verify-full (password from PGPASSWORD) or \
            postgres://USER@/DATABASE?host=/socket/directory. Several hubs may share one database: each serves \
            the API; one drives the federation (agents, pushes, timers), the others stand by and take over when it goes \
            (docs/ha.md).
            """)
    var store = "sqlite"

    @Option(
        name: .long,
        help: """
            With --store postgres: active-hub (the default: one hub holds every agent session, the others stand by) or \
            every-hub (each hub holds the sessions of the agents that reach it and pushes to them; one leads the once-only \
            work). docs/ha.md.
            """)
    var agentSessions: String = "active-hub"

    @Option(name: .long, help: "Changes kept for watches to resume from; an older resourceVersion gets 410 Expired.")
    var watchHistory: Int = 10_000

    @Option(name: .long, help: "Seconds a cluster may stay without its agent before its divided replicas move to the other clusters.")
    var rebalanceAfter: Double = 60

    @Option(name: .long, help: "Seconds without its agent after which a cluster is Offline rather than NotReady.")
    var offlineAfter: Double = 300

    @Option(
        name: .long,
        help:
            "Longest lifetime of a certificate the hub signs for a renewing agent (otherwise it keeps the lifetime of the one it replaces), e.g. 8760h.",
        transform: parseDurationArgument)
    var maxAgentCertificateLifetime: Duration = .seconds(365 * 86_400)

    @Option(
        name: .long,
        help:
            "The agent port's TLS library: boringssl (swift-nio-ssl, the default) or openssl (the system's libssl: session tickets for reconnecting agents, buffers released when idle)."
    )
    var agentTls: String = AgentPortTLS.boringSSL.rawValue

    @Flag(
        name: .long,
        help:
            "Register a cluster when its agent first connects, without `tetherctl join` (demo and development only: any certificate from the federation CA joins)."
    )
    var autoJoin = false

    @Option(
        name: .long,
        help: "Where the DNS zone file goes when the federation has a DNS zone (`tetherctl init --dns-zone`); default DIR/dns.zone.")
    var dnsZoneFile: String?

    @Option(
        name: .long,
        help:
            "Seconds after start during which DNS records wait for every agent to report again (default: three heartbeat intervals).")
    var dnsStartupGrace: Double?

    @OptionGroup(title: "Limits (docs/limits.md)") var limits: HubLimitOptions

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard AgentPortTLS(rawValue: agentTls) != nil else {
            throw ValidationError("--agent-tls \(agentTls): say boringssl or openssl")
        }
        guard heartbeatInterval >= 0.05, heartbeatInterval <= 3600 else {
            throw ValidationError("--heartbeat-interval must be between 0.05 and 3600 seconds")
        }
        if store != "sqlite" {
            do {
                _ = try PostgresLocation(url: store)
            } catch {
                throw ValidationError("--store: \(error)")
            }
        }
        guard ["active-hub", "every-hub"].contains(agentSessions) else {
            throw ValidationError("--agent-sessions \(agentSessions): say active-hub or every-hub")
        }
        if agentSessions == "every-hub", store == "sqlite" {
            throw ValidationError("--agent-sessions every-hub needs a shared store: give --store postgres://... (a SQLite hub is alone)")
        }
        guard watchHistory >= 1 else { throw ValidationError("--watch-history must be at least 1") }
        if let dnsStartupGrace, !(0...3600).contains(dnsStartupGrace) {
            throw ValidationError("--dns-startup-grace must be between 0 and 3600 seconds")
        }
        guard rebalanceAfter >= 0.1, offlineAfter >= 0.1 else {
            throw ValidationError("--rebalance-after and --offline-after must be at least 0.1 seconds")
        }
        try limits.validate()
    }

    func run() async throws {
        logging.bootstrap()
        let metrics = MetricsExport.bootstrapPrometheus()
        let logger = Logger(label: "tether.hub")
        let directory = FederationDirectory(path: dir)
        let agentAddress = try HostAndPort(parsing: agentListen)
        let apiAddress = try HostAndPort(parsing: apiListen)
        let config = try directory.loadConfig()
        let material = try TLSMaterial.load(
            certificate: directory.hubCertificatePath,
            key: directory.hubKeyPath,
            trustBundle: directory.caCertificatePath
        )
        guard case .hub = material.identity.role else {
            throw ValidationError("\(directory.hubCertificatePath) is for \(material.identity), not the hub")
        }
        let revocations = try RevocationList.load(from: directory.revocationListPath)
        let ledger = try RenewalLedger(path: directory.renewalLedgerPath)
        let store = try await openStore(logger: logger)
        // Member-proxy requests for clusters whose agents are on another hub go to that hub.
        let sessions = SessionRegistry()
        let everyHub = agentSessions == "every-hub"
        let forwarding = ActiveHubForwarding(
            local: SessionTunnels(registry: sessions), store: store, material: material, sessionsOnEveryHub: everyHub, logger: logger)
        let advertisedHost = Self.advertisedHost(apiAddress.host, hubHosts: config.hubHosts)
        let ownAPI = Mutex<String?>(nil)
        let ports = PortsFile(directory: directory, logger: logger) { ready in
            let address = "https://\(advertisedHost):\(ready.api ?? 0)"
            ownAPI.withLock { $0 = address }
            // With agents on every hub, each Cluster's status names the API of the hub holding its session.
            if everyHub { forwarding.own(apiAddress: address) } else { await forwarding.announce(apiAddress: address) }
        }
        // The store belongs to this federation (a hub pointed at another's database stops here),
        // and its epoch tells agents whether it is the store they last heard from.
        let federationUID = try directory.federationUID()
        try await store.claimFederation(federationUID)
        let storeEpoch = try await store.epoch()
        let (agentConnections, apiConnections) = limits.listenerLimits(descriptors: ListenerLimits.descriptorLimit)
        logger.info(
            "connection limits",
            metadata: [
                "tether.event": "hub.limits", "tether.descriptors": "\(ListenerLimits.descriptorLimit)",
                "tether.agent_connections": "\(agentConnections.maximumConnections)",
                "tether.api_connections": "\(apiConnections.maximumConnections)",
            ]
        )
        var federation = FederationSettings()
        federation.rebalanceAfter = .milliseconds(Int64(rebalanceAfter * 1000))
        federation.offlineAfter = .milliseconds(Int64(max(offlineAfter, rebalanceAfter) * 1000))
        // On a shared store the revisions live in it, for whichever hub drives the federation next.
        if store is SQLiteResourceStore { federation.revisionsPath = directory.federationRevisionsPath } else { federation.revisionsInStore = true }
        federation.autoJoin = autoJoin
        if let dns = config.dns {
            let grace = dnsStartupGrace ?? heartbeatInterval * 3
            federation.dns = DNSSettings(
                dns: dns, zoneFilePath: dnsZoneFile ?? directory.dnsZoneFilePath, startupGrace: .milliseconds(Int64(grace * 1000)))
            logger.info(
                "DNS records are published",
                metadata: [
                    "tether.event": "dns.on", "tether.zone": "\(dns.zone)", "tether.federation_name": "\(dns.federation)",
                    "tether.ttl": "\(dns.ttl)", "tether.path": "\(dnsZoneFile ?? directory.dnsZoneFilePath)",
                ])
        } else {
            logger.info(
                "DNS records are not published: the federation has no DNS zone; set one with `tetherctl dns set --dir \(dir) --dns-zone ZONE` and restart the hub",
                metadata: ["tether.event": "dns.off"])
        }
        // One catalog for the API and the engine: a kind a CustomResourceDefinition adds is served and federated.
        let pluginHosts = try ExternalPluginProcess.hosts(in: pluginDir) { event, message in
            logger.notice("\(message)", metadata: ["tether.event": "\(event)"])
        }
        let catalog = KindCatalog(
            builtin: BuiltinPlugins.hub,
            external: pluginHosts,
            interpreterFailures: InterpreterFailures { customization, operation, message in
                logger.warning(
                    "an interpreter script failed; its kind keeps the built-in behaviour for this call",
                    metadata: [
                        "tether.event": "interpreter.failed", "tether.customization": "\(customization)", "tether.operation": "\(operation)",
                        "tether.error": "\(message)",
                    ])
            })
        if let warning = AccessPolicy.permissionWarning(at: directory.accessPolicyPath) {
            logger.warning("\(warning)", metadata: ["tether.event": "access.loose_permissions"])
        }
        let access = AccessControl(try AccessPolicy.load(from: directory.accessPolicyPath))
        // The API's member proxy reaches the sessions this hub holds; a hub that does not drive
        // holds none and sends the request on to the one that does.
        let api = APIServer(
            configuration: APIServerConfiguration(
                host: apiAddress.host, port: apiAddress.port, requests: limits.requestLimits, connections: apiConnections,
                containerlessReason:
                    "the hub runs no containers: a federated Pod runs in each cluster it is placed in; read its logs in one of them "
                    + "through the hub's member proxy, https://HUB/clusters/CLUSTER/proxy (the CLUSTER-via-hub context of "
                    + "`tetherctl demo`), and exec, attach or port-forward with that cluster's own kubeconfig",
                revisionsShowMemberCounts: true
            ),
            store: store,
            registry: BuiltinPlugins.hub,
            catalog: catalog,
            material: material,
            revocations: revocations,
            access: access,
            metrics: metrics,
            tunnel: forwarding,
            logger: logger,
            onBound: { port in await ports.record(api: port) }
        )
        // The stored definitions first: the engine's first lists must include their kinds' objects.
        try await api.prepare()
        let agentListener = AgentListenerSlot()
        let reloader = CertificateReloader(
            directory: directory,
            targets: [
                .init(
                    name: "agent listener",
                    reload: { material throws(SecurityError) in try agentListener.current?.reload(material) },
                    revoke: { list in agentListener.current?.updateRevocations(list) ?? [] }),
                .init(
                    name: "API",
                    reload: { material throws(SecurityError) in
                        try api.reload(material)
                        forwarding.update(material)
                    },
                    revoke: { list in
                        api.updateRevocations(list)
                        return []
                    }
                ),
            ],
            files: [
                .init(path: directory.accessPolicyPath) { [directory] in
                    Self.reloadAccess(access, from: directory.accessPolicyPath, logger: logger)
                }
            ],
            logger: logger
        )
        // Every hub serves the API from the start, from the shared store; driving the federation
        // (the engine, the agent port, DNS) waits for the hub lock on PostgreSQL (decision 62).
        var services: [any Service] = [api, reloader]
        if !pluginHosts.isEmpty { services.append(TaskService { await ExternalPluginProcess.runAll(pluginHosts) }) }
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        let settings = federation
        let (heartbeatInterval, writeStallTimeout, tunnelLimits) = (heartbeatInterval, limits.writeStallTimeout, limits.tunnelLimits)
        let (agentTLS, maxAgentCertificateLifetime) = (AgentPortTLS(rawValue: agentTls) ?? .boringSSL, maxAgentCertificateLifetime)
        let hubLockTaker = HubLockTaker(store: self.store == "sqlite" ? nil : self.store, agentAddress: agentAddress)
        let hubName = "\(ProcessInfo.processInfo.hostName.split(separator: ".").first ?? "hub")-\(UUID().uuidString.prefix(8).lowercased())"
        let drive = { @Sendable () async throws -> Void in
            // With agents on every hub, this hub drives its sessions at once and leads when it gets the lock.
            let presence = try await everyHub ? PostgresHubPresence.join(PostgresLocation(url: self.store), hub: hubName, logger: logger) : nil
            let hubLock = everyHub ? nil : try await hubLockTaker.take(logger: logger)
            // Material and revocations as they are now: a standby may have waited through reloads.
            let material = try TLSMaterial.load(
                certificate: directory.hubCertificatePath, key: directory.hubKeyPath, trustBundle: directory.caCertificatePath)
            let revocations = try RevocationList.load(from: directory.revocationListPath)
            // This run's history mark, taken before anything of the run is written: every revision an
            // earlier run sent is at most it. The store then moves past it, so the run's own revisions
            // are above any an agent could hold from before.
            let historyThrough = try await store.currentResourceVersion()
            _ = try await store.raiseResourceVersion(to: historyThrough + 1)
            var run = HubRun(historyThrough: historyThrough)
            var settings = settings
            if let presence {
                // Agents move between hubs that live together without seeming to go back in time: one run for all of them.
                let shared = try await presence.sharedRun(proposed: (run.id, run.historyThrough))
                run = HubRun(id: shared.id, historyThrough: shared.historyThrough)
                settings.shared = SharedSessions(
                    hub: hubName, api: { ownAPI.withLock { $0 } }, liveHubs: { hubs in try await presence.alive(among: hubs) })
            }
            logger.info(
                "driving the federation",
                metadata: [
                    "tether.event": "hub.store", "tether.federation": "\(federationUID)", "tether.epoch": "\(storeEpoch)",
                    "tether.run": "\(run.id)", "tether.history_through": "\(historyThrough)",
                    "tether.hub_name": "\(everyHub ? hubName : "")",
                ])
            let engine = FederationEngine(store: store, catalog: catalog, settings: settings, logger: logger)
            let listener = try AgentListener(
                configuration: AgentListenerConfiguration(
                    address: agentAddress,
                    heartbeatInterval: .milliseconds(Int64(heartbeatInterval * 1000)),
                    connections: agentConnections,
                    writeStallTimeout: .milliseconds(Int64(writeStallTimeout * 1000)),
                    federationUID: federationUID,
                    storeEpoch: storeEpoch,
                    run: run,
                    tunnel: tunnelLimits
                ).withTLS(agentTLS),
                material: material,
                revocations: revocations,
                ledger: ledger,
                registry: sessions,
                observer: engine,
                signer: RenewalSigner(directory: directory, maximumLifetime: maxAgentCertificateLifetime, ledger: ledger, logger: logger),
                logger: logger,
                onBound: { port in await ports.record(agent: port) }
            )
            try await engine.prepare()
            agentListener.current = listener
            var driving: [any Service] = [engine, listener]
            if let dns = engine.dnsPublishing, !everyHub { driving.append(dns) }
            if let hubLock { driving.append(HeldConnectionWatch.lock(hubLock, logger: logger)) }
            if let presence {
                driving.append(HeldConnectionWatch.presence(presence, logger: logger))
                driving.append(SharedLeadership(taker: hubLockTaker, engine: engine, group: group, logger: logger))
            }
            for service in driving { await group.addServiceUnlessShutdown(service) }
        }
        try await withThrowingTaskGroup(of: Bool.self) { tasks in
            tasks.addTask {
                try await group.run()
                return true
            }
            tasks.addTask {
                try await drive()
                return false
            }
            // The group ends the hub; a standby still waiting for the lock then stops waiting.
            while let groupEnded = try await tasks.next() {
                if groupEnded {
                    tasks.cancelAll()
                    return
                }
            }
        }
    }
}

extension TetherHubCommand {
    /// The host other hubs reach this hub's API at: the listen address, unless it is a wildcard,
    /// then the first name the hub certificate is issued for.
    static func advertisedHost(_ listen: String, hubHosts: [String]) -> String {
        let host = ["", "0.0.0.0", "::", "[::]"].contains(listen) ? (hubHosts.first ?? "127.0.0.1") : listen
        return host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
    }

    /// The store `--store` names.
    func openStore(logger: Logger) async throws -> any ResourceStore {
        guard store != "sqlite" else {
            return try SQLiteResourceStore(path: FederationDirectory(path: dir).databasePath, retainedEvents: watchHistory)
        }
        return try await PostgresResourceStore.open(try PostgresLocation(url: store), retainedEvents: watchHistory, logger: logger)
    }

    /// Rereads `access.json`: a good file replaces the policy in force; a bad one (or a file
    /// that went away) is refused and the policy in force stays.
    static func reloadAccess(_ access: AccessControl, from path: String, logger: Logger) {
        guard FileManager.default.fileExists(atPath: path) else {
            logger.error(
                "access.json is gone; the access policy in force stays until a valid file is written",
                metadata: ["tether.event": "access.reload_refused", "tether.reason": "\(path) does not exist"]
            )
            return
        }
        do {
            let policy = try AccessPolicy.load(from: path)
            access.replace(with: policy)
            if let warning = AccessPolicy.permissionWarning(at: path) {
                logger.warning("\(warning)", metadata: ["tether.event": "access.loose_permissions"])
            }
            logger.notice(
                "access policy reloaded",
                metadata: ["tether.event": "access.reloaded", "tether.users": "\(policy.users.count)", "tether.tokens": "\(policy.tokens.count)"]
            )
        } catch {
            logger.error(
                "access.json not reloaded; the policy in force stays",
                metadata: ["tether.event": "access.reload_refused", "tether.reason": "\(error)"]
            )
        }
    }
}
