import NIOConcurrencyHelpers
import NIOCore
import TetherWire

/// The agent's current established session to the hub, as the applier sees it: send a message
/// when a session is up, or end the session to make the hub resend.
public final class HubLink: Sendable {
    private let channel = NIOLockedValueBox<(any Channel)?>(nil)

    public init() {}

    public var isEstablished: Bool { channel.withLockedValue { $0 != nil } }

    func attach(_ established: any Channel) { channel.withLockedValue { $0 = established } }

    func detach(_ ended: any Channel) {
        channel.withLockedValue { current in
            if current === ended { current = nil }
        }
    }

    /// Writes `message` on the established session; false when there is none or the write failed.
    /// Waiting for the write keeps at most one batch in the channel at a time.
    public func send(_ message: WireMessage) async -> Bool {
        guard let current = channel.withLockedValue({ $0 }) else { return false }
        do {
            try await current.writeAndFlush(message)
            return true
        } catch {
            return false
        }
    }

    /// Ends the current session; the connector reconnects, announcing the held revision.
    public func close(reason: String) {
        channel.withLockedValue { $0 }?.pipeline.fireUserInboundEventTriggered(AgentSessionEvent.resync(reason))
    }
}
