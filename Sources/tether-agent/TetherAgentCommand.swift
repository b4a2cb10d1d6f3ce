import ArgumentParser
import Logging
import NIOCore
import ServiceLifecycle
import TetherAgent
import TetherObservability
import TetherSecurity
import TetherWire
import UnixSignals

@main
struct TetherAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tether-agent",
        abstract: "Run the Tether agent of one member cluster: it dials out to the hub and holds a session.",
        discussion: """
            The agent only ever makes outbound connections: mutual TLS 1.3 to the hub addresses in
            BUNDLE/agent.json, verifying the hub's certificate and host name against BUNDLE/ca.crt.
            After any disconnect it reconnects with exponential backoff and full jitter.
            Stops cleanly on SIGTERM or SIGINT.
            """
    )

    @Option(name: .long, help: "The agent bundle directory (from `tetherctl certs issue` or `tetherctl join`).")
    var bundle: String

    @Option(name: .long, help: "Hub agent-listener address (host:port), overriding agent.json. Repeatable.")
    var hub: [String] = []

    @Option(name: .long, help: "Seconds before the first reconnection attempt may start (the backoff's base).")
    var backoffInitial: Double = 0.5

    @Option(name: .long, help: "Longest wait between reconnection attempts, in seconds (the backoff's cap).")
    var backoffMax: Double = 30

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard backoffInitial > 0, backoffMax >= backoffInitial else {
            throw ValidationError("--backoff-initial must be positive and no larger than --backoff-max")
        }
    }

    func run() async throws {
        logging.bootstrap()
        let logger = Logger(label: "tether.agent")
        let agentBundle = AgentBundle(path: bundle)
        let manifest = try agentBundle.loadManifest()
        let material = try agentBundle.loadMaterial()
        let addresses = try (hub.isEmpty ? manifest.hubAddresses : hub).map { try HostAndPort(parsing: $0) }
        guard !addresses.isEmpty else {
            throw ValidationError("no hub address: agent.json lists none and no --hub was given")
        }
        let connector = try AgentConnector(
            configuration: AgentConfiguration(
                hubAddresses: addresses,
                backoff: ReconnectBackoff(
                    initial: .milliseconds(Int64(backoffInitial * 1000)),
                    maximum: .milliseconds(Int64(backoffMax * 1000))
                )
            ),
            material: material,
            logger: logger
        )
        logger.info(
            "agent starting",
            metadata: ["tether.cluster": "\(manifest.cluster)", "tether.hub": "\(addresses.map(\.description))"]
        )
        let group = ServiceGroup(
            configuration: .init(services: [connector], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        try await group.run()
    }
}
