import Foundation
import Testing
import TetherLocal
import TetherSecurity
import TetherTestSupport

/// An agent whose member sits in a network namespace that may open connections only to an HTTP
/// proxy (Debian's tinyproxy, and stunnel in front of it for an `https://` proxy), as behind a
/// platform team's egress firewall: the hub's port is unreachable except through the proxy.
/// Needs root for the namespace (CI runs as root), as the fault suite does.
@Suite("Agents through HTTP proxies", .timeLimit(.minutes(4)))
struct ProxyTests {
    @Test("tinyproxy with basic auth (missing, wrong, right credentials), restarted; an https:// proxy; NO_PROXY; the proxy on the Cluster")
    func throughProxies() async throws {
        try await NetworkLab.withFederation(members: ["m1"], label: "tether-proxy") { lab, federation, scratch in
            try await run(lab: lab, federation: federation, scratch: scratch)
        }
    }

    private func run(lab: NetworkLab, federation: LocalFederation, scratch: ScratchDirectory) async throws {
        let (hub, hubPort) = try await federation.startHub(heartbeatInterval: 1, agentListen: "\(lab.hubAddress):0")
        let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: scratch.file("home-hub"))
        let proxyPort = try LoopbackPort.free()
        let tlsProxyPort = try LoopbackPort.free()
        try await lab.allowOnlyOutbound(toPort: proxyPort)
        try await lab.allowOutbound(toPort: tlsProxyPort)
        #expect(try await !lab.canConnect(from: "m1", to: lab.hubAddress, port: hubPort), "the hub must be unreachable but through the proxy")

        let namespace = lab.members["m1"]!.namespace
        let (_, simulated) = try await federation.startSimcluster("m1", nodes: 1, readyAfter: "1s", networkNamespace: namespace)
        let member = try Kubectl(.modern, kubeconfig: simulated + "/kubeconfig", home: scratch.file("home-m1"), networkNamespace: namespace)
        let bundle = try federation.issueBundle(cluster: "m1", hubPort: hubPort, hubHost: lab.hubAddress)
        let proxyURL = "http://\(lab.hubAddress):\(proxyPort)"
        var proxy = try await Tinyproxy.start(
            federation: federation, directory: scratch.file("tinyproxy"), listen: lab.hubAddress, port: proxyPort, connectPort: hubPort,
            credentials: "tether:s3cret")
        func agent(_ arguments: [String], environment: [String] = []) throws -> ManagedProcess {
            try federation.launch(
                name: "agent-m1", executable: URL(fileURLWithPath: "/usr/bin/env"),
                arguments: environment + [
                    "ip", "netns", "exec", namespace, federation.binaries.url("tether-agent").path, "--bundle", bundle.path, "--kubeconfig",
                    simulated + "/kubeconfig", "--backoff-max", "1", "--log-format", "json",
                ] + arguments)
        }
        /// Median milliseconds from `kubectl create configmap` at the hub to the agent accepting it, over `count` objects.
        func deliveryMilliseconds(_ agent: ManagedProcess, prefix: String, count: Int = 5) async throws -> Int {
            var samples: [Double] = []
            for index in 0..<count {
                let mark = agent.mark
                let started = Date()
                try await hubctl.succeed(["create", "configmap", "\(prefix)-\(index)", "--from-literal=k=v"])
                let accepted = try await agent.waitForEvent("applier.desired", after: mark, within: .seconds(20))
                samples.append(DNSPublishingTests.time(of: accepted).timeIntervalSince(started) * 1000)
            }
            return Int(samples.sorted()[samples.count / 2])
        }
        /// Milliseconds from the agent's start to its session, from its own log.
        func sessionMilliseconds(_ agent: ManagedProcess) async throws -> Int {
            let starting = try await agent.waitForLine(within: .seconds(20), "agent starting") { $0["message"] == "agent starting" }
            let established = try await agent.waitForEvent("session.established", within: .seconds(20))
            return Int(DNSPublishingTests.time(of: established).timeIntervalSince(DNSPublishingTests.time(of: starting)) * 1000)
        }
        var figures: [String] = []
        let wrong = scratch.file("wrong-credentials")
        let right = scratch.file("credentials")
        try "tether:nope\n".write(toFile: wrong, atomically: true, encoding: .utf8)
        try "tether:s3cret\n".write(toFile: right, atomically: true, encoding: .utf8)

