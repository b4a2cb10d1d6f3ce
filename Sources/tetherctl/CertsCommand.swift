import ArgumentParser
import Foundation
import TetherSecurity

struct CertsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs",
        abstract: "Issue and inspect the federation's certificates.",
        subcommands: [IssueCommand.self, RenewCommand.self, InspectCommand.self, CheckCommand.self]
    )
}

struct IssueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "issue",
        abstract: "Issue an agent bundle for a member cluster.",
        discussion: """
            Writes OUT/tls.key, tls.crt (identity spiffe://<trust-domain>/cluster/NAME), ca.crt and
            agent.json. The hub address defaults to the first hub host and the port in DIR/hub.ports.json
            (or 7443 when no hub has run).
            """
    )

    @Option(name: .long, help: "The federation directory (from `tetherctl init`).")
    var dir: String

    @Option(name: .long, help: "The member cluster's name (a DNS label).")
    var cluster: String

    @Option(name: .long, help: "The bundle directory to write.")
    var out: String

    @Option(name: .customLong("hub-address"), help: "Hub agent-listener address host:port for agent.json (repeatable).")
    var hubAddresses: [String] = []

    @Option(name: .long, help: "How long the certificate is valid, e.g. 8760h or 365d.", transform: parseDuration)
    var validity: Duration = .days(365)

    @Option(name: .long, help: "Output format: text or json.")
    var output: OutputFormat = .text

    func run() throws {
        let directory = FederationDirectory(path: dir)
        let bundle = try directory.issueAgentBundle(
            cluster: cluster,
            to: out,
            hubAddresses: hubAddresses.isEmpty ? nil : hubAddresses,
            validity: validity
        )
        let certificate = try PEMFiles.readCertificates(at: bundle.certificatePath)[0]
        let manifest = try bundle.loadManifest()
        switch output {
        case .json:
            try printJSON(IssueResult(bundle: bundle.path, manifest: manifest, certificate: CertificateSummary(certificate)))
        case .text:
            let summary = CertificateSummary(certificate)
            print("bundle for cluster \(cluster) written to \(bundle.path)")
            print("  identity   \(summary.identity ?? "-")")
            print("  expires    \(summary.notAfter.formatted(.iso8601))")
            print("  hub        \(manifest.hubAddresses.joined(separator: ", "))")
            print("next: tether-agent --bundle \(bundle.path)")
        }
    }

    struct IssueResult: Encodable {
        var bundle: String
        var manifest: AgentManifest
        var certificate: CertificateSummary
    }
}

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a PEM certificate's subject, SANs, identity, serial and validity.",
        discussion: "With --all, every certificate in the file (a CA bundle may hold several) is shown; JSON is then an array."
    )

    @Argument(help: "A PEM certificate file.")
    var file: String

    @Flag(name: .long, help: "Show every certificate in the file, not only the first.")
    var all = false

    @Option(name: .long, help: "Output format: text or json.")
    var output: OutputFormat = .text

    func run() throws {
        let certificates = try PEMFiles.readCertificates(at: file)
        let summaries = (all ? certificates : [certificates[0]]).map(CertificateSummary.init)
        switch output {
        case .json:
            if all { try printJSON(summaries) } else { try printJSON(summaries[0]) }
        case .text:
            for summary in summaries {
                print("subject      \(summary.subject)")
                print("issuer       \(summary.issuer)")
                print("identity     \(summary.identity ?? "-")")
                print("serial       \(summary.serial)")
                print("not before   \(summary.notBefore.formatted(.iso8601))")
                print("not after    \(summary.notAfter.formatted(.iso8601))")
                print("CA           \(summary.isCertificateAuthority ? "yes" : "no")")
                if !summary.dnsNames.isEmpty { print("DNS names    \(summary.dnsNames.joined(separator: ", "))") }
                if !summary.ipAddresses.isEmpty { print("IP addresses \(summary.ipAddresses.joined(separator: ", "))") }
                if !summary.uris.isEmpty { print("URIs         \(summary.uris.joined(separator: ", "))") }
                print("")
            }
        }
    }
}

func parseDuration(_ text: String) throws -> Duration {
    guard let parsed = DurationArgument(text) else {
        throw ValidationError("'\(text)' is not a duration; write it like 8760h, 30d, 90m or 1h30m")
    }
    return parsed.duration
}
