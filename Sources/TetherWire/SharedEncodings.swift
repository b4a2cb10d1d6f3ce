import NIOCore
import Synchronization

/// One encoding of a desired-state message for many sessions.
///
/// When a change reaches every cluster, the hub sends each of them the same delta (the same
/// revisions, the same shared object values). The first session's handler encodes and
/// compresses it; the others find it here and write the same frame, so a fan-out to N agents
/// costs one JSON encoding and one deflate instead of N. Only deltas are kept (snapshots list
/// a cluster's objects in its own order, so they are rarely equal), the last few of them and
/// none over ``maximumKeptPayload``: looking one up costs a comparison that stops at the first
/// differing revision and compares shared object values by identity.
public final class SharedEncodings: Sendable {
    private struct State {
        var recent: [(message: WireMessage, frame: Frame)] = []
        var encoded = 0
        var reused = 0
    }

    private let state = Mutex(State())
    private let capacity: Int
    /// Larger frames are not kept: the cache must not hold megabytes after a fan-out is over.
    public static let maximumKeptPayload = 1 << 20

    public init(capacity: Int = 4) {
        self.capacity = max(1, capacity)
    }

    /// How many messages were encoded, and how many writes reused an encoding.
    public var counts: (encoded: Int, reused: Int) {
        state.withLock { ($0.encoded, $0.reused) }
    }

    /// The frame for `message`: a kept one when an equal delta was encoded recently, otherwise
    /// `encode()`'s (kept for the next sessions when the message is a delta).
    func frame(for message: WireMessage, encode: () throws(WireError) -> Frame) throws(WireError) -> Frame {
        guard case .delta = message else { return try encode() }
        let kept = state.withLock { state -> Frame? in
            guard let index = state.recent.firstIndex(where: { $0.message == message }) else { return nil }
            state.reused += 1
            return state.recent[index].frame
        }
        if let kept { return kept }
        // Encoded outside the lock: two sessions missing at once both encode, and neither waits.
        let frame = try encode()
        guard frame.payload.readableBytes <= Self.maximumKeptPayload else { return frame }
        state.withLock { state in
            state.encoded += 1
            if state.recent.count == capacity { state.recent.removeFirst() }
            state.recent.append((message, frame))
        }
        return frame
    }
}
