import NIOCore
import TetherSecurity
import TetherWire

/// The life of one agent connection at the hub, without sockets or clocks.
///
/// ```
/// handshaking --TLS ok, cluster identity--> awaitingHello --hello ok--> established --> closed
///      |                                       |  hello names another cluster,      |  goaway (replaced, draining),
///      +--not an agent: reject, close          |  no common version: reject, close  |  heartbeats missed, violation
/// ```
///
/// Each event returns the action the channel handler performs; the handler decides nothing.
struct HubSessionStateMachine {
    enum State {
        case handshaking
        case awaitingHello(TetherIdentity)
        case established(Established)
        case closed
    }

    struct Established: Equatable {
        var cluster: String
        var sessionID: String
        var protocolVersion: Int
        /// The revision the agent says it applied last, from `hello`.
        var lastAppliedRevision: UInt64? = nil
        var agentVersion = ""
        /// Kinds the agent's plugins handle, from `hello`.
        var kinds: [String] = []
        /// The digest of the revision the agent applied last, and the proxy it came through, from `hello`.
        var lastAppliedDigest: String? = nil
        var proxy: String? = nil
    }

    /// Why a session ended, as logged in `tether.event`.
    enum SessionEnd: String, Equatable {
        case refused = "session.refused"
        case rejected = "session.rejected"
        case peerError = "session.peer_error"
        case helloTimeout = "session.hello_timeout"
        case heartbeatMissed = "session.heartbeat_missed"
        case replaced = "session.replaced"
        case drained = "session.drained"
        case revoked = "session.revoked"
        case protocolViolation = "session.protocol_violation"
        /// The agent sent a kind of message faster than its ``SessionBudget``.
        case rateLimited = "session.rate_limited"
        /// A hello, heartbeat, status or ack outside ``ReportLimits``.
        case invalidReport = "session.invalid_report"
        /// The agent stopped reading: its outbound side stayed full past the write deadline.
        case writeStalled = "session.write_stalled"

        /// Ends that are part of normal operation rather than a fault.
        var isOrderly: Bool {
            switch self {
            case .replaced, .drained: true
            case .refused, .rejected, .peerError, .helloTimeout, .heartbeatMissed, .protocolViolation, .revoked, .rateLimited,
                .invalidReport, .writeStalled:
                false
            }
        }

        /// Ends only a broken or hostile agent causes: logged with `tether.security=true` and counted.
        var isSecurityEvent: Bool {
            switch self {
            case .rateLimited, .invalidReport: true
            case .refused, .rejected, .peerError, .helloTimeout, .heartbeatMissed, .replaced, .drained, .revoked, .protocolViolation,
                .writeStalled:
                false
            }
        }
    }

    enum Action: Equatable {
        /// Nothing to do.
        case none
        /// Wait for `hello`, closing if it does not come within the hello timeout.
        case awaitHello
        /// Register the session (replacing any older one for the cluster), send `welcome`, start heartbeat watch.
        case establish(Established, Welcome)
        /// Answer the agent's heartbeat with the hub's own, so the agent can tell a live hub from a dead one.
        case answerHeartbeat(Heartbeat)
        /// Hand an `ack` or `status` to the federation engine.
        case deliver(WireMessage)
        /// Hand a tunnel stream's `streamHead`, `streamData` or `streamReset` to the session's tunnel.
        case tunnel(WireMessage)
        /// Sign the agent's certificate request, for the session's identity only; report
        /// ``renewalFinished()`` when the answer is written.
        case renew(RenewRequest, cluster: String)
        /// Send a message and go on (a renewal refused because one is already in flight).
        case send(WireMessage)
        /// Send a final message and close; `event` and `reason` say why, for the log.
        case sendAndClose(WireMessage, event: SessionEnd, reason: String)
        /// Close without sending (the peer already knows, or cannot be told).
        case close(event: SessionEnd, reason: String)
        /// Record the end; the wire layer is already answering with an `error` frame and will close.
        case ended(event: SessionEnd, reason: String)
    }

    private(set) var state: State = .handshaking
    let heartbeatIntervalMilliseconds: Int
    /// What a replaced session is told to wait: long, so two agents run with one identity by
    /// mistake do not take turns replacing each other many times a second.
    let replacedReconnectAfterMilliseconds: Int
    let hubVersion: String
    /// Named in `welcome`: the federation's UID and the store's epoch (agents fence on both).
    let federation: String?
    let epoch: String?
    /// Named in `welcome`: this run of the hub, and where its store's history ends.
    let run: HubRun?
    let makeSessionID: () -> String
    /// The clock budgets are kept by: the event loop's in the handler, a virtual one in tests.
    let now: () -> NIODeadline
    private var budget: SessionBudget
    private var renewalInFlight = false

