import ArgumentParser
import Logging
import NIOCore
import ServiceLifecycle
import TetherHub
import TetherObservability
import TetherSecurity
import TetherWire
import UnixSignals

@main
struct TetherHubCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tether-hub",
        abstract: "Run the Tether hub: the federation's control point, which member-cluster agents dial into.",
        discussion: """
            Reads its certificates from the federation directory made by `tetherctl init`, listens for
            agents on mutual TLS 1.3, and writes the ports it bound to DIR/hub.ports.json.
            Stops cleanly on SIGTERM or SIGINT, telling connected agents to come back later.
            """
    )

    @Option(name: .long, help: "The federation directory (from `tetherctl init`).")
    var dir: String

    @Option(name: .long, help: "Address of the agent listener; ':0' picks a free port.")
    var agentListen: String = "127.0.0.1:\(FederationDirectory.defaultAgentPort)"

    @Option(name: .long, help: "Seconds between agent heartbeats; a session silent for three is closed.")
    var heartbeatInterval: Double = 10

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard heartbeatInterval >= 0.05, heartbeatInterval <= 3600 else {
            throw ValidationError("--heartbeat-interval must be between 0.05 and 3600 seconds")
        }
    }

    func run() async throws {
        logging.bootstrap()
        let logger = Logger(label: "tether.hub")
        let directory = FederationDirectory(path: dir)
        let address = try HostAndPort(parsing: agentListen)
        _ = try directory.loadConfig()
        let material = try TLSMaterial.load(
            certificate: directory.hubCertificatePath,
            key: directory.hubKeyPath,
            trustBundle: directory.caCertificatePath
        )
        guard case .hub = material.identity.role else {
            throw ValidationError("\(directory.hubCertificatePath) is for \(material.identity), not the hub")
        }
        let listener = try AgentListener(
            configuration: AgentListenerConfiguration(
                address: address,
                heartbeatInterval: .milliseconds(Int64(heartbeatInterval * 1000))
            ),
            material: material,
            logger: logger,
            onBound: { port in try directory.writePorts(HubPorts(agent: port)) }
        )
        let group = ServiceGroup(
            configuration: .init(services: [listener], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        try await group.run()
    }
}
