import ArgumentParser
import BuiltinPlugins
import Foundation
import Logging
import ServiceLifecycle
import TetherAPI
import TetherObservability
import TetherPlugin
import TetherSecurity
import TetherSim
import TetherStore
import TetherWire
import UnixSignals

@main
struct SimclusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tether-simcluster",
        abstract: "Run a SIMULATED member cluster: a Kubernetes-compatible API whose workloads are simulated.",
        discussion: """
            This is a simulator for tests and the demo, not Kubernetes: no container ever runs. It serves \
            the same API as the hub, with its own CA and admin certificate in DIR, and a workload simulator \
            (in the spirit of KWOK) writes what a real cluster's controllers would: replicas become \
            ready after --ready-after, workloads make their Pods (StatefulSets in order), Services get \
            cluster IPs, load-balancer addresses and endpoints, Jobs complete, DaemonSets run on --nodes \
            simulated nodes, and the scheduler, kubelet and controllers record Events. An object \
            annotated sim.tether.io/fail="true" never becomes ready.

            Each node offers 4 CPUs, 16 GiB and --max-pods Pods; the scheduler places a Pod only \
            where its requests fit and the node is not cordoned, and leaves it Pending, saying why, \
            otherwise. PodDisruptionBudgets are counted as their controller counts them, and Pods' \
            eviction subresource honours them, so kubectl cordon, drain and uncordon work.

            PUT {"status": 503, "delayMilliseconds": 0, "seconds": 30} to /debug/faults (admin) makes \
            the API fail or slow down for a while; DELETE ends it.

            Writes DIR/kubeconfig (context NAME, client certificate), DIR/kubeconfig-token (the same \
            with a bearer token), DIR/serviceaccount/ (token, ca.crt, namespace: what a pod would \
            mount) and DIR/simcluster.json; keeps its objects in DIR/cluster.db across restarts.
            """
    )

    @Option(name: .long, help: "The cluster's name (a DNS label); also the kubeconfig context.")
    var name: String

    @Option(name: .long, help: "Directory for the cluster's PKI, kubeconfig and objects.")
    var dir: String

    @Option(name: .long, help: "Address of the API; ':0' picks a free port.")
    var listen: String = "127.0.0.1:0"

    @Option(name: .long, help: "Number of simulated nodes.")
    var nodes: Int = 3

    @Option(name: .long, help: "How many Pods each node takes, as a kubelet's --max-pods.")
    var maxPods: Int = 110

    @Option(name: .long, help: "How long workloads take to become ready, e.g. 2s or 500ms.", transform: parseDelay)
    var readyAfter: Duration = .seconds(2)

    @Option(
        name: .long, help: "How long a node reports memory pressure after its Pods' usage fell back, as a kubelet's (300s by default; 2s, 500ms).",
        transform: parseDelay)
    var evictionPressureTransitionPeriod: Duration = .seconds(300)

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        do {
            try TetherIdentity.validateClusterName(name)
        } catch {
            throw ValidationError(error.message)
        }
        guard (1...1000).contains(nodes) else { throw ValidationError("--nodes must be between 1 and 1000") }
        guard (1...100_000).contains(maxPods) else { throw ValidationError("--max-pods must be between 1 and 100000") }
    }

    func run() async throws {
        logging.bootstrap()
        var logger = Logger(label: "tether.simcluster")
        logger[metadataKey: "tether.cluster"] = "\(name)"
        logger.notice(
            "SIMULATED cluster: no containers run; workload status is written by a simulator",
            metadata: ["tether.event": "simcluster.starting", "tether.nodes": "\(nodes)"]
        )
        let directory = FederationDirectory(path: dir)
        if (try? directory.loadConfig()) == nil {
            try directory.initialize(trustDomain: "\(name).sim.tether")
        }
        let access = try SimclusterFiles.accessPolicy(in: directory)
        let material = try TLSMaterial.load(
            certificate: directory.hubCertificatePath,
            key: directory.hubKeyPath,
            trustBundle: directory.caCertificatePath
        )
        let address = try HostAndPort(parsing: listen)
        let store = try SQLiteResourceStore(path: (dir as NSString).appendingPathComponent("cluster.db"))
        let registry = BuiltinPlugins.memberCluster
        let api = APIServer(
            configuration: APIServerConfiguration(
                host: address.host, port: address.port,
                containerlessReason:
                    "tether-simcluster runs no containers: its Pods' phases and conditions are simulated, with no process to read, "
                    + "run in or forward to",
                podsEndedByKubelet: true, servesEviction: true, enforcesNamespaceLimits: true, metrics: SimulatedMetrics(store: store)),
            store: store,
            registry: registry,
            material: material,
            access: AccessControl(access),
            faults: FaultInjector(),
            logger: logger,
            onBound: { [name, dir, logger] port in
                do {
                    try SimclusterFiles(name: name, dir: dir, directory: directory).write(port: port)
                    logger.info("simulated cluster ready", metadata: ["tether.event": "simcluster.ready", "tether.port": "\(port)"])
                } catch {
                    logger.error("cannot write the simulated cluster's files", metadata: ["tether.error": "\(error)"])
                }
            }
        )
        let simulator = WorkloadSimulator(
            store: store,
            registry: registry,
            settings: SimulationSettings(
                clusterName: name, nodes: nodes, readyAfter: readyAfter, maxPodsPerNode: maxPods,
                evictionPressureTransition: evictionPressureTransitionPeriod),
            logger: logger
        )
        let group = ServiceGroup(
            configuration: .init(services: [api, simulator], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        try await group.run()
    }
}

/// `kubeconfig` (context NAME, the admin's certificate) and `simcluster.json` for a bound port.
struct SimclusterFiles {
    var name: String
    var dir: String
    var directory: FederationDirectory

    struct Description: Codable {
        var name: String
        var url: String
        var port: Int
        var simulated = true
    }

    /// The admin's certificate and one admin bearer token, made once and kept in DIR/access.json.
    static func accessPolicy(in directory: FederationDirectory) throws -> AccessPolicy {
        var policy = try AccessPolicy.load(from: directory.accessPolicyPath)
        if !policy.tokens.contains(where: { $0.user == "service-account" }) {
            var bytes = [UInt8](repeating: 0, count: 24)
            var generator = SystemRandomNumberGenerator()
            for index in bytes.indices { bytes[index] = generator.next() }
            let token = Data(bytes).base64EncodedString().replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "+", with: "-")
            policy.tokens.append(AccessPolicy.Token(token: token, user: "service-account", role: .admin))
            let data = try JSONEncoder().encode(policy)
            try PEMFiles.writeAtomically(String(decoding: data, as: UTF8.self), to: directory.accessPolicyPath, mode: PEMFiles.privateKeyMode)
        }
        return policy
    }

    func write(port: Int) throws {
        let url = "https://127.0.0.1:\(port)"
        try directory.writeKubeconfig(server: url, to: (dir as NSString).appendingPathComponent("kubeconfig"), contextName: name)
        let policy = try Self.accessPolicy(in: directory)
        if let token = policy.tokens.first(where: { $0.user == "service-account" })?.token {
            let ca = try PEMFiles.readText(at: directory.caCertificatePath)
            let tokenConfig = Kubeconfig.bearerToken(server: url, caPEM: ca, token: token, contextName: name)
            try PEMFiles.writeAtomically(tokenConfig, to: (dir as NSString).appendingPathComponent("kubeconfig-token"), mode: PEMFiles.privateKeyMode)
            let serviceAccount = (dir as NSString).appendingPathComponent("serviceaccount")
            try PEMFiles.makeDirectory(serviceAccount)
            try PEMFiles.writeAtomically(token, to: (serviceAccount as NSString).appendingPathComponent("token"), mode: PEMFiles.privateKeyMode)
            try PEMFiles.writeAtomically(ca, to: (serviceAccount as NSString).appendingPathComponent("ca.crt"), mode: PEMFiles.certificateMode)
            try PEMFiles.writeAtomically(
                "default", to: (serviceAccount as NSString).appendingPathComponent("namespace"), mode: PEMFiles.certificateMode)
        }
        try PEMFiles.writeJSON(Description(name: name, url: url, port: port), to: (dir as NSString).appendingPathComponent("simcluster.json"))
    }
}

func parseDelay(_ text: String) throws -> Duration {
    let scale: Double
    var number = Substring(text)
    if number.hasSuffix("ms") {
        scale = 0.001
        number = number.dropLast(2)
    } else if number.hasSuffix("s") {
        scale = 1
        number = number.dropLast()
    } else {
        scale = 1
    }
    guard let value = Double(number), value >= 0, value <= 3600 else {
        throw ValidationError("'\(text)' is not a delay; write it like 2s or 500ms")
    }
    return .milliseconds(Int64(value * scale * 1000))
}
