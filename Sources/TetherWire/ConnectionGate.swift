import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore

/// How many strangers a listener holds, and for how long.
///
/// A connection is a *stranger* until it authenticates: on the agent port until its `hello` is
/// accepted, on the API port until its first request arrives. Strangers are what a flood is
/// made of, so they have their own cap and a deadline; established connections count only
/// toward the totals.
public struct ListenerLimits: Sendable, Hashable {
    /// Open connections of every kind.
    public var maximumConnections: Int
    /// Open connections from one source address.
    public var maximumConnectionsPerAddress: Int
    /// Connections that have not authenticated yet.
    public var maximumStrangers: Int
    /// How long a connection may take from accept to authentication (TLS handshake included).
    public var authenticationTimeout: TimeAmount

    public init(
        maximumConnections: Int,
        maximumConnectionsPerAddress: Int,
        maximumStrangers: Int,
        authenticationTimeout: TimeAmount = .seconds(10)
    ) {
        self.maximumConnections = max(1, maximumConnections)
        self.maximumConnectionsPerAddress = max(1, maximumConnectionsPerAddress)
        self.maximumStrangers = max(1, maximumStrangers)
        self.authenticationTimeout = authenticationTimeout
    }
}

/// Admits, counts and sheds one listener's connections (``ListenerLimits``).
///
/// When a cap is reached, a new connection may take the place of the oldest *silent* stranger
/// (one that has not sent a byte: an idle TCP connection, the stuff of floods); if there is none,
/// the new connection is refused. So a flood of idle connections never locks out a client that
/// speaks at once (kubectl, an agent in a reconnect storm), and a storm of clients that do speak
/// is never made to evict its own handshakes half-way.
///
/// Shared by every connection of the listener; safe from any event loop. Each shed connection is
/// counted in `tether_listener_connections_shed_total{listener,reason}` and summarized in at most
/// one log line per second.
public final class ConnectionGate: Sendable {
    public enum ShedReason: String, Sendable, CaseIterable {
        /// The listener holds its maximum of connections.
        case total
        /// The source address holds its maximum.
        case perAddress = "per-address"
        /// The listener holds its maximum of strangers.
        case strangers
        /// An older silent stranger made room for a newer connection.
        case evicted
        /// A stranger did not authenticate within the timeout.
        case timeout
    }

    private struct Connection {
        let channel: any Channel
        let address: String
        let sequence: UInt64
        var authenticated = false
        var silent = true
    }

    private struct State {
        var connections: [ObjectIdentifier: Connection] = [:]
        var perAddress: [String: Int] = [:]
        var strangers = 0
        var silentStrangers = 0
        var nextSequence: UInt64 = 0
        /// Silent strangers, oldest first; entries for connections that spoke, authenticated or
        /// closed since are skipped when met (and dropped when the buffer is compacted).
        var silentOrder = CircularBuffer<(sequence: UInt64, id: ObjectIdentifier)>()
        var shedSinceLog: [ShedReason: Int] = [:]
        var lastLog = NIODeadline.uptimeNanoseconds(0)
    }

    public let name: String
    public let limits: ListenerLimits
    private let state = NIOLockedValueBox(State())
    private let logger: Logger
    private let shedCounters: [ShedReason: Counter]
    private let openGauge: Gauge
    private let strangerGauge: Gauge

    public init(name: String, limits: ListenerLimits, logger: Logger) {
        self.name = name
        self.limits = limits
        self.logger = logger
        var counters: [ShedReason: Counter] = [:]
        for reason in ShedReason.allCases {
            counters[reason] = Counter(
                label: "tether_listener_connections_shed_total", dimensions: [("listener", name), ("reason", reason.rawValue)])
        }
        shedCounters = counters
        openGauge = Gauge(label: "tether_listener_connections", dimensions: [("listener", name), ("state", "open")])
        strangerGauge = Gauge(label: "tether_listener_connections", dimensions: [("listener", name), ("state", "unauthenticated")])
    }

    /// Open connections, and how many of them have not authenticated.
    public var counts: (open: Int, strangers: Int) {
        state.withLockedValue { ($0.connections.count, $0.strangers) }
    }

