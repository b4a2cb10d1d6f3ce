import Foundation
import X509

/// The settings `tetherctl init` records beside the PKI, in `federation.json`.
public struct FederationConfig: Codable, Sendable, Hashable {
    public var trustDomain: String
    /// Host names and IP addresses the hub is reached at; all are in the hub certificate's SANs.
    public var hubHosts: [String]
    /// The federation's identity, random, made by `init`: agents refuse desired state from a hub
    /// naming another. Absent in directories made before it existed (the hub adds one).
    public var uid: String?

    public init(trustDomain: String, hubHosts: [String], uid: String? = UUID().uuidString.lowercased()) {
        self.trustDomain = trustDomain
        self.hubHosts = hubHosts
        self.uid = uid
    }
}

/// The ports a running hub listens on, written to `hub.ports.json` once they are bound.
public struct HubPorts: Codable, Sendable, Hashable {
    public var api: Int?
    public var agent: Int?

    public init(api: Int? = nil, agent: Int? = nil) {
        self.api = api
        self.agent = agent
    }
}

/// A federation directory `D` (DESIGN.md section 10): the CA, the hub's and the admin's
/// certificates, the kubeconfig, the hub's store and its ports file, at stable paths.
public struct FederationDirectory: Sendable {
    public let path: String

    public init(path: String) {
        self.path = (path as NSString).standardizingPath
    }

    public var caCertificatePath: String { file("ca.crt") }
    public var caKeyPath: String { file("ca.key") }
    public var hubCertificatePath: String { file("hub.crt") }
    public var hubKeyPath: String { file("hub.key") }
    public var adminCertificatePath: String { file("admin.crt") }
    public var adminKeyPath: String { file("admin.key") }
    public var kubeconfigPath: String { file("kubeconfig") }
    public var databasePath: String { file("hub.db") }
    /// Each cluster's desired-state revision and digest, kept by the hub across restarts.
    public var federationRevisionsPath: String { file("federation-revisions.json") }
    public var portsPath: String { file("hub.ports.json") }
    public var configPath: String { file("federation.json") }
    /// API users, tokens and roles (optional; without it only `admin` may use the API).
    public var accessPolicyPath: String { file("access.json") }
    /// Certificates the hub signed on renewal and what each was renewed from (``RenewalLedger``).
    public var renewalLedgerPath: String { file("renewals.json") }

    public static let defaultHubHosts = ["localhost", "127.0.0.1", "::1"]
    public static let defaultAPIPort = 6443
    public static let defaultAgentPort = 7443

