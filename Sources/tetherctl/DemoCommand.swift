import ArgumentParser
import Foundation
import NIOHTTP1
import TetherJSON
import TetherLocal
import TetherSecurity
import UnixSignals

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a federation on this machine: a hub and one agent per cluster, on loopback.",
        discussion: """
            Creates a fresh federation in DIR, starts tether-hub on free loopback ports and, for each \
            cluster, a SIMULATED member cluster (tether-simcluster: no containers run) and a tether-agent \
            with the cluster's bundle. Writes DIR/kubeconfig-all with a `federation` context and one \
            context per cluster, prints what to try, then shows every process's log until you press \
            Ctrl-C (or send SIGTERM, or close the terminal), which stops them all. The executables are taken from beside tetherctl (the build \
            folder) or from TETHER_BIN_DIR.
            """
    )

    @Option(name: .long, help: "Number of member clusters.")
    var clusters = 3

    @Option(name: .long, help: "Directory for the demo's PKI, bundles and state (replaced on each run).")
    var dir = ".demo"

    @Option(name: .long, help: "Seconds between agent heartbeats.")
    var heartbeatInterval: Double = 2

    func validate() throws {
        guard (1...50).contains(clusters) else { throw ValidationError("--clusters must be between 1 and 50") }
    }

    func run() async throws {
        // A reader that went away (`| tee` stopped by the same Ctrl-C) must not kill the demo
        // before it has stopped what it started; lines are written unbuffered (`say`).
        signal(SIGPIPE, SIG_IGN)
        let root = URL(fileURLWithPath: dir).standardizedFileURL.path
        try? FileManager.default.removeItem(atPath: root)
        let federation = try LocalFederation(root: root, binaries: try TetherBinaries.locate(), echo: Self.show)
        // SIGHUP: the terminal was closed. The hub and agents take SIGHUP as "reload certificates",
        // so without the demo stopping them they would outlive it.
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm, .sighup)
        // A signal during start-up stops the demo at once rather than after the agents connect.
        do {
            try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    for await _ in signals { return true }
                    return false
                }
                group.addTask {
                    try await start(federation)
                    return false
                }
                while let signalled = try await group.next(), !signalled {}
                group.cancelAll()
            }
        } catch {
            await federation.stopAll()
            throw error
        }
        Self.say("\nstopping the demo…")
        await federation.stopAll()
    }

    /// Starts the hub, then a simulated member and an agent per cluster; returns once every agent
    /// has a session, having printed what to try.
    private func start(_ federation: LocalFederation) async throws {
        // Federation v1's DNS names: nginx.default.federation.svc.example.com and the like.
        try federation.directory.configureDNS(try FederationDNS(zone: Self.dnsZone))
        let (hub, port) = try await federation.startHub(heartbeatInterval: heartbeatInterval)
        let names = Self.clusterNames(count: clusters)
        try await Self.registerWithTopology(names, federation: federation)
        for name in names {
            let member = try await federation.startSimcluster(name)
            _ = try federation.startAgent(
                bundle: try federation.issueBundle(cluster: name, hubPort: port),
                kubeconfig: (member.directory as NSString).appendingPathComponent("kubeconfig")
            )
        }
        for name in names {
            try await hub.waitForEvent("session.established", within: .seconds(30)) { $0["tether.cluster"] == name }
        }
        let kubeconfig = try writeCombinedKubeconfig(federation: federation, clusters: names)
        Self.say(
            """

            ── Tether demo: hub agent port 127.0.0.1:\(port), \(names.count) agents connected (\(names.joined(separator: ", ")))
               federation directory: \(federation.directory.path)
               export KUBECONFIG=\(kubeconfig)       # contexts: federation, \(names.joined(separator: ", ")), and NAME-via-hub for each
               kubectl --context=federation get clusters
               kubectl --context=federation apply -f docs/examples/frontend.yaml     # ReplicaSet, Service, Ingress
               kubectl --context=federation get rs,svc,ing
               kubectl --context=\(names[0]) get rs                   # this member's share (a SIMULATED cluster)
               kubectl --context=federation get dnsendpoints          # DNS by zone, region and globally
               cat \(federation.directory.dnsZoneFilePath)
               kubectl --context=federation delete -f docs/examples/frontend.yaml
               docs/walkthrough.md tells the whole story; Ctrl-C stops everything.

            """)
    }

    /// `ROOT/kubeconfig-all`: the hub as context `federation` and each simulated member under its name.
    func writeCombinedKubeconfig(federation: LocalFederation, clusters: [String]) throws -> String {
        guard let apiPort = try federation.directory.readPorts()?.api else {
            throw ValidationError("the hub wrote no API port")
        }
        func read(_ path: String) throws -> String { try PEMFiles.readText(at: path) }
        var contexts = [
            Kubeconfig.Context(
                name: "federation", server: "https://127.0.0.1:\(apiPort)", caPEM: try read(federation.directory.caCertificatePath),
                clientCertificatePEM: try read(federation.directory.adminCertificatePath),
                clientKeyPEM: try read(federation.directory.adminKeyPath)
            )
        ]
        for name in clusters {
            let member = FederationDirectory(path: (federation.root as NSString).appendingPathComponent("sim-\(name)"))
            let description = try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: (member.path as NSString).appendingPathComponent("simcluster.json")))
            )
            guard let url = (description as? [String: Any])?["url"] as? String else { continue }
            contexts.append(
                Kubeconfig.Context(
                    name: name, server: url, caPEM: try read(member.caCertificatePath),
                    clientCertificatePEM: try read(member.adminCertificatePath), clientKeyPEM: try read(member.adminKeyPath)
                )
            )
        }
        for name in clusters {
            contexts.append(
                Kubeconfig.Context(
                    name: Kubeconfig.viaHubContextName(of: name), server: Kubeconfig.viaHubServer(hub: contexts[0].server, cluster: name),
                    caPEM: contexts[0].caPEM, clientCertificatePEM: contexts[0].clientCertificatePEM, clientKeyPEM: contexts[0].clientKeyPEM))
        }
        let path = (federation.root as NSString).appendingPathComponent("kubeconfig-all")
        try PEMFiles.writeAtomically(Kubeconfig.combined(contexts), to: path, mode: PEMFiles.privateKeyMode)
        return path
    }

    static let dnsZone = "example.com"

    /// Registers each cluster before its agent connects, with the region and zone its name
    /// spells (`us-east1-b` is zone us-east1-b of region us-east1), so DNS has them.
    static func registerWithTopology(_ names: [String], federation: LocalFederation) async throws {
        let api = try HubAPI(directory: federation.directory, hub: nil)
        do {
            try await register(names, api: api)
        } catch {
            await api.shutdown()
            throw error
        }
        await api.shutdown()
    }

    private static func register(_ names: [String], api: HubAPI) async throws {
        for name in names {
            var labels: [String: JSONValue] = [:]
            if let dash = name.lastIndex(of: "-"), name.hasPrefix("cluster-") == false {
                labels["topology.kubernetes.io/region"] = .string(String(name[..<dash]))
                labels["topology.kubernetes.io/zone"] = .string(name)
            }
            let cluster: JSONValue = [
                "apiVersion": "core.tether.io/v1alpha1", "kind": "Cluster", "metadata": ["name": .string(name), "labels": .object(labels)],
                "spec": [:],
            ]
            let (status, answer) = try await api.send(.POST, "/apis/core.tether.io/v1alpha1/clusters", body: cluster)
            guard status == 201 else {
                throw ValidationError("the hub refused to register \(name): \(status) \(answer["message"]?.stringValue ?? "")")
            }
        }
    }

    static func clusterNames(count: Int) -> [String] {
        // The zones of the Kubernetes 1.5 federation walkthrough, then more.
        let regions = ["us-east1-b", "europe-west1-b", "asia-east1-a", "us-west1-a", "europe-north1-a"]
        return (0..<count).map { $0 < regions.count ? regions[$0] : "cluster-\($0 + 1)" }
    }

    /// One readable line per log record: `[hub] info  agent session established  cluster=eu-west`.
    @Sendable static func show(_ process: String, _ line: LogLine) {
        guard let message = line["message"] else {
            say("[\(process)] \(line.raw)")
            return
        }
        let details = line.fields
            .filter { $0.key.hasPrefix("tether.") && $0.key != "tether.event" }
            .sorted { $0.key < $1.key }
            .map { "\($0.key.dropFirst("tether.".count))=\($0.value)" }
            .joined(separator: " ")
        let level = (line["level"] ?? "").padding(toLength: 7, withPad: " ", startingAt: 0)
        say("[\(process)] \(level) \(message)  \(details)")
    }

    /// Writes `text` and a newline straight to standard output: seen at once through a pipe
    /// (print's buffer would hold lines back from `| tee`), and quietly lost if nobody reads.
    @Sendable static func say(_ text: String) {
        Array((text + "\n").utf8).withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(STDOUT_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0, errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
    }
}
