import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import TetherJSON
import TetherModel
import TetherSecurity
import TetherWire

/// How the agent reaches its hub.
public struct AgentConfiguration: Sendable {
    /// The hub's agent listener addresses, tried in turn after failed attempts.
    public var hubAddresses: [HostAndPort]
    public var backoff: Backoff
    public var connectTimeout: TimeAmount
    /// How long the agent waits for `welcome` after sending `hello`.
    public var welcomeTimeout: TimeAmount
    public var limits: WireLimits
    public var agentVersion: String
    /// Kinds the agent's plugins handle, announced in `hello`.
    public var kinds: [String]
    /// The HTTP proxy to the hub, unless `NO_PROXY` (or loopback) exempts its address.
    public var proxy: ProxySettings?
    /// The TLS library of the session to the hub.
    public var tls: AgentPortTLS = .boringSSL

    public init(
        hubAddresses: [HostAndPort],
        backoff: Backoff = Backoff(),
        connectTimeout: TimeAmount = .seconds(5),
        welcomeTimeout: TimeAmount = .seconds(10),
        limits: WireLimits = .default,
        agentVersion: String = TetherAgentVersion.current,
        kinds: [String] = [],
        proxy: ProxySettings? = nil
    ) {
        self.proxy = proxy
        self.hubAddresses = hubAddresses
        self.backoff = backoff
        self.connectTimeout = connectTimeout
        self.welcomeTimeout = welcomeTimeout
        self.limits = limits
        self.agentVersion = agentVersion
        self.kinds = kinds
    }
}

public enum TetherAgentVersion {
    public static let current = "0.1.0"
}

/// Keeps one session to the hub up: dials out, holds the session, and after any end waits
/// out a backoff (or the hub's hint, whichever is longer) and dials again. Never listens.
public final class AgentConnector: Service, Sendable {
    /// The name of the handler of the hub's TLS in the pipeline (a proxy's may come first).
    static let hubTLSHandlerName = "tether.hub-tls"
    static let proxyConnectHandlerName = "tether.proxy-connect"

    private let configuration: AgentConfiguration
    /// What the next handshake presents and trusts; replaced by ``reload(_:)``.
    private let credentials: NIOLockedValueBox<(material: TLSMaterial, context: DialerContext)>
    private let identity: TetherIdentity
    private let cluster: String
    private let group: any EventLoopGroup
    private let logger: Logger
    /// The live session's channel, so a shutdown can reach it, and whether shutdown began.
    private let current = NIOLockedValueBox<(channel: (any Channel)?, shuttingDown: Bool)>((nil, false))
    private let onEstablished: @Sendable (String) -> Void
    private let hooks: AgentSessionHooks
    private let established = NIOLockedValueBox(false)
    private let lastEnd = NIOLockedValueBox<String?>("no session to the hub yet")

    /// Nil while a session to the hub is up; else why not (what `/readyz` answers).
    public var notReadyReason: String? {
        established.withLockedValue { $0 } ? nil : lastEnd.withLockedValue { $0 } ?? "no session to the hub"
    }

    public init(
        configuration: AgentConfiguration,
        material: TLSMaterial,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger,
        hooks: AgentSessionHooks = AgentSessionHooks(),
        onEstablished: @escaping @Sendable (String) -> Void = { _ in }
    ) throws(SecurityError) {
        self.hooks = hooks
        guard let cluster = material.identity.clusterName else {
            throw SecurityError(.noIdentity, "the agent certificate is for \(material.identity), not a cluster")
        }
        self.configuration = configuration
        self.credentials = NIOLockedValueBox((material, try DialerContext(configuration.tls, material: material)))
        self.identity = material.identity
        self.cluster = cluster
        self.group = group
        var logger = logger
        logger[metadataKey: "tether.cluster"] = "\(cluster)"
        self.logger = logger
        let established = self.established
        self.onEstablished = { sessionID in
            established.withLockedValue { $0 = true }
            onEstablished(sessionID)
        }
    }

    /// The material the next handshake uses.
    public var material: TLSMaterial { credentials.withLockedValue { $0.material } }

    /// Uses `material` from the next handshake on; the live session keeps its own. It must be
    /// for the same identity; otherwise nothing changes.
    public func reload(_ material: TLSMaterial) throws(SecurityError) {
        guard material.identity == identity else {
            throw SecurityError(.noIdentity, "the new certificate is for \(material.identity), but this agent is \(identity)")
        }
        let context = try DialerContext(configuration.tls, material: material)
        credentials.withLockedValue { $0 = (material, context) }
    }

    /// The context of the configured TLS library; a new one per certificate, so an OpenSSL
    /// session ticket never outlives the certificate it was issued to.
    enum DialerContext: Sendable {
        case boringSSL(NIOSSLContext)
        case openSSL(OpenSSLContext)