    private func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    /// Creates the federation's PKI and config: CA, hub certificate (server and client usage,
    /// SANs for every hub host), admin client certificate and a kubeconfig with context `federation`.
    ///
    /// Refuses to replace an existing CA unless `force` is set: every agent bundle chains to it.
    @discardableResult
    public func initialize(
        trustDomain: String,
        hubHosts: [String] = FederationDirectory.defaultHubHosts,
        force: Bool = false,
        now: Date = Date()
    ) throws(SecurityError) -> FederationConfig {
        if !force, FileManager.default.fileExists(atPath: caKeyPath) {
            throw SecurityError(
                .alreadyInitialized,
                "\(path) already holds a federation CA; every joined cluster trusts it. Use another directory, "
                    + "or pass --force to replace it and re-issue every bundle"
            )
        }
        guard !hubHosts.isEmpty else {
            throw SecurityError(.invalidName, "at least one hub host is needed for the hub certificate's SANs")
        }
        try PEMFiles.makeDirectory(path)
        let authority = try CertificateAuthority.create(trustDomain: trustDomain, now: now)
        let hosts = HubHostNames(hubHosts)
        let hub = try authority.issue(
            for: .hub(trustDomain: trustDomain),
            usage: .server,
            dnsNames: hosts.dnsNames,
            ipAddresses: hosts.ipAddresses,
            now: now
        )
        let admin = try authority.issue(for: .user("admin", trustDomain: trustDomain), usage: .client, now: now)

        try PEMFiles.writeAtomically(authority.keyed.privateKeyPEM, to: caKeyPath, mode: PEMFiles.privateKeyMode)
        try PEMFiles.writeAtomically(try authority.keyed.certificatePEM, to: caCertificatePath, mode: PEMFiles.certificateMode)
        try PEMFiles.writeAtomically(hub.privateKeyPEM, to: hubKeyPath, mode: PEMFiles.privateKeyMode)
        try PEMFiles.writeAtomically(try hub.certificatePEM, to: hubCertificatePath, mode: PEMFiles.certificateMode)
        try PEMFiles.writeAtomically(admin.privateKeyPEM, to: adminKeyPath, mode: PEMFiles.privateKeyMode)
        try PEMFiles.writeAtomically(try admin.certificatePEM, to: adminCertificatePath, mode: PEMFiles.certificateMode)

        let config = FederationConfig(trustDomain: trustDomain, hubHosts: hubHosts)
        try PEMFiles.writeJSON(config, to: configPath)
        let kubeconfig = try Kubeconfig.federation(
            server: "https://\(hosts.urlHost):\(Self.defaultAPIPort)",
            caPEM: try authority.keyed.certificatePEM,
            clientCertificatePEM: try admin.certificatePEM,
            clientKeyPEM: admin.privateKeyPEM
        )
        try PEMFiles.writeAtomically(kubeconfig, to: kubeconfigPath, mode: PEMFiles.privateKeyMode)
        return config
    }

    public func loadConfig() throws(SecurityError) -> FederationConfig {
        guard FileManager.default.fileExists(atPath: configPath) else {
            throw SecurityError(
                .unreadableFile,
                "\(path) is not a federation directory (no federation.json); create one with `tetherctl init --dir \(path)`"
            )
        }
        return try PEMFiles.readJSON(FederationConfig.self, from: configPath)
    }

    /// The federation's UID, made and recorded now if the directory predates it.
    public func federationUID() throws(SecurityError) -> String {
        var config = try loadConfig()
        if let uid = config.uid { return uid }
        let uid = UUID().uuidString.lowercased()
        config.uid = uid
        try PEMFiles.writeJSON(config, to: configPath)
        return uid
    }

    public func loadAuthority() throws(SecurityError) -> CertificateAuthority {
        let (_, keyed) = try PEMFiles.readKeyedCertificate(certificate: caCertificatePath, key: caKeyPath)
        return CertificateAuthority(keyed)
    }

    /// The trusted CA bundle: every certificate in `ca.crt` (several during a CA rollover).
    public func loadTrustBundle() throws(SecurityError) -> [Certificate] {
        try PEMFiles.readCertificates(at: caCertificatePath)
    }

    /// Writes a kubeconfig for an API at `server` to `path`: the CA and the admin's certificate from
    /// this directory, one context named `contextName`, readable by its owner only.
    public func writeKubeconfig(server: String, to path: String, contextName: String = "federation") throws(SecurityError) {
        let kubeconfig = try Kubeconfig.federation(
            server: server,
            caPEM: PEMFiles.readText(at: caCertificatePath),
            clientCertificatePEM: PEMFiles.readText(at: adminCertificatePath),
            clientKeyPEM: PEMFiles.readText(at: adminKeyPath),
            contextName: contextName
        )
        try PEMFiles.writeAtomically(kubeconfig, to: path, mode: PEMFiles.privateKeyMode)
    }

