import NIOCore
import TetherWire

/// The hub's end of one agent's session, as the federation engine uses it: the mirror of the
/// agent's ``HubLink``. Writes wait for the channel, so the engine has at most one push in
/// flight per session and a session that does not read holds back its own pushes only.
struct AgentLink: Sendable {
    let channel: any Channel

    /// Writes `messages` in order; nil when all were written, else why not.
    func send(_ messages: [WireMessage]) async -> String? {
        for message in messages {
            do {
                try await channel.writeAndFlush(message)
            } catch {
                return "\(error)"
            }
        }
        return nil
    }

    /// Says `goaway` and closes the session.
    func end(_ goaway: GoAway) async {
        try? await channel.writeAndFlush(WireMessage.goaway(goaway))
        try? await channel.close()
    }
}
