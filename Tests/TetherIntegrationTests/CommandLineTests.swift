import Foundation
import Testing
import TetherLocal
import TetherSecurity
import TetherTestSupport

/// Runs a Tether executable to completion and returns its exit status and output.
func run(_ binary: String, _ arguments: [String], within timeout: Duration = .seconds(30)) async throws -> (status: Int32, output: String) {
    let binaries = try TetherBinaries.locate()
    let process = ManagedProcess(name: binary, executable: binaries.url(binary), arguments: arguments)
    try process.start()
    guard let status = await process.waitForExit(within: timeout) else {
        await process.stop()
        throw DeadlineExceeded(description: "\(binary) \(arguments) did not finish")
    }
    return (status, process.lines.map(\.raw).joined(separator: "\n"))
}

@Suite("Command-line contract", .timeLimit(.minutes(2)))
struct CommandLineTests {
    @Test(
        "every command has --help and exits 0 with it",
        arguments: [
            ("tetherctl", ["--help"]), ("tetherctl", ["init", "--help"]), ("tetherctl", ["certs", "issue", "--help"]),
            ("tetherctl", ["certs", "inspect", "--help"]), ("tetherctl", ["certs", "check", "--help"]),
            ("tetherctl", ["certs", "renew", "--help"]), ("tetherctl", ["certs", "revoke", "--help"]),
            ("tetherctl", ["certs", "rotate-ca", "--help"]), ("tetherctl", ["demo", "--help"]), ("tetherctl", ["token", "create", "--help"]),
            ("tetherctl", ["token", "revoke", "--help"]), ("tetherctl", ["dns", "set", "--help"]), ("tetherctl", ["dns", "show", "--help"]),
            ("tetherctl", ["dns", "unset", "--help"]), ("tetherctl", ["plugin", "test", "--help"]), ("tetherctl", ["get", "--help"]),
            ("tether-hub", ["--help"]),
            ("tether-agent", ["--help"]), ("tether-simcluster", ["--help"]),
        ]
    )
    func help(binary: String, arguments: [String]) async throws {
        let (status, output) = try await run(binary, arguments)
        #expect(status == 0)
        #expect(output.contains("USAGE"))
    }