    init(
        heartbeatIntervalMilliseconds: Int,
        replacedReconnectAfterMilliseconds: Int = 30_000,
        hubVersion: String,
        federation: String? = nil,
        epoch: String? = nil,
        run: HubRun? = nil,
        makeSessionID: @escaping () -> String,
        now: @escaping () -> NIODeadline = NIODeadline.now
    ) {
        self.heartbeatIntervalMilliseconds = heartbeatIntervalMilliseconds
        self.replacedReconnectAfterMilliseconds = replacedReconnectAfterMilliseconds
        self.hubVersion = hubVersion
        self.federation = federation
        self.epoch = epoch
        self.run = run
        self.makeSessionID = makeSessionID
        self.now = now
        self.budget = SessionBudget(heartbeatIntervalMilliseconds: heartbeatIntervalMilliseconds)
    }

    var cluster: String? {
        if case .established(let session) = state { return session.cluster }
        return nil
    }

    var sessionID: String? {
        if case .established(let session) = state { return session.sessionID }
        return nil
    }

    /// TLS is up and the verifier trusted the peer as `identity`.
    mutating func handshakeCompleted(identity: TetherIdentity, negotiatedProtocol: String?) -> Action {
        guard case .handshaking = state else { return .none }
        guard negotiatedProtocol == TetherTLS.applicationProtocol else {
            state = .closed
            return .close(
                event: .refused,
                reason: "peer did not negotiate ALPN \(TetherTLS.applicationProtocol) (got \(negotiatedProtocol ?? "none"))"
            )
        }
        guard identity.clusterName != nil else {
            state = .closed
            let reject = Reject(code: .notAnAgent, reason: "\(identity) is not an agent identity (spiffe://<trust-domain>/cluster/<name>)")
            return .sendAndClose(.reject(reject), event: .rejected, reason: reject.reason)
        }
        state = .awaitingHello(identity)
        return .awaitHello
    }

    mutating func received(_ message: WireMessage) -> Action {
        switch state {
        case .handshaking, .closed:
            return .none
        case .awaitingHello(let identity):
            guard case .hello(let hello) = message else {
                return violation("expected hello, got \(message.kind)")
            }
            return receivedHello(hello, identity: identity)
        case .established(let session):
            switch message {
            case .heartbeat(let heartbeat):
                guard budget.heartbeats.take(at: now()) else { return overBudget("heartbeats") }
                if let problem = ReportLimits.problem(in: heartbeat) { return invalidReport(problem) }
                return .answerHeartbeat(heartbeat)
            case .ack(let ack):
                guard budget.acks.take(at: now()) else { return overBudget("acks") }
                if let problem = ReportLimits.problem(in: ack) { return invalidReport(problem) }
                return .deliver(message)
            case .status(let report):
                guard budget.statuses.take(at: now()) else { return overBudget("status messages") }
                if let problem = ReportLimits.problem(in: report) { return invalidReport(problem) }
                return .deliver(message)
            case .renew(let request):
                guard budget.renewals.take(at: now()) else { return overBudget("certificate renewals") }
                guard !renewalInFlight else {
                    return .send(.certificate(CertificateIssued(error: "a renewal of this session is already being signed; wait for its answer")))
                }
                renewalInFlight = true
                return .renew(request, cluster: session.cluster)
            case .error(let notice):
                state = .closed
                return .close(event: .peerError, reason: "agent reported \(notice.code): \(notice.message)")
            case .streamHead, .streamData, .streamReset:
                // Bounded by the tunnel itself: only streams the hub opened are answered, and
                // data only within the window it granted.
                return .tunnel(message)
            case .hello, .welcome, .reject, .snapshot, .delta, .goaway, .certificate, .trust, .streamOpen, .streamWindow:
                return violation("\(message.kind) is not sent by agents on an established session")
            }
        }
    }

    /// The answer to the session's renewal was written: another may come.
    mutating func renewalFinished() {
        renewalInFlight = false
    }

