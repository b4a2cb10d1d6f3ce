import Synchronization

/// What the API holds open at once and for how long, after kube-apiserver's flags of the same
/// purpose (`--max-requests-inflight`, `--max-mutating-requests-inflight`, `--request-timeout`,
/// `--min-request-timeout`). See docs/limits.md.
public struct APIRequestLimits: Sendable, Hashable {
    /// Reads (get, list, discovery, OpenAPI) being served at once; more get 429.
    public var maximumReadsInFlight: Int
    /// Writes (create, update, patch, delete) being served at once; more get 429.
    public var maximumWritesInFlight: Int
    /// Open watches of one user; more get 429.
    public var maximumWatchesPerUser: Int
    /// How long a request other than a watch may take before it is answered 504.
    public var requestTimeout: Duration
    /// A watch without `timeoutSeconds` ends after a random time between this and twice this,
    /// and a longer `timeoutSeconds` is cut to twice this.
    public var minimumWatchTimeout: Duration

    public init(
        maximumReadsInFlight: Int = 400,
        maximumWritesInFlight: Int = 200,
        maximumWatchesPerUser: Int = 100,
        requestTimeout: Duration = .seconds(60),
        minimumWatchTimeout: Duration = .seconds(1800)
    ) {
        self.maximumReadsInFlight = max(1, maximumReadsInFlight)
        self.maximumWritesInFlight = max(1, maximumWritesInFlight)
        self.maximumWatchesPerUser = max(1, maximumWatchesPerUser)
        self.requestTimeout = requestTimeout
        self.minimumWatchTimeout = minimumWatchTimeout
    }

    /// The longest a watch runs: twice the minimum, as kube-apiserver's randomized timeout reaches.
    public var maximumWatchTimeout: Duration { minimumWatchTimeout * 2 }

    /// How long a watch that asked for `requested` seconds (nil: nothing asked) runs.
    func watchTimeout(requested: Int64?) -> Duration {
        let maximumSeconds = Int64(maximumWatchTimeout.components.seconds)
        if let requested { return .seconds(min(max(requested, 1), max(maximumSeconds, 1))) }
        let minimum = Double(minimumWatchTimeout.components.seconds)
        return .milliseconds(Int64(minimum * Double.random(in: 1...2) * 1000))
    }
}

/// Counts what the API is serving against ``APIRequestLimits``: a ticket per request, returned
/// when it ends.
final class InFlightLimiter: Sendable {
    enum Kind { case read, write }

    private struct Counts {
        var reads = 0
        var writes = 0
        var watches: [String: Int] = [:]
    }

    let limits: APIRequestLimits
    private let counts = Mutex(Counts())

    init(limits: APIRequestLimits) {
        self.limits = limits
    }

    /// Takes a place for a request of `kind`; false when every place is taken.
    func enter(_ kind: Kind) -> Bool {
        counts.withLock { counts in
            switch kind {
            case .read:
                guard counts.reads < limits.maximumReadsInFlight else { return false }
                counts.reads += 1
            case .write:
                guard counts.writes < limits.maximumWritesInFlight else { return false }
                counts.writes += 1
            }
            return true
        }
    }

    func leave(_ kind: Kind) {
        counts.withLock { counts in
            switch kind {
            case .read: counts.reads -= 1
            case .write: counts.writes -= 1
            }
        }
    }

    /// Takes a watch place of `user`; false when they hold their maximum.
    func enterWatch(of user: String) -> Bool {
        counts.withLock { counts in
            guard counts.watches[user, default: 0] < limits.maximumWatchesPerUser else { return false }
            counts.watches[user, default: 0] += 1
            return true
        }
    }

    func leaveWatch(of user: String) {
        counts.withLock { counts in
            let remaining = counts.watches[user, default: 1] - 1
            counts.watches[user] = remaining > 0 ? remaining : nil
        }
    }
}