    @Test("init, issue and inspect work end to end and speak JSON")
    func initIssueInspect() async throws {
        let scratch = try ScratchDirectory()
        let dir = scratch.file("fed")
        let initialized = try await run(
            "tetherctl",
            ["init", "--dir", dir, "--trust-domain", "example.org", "--hub-host", "hub.example.org", "--hub-host", "10.1.2.3", "--output", "json"])
        #expect(initialized.status == 0, "\(initialized.output)")
        let hubCert = try await run("tetherctl", ["certs", "inspect", dir + "/hub.crt", "--output", "json"])
        let hub = try JSONSerialization.jsonObject(with: Data(hubCert.output.utf8)) as? [String: Any]
        #expect(hub?["identity"] as? String == "spiffe://example.org/hub")
        #expect(hub?["dnsNames"] as? [String] == ["hub.example.org"])
        #expect(hub?["ipAddresses"] as? [String] == ["10.1.2.3"])
        for key in ["subject", "serial", "notBefore", "notAfter", "uris"] { #expect(hub?[key] != nil, "\(key)") }

        let issued = try await run(
            "tetherctl", ["certs", "issue", "--dir", dir, "--cluster", "eu-1", "--out", scratch.file("b"), "--validity", "720h", "--output", "json"])
        #expect(issued.status == 0, "\(issued.output)")
        let agent = try await run("tetherctl", ["certs", "inspect", scratch.file("b/tls.crt"), "--output", "json"])
        let summary = try JSONSerialization.jsonObject(with: Data(agent.output.utf8)) as? [String: Any]
        #expect(summary?["identity"] as? String == "spiffe://example.org/cluster/eu-1")
        for file in ["tls.crt", "tls.key", "ca.crt", "agent.json"] {
            #expect(FileManager.default.fileExists(atPath: scratch.file("b/\(file)")), "\(file)")
        }
    }

    @Test(
        "bad input fails with a non-zero status and a one-line reason",
        arguments: [
            (["certs", "issue", "--dir", "/nonexistent/fed", "--cluster", "eu-1", "--out", "/tmp/x"], "tetherctl init"),
            (["certs", "issue", "--dir", "/tmp", "--cluster", "Bad_Name", "--out", "/tmp/x"], "federation.json"),
            (["certs", "inspect", "/etc/hostname"], "no PEM CERTIFICATE"),
            (["certs", "issue", "--dir", "/tmp", "--cluster", "eu-1", "--out", "/tmp/x", "--validity", "soon"], "not a duration"),
            (["init", "--dir", "/tmp/tether-x", "--trust-domain", "UPPER"], "trust domain"),
            (["certs", "revoke", "--dir", "/tmp", "--serial", "AB", "--cluster", "eu-1"], "either --serial S or --cluster NAME"),
            (["certs", "revoke", "--dir", "/tmp", "--serial", "not-hex"], "hexadecimal"),
            (["certs", "revoke", "--dir", "/nonexistent/fed", "--cluster", "eu-1"], "tetherctl init"),
            (["certs", "rotate-ca", "--dir", "/nonexistent/fed"], "tetherctl init"),
            (["init", "--dir", "/tmp/tether-x", "--dns-zone", "exa mple.com"], "--dns-zone"),
            (["init", "--dir", "/tmp/tether-x", "--dns-zone", "example.com", "--dns-nameserver", "ns1.example.com"], "ns1.example.com=ADDRESS"),
            (["dns", "set", "--dir", "/tmp/tether-x"], "--dns-zone is required"),
            (["dns", "show", "--dir", "/nonexistent/fed"], "tetherctl init"),
        ]
    )
    func badInput(arguments: [String], expected: String) async throws {
        let (status, output) = try await run("tetherctl", arguments)
        #expect(status != 0)
        #expect(output.contains(expected), "\(output)")
    }

    @Test("certs check lists what expires within the window (exit 1), renew fixes it (exit 0), errors exit 2")
    func checkAndRenew() async throws {
        let scratch = try ScratchDirectory()
        let dir = scratch.file("fed")
        #expect(try await run("tetherctl", ["init", "--dir", dir]).status == 0)
        #expect(
            try await run("tetherctl", ["certs", "issue", "--dir", dir, "--cluster", "eu-1", "--out", scratch.file("b"), "--validity", "240h"]).status
                == 0)
        #expect(try await run("tetherctl", ["certs", "issue", "--dir", dir, "--cluster", "us-1", "--out", scratch.file("c")]).status == 0)

        let expiring = try await run("tetherctl", ["certs", "check", "--dir", dir, "--expiring-within", "720h", "--output", "json"])
        #expect(expiring.status == 1)
        let list = try JSONSerialization.jsonObject(with: Data(expiring.output.utf8)) as? [[String: Any]]
        #expect(list?.compactMap { $0["identity"] as? String } == ["spiffe://tether.local/cluster/eu-1"], "\(expiring.output)")
        #expect(try await run("tetherctl", ["certs", "check", "--dir", dir, "--expiring-within", "24h"]).status == 0)

        let hubBefore = try await run("tetherctl", ["certs", "inspect", dir + "/hub.crt", "--output", "json"])
        let renewed = try await run(
            "tetherctl", ["certs", "renew", "--dir", dir, "--cluster", "eu-1", "--out", scratch.file("b"), "--output", "json"])
        #expect(renewed.status == 0, "\(renewed.output)")
        #expect(try await run("tetherctl", ["certs", "check", "--dir", dir, "--expiring-within", "720h"]).status == 0)
        #expect(try await run("tetherctl", ["certs", "renew", "--dir", dir, "--hub"]).status == 0)
        let hubAfter = try await run("tetherctl", ["certs", "inspect", dir + "/hub.crt", "--output", "json"])
        #expect(hubBefore.output != hubAfter.output && hubAfter.output.contains("spiffe://tether.local/hub"))

        let wrongBundle = try await run("tetherctl", ["certs", "renew", "--dir", dir, "--cluster", "us-1", "--out", scratch.file("b")])
        #expect(wrongBundle.status != 0 && wrongBundle.output.contains("not 'us-1'"), "\(wrongBundle.output)")
        #expect(try await run("tetherctl", ["certs", "check", "--dir", scratch.file("missing"), "--expiring-within", "1h"]).status == 2)
    }

