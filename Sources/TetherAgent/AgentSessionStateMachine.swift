import TetherSecurity
import TetherWire

/// How one agent session ended; the connector picks its next step from it.
public enum SessionEnd: Sendable, Hashable, CustomStringConvertible {
    case connectFailed(String)
    case handshakeFailed(String)
    /// The hub presented a certificate for some identity other than the federation's hub.
    case notTheHub(String)
    case rejected(Reject)
    case goaway(GoAway)
    /// Nothing arrived from the hub for three heartbeat intervals (or no `welcome` in time).
    case hubUnresponsive
    case connectionLost
    case protocolViolation(String)
    /// The agent ended the session so that the hub sends its desired state again.
    case resyncRequested(String)
    case shutdown

    public var description: String {
        switch self {
        case .connectFailed(let reason): "cannot connect: \(reason)"
        case .handshakeFailed(let reason): "TLS handshake failed: \(reason)"
        case .notTheHub(let reason): reason
        case .rejected(let reject): "hub rejected the session (\(reject.code)): \(reject.reason)"
        case .goaway(let goaway): "hub ended the session (\(goaway.code)): \(goaway.reason)"
        case .hubUnresponsive: "hub unresponsive: no message for three heartbeat intervals"
        case .connectionLost: "connection lost"
        case .protocolViolation(let reason): "protocol violation: \(reason)"
        case .resyncRequested(let reason): "resynchronizing desired state: \(reason)"
        case .shutdown: "agent shutting down"
        }
    }

    /// The hub's own word on when to come back, if it gave one.
    public var retryHintMilliseconds: Int? {
        switch self {
        case .rejected(let reject): reject.retryAfterMilliseconds
        case .goaway(let goaway): goaway.reconnectAfterMilliseconds
        default: nil
        }
    }
}

/// The life of one agent session, without sockets or clocks.
///
/// ```
/// connecting --TLS ok, peer is the hub--> awaitingWelcome --welcome--> established --> ended
///                                              | reject                     | goaway, silence, violation, shutdown
/// ```
struct AgentSessionStateMachine {
    enum State {
        case connecting
        case awaitingWelcome
        case established(sessionID: String, heartbeatIntervalMilliseconds: Int)
        case ended(SessionEnd)
    }

    enum Action: Equatable {
        case none
        /// Send `hello` and wait for the answer, closing if none comes in time.
        case sendHello(Hello)
        /// The session is up: heartbeat every interval, close after three intervals of silence.
        case established(sessionID: String, heartbeatIntervalMilliseconds: Int)
        case sendHeartbeat
        /// Hand a `snapshot` or `delta` to the applier.
        case deliver(WireMessage)
        /// Hand a `certificate` or `trust` to the agent's credentials.
        case credentials(WireMessage)
        /// Hand a `streamOpen`, `streamWindow` or `streamReset` to the member tunnel.
        case tunnel(WireMessage)
        /// Send a final message (an `error` notice), then close.
        case sendAndClose(WireMessage, SessionEnd)
        case close(SessionEnd)
    }

    private(set) var state = State.connecting
    let hello: Hello
    let hubIdentity: TetherIdentity

    init(hello: Hello, hubIdentity: TetherIdentity) {
        self.hello = hello
        self.hubIdentity = hubIdentity
    }

    var end: SessionEnd? {
        if case .ended(let end) = state { return end }
        return nil
    }

    var wasEstablished = false
    /// What the hub said when it accepted the session (its federation and store epoch).
    private(set) var welcome: Welcome?

    mutating func handshakeCompleted(peerIdentity: TetherIdentity?) -> Action {
        guard case .connecting = state else { return .none }
        guard peerIdentity == hubIdentity else {
            return finish(
                .notTheHub(
                    "the server's certificate is for \(peerIdentity?.uri ?? "no Tether identity"), not \(hubIdentity); "
                        + "check the hub address in agent.json"
                )
            )
        }
        state = .awaitingWelcome
        return .sendHello(hello)
    }

    mutating func received(_ message: WireMessage) -> Action {
        switch state {
        case .connecting, .ended:
            return .none
        case .awaitingWelcome:
            switch message {
            case .welcome(let welcome):
                guard WireMessage.supportedVersions.contains(welcome.protocolVersion),
                    welcome.heartbeatIntervalMilliseconds > 0
                else {
                    return violation("welcome chose version \(welcome.protocolVersion) with heartbeat \(welcome.heartbeatIntervalMilliseconds) ms")
                }
                state = .established(
                    sessionID: welcome.sessionID,
                    heartbeatIntervalMilliseconds: welcome.heartbeatIntervalMilliseconds
                )
                wasEstablished = true
                self.welcome = welcome
                return .established(
                    sessionID: welcome.sessionID,
                    heartbeatIntervalMilliseconds: welcome.heartbeatIntervalMilliseconds
                )
            case .reject(let reject):
                return finish(.rejected(reject))
            case .error(let notice):
                return finish(.protocolViolation("hub reported \(notice.code): \(notice.message)"))
            default:
                return violation("expected welcome, got \(message.kind)")
            }
        case .established:
            switch message {
            case .heartbeat:
                return .none
            case .snapshot, .delta:
                return .deliver(message)
            case .certificate, .trust:
                return .credentials(message)
            case .goaway(let goaway):
                return finish(.goaway(goaway))
            case .error(let notice):
                return finish(.protocolViolation("hub reported \(notice.code): \(notice.message)"))
            case .streamOpen, .streamWindow, .streamReset:
                return .tunnel(message)
            case .hello, .welcome, .reject, .ack, .status, .renew, .streamHead, .streamData:
                return violation("\(message.kind) is not sent by the hub on an established session")
            }
        }
    }

    mutating func heartbeatDue() -> Action {
        guard case .established = state else { return .none }
        return .sendHeartbeat
    }

    mutating func readTimedOut() -> Action {
        switch state {
        case .awaitingWelcome, .established: finish(.hubUnresponsive)
        case .connecting: finish(.handshakeFailed("the hub accepted the connection but did not complete the TLS handshake in time"))
        case .ended: .none
        }
    }

    /// The applier lost step with the hub (a delta that does not follow, a full backlog).
    mutating func resync(_ reason: String) -> Action {
        guard case .established = state else { return .none }
        return finish(.resyncRequested(reason))
    }

    mutating func shutdown() -> Action {
        switch state {
        case .ended: .none
        case .connecting, .awaitingWelcome, .established: finish(.shutdown)
        }
    }

    mutating func wireViolation(_ error: WireError) -> Action {
        guard case .ended = state else {
            state = .ended(.protocolViolation("hub sent \(error)"))
            return .none
        }
        return .none
    }

    /// The connection closed; records why if nothing else did.
    mutating func connectionClosed(handshakeError: String?) {
        guard case .ended = state else {
            state = .ended(handshakeError.map { .handshakeFailed($0) } ?? .connectionLost)
            return
        }
    }

    private mutating func finish(_ end: SessionEnd) -> Action {
        state = .ended(end)
        return .close(end)
    }

    private mutating func violation(_ reason: String) -> Action {
        let end = SessionEnd.protocolViolation(reason)
        state = .ended(end)
        return .sendAndClose(.error(ErrorMessage(code: .unexpectedMessage, message: reason)), end)
    }
}
