import ArgumentParser
import BuiltinPlugins
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import TetherAgent
import TetherModel
import TetherObservability
import TetherPlugin
import TetherSecurity
import TetherWire
import UnixSignals

@main
struct TetherAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tether-agent",
        abstract: "Run the Tether agent of one member cluster: it dials out to the hub and applies what the hub sends.",
        discussion: """
            The agent only ever makes outbound connections: mutual TLS 1.3 to the hub addresses in \
            BUNDLE/agent.json, verifying the hub's certificate and host name against BUNDLE/ca.crt, and \
            HTTPS to the member's Kubernetes API (--kubeconfig, or the pod's service account when \
            KUBERNETES_SERVICE_HOST is set). After any disconnect it reconnects with exponential backoff \
            and full jitter, and meanwhile keeps reconciling the desired state saved in --state-dir. \
            Objects it applies carry tether.io/managed-by=CLUSTER; it prunes and repairs only those. \
            It renews its certificate over the session once --renew-at of its lifetime has passed (and at \
            once after a CA rollover), writing the new pair into BUNDLE atomically; it reloads \
            tls.crt, tls.key and ca.crt when they change and on SIGHUP (a bad set is refused and logged; \
            the session continues). Stops cleanly on SIGTERM or SIGINT.
            """
    )

    @Option(name: .long, help: "The agent bundle directory (from `tetherctl certs issue` or `tetherctl join`).")
    var bundle: String

    @Option(name: .long, help: "Hub agent-listener address (host:port), overriding agent.json. Repeatable.")
    var hub: [String] = []

    @Option(
        name: .long,
        help:
            "HTTP proxy to reach the hub (and the member's API) through, http://HOST:PORT or https://HOST:PORT; 'none' ignores the environment. Default: HTTPS_PROXY, then ALL_PROXY."
    )
    var proxy: String?

    @Option(name: .long, help: "File holding the proxy's user:password (basic authentication); never give them on the command line.")
    var proxyCredentialsFile: String?

    @Option(name: .long, help: "PEM file of the CA(s) an https:// proxy's certificate chains to (default: the system's roots).")
    var proxyCa: String?

    @Option(name: .long, help: "Hosts reached directly, as NO_PROXY lists them (name, .domain, IP, CIDR, host:port, *). Default: NO_PROXY.")
    var noProxy: String?

    @Option(name: .long, help: "Seconds before the first reconnection attempt may start (the backoff's base).")
    var backoffInitial: Double = 0.5

    @Option(name: .long, help: "Longest wait between reconnection attempts, in seconds (the backoff's cap).")
    var backoffMax: Double = 30

    @Option(name: .long, help: "Kubeconfig of the member cluster the agent applies to.")
    var kubeconfig: String?

    @Option(name: .long, help: "Context in --kubeconfig (default: its current-context).")
    var context: String?

    @Flag(name: .long, help: "Use the pod's service account (KUBERNETES_SERVICE_HOST/PORT and its token and CA).")
    var inCluster = false

    @Flag(name: .long, help: "Hold the session without a member cluster (diagnostics): apply nothing.")
    var sessionOnly = false

    @Option(name: .long, help: "Directory for the agent's state (the last desired set). Default: BUNDLE/state.")
    var stateDir: String?

    @Option(name: .long, help: "Seconds between full resyncs of every managed object (watches repair drift in between).")
    var resyncInterval: Double = 300

    @Option(name: .long, help: "Objects reconciled at once.")
    var workers: Int = 4

    @Option(name: .long, help: "Requests to the member API at once.")
    var maxRequests: Int = 8

    @Option(
        name: .long,
        help:
            "Serve Prometheus metrics at http://ADDRESS/metrics and the probes /healthz and /readyz (ready while a session to the hub is up), host:port such as 127.0.0.1:9464. Off by default."
    )
    var metricsListen: String?

    @Option(name: .long, help: "Fraction of its certificate's lifetime after which the agent renews it over the session (0.1 to 0.95).")
    var renewAt: Double = 2.0 / 3.0

    @Option(
        name: .long,
        help:
            "A kind the agent may write, as group/Kind (core group empty: /ConfigMap) or group/* for every kind of a group; repeatable. Default: agent.json's allowKinds, else the kinds of its plugins but RBAC, PersistentVolumes and CustomResourceDefinitions."
    )
    var allowKind: [String] = []

    @Option(
        name: .long,
        help: "A directory of out-of-process plugins, one folder per plugin with a plugin.json (docs/plugins.md); none by default.")
    var pluginDir: String?

    @Option(
        name: .long,
        help:
            "A kind the agent may write besides those --allow-kind or the default allow, such as apiextensions.k8s.io/CustomResourceDefinition or stable.example.com/*; repeatable."
    )
    var alsoAllowKind: [String] = []

    @Option(
        name: .long, help: "A namespace the agent may write in; repeatable. Default: agent.json's allowNamespaces, else every namespace not denied.")
    var allowNamespace: [String] = []

    @Option(
        name: .long,
        help:
            "A namespace the agent never writes in; repeatable. Default: agent.json's denyNamespaces, else kube-system, kube-public, kube-node-lease."
    )
    var denyNamespace: [String] = []

    @Option(
        name: .long,
        help:
            "What the hub may reach of the member through this agent (kubectl --context NAME-via-hub): off, read (get, list, watch of allowed kinds), or write (also create, update, patch, delete of allowed kinds in allowed namespaces)."
    )
    var tunnel: String = TunnelPolicy.Mode.read.rawValue

    @Option(
        name: .long,
        help:
            "A kind the tunnel may read besides the allow-list's, as group/Kind; repeatable. Default: /Pod, /Event, events.k8s.io/Event, metrics.k8s.io/PodMetrics."
    )
    var tunnelReadKind: [String] = []

    @Option(
        name: .long,
        help:
            "The TLS library of the session to the hub: boringssl (swift-nio-ssl, the default) or openssl (the system's libssl: session resumption, buffers released when idle)."
    )
    var tls: String = AgentPortTLS.boringSSL.rawValue

    @Option(name: .long, help: "Share of the objects it manages that one desired state may remove without an operator's confirmation (0 to 1).")
    var maxPruneFraction: Double = 0.5

    @Option(name: .long, help: "Removals below this many are never held for their number.")
    var pruneGuardMinimum: Int = 5

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard backoffInitial > 0, backoffMax >= backoffInitial else {
            throw ValidationError("--backoff-initial must be positive and no larger than --backoff-max")
        }
        guard resyncInterval >= 1 else { throw ValidationError("--resync-interval must be at least 1 second") }
        guard (0.1...0.95).contains(renewAt) else { throw ValidationError("--renew-at must be between 0.1 and 0.95") }
        guard (0...1).contains(maxPruneFraction), pruneGuardMinimum >= 1 else {
            throw ValidationError("--max-prune-fraction must be between 0 and 1, --prune-guard-minimum at least 1")
        }
        guard AgentPortTLS(rawValue: tls) != nil else {
            throw ValidationError("--tls \(tls): say boringssl or openssl")
        }
        guard TunnelPolicy.Mode(rawValue: tunnel) != nil else {
            throw ValidationError("--tunnel \(tunnel): say off, read or write")
        }
        for kind in tunnelReadKind where !kind.contains("/") {
            throw ValidationError("--tunnel-read-kind \(kind): write group/Kind, with an empty group for the core kinds (/Pod)")
        }
        for kind in allowKind + alsoAllowKind where !kind.contains("/") {
            throw ValidationError("--allow-kind \(kind): write group/Kind, with an empty group for the core kinds (/ConfigMap), or group/*")
        }
        guard (1...64).contains(workers), (1...256).contains(maxRequests) else {
            throw ValidationError("--workers must be 1 to 64 and --max-requests 1 to 256")
        }
        if sessionOnly, kubeconfig != nil || inCluster {
            throw ValidationError("--session-only takes no member cluster; drop --kubeconfig/--in-cluster")
        }
        if kubeconfig != nil, inCluster { throw ValidationError("pass either --kubeconfig or --in-cluster, not both") }
    }

    /// What the agent may write: the flags, else agent.json, else its plugins' kinds outside the
    /// system namespaces.
    func allowList(manifest: AgentManifest, registry: KindRegistry) -> AllowList {
        let kinds = !allowKind.isEmpty ? allowKind : manifest.allowKinds
        let namespaces = !allowNamespace.isEmpty ? allowNamespace : manifest.allowNamespaces
        let denied = !denyNamespace.isEmpty ? denyNamespace : manifest.denyNamespaces
        return AllowList(
            kinds: (kinds.map(Set.init) ?? Set(registry.kindsAllowedByDefault.map { AllowList.key(apiVersion: $0.apiVersion, kind: $0.kind) }))
                .union(alsoAllowKind),
            namespaces: namespaces.map(Set.init),
            deniedNamespaces: denied.map(Set.init) ?? AllowList.defaultDeniedNamespaces
        )
    }

    /// Where the member cluster is, or nil for --session-only.
    func memberEndpoint() throws -> KubernetesEndpoint? {
        if sessionOnly { return nil }
        if let kubeconfig { return try KubernetesEndpoint.kubeconfig(at: kubeconfig, context: context) }
        if inCluster || ProcessInfo.processInfo.environment["KUBERNETES_SERVICE_HOST"] != nil {
            return try KubernetesEndpoint.inCluster()
        }
        throw ValidationError("no member cluster: pass --kubeconfig FILE, run in a pod (--in-cluster), or --session-only")
    }

    func run() async throws {
        logging.bootstrap()
        let metrics = MetricsExport.bootstrapPrometheus()
        let logger = Logger(label: "tether.agent")
        let agentBundle = AgentBundle(path: bundle)
        let manifest = try agentBundle.loadManifest()
        if let recovered = try agentBundle.recoverInterruptedRenewal() {
            logger.notice("\(recovered)", metadata: ["tether.event": "certificates.recovered"])
        }
        let material = try agentBundle.loadMaterial()
        let addresses = try (hub.isEmpty ? manifest.hubAddresses : hub).map { try HostAndPort(parsing: $0) }
        guard !addresses.isEmpty else {
            throw ValidationError("no hub address: agent.json lists none and no --hub was given")
        }
        let endpoint = try memberEndpoint()
        let proxySettings: ProxySettings?
        do {
            proxySettings = try ProxySettings.resolve(
                flag: proxy, credentialsFile: proxyCredentialsFile, caFile: proxyCa, noProxy: noProxy,
                environment: ProcessInfo.processInfo.environment)
        } catch {
            throw ValidationError(error.message)
        }
        if let proxySettings {
            logger.info(
                "connections go through an HTTP proxy",
                metadata: [
                    "tether.event": "agent.proxy", "tether.proxy": "\(proxySettings.displayURL)", "tether.source": "\(proxySettings.source)",
                    "tether.authenticated": "\(proxySettings.hasCredentials)",
                    "tether.hub_via_proxy": "\(addresses.contains { proxySettings.applies(to: $0.host, port: $0.port) })",
                ])
        }
        let registry = BuiltinPlugins.agent
        var services: [any Service] = []
        var hooks = AgentSessionHooks()
        var client: KubernetesClient?
        if let endpoint {
            var clientSettings = KubernetesClientSettings()
            clientSettings.maxConcurrentRequests = maxRequests
            // In a pod the member's API is the cluster's own service address, never behind the egress proxy.
            let memberProxy = endpoint.origin == "in-cluster" ? nil : proxySettings
            let member = try KubernetesClient(endpoint: endpoint, settings: clientSettings, proxy: memberProxy, logger: logger)
            client = member
            var settings = ApplierSettings(
                cluster: manifest.cluster,
                origin: try TetherIdentity.hub(trustDomain: material.identity.trustDomain).uri,
                stateDirectory: stateDir ?? (bundle as NSString).appendingPathComponent("state")
            )
            settings.resyncInterval = .milliseconds(Int64(resyncInterval * 1000))
            settings.workers = workers
            settings.maximumPruneFraction = maxPruneFraction
            settings.pruneGuardMinimum = pruneGuardMinimum
            settings.allowList = allowList(manifest: manifest, registry: registry)
            let pluginHosts = try ExternalPluginProcess.hosts(in: pluginDir) { event, message in
                logger.notice("\(message)", metadata: ["tether.event": "\(event)"])
            }
            if !pluginHosts.isEmpty { services.append(TaskService { await ExternalPluginProcess.runAll(pluginHosts) }) }
            let applier = Applier(settings: settings, client: member, registry: registry, external: pluginHosts, link: hooks.link, logger: logger)
            let probe = ClusterProbe(client: member, logger: logger)
            hooks.lastRevision = { await applier.lastRevision }
            hooks.lastDigest = { await applier.lastDigest }
            hooks.offer = { applier.offer($0, from: $1) }
            hooks.established = { await applier.sessionEstablished() }
            hooks.clusterHealth = { probe.health }
            hooks.unjoined = { await applier.forgetAll() }
            hooks.tunnel = AgentTunnel(
                cluster: manifest.cluster,
                client: member,
                policy: TunnelPolicy(
                    mode: TunnelPolicy.Mode(rawValue: tunnel) ?? .read,
                    allowList: settings.allowList ?? allowList(manifest: manifest, registry: registry),
                    readKinds: tunnelReadKind.isEmpty ? TunnelPolicy.defaultReadKinds : Set(tunnelReadKind)),
                logger: logger)
            services += [applier, probe]
        }
        // The credentials need the connector, and the connector the hooks: the hooks reach them through this.
        let credentialsRelay = Mutex<AgentCredentials?>(nil)
        hooks.credentials = { message in credentialsRelay.withLock { $0 }?.received(message) }
        let applierEstablished = hooks.established
        hooks.established = {
            credentialsRelay.withLock { $0 }?.sessionEstablished()
            await applierEstablished()
        }
        let connectorRelay = Mutex<AgentConnector?>(nil)
        if let metricsListen {
            let address = try HostAndPort(parsing: metricsListen)
            services.append(
                MetricsEndpoint(
                    host: address.host, port: address.port, exposition: metrics,
                    readiness: {
                        guard let connector = connectorRelay.withLock({ $0 }) else { return "starting" }
                        return connector.notReadyReason
                    }, logger: logger))
        }
        let connector = try AgentConnector(
            configuration: {
                var configuration = AgentConfiguration(
                    hubAddresses: addresses,
                    backoff: Backoff(
                        initial: .milliseconds(Int64(backoffInitial * 1000)),
                        maximum: .milliseconds(Int64(backoffMax * 1000))
                    ),
                    kinds: endpoint == nil ? [] : registry.propagatedKindNames,
                    proxy: proxySettings
                )
                configuration.tls = AgentPortTLS(rawValue: tls) ?? .boringSSL
                return configuration
            }(),
            material: material,
            logger: logger,
            hooks: hooks
        )
        let credentials = AgentCredentials(
            bundle: agentBundle,
            connector: connector,
            link: hooks.link,
            settings: AgentCredentials.Settings(renewAt: renewAt),
            logger: logger
        )
        credentialsRelay.withLock { $0 = credentials }
        connectorRelay.withLock { $0 = connector }
        logger.info(
            "agent starting",
            metadata: [
                "tether.cluster": "\(manifest.cluster)", "tether.hub": "\(addresses.map(\.description))",
                "tether.member": "\(endpoint.map { "\($0.server) from \($0.origin)" } ?? "none (--session-only)")",
            ]
        )
        let group = ServiceGroup(
            configuration: .init(services: services + [credentials, connector], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        do {
            try await group.run()
        } catch {
            await client?.shutdown()
            throw error
        }
        await client?.shutdown()
    }
}