    @Test("init --dns-zone and dns set|show|unset keep the DNS settings in federation.json")
    func dnsSettings() async throws {
        let scratch = try ScratchDirectory()
        let dir = scratch.file("fed")
        let initialized = try await run("tetherctl", ["init", "--dir", dir, "--dns-zone", "Example.com.", "--output", "json"])
        #expect(initialized.status == 0 && initialized.output.contains(#""dnsZone" : "example.com""#), "\(initialized.output)")
        let set = try await run(
            "tetherctl",
            [
                "dns", "set", "--dir", dir, "--dns-zone", "fed.example.org", "--name", "prod", "--dns-ttl", "60", "--dns-nameserver",
                "ns1.fed.example.org=192.0.2.53",
            ])
        #expect(set.status == 0, "\(set.output)")
        let shown = try await run("tetherctl", ["dns", "show", "--dir", dir, "--output", "json"])
        let settings = try JSONSerialization.jsonObject(with: Data(shown.output.utf8)) as? [String: Any]
        #expect(settings?["zone"] as? String == "fed.example.org" && settings?["federation"] as? String == "prod")
        #expect(settings?["ttl"] as? Int == 60 && settings?["nameservers"] as? [String] == ["ns1.fed.example.org=192.0.2.53"], "\(shown.output)")
        #expect(try await run("tetherctl", ["dns", "unset", "--dir", dir]).status == 0)
        #expect(try await run("tetherctl", ["dns", "show", "--dir", dir]).output.contains("not published"))
    }

    @Test("init refuses to replace an existing CA without --force")
    func initTwice() async throws {
        let scratch = try ScratchDirectory()
        #expect(try await run("tetherctl", ["init", "--dir", scratch.file("fed")]).status == 0)
        let again = try await run("tetherctl", ["init", "--dir", scratch.file("fed")])
        #expect(again.status != 0)
        #expect(again.output.contains("already holds a federation CA"))
        #expect(try await run("tetherctl", ["init", "--dir", scratch.file("fed"), "--force"]).status == 0)
    }

    @Test("a hub whose port is taken exits non-zero, naming the address")
    func busyPorts() async throws {
        try await withFederation { federation in
            let (_, agentPort) = try await federation.startHub()
            let apiPort = try #require(try federation.directory.readPorts()?.api)
            let agentBusy = try await run(
                "tether-hub", ["--dir", federation.directory.path, "--api-listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:\(agentPort)"])
            #expect(agentBusy.status != 0)
            #expect(agentBusy.output.contains("cannot listen for agents on 127.0.0.1:\(agentPort)"), "\(agentBusy.output)")
            let apiBusy = try await run(
                "tether-hub", ["--dir", federation.directory.path, "--api-listen", "127.0.0.1:\(apiPort)", "--agent-listen", "127.0.0.1:0"])
            #expect(apiBusy.status != 0)
            #expect(apiBusy.output.contains("cannot serve the API on 127.0.0.1:\(apiPort)"), "\(apiBusy.output)")
        }
    }

    @Test("the hub and agent refuse to start on a missing directory or bundle, saying what to do")
    func missingFiles() async throws {
        let hub = try await run("tether-hub", ["--dir", "/nonexistent/fed", "--agent-listen", "127.0.0.1:0"])
        #expect(hub.status != 0)
        #expect(hub.output.contains("tetherctl init"))
        let agent = try await run("tether-agent", ["--bundle", "/nonexistent/bundle"])
        #expect(agent.status != 0)
        #expect(agent.output.contains("tetherctl certs issue"))
        let badAddress = try await run("tether-hub", ["--dir", "/tmp", "--agent-listen", "nonsense"])
        #expect(badAddress.status != 0)
    }
}
