import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization
import TetherSecurity
import TetherWire

/// Many light agent sessions in one process: each dials the hub over mutual TLS 1.3 with its
/// own cluster certificate, speaks the real protocol (hello, heartbeats, acks of every snapshot
/// and delta), and reconnects when its session ends. They share the process's event loops; a
/// session between messages is its channel and one repeating heartbeat timer, like an agent's.
final class LightAgents: Sendable {
    struct Settings: Sendable {
        var hubPort: Int
        /// Further hub ports, tried in turn after a dial fails, as an agent follows its hub list.
        var otherHubPorts: [Int] = []
        var heartbeatInterval: TimeAmount = .seconds(10)
        /// Source addresses, spread over so loopback ports do not run out.
        var sourceAddresses = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]
        /// A reconnecting session waits a random time up to this (the agent's backoff base).
        var reconnectJitter: TimeAmount = .milliseconds(500)
        var connectConcurrency = 256
        /// The sessions' TLS library: swift-nio-ssl keeps no tickets, so every handshake is a
        /// full one; OpenSSL keeps each session's latest ticket and offers it on reconnect, as
        /// `tether-agent --tls openssl` does.
        var tls: AgentPortTLS = .boringSSL
    }

    /// One session's TLS context, of the configured library.
    private enum DialerContext: Sendable {
        case boringSSL(NIOSSLContext)
        case openSSL(OpenSSLContext)
    }

    private let settings: Settings
    private let contexts: [DialerContext]
    /// Judges the hub's certificate on OpenSSL sessions, as the agent does.
    private let verifier: PeerVerifier?
    private let names: [String]
    let group: MultiThreadedEventLoopGroup
    let recorder: Recorder
    private let stopping = Atomic<Bool>(false)
    private let channels: Mutex<[Int: any Channel]> = Mutex([:])
    /// Per session, which of the hub ports it dials: the next after a failed dial.
    private let hubChoice: Mutex<[Int]>

    init(settings: Settings, materials: [TLSMaterial], threads: Int = 2) throws {
        self.settings = settings
        self.contexts = try materials.map { material in
            switch settings.tls {
            case .boringSSL: .boringSSL(try TetherTLS.agentDialerContext(material))
            case .openSSL: .openSSL(try OpenSSLContext.agentDialer(material))
            }
        }
        self.verifier = materials.first.map { PeerVerifier(trustRoots: $0.trustRoots, trustDomain: $0.identity.trustDomain) }
        self.names = materials.map { $0.identity.clusterName ?? "?" }
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        self.recorder = Recorder(count: materials.count)
        self.hubChoice = Mutex(Array(repeating: 0, count: materials.count))
    }

    private var hubPorts: [Int] { [settings.hubPort] + settings.otherHubPorts }

    var count: Int { contexts.count }

    /// Dials every session, at most `connectConcurrency` handshakes at a time; returns when all
    /// are dialled (not necessarily established: wait on the recorder for that).
    func start() async {
        await withTaskGroup(of: Void.self) { group in
            var next = 0
            func launch() {
                let index = next
                next += 1
                group.addTask { await self.dial(index) }
            }
            for _ in 0..<min(settings.connectConcurrency, count) { launch() }
            while await group.next() != nil {
                if next < count { launch() }
            }
        }
    }

    /// One attempt to connect session `index`; on failure or when the session ends later, it
    /// tries again after a random delay.
    private func dial(_ index: Int) async {
        guard !stopping.load(ordering: .relaxed) else { return }
        let loop = group.next()
        let source = settings.sourceAddresses[index % settings.sourceAddresses.count]
        let handler = LightSessionHandler(index: index, cluster: names[index], recorder: recorder, heartbeat: settings.heartbeatInterval) {
            [weak self] in self?.sessionEnded(index)
        }
        do {
            let channel = try await ClientBootstrap(group: loop)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                .connectTimeout(.seconds(30))
                .bind(to: try SocketAddress(ipAddress: source, port: 0))
                .channelInitializer { [contexts, verifier] channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        switch contexts[index] {
                        case .boringSSL(let context):
                            try sync.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                        case .openSSL(let context):
                            let explain: OpenSSLHandler.Explain = { _, code, description in
                                PeerVerifier.Refusal(code: .untrustedIssuer, reason: "OpenSSL error \(code): \(description)")
                            }
                            try sync.addHandler(
                                OpenSSLHandler(context: context, explain: explain) { chain, chainError in
                                    guard let verifier, chainError == nil else {
                                        return .refused(.init(code: .untrustedIssuer, reason: chainError ?? "no verifier"))
                                    }
                                    return await verifier.verify(chain: chain)
                                })
                        }
                        // Frames, not messages: deltas are read for their revision only (see LightSessionHandler).
                        try sync.addTetherFrameHandlers(limits: .default)
                        try sync.addHandler(handler)
                    }
                }
                .connect(host: "127.0.0.1", port: hubPorts[hubChoice.withLock { $0[index] } % hubPorts.count])
                .get()
            channels.withLock { $0[index] = channel }
        } catch {
            hubChoice.withLock { $0[index] += 1 }
            recorder.connectFailed()
            sessionEnded(index)
        }
    }

    private func sessionEnded(_ index: Int) {
        channels.withLock { _ = $0.removeValue(forKey: index) }
        guard !stopping.load(ordering: .relaxed) else { return }
        let delay = TimeAmount.nanoseconds(Int64.random(in: 0...settings.reconnectJitter.nanoseconds))
        group.next().scheduleTask(in: delay) {
            Task { await self.dial(index) }
        }
    }

    /// Closes every open session from the agents' side and returns once all are closed; each
    /// dials again after its random delay, to the same hub (a network blip, not a restart).
    func dropAll() async {
        let open = channels.withLock { Array($0.values) }
        for channel in open { try? await channel.close() }
    }

    func shutdown() async {
        stopping.store(true, ordering: .relaxed)
        let open = channels.withLock { Array($0.values) }
        for channel in open { try? await channel.close() }
        try? await group.shutdownGracefully()
    }
}

