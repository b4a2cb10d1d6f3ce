import NIOCore

/// How fast one agent session may send each kind of message: a token bucket per kind.
///
/// A bucket holds up to `capacity` messages and refills at `perSecond`; a message that finds it
/// empty is over budget, and the session is closed with `rate-limited`. The figures leave a well
/// behaved agent far inside (one heartbeat per interval, status batched, a renewal at two thirds
/// of a certificate's life) and stop one that floods the hub (docs/limits.md).
struct SessionBudget {
    struct Bucket {
        let capacity: Double
        let perSecond: Double
        private var tokens: Double
        private var last: NIODeadline?

        init(capacity: Double, perSecond: Double) {
            self.capacity = capacity
            self.perSecond = perSecond
            self.tokens = capacity
        }

        /// Takes one message's token at `now`; false when none is left.
        mutating func take(at now: NIODeadline) -> Bool {
            if let last, now > last {
                let elapsed = Double((now - last).nanoseconds) / 1e9
                tokens = min(capacity, tokens + elapsed * perSecond)
            }
            last = now
            guard tokens >= 1 else { return false }
            tokens -= 1
            return true
        }
    }

    var heartbeats: Bucket
    var statuses: Bucket
    var acks: Bucket
    var renewals: Bucket

    /// Budgets for a session whose agent heartbeats every `heartbeatIntervalMilliseconds`.
    init(heartbeatIntervalMilliseconds: Int) {
        let interval = max(0.001, Double(heartbeatIntervalMilliseconds) / 1000)
        // Three per interval on average (the agent sends one, with jitter), a burst of ten.
        heartbeats = Bucket(capacity: 10, perSecond: 3 / interval)
        // The agent batches up to 500 objects per message; 200 at once covers a snapshot of
        // 100,000 objects, and 100 a second any steady stream of changes.
        statuses = Bucket(capacity: 200, perSecond: 100)
        acks = Bucket(capacity: 200, perSecond: 100)
        // A renewal is due once per certificate lifetime; three at once, then one per 5 s.
        renewals = Bucket(capacity: 3, perSecond: 0.2)
    }
}