        // Without credentials, then with wrong ones: the proxy's 407, said plainly.
        var running = try agent(["--proxy", proxyURL])
        try await running.waitForLine(within: .seconds(20), "407 without credentials") {
            $0.raw.contains("requires authentication (40") && $0.raw.contains("--proxy-credentials-file")
        }
        _ = await running.stop()
        running = try agent(["--proxy", proxyURL, "--proxy-credentials-file", wrong])
        try await running.waitForLine(within: .seconds(20), "407 with wrong credentials") { $0.raw.contains("refused the credentials (40") }
        #expect(!running.lines.contains { $0.raw.contains("nope") }, "credentials never in logs")
        _ = await running.stop()

        // The right ones: a session, objects applied, status reported, the proxy shown on the Cluster.
        running = try agent(["--proxy", proxyURL, "--proxy-credentials-file", right])
        try await running.waitForEvent("session.established", within: .seconds(20))
        try await hub.waitForEvent("federation.cluster_added", within: .seconds(20)) { $0["tether.cluster"] == "m1" }
        try await hubctl.succeed(["create", "configmap", "through-proxy", "--from-literal=k=v"])
        try await member.succeed(["wait", "--for=create", "configmap/through-proxy", "--timeout=30s"], within: .seconds(40))
        try await hubctl.succeed(
            ["wait", "--for=jsonpath={.status.applied}=1", "propagation/configmap.default.through-proxy", "--timeout=30s"], within: .seconds(40))
        #expect(try await hubctl.succeed(["get", "cluster", "m1", "-o", "jsonpath={.status.proxy}"]) == proxyURL)
        #expect(!running.lines.contains { $0.raw.contains("s3cret") }, "credentials never in logs")
        figures.append(
            "http proxy: session \(try await sessionMilliseconds(running)) ms, delivery \(try await deliveryMilliseconds(running, prefix: "http")) ms"
        )

        // The member's API through the hub, over the session that runs through the proxy.
        let viaHub = scratch.file("kubeconfig-via-hub")
        let apiPort = try #require(try federation.directory.readPorts()?.api)
        try federation.directory.writeKubeconfig(server: "https://127.0.0.1:\(apiPort)", to: viaHub, members: ["m1"])
        let tunnel = try Kubectl(.modern, kubeconfig: viaHub, home: scratch.file("home-via-hub"))
        func medianMilliseconds(_ body: () async throws -> Void) async throws -> Int {
            var samples: [Double] = []
            for _ in 0..<5 {
                let started = ContinuousClock.now
                try await body()
                let elapsed = ContinuousClock.now - started
                samples.append(Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
            }
            return Int(samples.sorted()[2])
        }
        #expect(try await tunnel.succeed(["--context", "m1-via-hub", "get", "configmap", "through-proxy", "-o", "jsonpath={.data.k}"]) == "v")
        let tunnelled = try await medianMilliseconds {
            try await tunnel.succeed(["--context", "m1-via-hub", "get", "configmap", "through-proxy", "-o", "json"])
        }
        let inNamespace = try await medianMilliseconds { try await member.succeed(["get", "configmap", "through-proxy", "-o", "json"]) }
        figures.append("kubectl get through the hub and the proxied session \(tunnelled) ms, direct in the member's namespace \(inNamespace) ms")

        // The proxy restarts: the session drops with it, and the agent comes back through it.
        let mark = hub.mark
        _ = await proxy.process.stop()
        try await hub.waitForEvent("session.disconnected", after: mark, within: .seconds(20)) { $0["tether.cluster"] == "m1" }
        proxy = try await Tinyproxy.start(
            federation: federation, directory: scratch.file("tinyproxy"), listen: lab.hubAddress, port: proxyPort, connectPort: hubPort,
            credentials: "tether:s3cret")
        try await hub.waitForEvent("session.established", after: mark, within: .seconds(30)) { $0["tether.cluster"] == "m1" }
        try await hubctl.succeed(["create", "configmap", "after-restart", "--from-literal=k=v"])
        try await member.succeed(["wait", "--for=create", "configmap/after-restart", "--timeout=30s"], within: .seconds(40))
        _ = await running.stop()

        // An https:// proxy (TLS to the proxy, the agent's own TLS to the hub inside), with its CA.
        let certificate = try await Stunnel.makeCertificate(in: scratch.file("stunnel"), address: lab.hubAddress)
        _ = try await Stunnel.start(
            federation: federation, directory: scratch.file("stunnel"), listen: "\(lab.hubAddress):\(tlsProxyPort)",
            forwardTo: "\(lab.hubAddress):\(proxyPort)", certificate: certificate)
        let tlsProxyURL = "https://\(lab.hubAddress):\(tlsProxyPort)"
        running = try agent(["--proxy-ca", certificate.certificate, "--proxy-credentials-file", right], environment: ["HTTPS_PROXY=\(tlsProxyURL)"])
        try await running.waitForEvent("session.established", within: .seconds(20))
        try await hubctl.succeed(["wait", "--for=jsonpath={.status.proxy}=\(tlsProxyURL)", "cluster/m1", "--timeout=20s"], within: .seconds(30))
        try await hubctl.succeed(["create", "configmap", "through-tls-proxy", "--from-literal=k=v"])
        try await member.succeed(["wait", "--for=create", "configmap/through-tls-proxy", "--timeout=30s"], within: .seconds(40))
        figures.append(
            "https proxy: session \(try await sessionMilliseconds(running)) ms, delivery \(try await deliveryMilliseconds(running, prefix: "https")) ms"
        )
        _ = await running.stop()

        // NO_PROXY: with the hub's port opened, a proxy that does not exist is passed by for the hub's address.
        try await lab.allowOutbound(toPort: hubPort)
        running = try agent(
            [], environment: ["HTTPS_PROXY=http://\(lab.hubAddress):1", "NO_PROXY=example.com,\(lab.hubAddress.split(separator: ".")[0]).0.0.0/8"])
        try await running.waitForEvent("agent.proxy", within: .seconds(20)) { $0["tether.hub_via_proxy"] == "false" }
        let direct = try await running.waitForEvent("session.established", within: .seconds(20))
        #expect(direct["tether.proxy"] == nil, "\(direct.raw)")
        figures.append(
            "direct: session \(try await sessionMilliseconds(running)) ms, delivery \(try await deliveryMilliseconds(running, prefix: "direct")) ms")
        print("proxy figures (median of 5 deliveries; kubectl's own start is in each): " + figures.joined(separator: "; "))
        _ = await running.stop()
    }
}

