import Foundation
import Synchronization
import TetherSecurity

/// Where the Tether executables are: beside the running program (the build folder), or in
/// `TETHER_BIN_DIR` when that is set.
public struct TetherBinaries: Sendable {
    public let directory: URL

    public init(directory: URL) {
        self.directory = directory
    }

    public static func locate() throws -> TetherBinaries {
        let environment = ProcessInfo.processInfo.environment
        let directory: URL
        if let override = environment["TETHER_BIN_DIR"], !override.isEmpty {
            directory = URL(fileURLWithPath: override)
        } else {
            let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            directory = executable.deletingLastPathComponent()
        }
        var binaries = TetherBinaries(directory: directory)
        // `tether-bench` is built by the benchmarks' own package (`Benchmarks/.build/...`); the
        // processes it starts are the main package's, built in the same configuration.
        if !binaries.hasServers, directory.path.contains("/Benchmarks/.build/") {
            binaries = TetherBinaries(
                directory: URL(fileURLWithPath: directory.path.replacingOccurrences(of: "/Benchmarks/.build/", with: "/.build/")))
        }
        for name in ["tether-hub", "tether-agent"] where !FileManager.default.isExecutableFile(atPath: binaries.url(name).path) {
            throw ProcessWaitError(
                description: "\(name) is not in \(directory.path); build it first (`swift build`) or set TETHER_BIN_DIR"
            )
        }
        return binaries
    }

    public func url(_ name: String) -> URL { directory.appendingPathComponent(name) }

    private var hasServers: Bool {
        ["tether-hub", "tether-agent"].allSatisfy { FileManager.default.isExecutableFile(atPath: url($0).path) }
    }
}

/// A federation run as processes on this machine: the demo, and the integration tests.
///
/// Makes the PKI in `root`, starts `tether-hub` on free loopback ports and `tether-agent`s
/// with bundles it issues, all logging JSON so their events can be waited for.
public final class LocalFederation: Sendable {
    public let root: String
    public let directory: FederationDirectory
    public let binaries: TetherBinaries
    private let echo: (@Sendable (String, LogLine) -> Void)?
    private let processes = ProcessList()

    /// - Parameter hubHosts: the names and addresses the hub's certificate is valid for.
    public init(
        root: String,
        binaries: TetherBinaries,
        trustDomain: String = "tether.local",
        hubHosts: [String] = FederationDirectory.defaultHubHosts,
        echo: (@Sendable (String, LogLine) -> Void)? = nil
    ) throws {
        self.root = root
        self.directory = FederationDirectory(path: (root as NSString).appendingPathComponent("federation"))
        self.binaries = binaries
        self.echo = echo
        try directory.initialize(trustDomain: trustDomain, hubHosts: hubHosts, force: true)
    }

    /// Starts the hub and returns once it accepts agents; `agentListen` defaults to a free loopback port.
    /// - Parameter descriptorLimit: runs the hub under `prlimit --nofile`, as a host with few
    ///   descriptors would (util-linux's prlimit sets the limit and becomes the hub).
    public func startHub(
        heartbeatInterval: Double = 10,
        agentListen: String = "127.0.0.1:0",
        apiListen: String = "127.0.0.1:0",
        autoJoin: Bool = true,
        descriptorLimit: Int? = nil,
        extraArguments: [String] = []
    ) async throws -> (ManagedProcess, port: Int) {
        // A stale ports file from an earlier run must not be mistaken for this hub's.
        try? FileManager.default.removeItem(atPath: directory.portsPath)
        let arguments =
            [
                "--dir", directory.path, "--agent-listen", agentListen, "--api-listen", apiListen,
                "--heartbeat-interval", "\(heartbeatInterval)",
            ] + (autoJoin ? ["--auto-join"] : []) + extraArguments
        let hub: ManagedProcess
        if let descriptorLimit {
            hub = try launch(
                name: "hub",
                executable: URL(fileURLWithPath: "/usr/bin/prlimit"),
                arguments: ["--nofile=\(descriptorLimit):\(descriptorLimit)", binaries.url("tether-hub").path] + arguments + ["--log-format", "json"]
            )
        } else {
            hub = try launch(name: "hub", binary: "tether-hub", arguments: arguments)
        }
        let ready = try await hub.waitForEvent("hub.ready", within: .seconds(30))
        guard let ports = try directory.readPorts(), let port = ports.agent, let api = ports.api else {
            throw ProcessWaitError(description: "hub logged \(ready) but wrote no ports to \(directory.portsPath)")
        }
        try writeKubeconfig(apiPort: api)
        return (hub, port)
    }

    /// A kubeconfig for the running hub's API at 127.0.0.1 (context `federation`, the admin's
    /// certificate), whatever hosts `D/kubeconfig` names (the hub points that one at its port).
    public var kubeconfigPath: String { (root as NSString).appendingPathComponent("kubeconfig") }

