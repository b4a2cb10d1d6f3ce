import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import TetherSecurity
import TetherWire
import X509

/// How the hub's agent listener behaves.
public struct AgentListenerConfiguration: Sendable {
    public var address: HostAndPort
    public var heartbeatInterval: TimeAmount
    public var helloTimeout: TimeAmount
    /// What a draining hub tells agents to wait before reconnecting.
    public var drainReconnectAfter: TimeAmount
    /// How long shutdown waits for sessions to close after `goaway`.
    public var drainTimeout: TimeAmount
    public var limits: WireLimits
    /// Caps on connections and strangers, and the time from accept to `hello`.
    public var connections: ListenerLimits
    /// How long an agent that reads nothing keeps its session while the hub has data for it.
    public var writeStallTimeout: TimeAmount
    public var hubVersion: String
    /// Named in every `welcome`: the federation's UID and the store's epoch.
    public var federationUID: String?
    public var storeEpoch: String?
    /// Named in every `welcome`: this run of the hub and where its store's history ends.
    public var run: HubRun?
    /// Streams and bytes in flight the member tunnel may take on each session.
    public var tunnel: TunnelLimits
    /// How often the keys sealing TLS session tickets are replaced; a ticket resumes for at most twice this.
    public var ticketKeyRotation: TimeAmount = .hours(1)
    /// The TLS library of the agent port.
    public var tls: AgentPortTLS = .boringSSL

    public init(
        address: HostAndPort = HostAndPort(host: "127.0.0.1", port: 7443),
        heartbeatInterval: TimeAmount = .seconds(10),
        helloTimeout: TimeAmount = .seconds(10),
        drainReconnectAfter: TimeAmount = .seconds(1),
        drainTimeout: TimeAmount = .seconds(1),
        limits: WireLimits = .default,
        connections: ListenerLimits = ListenerLimits(maximumConnections: 16_384, maximumConnectionsPerAddress: 4_096, maximumStrangers: 2_048),
        writeStallTimeout: TimeAmount = .seconds(60),
        hubVersion: String = TetherHubVersion.current,
        federationUID: String? = nil,
        storeEpoch: String? = nil,
        run: HubRun? = nil,
        tunnel: TunnelLimits = .default
    ) {
        self.tunnel = tunnel
        self.address = address
        self.heartbeatInterval = heartbeatInterval
        self.helloTimeout = helloTimeout
        self.drainReconnectAfter = drainReconnectAfter
        self.drainTimeout = drainTimeout
        self.limits = limits
        self.connections = connections
        self.writeStallTimeout = writeStallTimeout
        self.hubVersion = hubVersion
        self.federationUID = federationUID
        self.storeEpoch = storeEpoch
        self.run = run
    }
}

/// One run of the hub process over its store: a random identity, and the store's resource
/// version when the run began (see ``Welcome/historyThrough``).
public struct HubRun: Sendable, Hashable {
    public var id: String
    public var historyThrough: UInt64

    public init(id: String = UUID().uuidString.lowercased(), historyThrough: UInt64) {
        self.id = id
        self.historyThrough = historyThrough
    }
}

/// A listener that could not start, with the address and what to do.
public struct ListenFailure: Error, CustomStringConvertible {
    public var description: String
}

extension AgentListenerConfiguration {
    /// This configuration with the agent port's TLS library set.
    public func withTLS(_ tls: AgentPortTLS) -> AgentListenerConfiguration {
        var configuration = self
        configuration.tls = tls
        return configuration
    }
}

public enum TetherHubVersion {
    public static let current = "0.1.0"
}

/// The hub's agent port: mutual TLS 1.3 and the framed protocol, one ``HubSessionHandler`` per connection.
public final class AgentListener: Service, Sendable {
    private struct Trust: Sendable {
        var material: TLSMaterial
        /// The context new handshakes use, of the configured library.
        var context: TLSContext
        /// What an OpenSSL context seals session tickets with; rotated every `ticketKeyRotation`.
        var tickets: TLSTicketKeys
        var verifier: PeerVerifier
        /// The CA bundle agents are sent, PEM.
        var bundlePEM: String
    }