        init(_ engine: AgentPortTLS, material: TLSMaterial) throws(SecurityError) {
            switch engine {
            case .boringSSL: self = .boringSSL(try TetherTLS.agentDialerContext(material))
            case .openSSL: self = .openSSL(try OpenSSLContext.agentDialer(material))
            }
        }
    }

    /// Where in `count` hub addresses the agent of `cluster` starts: a stable hash of its name,
    /// so the agents of a federation spread over the hubs they list, each coming back to the
    /// same one after a restart.
    static func firstAddressIndex(cluster: String, count: Int) -> Int {
        guard count > 1 else { return 0 }
        var hash = StableHash()
        hash.combine(cluster)
        return Int(hash.value % UInt64(count))
    }

    public func run() async throws {
        var attempt = 0
        var addressIndex = Self.firstAddressIndex(cluster: cluster, count: configuration.hubAddresses.count)
        // Addresses that failed since the last session or the last backoff: the next address is
        // tried at once until every one has failed, and only then does the agent wait.
        var failedInRound = 0
        while true {
            let address = configuration.hubAddresses[addressIndex % configuration.hubAddresses.count]
            let (end, wasEstablished) = await withGracefulShutdownHandler {
                await self.runSession(to: address)
            } onGracefulShutdown: {
                self.established.withLockedValue { $0 = false }
                let channel = self.current.withLockedValue { current in
                    current.shuttingDown = true
                    return current.channel
                }
                channel?.pipeline.fireUserInboundEventTriggered(AgentSessionEvent.shutdown)
            }
            established.withLockedValue { $0 = false }
            lastEnd.withLockedValue { $0 = "the session to the hub ended: \(end)" }
            if current.withLockedValue({ $0.shuttingDown }) || Task.isCancelled {
                logger.info("agent stopped", metadata: ["tether.event": "agent.stopped"])
                return
            }
            if case .goaway(let goaway) = end, goaway.code == .unjoined {
                logger.warning(
                    "this cluster was unjoined; no longer managing its objects",
                    metadata: ["tether.event": "agent.unjoined", "tether.reason": "\(goaway.reason)"]
                )
                await hooks.unjoined()
            }
            if case .goaway(let goaway) = end, goaway.code == .revoked {
                logger.error(
                    "the hub revoked this agent's certificate; it will be refused until the bundle is replaced",
                    metadata: ["tether.event": "agent.revoked", "tether.reason": "\(goaway.reason)"]
                )
            }
            var delay = Duration.zero
            var backsOff = false
            if wasEstablished {
                attempt = 0
                failedInRound = 0
            } else {
                addressIndex += 1
                failedInRound += 1
            }
            if wasEstablished || failedInRound >= configuration.hubAddresses.count {
                failedInRound = 0
                backsOff = true
                let jittered = configuration.backoff.delay(attempt: attempt)
                attempt += 1
                delay = end.retryHintMilliseconds.map { max(jittered, .milliseconds($0)) } ?? jittered
            }
            logger.warning(
                "session to hub ended; reconnecting",
                metadata: [
                    "tether.event": "session.ended", "tether.reason": "\(end)", "tether.hub": "\(address)",
                    "tether.retry_in_ms": "\(Int(delay / .milliseconds(1)))", "tether.backoff": "\(backsOff)",
                ]
            )
            guard backsOff else { continue }
            do {
                try await cancelWhenGracefulShutdown { [delay] in try await Task.sleep(for: delay) }
            } catch {
                logger.info("agent stopped", metadata: ["tether.event": "agent.stopped"])
                return
            }
        }
    }