    private func writeKubeconfig(apiPort: Int) throws {
        try directory.writeKubeconfig(server: "https://127.0.0.1:\(apiPort)", to: kubeconfigPath)
    }

    /// Starts `tether-simcluster` for `name` in `root/sim-NAME` and returns once it serves; its
    /// kubeconfig (context NAME) is `root/sim-NAME/kubeconfig`.
    /// - Parameter networkNamespace: runs it in this network namespace (`ip netns exec`), where
    ///   its loopback address is the namespace's own.
    public func startSimcluster(
        _ name: String,
        nodes: Int = 3,
        readyAfter: String = "2s",
        maxPods: Int? = nil,
        networkNamespace: String? = nil,
        extraArguments: [String] = []
    ) async throws -> (process: ManagedProcess, directory: String) {
        let directory = (root as NSString).appendingPathComponent("sim-\(name)")
        let process = try launch(
            name: "sim-\(name)",
            binary: "tether-simcluster",
            arguments: ["--name", name, "--dir", directory, "--nodes", "\(nodes)", "--ready-after", readyAfter]
                + (maxPods.map { ["--max-pods", "\($0)"] } ?? []) + extraArguments,
            networkNamespace: networkNamespace
        )
        try await process.waitForEvent("simcluster.ready", within: .seconds(30))
        return (process, directory)
    }

    /// Issues a bundle for `cluster` pointing at `hubHost:hubPort` (or whatever hub.ports.json says).
    public func issueBundle(cluster: String, hubPort: Int? = nil, hubHost: String = "127.0.0.1") throws -> AgentBundle {
        let path = (root as NSString).appendingPathComponent("bundles/\(cluster)")
        return try directory.issueAgentBundle(
            cluster: cluster,
            to: path,
            hubAddresses: hubPort.map { ["\(hubHost):\($0)"] }
        )
    }

    /// Starts an agent applying to the member behind `kubeconfig`, or holding its session only (nil).
    public func startAgent(
        name: String? = nil,
        bundle: AgentBundle,
        kubeconfig: String? = nil,
        extraArguments: [String] = [],
        networkNamespace: String? = nil
    ) throws -> ManagedProcess {
        let cluster = (try? bundle.loadManifest().cluster) ?? "agent"
        let member = kubeconfig.map { ["--kubeconfig", $0] } ?? ["--session-only"]
        return try launch(
            name: name ?? "agent-\(cluster)", binary: "tether-agent", arguments: ["--bundle", bundle.path] + member + extraArguments,
            networkNamespace: networkNamespace
        )
    }

    /// Starts one of the Tether executables with JSON logs, in `networkNamespace` if given
    /// (`ip netns exec` replaces itself with the program, so the process is the program).
    public func launch(name: String, binary: String, arguments: [String], networkNamespace: String? = nil) throws -> ManagedProcess {
        let program = binaries.url(binary)
        let logged = arguments + ["--log-format", "json"]
        guard let networkNamespace else { return try launch(name: name, executable: program, arguments: logged) }
        return try launch(
            name: name, executable: URL(fileURLWithPath: "/usr/bin/env"),
            arguments: ["ip", "netns", "exec", networkNamespace, program.path] + logged
        )
    }

    /// Starts any program (an `openssl s_client`, say) under this federation's care: it is stopped with the rest.
    public func launch(
        name: String,
        executable: URL,
        arguments: [String],
        keepStandardInputOpen: Bool = false
    ) throws -> ManagedProcess {
        let process = ManagedProcess(
            name: name,
            executable: executable,
            arguments: arguments,
            keepStandardInputOpen: keepStandardInputOpen,
            echo: echo
        )
        try process.start()
        processes.add(process)
        return process
    }

    /// The last `count` lines of each process started, named: what a failed test prints, so
    /// its report says what the hub and agents saw.
    public func recentOutput(count: Int = 25) -> String {
        processes.all.map { process in
            (["--- \(process.name), last \(count) lines:"] + process.lines.suffix(count).map(\.raw)).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    /// Stops every process at once (SIGTERM, then SIGKILL after `grace`), so stopping takes as
    /// long as the slowest process rather than the sum of all.
    public func stopAll(grace: Duration = .seconds(5)) async {
        await withTaskGroup(of: Void.self) { group in
            for process in processes.all {
                group.addTask { await process.stop(grace: grace) }
            }
        }
    }
}

private final class ProcessList: Sendable {
    private let list = Mutex<[ManagedProcess]>([])
    func add(_ process: ManagedProcess) { list.withLock { $0.append(process) } }
    var all: [ManagedProcess] { list.withLock { $0 } }
}