    private mutating func receivedHello(_ hello: Hello, identity: TetherIdentity) -> Action {
        if let problem = ReportLimits.problem(in: hello) {
            state = .closed
            let reject = Reject(code: .invalidHello, reason: problem)
            return .sendAndClose(.reject(reject), event: .invalidReport, reason: problem)
        }
        guard identity.clusterName == hello.cluster else {
            state = .closed
            let reject = Reject(
                code: .identityMismatch,
                reason: "hello names cluster '\(hello.cluster)' but the certificate is for \(identity); "
                    + "use the bundle issued for '\(hello.cluster)'"
            )
            return .sendAndClose(.reject(reject), event: .rejected, reason: reject.reason)
        }
        guard let version = hello.protocolVersions.filter(WireMessage.supportedVersions.contains).max() else {
            state = .closed
            let reject = Reject(
                code: .unsupportedVersion,
                reason: "agent speaks protocol versions \(hello.protocolVersions); this hub speaks "
                    + "\(WireMessage.supportedVersions)"
            )
            return .sendAndClose(.reject(reject), event: .rejected, reason: reject.reason)
        }
        let session = Established(
            cluster: hello.cluster,
            sessionID: makeSessionID(),
            protocolVersion: version,
            lastAppliedRevision: hello.lastAppliedRevision,
            agentVersion: hello.agentVersion,
            kinds: hello.kinds,
            lastAppliedDigest: hello.lastAppliedDigest,
            proxy: hello.proxy
        )
        state = .established(session)
        let welcome = Welcome(
            protocolVersion: version,
            sessionID: session.sessionID,
            heartbeatIntervalMilliseconds: heartbeatIntervalMilliseconds,
            hubVersion: hubVersion,
            federation: federation,
            epoch: epoch,
            run: run?.id,
            historyThrough: run?.historyThrough
        )
        return .establish(session, welcome)
    }

    /// Nothing arrived within the deadline: the hello timeout, or three heartbeat intervals.
    mutating func readTimedOut() -> Action {
        switch state {
        case .handshaking, .closed:
            return .none
        case .awaitingHello:
            state = .closed
            return .close(event: .helloTimeout, reason: "no hello within the hello timeout")
        case .established:
            state = .closed
            return .close(event: .heartbeatMissed, reason: "no heartbeat for three intervals")
        }
    }

    /// A newer authenticated session for the same cluster took over.
    mutating func replaced(by newer: String) -> Action {
        guard case .established = state else { return .none }
        state = .closed
        let goaway = GoAway(
            code: .replaced,
            reason: "replaced by session \(newer) of the same cluster",
            reconnectAfterMilliseconds: replacedReconnectAfterMilliseconds
        )
        return .sendAndClose(.goaway(goaway), event: .replaced, reason: goaway.reason)
    }

    /// The hub is shutting down.
    /// The certificate the session was opened with was revoked: end it now, whatever its state.
    mutating func revoked(_ reason: String) -> Action {
        switch state {
        case .closed:
            return .none
        case .handshaking, .awaitingHello:
            state = .closed
            return .close(event: .revoked, reason: reason)
        case .established:
            state = .closed
            let goaway = GoAway(code: .revoked, reason: reason, reconnectAfterMilliseconds: 60_000)
            return .sendAndClose(.goaway(goaway), event: .revoked, reason: reason)
        }
    }

    mutating func drain(reconnectAfterMilliseconds: Int) -> Action {
        switch state {
        case .closed:
            return .none
        case .handshaking:
            state = .closed
            return .close(event: .drained, reason: "hub shutting down")
        case .awaitingHello:
            state = .closed
            let reject = Reject(code: .draining, reason: "hub shutting down", retryAfterMilliseconds: reconnectAfterMilliseconds)
            return .sendAndClose(.reject(reject), event: .drained, reason: reject.reason)
        case .established:
            state = .closed
            let goaway = GoAway(code: .draining, reason: "hub shutting down", reconnectAfterMilliseconds: reconnectAfterMilliseconds)
            return .sendAndClose(.goaway(goaway), event: .drained, reason: goaway.reason)
        }
    }

    /// The wire layer found a protocol violation; it answers with an `error` frame and closes.
    mutating func wireViolation(_ error: WireError) -> Action {
        guard case .closed = state else {
            state = .closed
            return .ended(event: .protocolViolation, reason: error.description)
        }
        return .none
    }

    private mutating func overBudget(_ what: String) -> Action {
        state = .closed
        let reason = "the agent sent \(what) faster than its budget allows; the session is closed"
        return .sendAndClose(.error(ErrorMessage(code: .rateLimited, message: reason)), event: .rateLimited, reason: reason)
    }

    private mutating func invalidReport(_ problem: String) -> Action {
        state = .closed
        return .sendAndClose(.error(ErrorMessage(code: .invalidReport, message: problem)), event: .invalidReport, reason: problem)
    }

    private mutating func violation(_ reason: String) -> Action {
        state = .closed
        let notice = ErrorMessage(code: .unexpectedMessage, message: reason)
        return .sendAndClose(.error(notice), event: .protocolViolation, reason: reason)
    }
}