/// What the sessions saw: how many are up, and when each reached a revision. Every update is
/// O(1): waits are on counters, so 16,000 sessions reporting do not contend on a scan.
final class Recorder: Sendable {
    private struct State {
        var established = Set<Int>()
        var connectFailures = 0
        var received: [UInt64]
        var acked: [UInt64]
        /// The revision being waited for, and how many sessions have received / acked at least it.
        var target: UInt64 = .max
        var reachedReceived = 0
        var reachedAcked = 0
        /// When each session first received / acked the target.
        var receivedAt: [ContinuousClock.Instant?]
        var ackedAt: [ContinuousClock.Instant?]
        /// When each session reached its current `received` / `acked` revision: a push can arrive
        /// before the API's answer lets the benchmark name the revision to track.
        var reachedReceivedAt: [ContinuousClock.Instant?]
        var reachedAckedAt: [ContinuousClock.Instant?]
        var waiters: [UUID: (condition: @Sendable (Counts) -> Bool, continuation: CheckedContinuation<Bool, Never>)] = [:]
        /// Per session, when its current connection was accepted and how long until its first desired state.
        var connectedAt: [ContinuousClock.Instant?]
        /// When the current connection's TLS handshake completed.
        var handshakenAt: [ContinuousClock.Instant?]
        var toFirstState: [Duration?]
        /// Of `toFirstState`, the part after the handshake (hello, the hub's attach, its push).
        var handshakeToFirstState: [Duration?]
        var firstStates = 0
        /// Handshakes that resumed an earlier session, since `resetConnections()`.
        var resumed = 0
        /// Sessions established since `resetConnections()`.
        var welcomed = 0

        var counts: Counts {
            Counts(established: established.count, received: reachedReceived, acked: reachedAcked, firstStates: firstStates, welcomed: welcomed)
        }
    }

    struct Counts: Sendable {
        var established: Int
        var received: Int
        var acked: Int
        /// Sessions that received a desired state since `resetConnections()`.
        var firstStates: Int
        /// Sessions welcomed since `resetConnections()`.
        var welcomed: Int
    }

    private let state: Mutex<State>
    let count: Int