/// Debian's tinyproxy on one address and port, allowing CONNECT to one port, with basic authentication.
struct Tinyproxy: Sendable {
    let process: ManagedProcess

    static func start(
        federation: LocalFederation, directory: String, listen: String, port: Int, connectPort: Int, credentials: String
    ) async throws -> Tinyproxy {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let parts = credentials.split(separator: ":", maxSplits: 1)
        let configuration = """
            Port \(port)
            Listen \(listen)
            Timeout 600
            MaxClients 64
            Allow 10.0.0.0/8
            ConnectPort \(connectPort)
            BasicAuth \(parts[0]) \(parts[1])
            LogLevel Info
            PidFile "\(directory)/tinyproxy.pid"
            """
        try configuration.write(toFile: directory + "/tinyproxy.conf", atomically: true, encoding: .utf8)
        let process = try federation.launch(
            name: "tinyproxy", executable: URL(fileURLWithPath: "/usr/bin/tinyproxy"), arguments: ["-d", "-c", directory + "/tinyproxy.conf"])
        try await process.waitForLine(within: .seconds(15), "tinyproxy listening") { $0.raw.contains("listening on fd") }
        return Tinyproxy(process: process)
    }
}

/// stunnel in front of a plain proxy: an `https://` proxy, with a certificate of its own.
enum Stunnel {
    struct Certificate {
        var certificate: String
        var key: String
    }

    static func makeCertificate(in directory: String, address: String) async throws -> Certificate {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let made = Certificate(certificate: directory + "/proxy.crt", key: directory + "/proxy.key")
        try await runCommand([
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=proxy",
            "-addext", "subjectAltName=IP:\(address)", "-keyout", made.key, "-out", made.certificate,
        ])
        return made
    }

    static func start(
        federation: LocalFederation, directory: String, listen: String, forwardTo: String, certificate: Certificate
    ) async throws -> ManagedProcess {
        let configuration = """
            foreground = yes
            pid =
            debug = 6
            [proxy]
            accept = \(listen)
            connect = \(forwardTo)
            cert = \(certificate.certificate)
            key = \(certificate.key)
            """
        try configuration.write(toFile: directory + "/stunnel.conf", atomically: true, encoding: .utf8)
        let process = try federation.launch(
            name: "stunnel", executable: URL(fileURLWithPath: "/usr/bin/stunnel4"), arguments: [directory + "/stunnel.conf"])
        try await process.waitForLine(within: .seconds(15), "stunnel listening") { $0.raw.contains("bound to \(listen)") }
        return process
    }
}
