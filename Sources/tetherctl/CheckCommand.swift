import ArgumentParser
import Foundation
import TetherSecurity

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check every certificate of the federation and its issued bundles for expiry.",
        discussion: """
            Checks DIR/ca.crt (every CA in it), hub.crt, admin.crt and every bundle recorded in \
            DIR/issued.json by `certs issue` and `certs renew` (bundles moved elsewhere are checked from \
            the record). Exit codes: 0 nothing expires within the window; 1 something does (with \
            --output json, the list of those certificates is printed); 2 the check itself failed.
            """
    )

    @Option(name: .long, help: "The federation directory.")
    var dir: String

    @Option(name: .long, help: "The window, e.g. 720h or 30d.", transform: parseDuration)
    var expiringWithin: Duration

    @Option(name: .long, help: "Output format: text or json.")
    var output: OutputFormat = .text

    func run() throws {
        let results: [CertificateExpiry]
        do {
            results = try FederationDirectory(path: dir).checkExpiry(within: expiringWithin)
        } catch {
            FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let expiring = results.filter(\.expiring)
        switch output {
        case .json:
            try printJSON(expiring)
        case .text:
            for result in results {
                let days = Double(result.secondsLeft) / 86_400
                let mark = result.expiring ? "EXPIRING" : "ok"
                print(
                    "\(mark.padding(toLength: 9, withPad: " ", startingAt: 0)) \(String(format: "%8.1f", days)) days  \(result.identity ?? result.subject)  \(result.file)"
                )
            }
            print(expiring.isEmpty ? "nothing expires within the window" : "\(expiring.count) certificate(s) expire within the window")
        }
        if !expiring.isEmpty { throw ExitCode(1) }
    }
}

struct RenewCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "renew",
        abstract: "Re-issue a certificate with a new key for the same identity.",
        discussion: """
            With --cluster NAME --out B: renews the agent bundle in B (which must be NAME's), keeping its \
            hub addresses; a running agent notices the new files and uses them for its next handshake \
            (agents also renew by themselves over their sessions). With --hub: renews DIR/hub.crt and \
            hub.key for the same hosts; the running hub reloads them for new handshakes on both ports. \
            Files are replaced atomically (key first). Exit 0 on success, non-zero with a one-line \
            reason otherwise.
            """
    )

    @Option(name: .long, help: "The federation directory.")
    var dir: String

    @Option(name: .long, help: "The member cluster whose bundle to renew.")
    var cluster: String?

    @Option(name: .long, help: "The agent bundle directory to renew (with --cluster).")
    var out: String?

    @Flag(name: .long, help: "Renew the hub's certificate instead of an agent's.")
    var hub = false

    @Option(name: .long, help: "How long the new certificate is valid, e.g. 8760h or 365d.", transform: parseDuration)
    var validity: Duration = .days(365)

    @Option(name: .long, help: "Output format: text or json.")
    var output: OutputFormat = .text

    func validate() throws {
        guard hub != (cluster != nil) else { throw ValidationError("give either --hub or --cluster NAME --out B") }
        guard hub || out != nil else { throw ValidationError("--cluster needs --out, the bundle to renew") }
    }

    func run() throws {
        let directory = FederationDirectory(path: dir)
        let certificatePath: String
        if hub {
            _ = try directory.renewHubCertificate(validity: validity)
            certificatePath = directory.hubCertificatePath
        } else if let cluster, let out {
            let existing = try AgentBundle(path: out).loadManifest()
            guard existing.cluster == cluster else {
                throw ValidationError("\(out) is the bundle of cluster '\(existing.cluster)', not '\(cluster)'")
            }
            let bundle = try directory.issueAgentBundle(cluster: cluster, to: out, hubAddresses: existing.hubAddresses, validity: validity)
            certificatePath = bundle.certificatePath
        } else {
            throw ValidationError("give either --hub or --cluster NAME --out B")
        }
        let summary = CertificateSummary(try PEMFiles.readCertificates(at: certificatePath)[0])
        switch output {
        case .json: try printJSON(summary)
        case .text:
            print("renewed \(summary.identity ?? summary.subject): serial \(summary.serial), valid until \(summary.notAfter.formatted(.iso8601))")
        }
    }
}