    private let configuration: AgentListenerConfiguration
    private let trust: NIOLockedValueBox<Trust>
    public let registry: SessionRegistry
    private let observer: (any HubSessionObserver)?
    private let signer: RenewalSigner?
    private let group: any EventLoopGroup
    private let logger: Logger
    private let onBound: @Sendable (Int) async throws -> Void
    /// Every session's handler shares encodings: a delta sent to every cluster is encoded once.
    private let sharedEncodings = SharedEncodings()
    private let gate: ConnectionGate
    private let refusalLogs = LogBudget(perSecond: 20)
    private let ledger: RenewalLedger?

    /// - Parameters:
    ///   - revocations: certificates refused although they chain to the CA bundle.
    ///   - signer: signs agents' renewal requests; nil refuses them.
    ///   - onBound: called with the bound port once the listener accepts connections.
    public init(
        configuration: AgentListenerConfiguration,
        material: TLSMaterial,
        revocations: RevocationList = RevocationList(),
        ledger: RenewalLedger? = nil,
        registry: SessionRegistry = SessionRegistry(),
        observer: (any HubSessionObserver)? = nil,
        signer: RenewalSigner? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger,
        onBound: @escaping @Sendable (Int) async throws -> Void = { _ in }
    ) throws(SecurityError) {
        self.observer = observer
        self.signer = signer
        self.configuration = configuration
        self.ledger = ledger
        let trust = try Self.trust(material, engine: configuration.tls, tickets: .fresh(), revocations: revocations, ledger: ledger)
        self.trust = NIOLockedValueBox(trust)
        self.registry = registry
        self.gate = ConnectionGate(name: "agent", limits: configuration.connections, logger: logger)
        registry.endRevoked(trust.verifier)
        self.group = group
        self.logger = logger
        self.onBound = onBound
    }

    private enum TLSContext: Sendable {
        case boringSSL(NIOSSLContext)
        case openSSL(OpenSSLContext)

        init(_ engine: AgentPortTLS, material: TLSMaterial, tickets: TLSTicketKeys) throws(SecurityError) {
            switch engine {
            case .boringSSL: self = .boringSSL(try TetherTLS.agentListenerContext(material))
            case .openSSL: self = .openSSL(try OpenSSLContext.agentListener(material, tickets: tickets))
            }
        }
    }

    private static func trust(
        _ material: TLSMaterial, engine: AgentPortTLS, tickets: TLSTicketKeys, revocations: RevocationList, ledger: RenewalLedger?
    ) throws(SecurityError) -> Trust {
        var bundle = ""
        for authority in material.trustRoots { bundle += try PEMFiles.pem(of: authority) }
        return Trust(
            material: material,
            context: try TLSContext(engine, material: material, tickets: tickets),
            tickets: tickets,
            verifier: PeerVerifier(
                trustRoots: material.trustRoots, trustDomain: material.identity.trustDomain, revocations: revocations, ledger: ledger
            ),
            bundlePEM: bundle
        )
    }

    /// Open connections, and those that have not sent an accepted `hello` yet.
    public var connectionCounts: (open: Int, strangers: Int) { gate.counts }

    /// Uses `material` for every handshake from now on; established sessions keep theirs. A
    /// changed CA bundle is sent to every connected agent.
    ///
    /// The material is checked first (the key matches, the identity is the hub's, the certificate
    /// is within its validity period); on any failure the current material stays in use.
    public func reload(_ material: TLSMaterial, now: Date = Date()) throws(SecurityError) {
        guard case .hub = material.identity.role else {
            throw SecurityError(.noIdentity, "the new certificate is for \(material.identity), not the hub")
        }
        try material.requireValid(at: now)
        let (revocations, tickets) = trust.withLockedValue { ($0.verifier.revocations, $0.tickets) }
        let replacement = try Self.trust(material, engine: configuration.tls, tickets: tickets, revocations: revocations, ledger: ledger)
        let previousBundle = trust.withLockedValue { current in
            defer { current = replacement }
            return current.bundlePEM
        }
        if previousBundle != replacement.bundlePEM {
            registry.broadcast(.trust(TrustBundle(caBundle: replacement.bundlePEM)))
        }
    }

