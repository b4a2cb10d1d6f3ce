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
        /// The certificate the session was opened with.
        var certificate: Certificate?
    }

    private let sessions = NIOLockedValueBox<[String: Entry]>([:])
    /// Every open agent connection, established or not, so a shutdown can reach them all.
    private let connections = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])

    public init() {}

    func track(_ channel: any Channel) {
        connections.withLockedValue { $0[ObjectIdentifier(channel)] = channel }
    }

    func untrack(_ channel: any Channel) {
        _ = connections.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// Records `sessionID` as the cluster's live session and tells the one it replaces, if any, to go away.
    func claim(cluster: String, sessionID: String, channel: any Channel, certificate: Certificate? = nil) {
        let previous = sessions.withLockedValue { sessions in
            let previous = sessions[cluster]
            sessions[cluster] = Entry(sessionID: sessionID, channel: channel, certificate: certificate)
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

    /// The clusters with a live session, and the session IDs.
    public var liveSessions: [String: String] {
        sessions.withLockedValue { $0.mapValues(\.sessionID) }
    }

    public var count: Int { sessions.withLockedValue { $0.count } }

    /// Ends every session whose certificate `revocations` covers; returns the clusters cut off.
    @discardableResult
    func endRevoked(_ revocations: RevocationList) -> [String] {
        let revoked = sessions.withLockedValue { sessions in
            sessions.compactMap { cluster, entry -> (cluster: String, channel: any Channel, reason: String)? in
                guard let certificate = entry.certificate, let revocation = revocations.revocation(of: certificate),
                    let identity = try? TetherIdentity(certificate: certificate)
                else { return nil }
                return (cluster, entry.channel, PeerVerifier.revoked(certificate, identity: identity, by: revocation).reason)
            }
        }
        for session in revoked {
            session.channel.pipeline.fireUserInboundEventTriggered(HubSessionEvent.revoked(reason: session.reason))
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
        let channels = connections.withLockedValue { Array($0.values) }
        for channel in channels {
            channel.pipeline.fireUserInboundEventTriggered(
                HubSessionEvent.drain(reconnectAfterMilliseconds: reconnectAfterMilliseconds)
            )
        }
        return channels
    }
}