    /// Admits `channel` as a stranger, making room by evicting a silent stranger where a cap is
    /// reached; false when it is refused (the caller closes it).
    func admit(_ channel: any Channel) -> Bool {
        let address = channel.remoteAddress?.ipAddress ?? "unknown"
        let id = ObjectIdentifier(channel)
        var evicted: [any Channel] = []
        let refusal: ShedReason? = state.withLockedValue { state in
            if state.perAddress[address, default: 0] >= limits.maximumConnectionsPerAddress {
                guard let victim = Self.evictSilentStranger(from: address, in: &state) else { return .perAddress }
                evicted.append(victim)
            }
            if state.connections.count >= limits.maximumConnections {
                guard let victim = Self.evictSilentStranger(from: nil, in: &state) else { return .total }
                evicted.append(victim)
            }
            if state.strangers >= limits.maximumStrangers {
                guard let victim = Self.evictSilentStranger(from: nil, in: &state) else { return .strangers }
                evicted.append(victim)
            }
            let sequence = state.nextSequence
            state.nextSequence += 1
            state.connections[id] = Connection(channel: channel, address: address, sequence: sequence)
            state.perAddress[address, default: 0] += 1
            state.strangers += 1
            state.silentStrangers += 1
            state.silentOrder.append((sequence, id))
            if state.silentOrder.count > 2 * state.silentStrangers + 64 { Self.compact(&state) }
            return nil
        }
        for victim in evicted {
            victim.close(promise: nil)
            shed(.evicted)
        }
        if let refusal {
            shed(refusal)
            return false
        }
        record()
        return true
    }

    /// The connection sent its first bytes: it is no longer a candidate for eviction.
    func spoke(_ channel: any Channel) {
        state.withLockedValue { state in
            let id = ObjectIdentifier(channel)
            guard var connection = state.connections[id], connection.silent else { return }
            connection.silent = false
            state.connections[id] = connection
            if !connection.authenticated { state.silentStrangers -= 1 }
        }
    }

    /// The connection authenticated (an agent's `hello` was accepted, an API request arrived).
    public func authenticated(_ channel: any Channel) {
        let changed = state.withLockedValue { state -> Bool in
            let id = ObjectIdentifier(channel)
            guard var connection = state.connections[id], !connection.authenticated else { return false }
            connection.authenticated = true
            state.connections[id] = connection
            state.strangers -= 1
            if connection.silent { state.silentStrangers -= 1 }
            return true
        }
        if changed { record() }
    }

    func isAuthenticated(_ channel: any Channel) -> Bool {
        state.withLockedValue { $0.connections[ObjectIdentifier(channel)]?.authenticated ?? true }
    }

    func closed(_ channel: any Channel) {
        state.withLockedValue { state in
            guard let connection = state.connections.removeValue(forKey: ObjectIdentifier(channel)) else { return }
            let remaining = state.perAddress[connection.address, default: 1] - 1
            state.perAddress[connection.address] = remaining > 0 ? remaining : nil
            if !connection.authenticated {
                state.strangers -= 1
                if connection.silent { state.silentStrangers -= 1 }
            }
        }
        record()
    }

    func timedOut(_ channel: any Channel) {
        channel.close(promise: nil)
        shed(.timeout)
    }

    /// Removes the oldest silent stranger (from `address`, or any) and returns its channel to close.
    private static func evictSilentStranger(from address: String?, in state: inout State) -> (any Channel)? {
        var skipped: [(sequence: UInt64, id: ObjectIdentifier)] = []
        defer {
            // Entries passed over for another address keep their place at the front.
            for entry in skipped.reversed() { state.silentOrder.prepend(entry) }
        }
        while let entry = state.silentOrder.popFirst() {
            guard let connection = state.connections[entry.id], connection.sequence == entry.sequence,
                connection.silent, !connection.authenticated
            else { continue }
            if let address, connection.address != address {
                skipped.append(entry)
                continue
            }
            state.connections[entry.id] = nil
            let remaining = state.perAddress[connection.address, default: 1] - 1
            state.perAddress[connection.address] = remaining > 0 ? remaining : nil
            state.strangers -= 1
            state.silentStrangers -= 1
            return connection.channel
        }
        return nil
    }