    /// Refuses `revocations`' certificates (and the renewals made from them) from now on, and
    /// ends the connections opened with one, whether or not they have sent `hello`. Returns the
    /// clusters cut off.
    @discardableResult
    public func updateRevocations(_ revocations: RevocationList) -> [String] {
        let verifier = trust.withLockedValue { current in
            current.verifier = PeerVerifier(
                trustRoots: current.material.trustRoots, trustDomain: current.material.identity.trustDomain, revocations: revocations,
                ledger: ledger
            )
            return current.verifier
        }
        return registry.endRevoked(verifier)
    }

    public func run() async throws {
        let server: any Channel
        do {
            server = try await bind()
        } catch {
            throw ListenFailure(
                description: "cannot listen for agents on \(configuration.address): \(error); choose another address (tether-hub --agent-listen)"
            )
        }
        let port = server.localAddress?.port ?? configuration.address.port
        try await runBound(server, port: port)
    }

    private func bind() async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            // The hub writes one push at a time per session, so 256 KiB pending is plenty before
            // a session counts as not reading (and stops being read: BackPressureHandler).
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 64 * 1024, high: 256 * 1024))
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture { try self.initializeConnection(channel) }
            }
            .bind(host: configuration.address.host, port: configuration.address.port)
            .get()
    }

    private func runBound(_ server: any Channel, port: Int) async throws {
        do {
            try await onBound(port)
        } catch {
            try? await server.close()
            throw error
        }
        logger.info(
            "agent listener ready",
            metadata: ["tether.event": "listener.ready", "tether.address": "\(configuration.address.host):\(port)"]
        )

        // Runs until the service group asks for a graceful shutdown (SIGTERM, SIGINT) or cancels,
        // rotating the session-ticket keys meanwhile.
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                guard configuration.tls == .openSSL else { return }
                while !Task.isCancelled {
                    do {
                        try await Task.sleep(for: .nanoseconds(configuration.ticketKeyRotation.nanoseconds))
                    } catch {
                        return
                    }
                    rotateTicketKeys()
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }

        try? await server.close()
        let drainAfter = Int(configuration.drainReconnectAfter.nanoseconds / 1_000_000)
        let open = registry.drainAll(reconnectAfterMilliseconds: drainAfter)
        logger.info("agent listener draining", metadata: ["tether.event": "listener.draining", "tether.sessions": "\(open.count)"])
        await Self.waitForClose(open, timeout: configuration.drainTimeout, on: group.any())
    }

    /// New handshakes seal tickets with a new key; tickets under the previous key still resume.
    func rotateTicketKeys() {
        let (material, tickets) = trust.withLockedValue { ($0.material, $0.tickets.rotated()) }
        let context: TLSContext
        do {
            context = try TLSContext(configuration.tls, material: material, tickets: tickets)
        } catch {
            logger.error(
                "session-ticket keys not rotated; the current ones stay",
                metadata: ["tether.event": "listener.tickets_rotation_failed", "tether.error": "\(error)"])
            return
        }
        trust.withLockedValue { current in
            // A reload meanwhile made a context for other material: rotate again next time.
            guard current.material.fingerprint == material.fingerprint else { return }
            current.context = context
            current.tickets = tickets
        }
        logger.debug("session-ticket keys rotated", metadata: ["tether.event": "listener.tickets_rotated"])
    }

    private func initializeConnection(_ channel: any Channel) throws {
        let trust = self.trust.withLockedValue { $0 }
        let trustBox = self.trust
        var sessionCredentials = SessionCredentials(trustBundle: { trustBox.withLockedValue { $0.bundlePEM } })
        if let signer {
            sessionCredentials.sign = { request, cluster, certificate in
                await signer.sign(request, cluster: cluster, current: certificate)
            }
        }
        let verdict = NIOLockedValueBox<PeerVerifier.Verdict?>(nil)
        let presented = NIOLockedValueBox<CertificateSummary?>(nil)
        let registry = self.registry
        /// What the TLS layer asks of a presented chain: the verifier in force now, not when the
        /// connection was accepted (a revocation loaded meanwhile applies to this handshake).
        let judge: @Sendable ([Certificate]) async -> PeerVerifier.Verdict = { [channel] chain in
            let result = await trustBox.withLockedValue { $0.verifier }.verify(chain: chain)
            verdict.withLockedValue { $0 = result }
            // The session keeps the summary of its leaf, not the parsed certificate.
            let leaf = chain.first.map(CertificateSummary.init)
            presented.withLockedValue { $0 = leaf }
            if case .trusted = result, let leaf { registry.noteCertificate(leaf, of: channel) }
            return result
        }
        let tls: any ChannelHandler
        var resumedCheck: ResumedSessionCheck?
        switch trust.context {
        case .boringSSL(let context):
            tls = NIOSSLServerHandler(context: context) { certificates, promise in
                promise.completeWithTask {
                    var chain = [Certificate]()
                    for certificate in certificates {
                        guard let parsed = try? TetherTLS.certificate(from: certificate) else {
                            verdict.withLockedValue {
                                $0 = .refused(.init(code: .noIdentity, reason: "the client certificate cannot be parsed"))
                            }
                            return .failed
                        }
                        chain.append(parsed)
                    }
                    if case .trusted = await judge(chain) { return .certificateVerified }
                    return .failed
                }
            }
            resumedCheck = ResumedSessionCheck(hasVerdict: { verdict.withLockedValue { $0 != nil } }, judge: judge)
        case .openSSL(let context):
            let explain: OpenSSLHandler.Explain = { leaf, code, description in
                let refusal = trustBox.withLockedValue { $0.verifier }.explain(openSSLError: code, description: description, leaf: leaf)
                verdict.withLockedValue { $0 = .refused(refusal) }
                presented.withLockedValue { $0 = CertificateSummary(leaf) }
                return refusal
            }
            tls = OpenSSLHandler(context: context, explain: explain) { chain, chainError in
                var result = await judge(chain)
                if case .trusted(let identity) = result, let chainError {
                    // Both must agree; OpenSSL refusing what the hub's verifier accepts would be a
                    // difference between their rules, and the stricter one holds.
                    result = .refused(.init(code: .untrustedIssuer, reason: "OpenSSL refused the chain of \(identity): \(chainError)"))
                    verdict.withLockedValue { $0 = result }
                }
                return result
            }
        }
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(ConnectionGateHandler(gate: gate))
        try sync.addHandler(BackPressureHandler())
        try sync.addHandler(tls)
        if let resumedCheck { try sync.addHandler(resumedCheck) }
        try sync.addTetherWireHandlers(limits: configuration.limits, sharedEncodings: sharedEncodings)
        try sync.addHandler(
            HubSessionHandler(
                settings: .init(
                    helloTimeout: configuration.helloTimeout,
                    heartbeatInterval: configuration.heartbeatInterval,
                    drainReconnectAfter: configuration.drainReconnectAfter,
                    writeStallTimeout: configuration.writeStallTimeout,
                    tunnel: configuration.tunnel
                ),
                hubVersion: configuration.hubVersion,
                federation: configuration.federationUID,
                epoch: configuration.storeEpoch,
                run: configuration.run,
                registry: registry,
                observer: observer,
                verdict: verdict,
                presented: presented,
                credentials: sessionCredentials,
                gate: gate,
                refusalLogs: refusalLogs,
                logger: logger
            )
        )
    }

    private static func waitForClose(_ channels: [any Channel], timeout: TimeAmount, on loop: any EventLoop) async {
        guard !channels.isEmpty else { return }
        let all = EventLoopFuture.andAllComplete(channels.map(\.closeFuture), on: loop)
        await withTaskGroup(of: Void.self) { race in
            race.addTask { try? await all.get() }
            race.addTask { try? await Task.sleep(for: .nanoseconds(timeout.nanoseconds)) }
            await race.next()
            race.cancelAll()
        }
        for channel in channels where channel.isActive { channel.close(promise: nil) }
    }
}
