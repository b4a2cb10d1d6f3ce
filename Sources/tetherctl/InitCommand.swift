import ArgumentParser
import TetherSecurity

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a federation directory: CA, hub certificate, admin certificate and kubeconfig.",
        discussion: """
            Writes DIR/ca.crt, ca.key, hub.crt, hub.key, admin.crt, admin.key, kubeconfig (context \
            `federation`) and federation.json. Keys are ECDSA P-256 and readable by their owner only. \
            Refuses to replace an existing CA unless --force is given.
            """
    )

    @Option(name: .long, help: "The federation directory to create.")
    var dir: String

    @Option(name: .long, help: "The SPIFFE trust domain of every identity in this federation.")
    var trustDomain: String = "tether.local"

    @Option(name: .customLong("hub-host"), help: "A host name or IP address the hub is reached at (repeatable).")
    var hubHosts: [String] = []

    @OptionGroup(title: "DNS for federated Services and Ingresses (docs/dns.md)") var dns: DNSOptions

    @Flag(name: .long, help: "Replace an existing CA (every issued bundle must then be issued again).")
    var force = false

    @Option(name: .long, help: "Output format: text or json.")
    var output: OutputFormat = .text

    func run() throws {
        let directory = FederationDirectory(path: dir)
        let hosts = hubHosts.isEmpty ? FederationDirectory.defaultHubHosts : hubHosts
        let config = try directory.initialize(trustDomain: trustDomain, hubHosts: hosts, dns: try dns.settings(), force: force)
        switch output {
        case .json:
            try printJSON(
                InitResult(directory: directory.path, trustDomain: config.trustDomain, hubHosts: config.hubHosts, dnsZone: config.dns?.zone))
        case .text:
            print("federation initialized in \(directory.path)")
            print("  trust domain  \(config.trustDomain)")
            print("  hub hosts     \(config.hubHosts.joined(separator: ", "))")
            print(
                "  DNS zone      \(config.dns.map { "\($0.zone) (names <service>.<namespace>.\($0.federation).svc.\($0.zone))" } ?? "none: no DNS records")"
            )
            print("  kubeconfig    \(directory.kubeconfigPath) (context federation)")
            print("next: tether-hub --dir \(directory.path)")
        }
    }

    struct InitResult: Encodable {
        var directory: String
        var trustDomain: String
        var hubHosts: [String]
        var dnsZone: String?
    }
}