    /// Points `D/kubeconfig` at the API port the hub bound: the port of each `server:` that names
    /// one of the hub's hosts is replaced, nothing else in the file changes, and the file is
    /// replaced atomically. A server naming another host (a tunnel, a load balancer) was chosen
    /// by someone and is left alone. Returns the servers before and after when it changed.
    public func followAPIPort(_ port: Int) throws(SecurityError) -> (from: String, to: String)? {
        guard FileManager.default.fileExists(atPath: kubeconfigPath) else { return nil }
        let hosts = Set(try loadConfig().hubHosts.map { $0.lowercased() })
        let text = try PEMFiles.readText(at: kubeconfigPath)
        var changed: (from: String, to: String)?
        var lines = text.components(separatedBy: "\n")
        for index in lines.indices {
            let line = lines[index]
            guard let colon = line.range(of: "server:"), line[..<colon.lowerBound].allSatisfy({ $0 == " " }) else { continue }
            let value = line[colon.upperBound...].trimmingCharacters(in: CharacterSet(charactersIn: " \"'"))
            guard var url = URLComponents(string: value), url.scheme == "https", let host = url.host?.lowercased(),
                hosts.contains(host) || hosts.contains("[\(host)]"), url.port != port
            else { continue }
            url.port = port
            guard let updated = url.string else { continue }
            lines[index] = String(line[..<colon.upperBound]) + " " + updated
            changed = (value, updated)
        }
        guard let changed else { return nil }
        try PEMFiles.writeAtomically(lines.joined(separator: "\n"), to: kubeconfigPath, mode: PEMFiles.privateKeyMode)
        return changed
    }

    public func writePorts(_ ports: HubPorts) throws(SecurityError) {
        try PEMFiles.writeJSON(ports, to: portsPath)
    }

    /// The running hub's ports, or nil when no hub has written them.
    public func readPorts() throws(SecurityError) -> HubPorts? {
        guard FileManager.default.fileExists(atPath: portsPath) else { return nil }
        return try PEMFiles.readJSON(HubPorts.self, from: portsPath)
    }
}

/// Hub hosts split into the two SAN kinds.
struct HubHostNames {
    var dnsNames: [String] = []
    var ipAddresses: [String] = []

    init(_ hosts: [String]) {
        for host in hosts {
            if IPAddressBytes.parse(host) != nil { ipAddresses.append(host) } else { dnsNames.append(host) }
        }
    }

    /// The host for URLs: an IP address where there is one (so `localhost` resolving to `::1`
    /// cannot miss a hub bound to 127.0.0.1), bracketed if IPv6.
    var urlHost: String {
        let first = ipAddresses.first ?? dnsNames.first ?? "127.0.0.1"
        return first.contains(":") ? "[\(first)]" : first
    }
}

extension FederationDirectory {
    /// Issues the agent bundle for `cluster` into `bundlePath`: a new key, a certificate for
    /// `spiffe://<trust-domain>/cluster/<cluster>`, the CA bundle, and `agent.json`.
    ///
    /// Without `hubAddresses` the bundle points at the first hub host and the agent port the
    /// running hub wrote to `hub.ports.json` (or the default port).
    @discardableResult
    public func issueAgentBundle(
        cluster: String,
        to bundlePath: String,
        hubAddresses: [String]? = nil,
        validity: Duration = .days(365),
        now: Date = Date()
    ) throws(SecurityError) -> AgentBundle {
        let config = try loadConfig()
        let identity = try TetherIdentity.cluster(cluster, trustDomain: config.trustDomain)
        let authority = try loadAuthority()
        let issued = try authority.issue(for: identity, usage: .client, validity: validity, now: now)
        let addresses: [String]
        if let hubAddresses {
            addresses = hubAddresses
        } else {
            let port = try readPorts()?.agent ?? Self.defaultAgentPort
            addresses = ["\(HubHostNames(config.hubHosts).urlHost):\(port)"]
        }
        let bundle = AgentBundle(path: bundlePath)
        try bundle.write(
            certificate: issued,
            trustBundle: try loadTrustBundle(),
            manifest: AgentManifest(cluster: cluster, trustDomain: config.trustDomain, hubAddresses: addresses)
        )
        let summary = CertificateSummary(issued.certificate)
        let absolute = URL(fileURLWithPath: bundle.path).standardizedFileURL.path
        try recordIssued(IssuedBundle(cluster: cluster, path: absolute, serial: summary.serial, notAfter: summary.notAfter))
        return bundle
    }
}
