import ArgumentParser
import TetherSecurity

/// The DNS options shared by `init` and `dns set`.
struct DNSOptions: ParsableArguments {
    @Option(name: .customLong("dns-zone"), help: "The DNS zone the federation's records go in, such as example.com (docs/dns.md).")
    var zone: String?

    @Option(name: .customLong("name"), help: "The federation's name, one label of every record: <service>.<namespace>.<name>.svc.<zone>.")
    var federation: String = FederationDNS.defaultFederationName

    @Option(name: .customLong("dns-ttl"), help: "Seconds resolvers may keep an answer.")
    var ttl: Int = FederationDNS.defaultTTL

    @Option(
        name: .customLong("dns-nameserver"),
        help: "A name server of the zone, NAME or NAME=ADDRESS (the address when NAME is inside the zone); repeatable. Default: localhost.")
    var nameservers: [String] = []

    /// The settings, or nil without `--dns-zone`.
    func settings() throws -> FederationDNS? {
        guard let zone else {
            guard nameservers.isEmpty else { throw ValidationError("--dns-nameserver needs --dns-zone") }
            return nil
        }
        do {
            return try FederationDNS(zone: zone, federation: federation, ttl: ttl, nameservers: nameservers)
        } catch {
            throw ValidationError(error.message)
        }
    }
}

struct DNSCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dns",
        abstract: "The DNS records the hub publishes for federated Services and Ingresses.",
        discussion: """
            With a DNS zone, the hub publishes, for every federated Service of type LoadBalancer and \
            every Ingress, records by zone, by region (the Clusters' topology.kubernetes.io labels) \
            and globally, with healthy members only: as DNSEndpoint objects in its API and as the \
            zone file DIR/dns.zone. docs/dns.md has the BIND and external-dns configuration.
            """,
        subcommands: [DNSSetCommand.self, DNSShowCommand.self, DNSUnsetCommand.self]
    )
}

struct DNSSetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set", abstract: "Set the federation's DNS zone and name (the hub reads them at start).")

    @Option(name: .long, help: "The federation directory.")
    var dir: String

    @OptionGroup var dns: DNSOptions

    func validate() throws {
        guard dns.zone != nil else { throw ValidationError("--dns-zone is required") }
    }

    func run() throws {
        let settings = try dns.settings()
        try FederationDirectory(path: dir).configureDNS(settings)
        if let settings { print(DNSShowCommand.describe(settings, directory: dir) + "\nrestart the hub to publish with these settings") }
    }
}

struct DNSUnsetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unset", abstract: "Stop publishing DNS records (after the hub's next start; existing DNSEndpoints stay until deleted).")

    @Option(name: .long, help: "The federation directory.")
    var dir: String

    func run() throws {
        try FederationDirectory(path: dir).configureDNS(nil)
        print("DNS publishing is off from the hub's next start")
    }
}

struct DNSShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show the federation's DNS settings.")

    @Option(name: .long, help: "The federation directory.")
    var dir: String

    @Option(name: .long, help: "Output format: text or json.")
    var output: OutputFormat = .text

    func run() throws {
        let config = try FederationDirectory(path: dir).loadConfig()
        switch (output, config.dns) {
        case (.json, let dns): try printJSON(dns.map { DNSResult($0, zoneFile: FederationDirectory(path: dir).dnsZoneFilePath) })
        case (.text, nil): print("DNS records are not published: no DNS zone; set one with `tetherctl dns set --dir \(dir) --dns-zone ZONE`")
        case (.text, let dns?): print(Self.describe(dns, directory: dir))
        }
    }

    static func describe(_ dns: FederationDNS, directory: String) -> String {
        [
            "zone          \(dns.zone)",
            "federation    \(dns.federation)",
            "ttl           \(dns.ttl)s",
            "name servers  \(dns.nameservers.map(\.argument).joined(separator: ", "))",
            "zone file     \(FederationDirectory(path: directory).dnsZoneFilePath)",
            "example       <service>.<namespace>.\(dns.federation).svc.<zone>.<region>.\(dns.zone)",
        ].joined(separator: "\n")
    }

    struct DNSResult: Encodable {
        var zone: String
        var federation: String
        var ttl: Int
        var nameservers: [String]
        var zoneFile: String

        init(_ dns: FederationDNS, zoneFile: String) {
            zone = dns.zone
            federation = dns.federation
            ttl = dns.ttl
            nameservers = dns.nameservers.map(\.argument)
            self.zoneFile = zoneFile
        }
    }
}
