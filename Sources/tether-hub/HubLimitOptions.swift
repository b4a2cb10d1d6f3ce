import ArgumentParser
import NIOCore
import TetherAPI
import TetherWire

/// The hub's limits as command-line options; each defaults to what docs/limits.md gives.
struct HubLimitOptions: ParsableArguments {
    @Option(name: .long, help: "Open agent connections at most (default: from the open-file limit, at most 16384).")
    var agentMaxConnections: Int?

    @Option(name: .long, help: "Open agent connections from one source address at most.")
    var agentMaxConnectionsPerAddress: Int = 4_096

    @Option(name: .long, help: "Agent connections that have not sent an accepted hello yet, at most.")
    var agentMaxUnauthenticated: Int = 2_048

    @Option(name: .long, help: "Open API connections at most (default: from the open-file limit, at most 1024).")
    var apiMaxConnections: Int?

    @Option(name: .long, help: "Open API connections from one source address at most (default: the API maximum).")
    var apiMaxConnectionsPerAddress: Int?

    @Option(name: .long, help: "API connections that have not sent a request yet, at most (default: a quarter of the API maximum).")
    var apiMaxUnauthenticated: Int?

    @Option(name: .long, help: "Seconds a new connection on either port may take to authenticate (TLS handshake and hello, or first request).")
    var handshakeTimeout: Double = 10

    @Option(name: .long, help: "Seconds an agent that reads nothing keeps its session while the hub has data for it.")
    var writeStallTimeout: Double = 60

    @Option(name: .long, help: "API reads served at once; more get 429 (kube-apiserver's --max-requests-inflight).")
    var maxRequestsInflight: Int = 400

    @Option(name: .long, help: "API writes served at once; more get 429 (kube-apiserver's --max-mutating-requests-inflight).")
    var maxMutatingRequestsInflight: Int = 200

    @Option(name: .long, help: "Open watches per API user; more get 429.")
    var maxWatchesPerUser: Int = 100

    @Option(name: .long, help: "Seconds a request other than a watch may take before it is answered 504.")
    var requestTimeout: Double = 60

    @Option(name: .long, help: "Seconds a watch runs at least when it names no timeoutSeconds; no watch runs longer than twice this.")
    var minRequestTimeout: Double = 1800

    @Option(name: .long, help: "Requests to members (/clusters/NAME/proxy/) open at once on one agent session; more get 429.")
    var tunnelStreamsPerSession: Int = TunnelLimits.default.maximumStreamsPerSession

    @Option(name: .long, help: "KiB of a member's answer in flight per tunnel request before the agent waits for the client to read.")
    var tunnelWindowKib: Int = TunnelLimits.default.streamWindowBytes / 1024

    /// Descriptors the hub keeps for itself (store, logs, inotify, event loops, pipes) besides connections.
    static let reservedDescriptors = 64

    func validate() throws {
        for (name, value) in [
            ("--agent-max-connections-per-address", agentMaxConnectionsPerAddress), ("--agent-max-unauthenticated", agentMaxUnauthenticated),
            ("--max-requests-inflight", maxRequestsInflight), ("--max-mutating-requests-inflight", maxMutatingRequestsInflight),
            ("--max-watches-per-user", maxWatchesPerUser), ("--tunnel-streams-per-session", tunnelStreamsPerSession),
        ] where value < 1 {
            throw ValidationError("\(name) must be at least 1")
        }
        for (name, value) in [
            ("--agent-max-connections", agentMaxConnections), ("--api-max-connections", apiMaxConnections),
            ("--api-max-connections-per-address", apiMaxConnectionsPerAddress), ("--api-max-unauthenticated", apiMaxUnauthenticated),
        ]
        where (value ?? 1) < 1 {
            throw ValidationError("\(name) must be at least 1")
        }
        guard (64...16_384).contains(tunnelWindowKib) else {
            throw ValidationError(
                "--tunnel-window-kib must be 64 to 16384: below 64 KiB every answer crawls, above 16 MiB one request holds too much")
        }
        guard handshakeTimeout >= 0.1, writeStallTimeout >= 1, requestTimeout >= 1, minRequestTimeout >= 1 else {
            throw ValidationError(
                "--handshake-timeout must be at least 0.1 s; --write-stall-timeout, --request-timeout and --min-request-timeout at least 1 s")
        }
    }

    /// Both listeners' limits, fitted under `descriptors` (the process's open-file limit): a flood
    /// meets a cap, never `EMFILE`, and the API always keeps room beside the agents.
    func listenerLimits(descriptors: Int) -> (agent: ListenerLimits, api: ListenerLimits) {
        let budget = max(32, descriptors - Self.reservedDescriptors)
        let api = apiMaxConnections ?? min(1_024, max(8, budget / 8))
        let agent = agentMaxConnections ?? min(16_384, max(8, budget - api))
        let timeout = TimeAmount.milliseconds(Int64(handshakeTimeout * 1000))
        return (
            ListenerLimits(
                maximumConnections: agent,
                maximumConnectionsPerAddress: min(agentMaxConnectionsPerAddress, agent),
                maximumStrangers: min(agentMaxUnauthenticated, agent),
                authenticationTimeout: timeout
            ),
            ListenerLimits(
                maximumConnections: api,
                maximumConnectionsPerAddress: min(apiMaxConnectionsPerAddress ?? api, api),
                maximumStrangers: min(apiMaxUnauthenticated ?? max(4, api / 4), api),
                authenticationTimeout: timeout
            )
        )
    }

    var tunnelLimits: TunnelLimits {
        TunnelLimits(maximumStreamsPerSession: tunnelStreamsPerSession, streamWindowBytes: tunnelWindowKib * 1024)
    }

    var requestLimits: APIRequestLimits {
        APIRequestLimits(
            maximumReadsInFlight: maxRequestsInflight,
            maximumWritesInFlight: maxMutatingRequestsInflight,
            maximumWatchesPerUser: maxWatchesPerUser,
            requestTimeout: .milliseconds(Int64(requestTimeout * 1000)),
            minimumWatchTimeout: .milliseconds(Int64(minRequestTimeout * 1000))
        )
    }
}
