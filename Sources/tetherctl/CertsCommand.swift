import ArgumentParser
import Foundation
import TetherObservability
import TetherSecurity

struct CertsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs",
        abstract: "Issue, inspect, check, renew and revoke the federation's certificates, and roll its CA over.",
        subcommands: [IssueCommand.self, RenewCommand.self, InspectCommand.self, CheckCommand.self, RevokeCommand.self, RotateCACommand.self]
    )
}

struct IssueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "issue",
        abstract: "Issue an agent bundle for a member cluster.",
        discussion: """
            Writes OUT/tls.key, tls.crt (identity spiffe://<trust-domain>/cluster/NAME), ca.crt and \
            agent.json. The hub address defaults to the first hub host and the port in DIR/hub.ports.json \
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
    try parseDurationArgument(text)
}

struct RevokeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Put a certificate on the hub's revocation list; the hub refuses it at once.",
        discussion: """
            Adds an entry to DIR/revoked.json, which the hub watches: a session opened with a revoked \
            certificate ends within a second (goaway revoked) and new handshakes with it are refused. With \
            --serial (hex, as `certs inspect` prints it) one certificate is revoked; with --cluster NAME \
            every certificate issued to that cluster until now (a bundle issued later, e.g. by joining the \
            cluster again, is valid). Exit 0 on success, non-zero with a one-line reason otherwise.
            """
    )

    @Option(name: .long, help: "The federation directory.")
    var dir: String

    @Option(name: .long, help: "The serial of the certificate to revoke (hex).")
    var serial: String?

    @Option(name: .long, help: "Revoke every certificate issued so far to this member cluster.")
    var cluster: String?

    @Option(name: .long, help: "Why, recorded with the entry and logged by the hub.")
    var reason = "revoked by an operator"

    @Option(name: .long, help: "Output format: text or json.")
    var output: OutputFormat = .text

    func validate() throws {
        guard (serial == nil) != (cluster == nil) else { throw ValidationError("give either --serial S or --cluster NAME") }
        if let serial, serial.isEmpty || !serial.allSatisfy(\.isHexDigit) {
            throw ValidationError("--serial must be hexadecimal, as `tetherctl certs inspect` prints it")
        }
    }

    func run() throws {
        let directory = FederationDirectory(path: dir)
        let entry: RevocationList.Entry
        if let cluster {
            let identity = try TetherIdentity.cluster(cluster, trustDomain: try directory.loadConfig().trustDomain)
            entry = RevocationList.Entry(identity: identity.uri, reason: reason)
        } else {
            _ = try directory.loadConfig()
            entry = RevocationList.Entry(serial: serial, reason: reason)
        }
        try directory.revoke(entry)
        switch output {
        case .json: try printJSON(entry)
        case .text: print("revoked \(entry.serial.map { "serial \($0)" } ?? entry.identity ?? ""): \(reason); the hub refuses it from now on")
        }
    }
}

struct RotationResult: Encodable {
    var rotation: CARotation
    var signing: CertificateSummary
    var retiring: [CertificateSummary]
}

struct RotateCACommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate-ca",
        abstract: "Roll the federation CA over to a new one, with an overlap during which both are trusted.",
        discussion: """
            Without --finish: creates a new CA (DIR/ca.key), makes DIR/ca.crt trust the new CA and every \
            current one (the new one first: it signs from now on), and re-issues the hub's and the admin's \
            certificates (and DIR/kubeconfig) from it. The running hub reloads them, sends the new bundle to \
            every connected agent, and each agent renews onto the new CA over its session; no session is \
            dropped. With --finish: drops the old CAs from DIR/ca.crt (the hub sends the shorter bundle to \
            agents) and deletes the old CA key; refused while the hub's or admin's certificate is from an \
            old CA. Finish once `tetherctl certs check` and the Clusters' status.certificate.issuer show \
            every agent on the new CA. Exit 0 on success, non-zero with a one-line reason otherwise.
            """
    )

    @Option(name: .long, help: "The federation directory.")
    var dir: String

    @Flag(name: .long, help: "End the rollover: trust only the new CA.")
    var finish = false

    @Option(name: .long, help: "How long the new CA is valid, e.g. 87600h or 3650d.", transform: parseDuration)
    var validity: Duration = .days(3650)

    @Option(name: .long, help: "Output format: text or json.")
    var output: OutputFormat = .text

    func run() throws {
        let directory = FederationDirectory(path: dir)
        _ = try directory.loadConfig()
        if finish {
            let retired = try directory.finishCARotation()
            switch output {
            case .json: try printJSON(["retired": retired])
            case .text:
                for authority in retired { print("no longer trusted: \(authority.subject) (serial \(authority.serial))") }
                print("CA rollover finished; \(directory.caCertificatePath) holds only the signing CA")
            }
        } else {
            let retiring = try directory.loadTrustBundle().map(CertificateSummary.init)
            let rotation = try directory.rotateCA(validity: validity)
            let signing = try CertificateSummary(directory.loadAuthority().certificate)
            switch output {
            case .json: try printJSON(RotationResult(rotation: rotation, signing: signing, retiring: retiring))
            case .text:
                print("new CA: \(signing.subject) (serial \(signing.serial)), signing from now on")
                for authority in retiring { print("still trusted until --finish: \(authority.subject) (serial \(authority.serial))") }
                print("hub and admin certificates re-issued; agents renew onto the new CA over their sessions")
                print("next: once every agent is on the new CA, `tetherctl certs rotate-ca --dir \(dir) --finish`")
            }
        }
    }
}