    init(count: Int) {
        self.count = count
        state = Mutex(
            State(
                received: Array(repeating: 0, count: count), acked: Array(repeating: 0, count: count),
                receivedAt: Array(repeating: nil, count: count), ackedAt: Array(repeating: nil, count: count),
                reachedReceivedAt: Array(repeating: nil, count: count), reachedAckedAt: Array(repeating: nil, count: count),
                connectedAt: Array(repeating: nil, count: count), handshakenAt: Array(repeating: nil, count: count),
                toFirstState: Array(repeating: nil, count: count), handshakeToFirstState: Array(repeating: nil, count: count)
            )
        )
    }

    func connectFailed() { state.withLock { $0.connectFailures += 1 } }

    /// The TCP connection of session `index` is up (its TLS handshake starts now).
    func connected(_ index: Int) {
        let now = ContinuousClock.now
        state.withLock {
            $0.connectedAt[index] = now
            $0.handshakenAt[index] = nil
            if $0.toFirstState[index] != nil { $0.firstStates -= 1 }
            $0.toFirstState[index] = nil
            $0.handshakeToFirstState[index] = nil
        }
    }

    /// The TLS handshake of session `index` completed, resuming an earlier session or not.
    func handshaken(_ index: Int, resumed: Bool) {
        let now = ContinuousClock.now
        state.withLock {
            $0.handshakenAt[index] = now
            if resumed { $0.resumed += 1 }
        }
    }

    /// Handshakes that resumed an earlier session since `resetConnections()`.
    var resumedHandshakes: Int { state.withLock { $0.resumed } }

    /// Of each connection's time to its first desired state, the part after its handshake.
    func handshakeToFirstState() -> [Duration] { state.withLock { $0.handshakeToFirstState.compactMap { $0 } } }

    /// How long each session took from connecting to its first desired state, for the
    /// connections made since `resetConnections()`.
    func connectToFirstState() -> [Duration] { state.withLock { $0.toFirstState.compactMap { $0 } } }

    func resetConnections() {
        state.withLock {
            $0.toFirstState = Array(repeating: nil, count: $0.toFirstState.count)
            $0.handshakeToFirstState = Array(repeating: nil, count: $0.handshakeToFirstState.count)
            $0.firstStates = 0
            $0.resumed = 0
            $0.welcomed = 0
        }
    }
    func established(_ index: Int) {
        update {
            $0.established.insert(index)
            $0.welcomed += 1
        }
    }
    func ended(_ index: Int) { update { $0.established.remove(index) } }

    func received(_ index: Int, revision: UInt64, acked: Bool) {
        let now = ContinuousClock.now
        update { state in
            if !acked, state.toFirstState[index] == nil, let connected = state.connectedAt[index] {
                state.toFirstState[index] = now - connected
                state.handshakeToFirstState[index] = state.handshakenAt[index].map { now - $0 }
                state.firstStates += 1
            }
            if acked {
                let before = state.acked[index]
                state.acked[index] = max(before, revision)
                if revision > before { state.reachedAckedAt[index] = now }
                if before < state.target, revision >= state.target {
                    state.reachedAcked += 1
                    state.ackedAt[index] = now
                }
            } else {
                let before = state.received[index]
                state.received[index] = max(before, revision)
                if revision > before { state.reachedReceivedAt[index] = now }
                if before < state.target, revision >= state.target {
                    state.reachedReceived += 1
                    state.receivedAt[index] = now
                }
            }
        }
    }

    var counts: Counts { state.withLock { $0.counts } }
    var connectFailures: Int { state.withLock { $0.connectFailures } }

    /// The highest revision every session has acked.
    var minimumAcked: UInt64 { state.withLock { $0.acked.min() ?? 0 } }

    /// Starts counting the sessions that reach `revision`.
    func track(_ revision: UInt64) {
        state.withLock { state in
            state.target = revision
            state.reachedReceived = state.received.count { $0 >= revision }
            state.reachedAcked = state.acked.count { $0 >= revision }
            // Sessions already there got it before the revision was known: keep when they did.
            state.receivedAt = state.received.indices.map { state.received[$0] >= revision ? state.reachedReceivedAt[$0] : nil }
            state.ackedAt = state.acked.indices.map { state.acked[$0] >= revision ? state.reachedAckedAt[$0] : nil }
        }
    }

    /// When each session first received (or acked) the tracked revision.
    func times(acked: Bool) -> [ContinuousClock.Instant] {
        state.withLock { (acked ? $0.ackedAt : $0.receivedAt).compactMap { $0 } }
    }

