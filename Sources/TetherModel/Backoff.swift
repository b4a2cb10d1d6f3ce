/// Delays between attempts of anything retried (reconnecting to the hub, pushing to an agent,
/// listing the store again): exponential, capped, with full jitter.
///
/// Attempt `n` waits a uniformly random time in `0 ... min(maximum, initial * 2^n)`. Full jitter
/// spreads a fleet of agents that lost the same hub at the same moment across the whole window,
/// so a restarted hub meets a stream of reconnects rather than one wall of them.
public struct Backoff: Sendable, Hashable {
    public var initial: Duration
    public var maximum: Duration

    public init(initial: Duration = .milliseconds(500), maximum: Duration = .seconds(30)) {
        // A zero or inverted range would make a fleet retry in lock step; clamp it to something sane.
        self.initial = max(initial, .milliseconds(1))
        self.maximum = max(maximum, self.initial)
    }

    /// The ceiling of attempt `attempt` (0 for the first retry): what the random delay never exceeds.
    public func ceiling(attempt: Int) -> Duration {
        // Past 2^32 the cap has long been reached; stop doubling before the arithmetic overflows.
        let doublings = min(max(attempt, 0), 32)
        var ceiling = initial
        for _ in 0..<doublings {
            ceiling = ceiling * 2
            if ceiling >= maximum { return maximum }
        }
        return min(ceiling, maximum)
    }

    public func delay(attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let ceiling = self.ceiling(attempt: attempt)
        let nanoseconds = ceiling.components.seconds * 1_000_000_000 + ceiling.components.attoseconds / 1_000_000_000
        return .nanoseconds(Int64.random(in: 0...nanoseconds, using: &generator))
    }

    public func delay(attempt: Int) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return delay(attempt: attempt, using: &generator)
    }
}