    private func runSession(to address: HostAndPort) async -> (SessionEnd, wasEstablished: Bool) {
        let loop = group.next()
        let ended = loop.makePromise(of: (SessionEnd, wasEstablished: Bool).self)
        let hello = Hello(
            protocolVersions: WireMessage.supportedVersions,
            agentVersion: configuration.agentVersion,
            cluster: cluster,
            kinds: configuration.kinds,
            lastAppliedRevision: await hooks.lastRevision(),
            lastAppliedDigest: await hooks.lastDigest(),
            proxy: configuration.proxy.flatMap { $0.applies(to: address.host, port: address.port) ? $0.displayURL : nil }
        )
        let machine: AgentSessionStateMachine
        do {
            machine = AgentSessionStateMachine(hello: hello, hubIdentity: try .hub(trustDomain: identity.trustDomain))
        } catch {
            return (.notTheHub(error.message), false)
        }
        let serverHostname = address.host
        let timing = AgentSessionHandler.Timing(welcomeTimeout: configuration.welcomeTimeout)
        let (sslContext, trustRoots, trustDomain) = credentials.withLockedValue {
            ($0.context, $0.material.trustRoots, $0.material.identity.trustDomain)
        }
        /// The hub's TLS, the wire protocol and the session: on the connection itself, or inside a proxy's tunnel.
        let addSessionHandlers: @Sendable (ChannelPipeline.SynchronousOperations) throws -> Void = {
            [configuration, logger, onEstablished, hooks] sync in
            let hubTLS: any ChannelHandler
            switch sslContext {
            case .boringSSL(let context):
                hubTLS = try NIOSSLClientHandler(context: context, serverHostname: Self.isIPAddress(serverHostname) ? nil : serverHostname)
            case .openSSL(let context):
                let explain: OpenSSLHandler.Explain = { leaf, code, description in
                    PeerVerifier(trustRoots: trustRoots, trustDomain: trustDomain).explain(openSSLError: code, description: description, leaf: leaf)
                }
                hubTLS = OpenSSLHandler(context: context, serverName: serverHostname, explain: explain) { chain, chainError in
                    // OpenSSL verified the chain and the host name; the hub's SPIFFE identity is
                    // the session's to check, with the verifier's words for anything else.
                    let verdict = await PeerVerifier(trustRoots: trustRoots, trustDomain: trustDomain).verify(chain: chain)
                    if case .trusted(let identity) = verdict, let chainError {
                        return .refused(.init(code: .untrustedIssuer, reason: "OpenSSL refused the chain of \(identity): \(chainError)"))
                    }
                    return verdict
                }
            }
            try sync.addHandler(hubTLS, name: Self.hubTLSHandlerName)
            try sync.addTetherWireHandlers(limits: configuration.limits)
            try sync.addHandler(
                AgentSessionHandler(
                    machine: machine,
                    timing: timing,
                    ended: ended,
                    logger: logger,
                    hooks: hooks,
                    onEstablished: { sessionID in
                        logger.info(
                            "session to hub established",
                            metadata: [
                                "tether.event": "session.established", "tether.session": "\(sessionID)",
                                "tether.hub": "\(address)",
                            ].merging(hello.proxy.map { ["tether.proxy": "\($0)"] } ?? [:]) { first, _ in first }
                        )
                        onEstablished(sessionID)
                        Task { await hooks.established() }
                    }
                )
            )
        }
        let proxy = configuration.proxy.flatMap { $0.applies(to: address.host, port: address.port) ? $0 : nil }
        let tunnel = proxy.map { _ in loop.makePromise(of: Void.self) }
        let proxyTLS: NIOSSLContext?
        do {
            proxyTLS = try proxy.flatMap { $0.usesTLS ? try $0.proxyTLSContext() : nil }
        } catch {
            tunnel?.fail(error)
            return (.connectFailed("cannot set up TLS to the proxy \(proxy?.displayURL ?? ""): \(error)"), false)
        }
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    guard let proxy, let tunnel else { return try addSessionHandlers(sync) }
                    if let proxyTLS {
                        try sync.addHandler(NIOSSLClientHandler(context: proxyTLS, serverHostname: Self.isIPAddress(proxy.host) ? nil : proxy.host))
                    }
                    try sync.addHandler(
                        HTTPConnectHandler(target: address, proxy: proxy.displayURL, authorization: proxy.authorization, established: tunnel),
                        name: Self.proxyConnectHandlerName)
                }
            }
        let dialed = proxy.map { HostAndPort(host: $0.host, port: $0.port) } ?? address
        let via = proxy.map { " through the proxy \($0.displayURL)" } ?? ""
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: dialed.host, port: dialed.port).get()
        } catch {
            tunnel?.fail(error)
            let failure = proxy.map { "cannot reach the proxy \($0.displayURL): \(error)" } ?? "\(address): \(error)"
            ended.succeed((.connectFailed(failure), false))
            return (try? await ended.futureResult.get()) ?? (.connectFailed(failure), false)
        }
        if let tunnel {
            // The proxy gets the connect timeout to answer CONNECT.
            let timeout = configuration.connectTimeout
            let deadline = loop.scheduleTask(in: timeout) {
                channel.pipeline.fireUserInboundEventTriggered(HTTPConnectHandler.Timeout(after: timeout))
            }
            do {
                try await tunnel.futureResult.get()
                deadline.cancel()
                try await channel.eventLoop.submit {
                    let sync = channel.pipeline.syncOperations
                    _ = sync.removeHandler(name: Self.proxyConnectHandlerName)
                    try addSessionHandlers(sync)
                }.get()
            } catch {
                deadline.cancel()
                channel.close(promise: nil)
                try? await channel.closeFuture.get()
                ended.succeed((.connectFailed("\(address)\(via): \(error)"), false))
                return (.connectFailed("\(address)\(via): \(error)"), false)
            }
        }
        let shuttingDown = current.withLockedValue { current in
            current.channel = channel
            return current.shuttingDown
        }
        if shuttingDown { channel.pipeline.fireUserInboundEventTriggered(AgentSessionEvent.shutdown) }
        let result = (try? await ended.futureResult.get()) ?? (.connectionLost, false)
        current.withLockedValue { $0.channel = nil }
        // The promise is answered from channelInactive; wait for the close itself so no frame is cut short.
        try? await channel.closeFuture.get()
        return result
    }

    private static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}
