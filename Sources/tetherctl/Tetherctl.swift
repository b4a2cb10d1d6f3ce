import ArgumentParser

@main
struct Tetherctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tetherctl",
        abstract: "Administer a Tether federation: its PKI, its member clusters, and a local demo.",
        subcommands: [
            InitCommand.self, JoinCommand.self, UnjoinCommand.self, ClusterCommand.self, CertsCommand.self, TokenCommand.self, DNSCommand.self,
            DemoCommand.self, PluginCommand.self, GetCommand.self,
        ]
    )
}

/// `--output` for commands that print data.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text
    case json
}