    private static func compact(_ state: inout State) {
        var kept = CircularBuffer<(sequence: UInt64, id: ObjectIdentifier)>(initialCapacity: state.silentStrangers + 16)
        for entry in state.silentOrder {
            if let connection = state.connections[entry.id], connection.sequence == entry.sequence, connection.silent,
                !connection.authenticated
            {
                kept.append(entry)
            }
        }
        state.silentOrder = kept
    }

    private func shed(_ reason: ShedReason) {
        shedCounters[reason]?.increment()
        let summary: [ShedReason: Int]? = state.withLockedValue { state in
            state.shedSinceLog[reason, default: 0] += 1
            let now = NIODeadline.now()
            guard now - state.lastLog >= .seconds(1) else { return nil }
            state.lastLog = now
            defer { state.shedSinceLog = [:] }
            return state.shedSinceLog
        }
        guard let summary else { return }
        let (open, strangers) = counts
        logger.warning(
            "listener shedding connections",
            metadata: [
                "tether.event": "listener.shed", "tether.listener": "\(name)",
                "tether.shed":
                    "\(summary.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue)=\($0.value)" }.joined(separator: ","))",
                "tether.open": "\(open)", "tether.unauthenticated": "\(strangers)",
            ]
        )
    }

    private func record() {
        let (open, strangers) = counts
        openGauge.record(open)
        strangerGauge.record(strangers)
    }
}

/// The first handler of every accepted connection: asks its listener's ``ConnectionGate`` to
/// admit it, notes its first bytes, closes it if it has not authenticated in time, and tells the
/// gate when it closes.
public final class ConnectionGateHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer

    private let gate: ConnectionGate
    private var admitted = false
    private var spoke = false
    private var deadline: Scheduled<Void>?

    public init(gate: ConnectionGate) {
        self.gate = gate
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { admit(context: context) }
    }

    public func channelActive(context: ChannelHandlerContext) {
        admit(context: context)
        context.fireChannelActive()
    }

    private func admit(context: ChannelHandlerContext) {
        guard !admitted else { return }
        admitted = true
        guard gate.admit(context.channel) else {
            context.close(promise: nil)
            return
        }
        let channel = context.channel
        let gate = self.gate
        deadline = context.eventLoop.scheduleTask(in: gate.limits.authenticationTimeout) {
            if !gate.isAuthenticated(channel) { gate.timedOut(channel) }
        }
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !spoke {
            spoke = true
            gate.spoke(context.channel)
        }
        context.fireChannelRead(data)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        if admitted { gate.closed(context.channel) }
        context.fireChannelInactive()
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension ListenerLimits {
    /// The process's soft limit on open descriptors (`RLIMIT_NOFILE`): every connection takes one,
    /// so listeners' caps are set below it and a flood meets a cap, not `EMFILE`.
    public static var descriptorLimit: Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        return limit.rlim_cur == rlim_t.max ? 1 << 20 : Int(clamping: limit.rlim_cur)
    }
}

/// How many lines of one kind a listener logs per second: a flood of refused handshakes must not
/// become a flood of log lines. Lines over the budget are counted, and the next line logged
/// says how many were left out.
public final class LogBudget: Sendable {
    private struct State {
        var windowStart = NIODeadline.uptimeNanoseconds(0)
        var logged = 0
        var suppressed = 0
    }

    private let perSecond: Int
    private let state = NIOLockedValueBox(State())

    public init(perSecond: Int = 20) {
        self.perSecond = perSecond
    }

    /// Whether a line may be logged now, and how many were left out since the last one that was.
    public func take(now: NIODeadline = .now()) -> (allowed: Bool, leftOut: Int) {
        state.withLockedValue { state in
            if now - state.windowStart >= .seconds(1) {
                state.windowStart = now
                state.logged = 0
            }
            guard state.logged < perSecond else {
                state.suppressed += 1
                return (false, 0)
            }
            state.logged += 1
            defer { state.suppressed = 0 }
            return (true, state.suppressed)
        }
    }
}