    /// Waits until `condition` holds (checked at each recorded event) or `timeout` passes; true if it held.
    func wait(for timeout: Duration, until condition: @escaping @Sendable (Counts) -> Bool) async -> Bool {
        let id = UUID()
        return await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let now = state.withLock { state -> Bool in
                if condition(state.counts) { return true }
                state.waiters[id] = (condition, continuation)
                return false
            }
            if now {
                continuation.resume(returning: true)
                return
            }
            Task {
                try? await Task.sleep(for: timeout)
                if let waiter = self.state.withLock({ $0.waiters.removeValue(forKey: id) }) {
                    waiter.continuation.resume(returning: false)
                }
            }
        }
    }

    private func update(_ change: (inout State) -> Void) {
        let ready = state.withLock { state -> [CheckedContinuation<Bool, Never>] in
            change(&state)
            guard !state.waiters.isEmpty else { return [] }
            let counts = state.counts
            var ready: [CheckedContinuation<Bool, Never>] = []
            for (id, waiter) in state.waiters where waiter.condition(counts) {
                ready.append(waiter.continuation)
                state.waiters[id] = nil
            }
            return ready
        }
        for continuation in ready { continuation.resume(returning: true) }
    }
}

/// One light session's protocol: hello after the handshake, heartbeats, an ack for every
/// complete snapshot and every delta.
///
/// It reads frames, decoding only the small messages; a delta is read for its revision alone
/// (`WireCodec.revision(of:)`), so the generator spends its CPU on TLS and framing, as little as
/// it can, and the hub is what is measured.
final class LightSessionHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    private let index: Int
    private let cluster: String
    private let recorder: Recorder
    private let heartbeat: TimeAmount
    private let onEnd: @Sendable () -> Void
    private let codec = WireCodec()
    private var timer: RepeatedTask?
    private var established = false

    init(index: Int, cluster: String, recorder: Recorder, heartbeat: TimeAmount, onEnd: @escaping @Sendable () -> Void) {
        self.index = index
        self.cluster = cluster
        self.recorder = recorder
        self.heartbeat = heartbeat
        self.onEnd = onEnd
    }

    private func send(_ message: WireMessage, context: ChannelHandlerContext) {
        guard let frame = try? codec.encode(message, allocator: context.channel.allocator) else { return }
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
    }

    func channelActive(context: ChannelHandlerContext) {
        recorder.connected(index)
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            let resumed = (try? context.pipeline.syncOperations.handler(type: OpenSSLHandler.self))?.resumed ?? false
            recorder.handshaken(index, resumed: resumed)
            send(.hello(Hello(protocolVersions: [1], agentVersion: "bench", cluster: cluster)), context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.type {
        case WireMessage.Kind.delta.rawValue:
            guard let revision = try? codec.revision(of: frame, allocator: context.channel.allocator) else { return }
            recorder.received(index, revision: revision, acked: false)
            ack(revision, context: context)
        case WireMessage.Kind.welcome.rawValue, WireMessage.Kind.snapshot.rawValue:
            guard let message = try? codec.decode(frame, allocator: context.channel.allocator) else { return }
            switch message {
            case .welcome(let welcome):
                established = true
                recorder.established(index)
                let interval = TimeAmount.milliseconds(Int64(welcome.heartbeatIntervalMilliseconds))
                let first = TimeAmount.nanoseconds(Int64.random(in: interval.nanoseconds / 2...interval.nanoseconds))
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                timer = context.eventLoop.scheduleRepeatedTask(initialDelay: first, delay: interval) { _ in
                    let (handler, context) = loopBound.value
                    handler.send(.heartbeat(Heartbeat(sentAtMilliseconds: 0)), context: context)
                }
            case .snapshot(let snapshot):
                recorder.received(index, revision: snapshot.revision, acked: false)
                if snapshot.chunkIndex == snapshot.chunkCount - 1 { ack(snapshot.revision, context: context) }
            default:
                break
            }
        default:
            break
        }
    }

    private func ack(_ revision: UInt64, context: ChannelHandlerContext) {
        send(.ack(Ack(revision: revision, failures: [])), context: context)
        recorder.received(index, revision: revision, acked: true)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        if established { recorder.ended(index) }
        onEnd()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
