import NIOConcurrencyHelpers
import NIOCore
import TetherSecurity
import TetherWire
import X509

/// Events the hub delivers to a session's channel from outside it.
enum HubSessionEvent: Sendable {
    /// A newer session for the same cluster was established.
    case replaced(by: String)
    /// The hub is shutting down.
    case drain(reconnectAfterMilliseconds: Int)
    /// The session's certificate was revoked.
    case revoked(reason: String)
    /// The answer to the session's renewal request was written.
    case renewalAnswered
}

/// What the federation engine learns from agent sessions. Called on the session's event loop:
/// implementations hand the work elsewhere and return at once.
public protocol HubSessionObserver: Sendable {
    /// Nil when the cluster may hold a session; otherwise why not (it never joined, or was unjoined).
    func refusal(cluster: String) -> String?
    func sessionEstablished(cluster: String, sessionID: String, hello: Hello, channel: any Channel)
    func sessionEnded(cluster: String, sessionID: String)
    func received(_ message: WireMessage, cluster: String, sessionID: String)
    /// The certificate the cluster's agent holds: presented at the handshake, or just signed by
    /// the hub on renewal (the session goes on with the old one until the next handshake).
    func certificateHeld(cluster: String, sessionID: String, certificate: CertificateSummary)
}

extension HubSessionObserver {
    public func certificateHeld(cluster: String, sessionID: String, certificate: CertificateSummary) {}
}

/// The live session of each cluster: at most one. Safe to use from any event loop.
public final class SessionRegistry: Sendable {
    struct Entry: Sendable {
        var sessionID: String
        var channel: any Channel
        /// The certificate the session was opened with (its summary: the parsed form is 2.2 KB, #23).
        var certificate: CertificateSummary?
        /// The member tunnel over this session.
        var tunnel: HubTunnel?
    }

    private struct Connection {
        var channel: any Channel
        /// The certificate it presented, once its handshake verified it.
        var certificate: CertificateSummary?
    }

    private let sessions = NIOLockedValueBox<[String: Entry]>([:])
    /// Every open agent connection, established or not, so a shutdown (and a revocation) can
    /// reach those that have not sent `hello` yet.
    private let connections = NIOLockedValueBox<[ObjectIdentifier: Connection]>([:])
    /// What refuses certificates now: the revocation list in force, with the renewal ledger.
    private let verifier: NIOLockedValueBox<PeerVerifier?> = NIOLockedValueBox(nil)

    public init() {}

    func track(_ channel: any Channel) {
        connections.withLockedValue { $0[ObjectIdentifier(channel)] = Connection(channel: channel) }
    }

    /// The connection's handshake verified `certificate`.
    func noteCertificate(_ certificate: CertificateSummary, of channel: any Channel) {
        connections.withLockedValue { $0[ObjectIdentifier(channel)]?.certificate = certificate }
    }

    /// Why `certificate` is refused now (revoked, or renewed from a revoked one), or nil: a
    /// handshake verified a moment before a revocation is caught when its `hello` arrives.
    func refusal(of certificate: CertificateSummary) -> PeerVerifier.Refusal? {
        guard let verifier = verifier.withLockedValue({ $0 }) else { return nil }
        return Self.refusal(of: certificate, by: verifier)
    }

    private static func refusal(of certificate: CertificateSummary, by verifier: PeerVerifier) -> PeerVerifier.Refusal? {
        guard let revocation = verifier.revocation(of: certificate), let identity = certificate.identity.flatMap(TetherIdentity.init(uri:))
        else { return nil }
        return PeerVerifier.revoked(certificate, identity: identity, by: revocation)
    }

    func untrack(_ channel: any Channel) {
        _ = connections.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// Records `sessionID` as the cluster's live session and tells the one it replaces, if any, to go away.
    func claim(cluster: String, sessionID: String, channel: any Channel, certificate: CertificateSummary? = nil, tunnel: HubTunnel? = nil) {
        let previous = sessions.withLockedValue { sessions in
            let previous = sessions[cluster]
            sessions[cluster] = Entry(sessionID: sessionID, channel: channel, certificate: certificate, tunnel: tunnel)
            return previous
        }
        previous?.channel.pipeline.fireUserInboundEventTriggered(HubSessionEvent.replaced(by: sessionID))
    }

    /// Forgets the cluster's session if it is still `sessionID` (a replaced session must not evict its successor).
    func release(cluster: String, sessionID: String) {
        sessions.withLockedValue { sessions in
            if sessions[cluster]?.sessionID == sessionID { sessions[cluster] = nil }
        }
    }

    /// The member tunnel over the cluster's live session.
    func tunnel(of cluster: String) -> HubTunnel? {
        sessions.withLockedValue { $0[cluster]?.tunnel }
    }

    /// The clusters with a live session, and the session IDs.
    public var liveSessions: [String: String] {
        sessions.withLockedValue { $0.mapValues(\.sessionID) }
    }

    public var count: Int { sessions.withLockedValue { $0.count } }

    /// Refuses `verifier`'s revoked certificates from now on: ends every session, established or
    /// still before its `hello`, whose certificate it covers. Returns the clusters cut off.
    @discardableResult
    func endRevoked(_ verifier: PeerVerifier) -> [String] {
        self.verifier.withLockedValue { $0 = verifier }
        func reason(_ certificate: CertificateSummary?) -> String? {
            certificate.flatMap { Self.refusal(of: $0, by: verifier)?.reason }
        }
        let revoked = sessions.withLockedValue { sessions in
            sessions.compactMap { cluster, entry -> (cluster: String, channel: any Channel, reason: String)? in
                reason(entry.certificate).map { (cluster, entry.channel, $0) }
            }
        }
        let strangers = connections.withLockedValue { connections in
            connections.values.compactMap { connection -> (channel: any Channel, reason: String)? in
                reason(connection.certificate).map { (connection.channel, $0) }
            }
        }
        for session in revoked {
            session.channel.pipeline.fireUserInboundEventTriggered(HubSessionEvent.revoked(reason: session.reason))
        }
        let established = Set(revoked.map { ObjectIdentifier($0.channel) })
        for connection in strangers where !established.contains(ObjectIdentifier(connection.channel)) {
            connection.channel.pipeline.fireUserInboundEventTriggered(HubSessionEvent.revoked(reason: connection.reason))
        }
        return revoked.map(\.cluster)
    }

    /// Sends `message` on every established session (a new CA bundle).
    func broadcast(_ message: WireMessage) {
        for entry in sessions.withLockedValue({ Array($0.values) }) {
            entry.channel.writeAndFlush(message, promise: nil)
        }
    }

    /// Asks every open connection to go away and returns them, so the caller can wait for them to close.
    func drainAll(reconnectAfterMilliseconds: Int) -> [any Channel] {
        let channels = connections.withLockedValue { $0.values.map(\.channel) }
        for channel in channels {
            channel.pipeline.fireUserInboundEventTriggered(
                HubSessionEvent.drain(reconnectAfterMilliseconds: reconnectAfterMilliseconds)
            )
        }
        return channels
    }
}
