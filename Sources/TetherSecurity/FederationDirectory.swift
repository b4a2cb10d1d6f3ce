import Foundation
import NIOCore
import X509

/// The settings `tetherctl init` records beside the PKI, in `federation.json`.
public struct FederationConfig: Codable, Sendable, Hashable {
    public var trustDomain: String
    /// Host names and IP addresses the hub is reached at; all are in the hub certificate's SANs.
    public var hubHosts: [String]
    /// The federation's identity, random, made by `init`: agents refuse desired state from a hub
    /// naming another. Absent in directories made before it existed (the hub adds one).
    public var uid: String?
    /// Where the hub publishes its Services' and Ingresses' DNS records; nil publishes none.
    public var dns: FederationDNS?

    public init(trustDomain: String, hubHosts: [String], uid: String? = UUID().uuidString.lowercased(), dns: FederationDNS? = nil) {
        self.trustDomain = trustDomain
        self.hubHosts = hubHosts
        self.uid = uid
        self.dns = dns
    }
}

/// The federation's DNS settings (docs/dns.md): records are named
/// `<name>.<namespace>.<federation>.svc.[<zone>.<region>.]<dns zone>`.
public struct FederationDNS: Codable, Sendable, Hashable {
    /// The DNS zone the records live in, lowercase, without the trailing dot: `example.com`.
    public var zone: String
    /// The federation's name, one label of every record's name.
    public var federation: String
    /// Seconds resolvers may keep an answer: short, so a cluster that fails leaves the answers soon.
    public var ttl: Int
    /// The zone's name servers (its NS records and the SOA's primary).
    public var nameservers: [NameServer]

    /// A name server of the zone; one inside the zone needs its address (the zone's glue).
    public struct NameServer: Codable, Sendable, Hashable {
        public var name: String
        public var address: String?

        /// `NAME` or `NAME=ADDRESS`, as `--dns-nameserver` takes it.
        public var argument: String { address.map { "\(name)=\($0)" } ?? name }
    }

    public static let defaultFederationName = "federation"
    public static let defaultTTL = 30

    /// Checks and normalizes each part; the error names the option to fix. A name server is
    /// `NAME` or `NAME=ADDRESS`; without any, the zone names `localhost`, which loads anywhere
    /// and suits a server that only answers the hub's zone on its own.
    public init(zone: String, federation: String = Self.defaultFederationName, ttl: Int = Self.defaultTTL, nameservers: [String] = [])
        throws(SecurityError)
    {
        let zone = Self.trimmed(zone)
        guard zone.utf8.count <= 200, Self.isHostName(zone) else {
            throw SecurityError(.invalidName, "--dns-zone '\(zone)' is not a DNS name of lowercase labels (a-z, 0-9, '-'), such as example.com")
        }
        guard Self.isLabel(Substring(federation)) else {
            throw SecurityError(.invalidName, "--name '\(federation)' is not a DNS label (a-z, 0-9, '-', at most 63 characters)")
        }
        guard (1...86_400).contains(ttl) else {
            throw SecurityError(.invalidName, "--dns-ttl \(ttl) is outside 1...86400 seconds")
        }
        var servers: [NameServer] = []
        for item in nameservers {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            let name = Self.trimmed(parts.first ?? "")
            guard Self.isHostName(name) else {
                throw SecurityError(.invalidName, "--dns-nameserver '\(item)' is not NAME or NAME=ADDRESS with NAME a host name")
            }
            let address = parts.count == 2 ? parts[1] : nil
            if let address, (try? SocketAddress(ipAddress: address, port: 0)) == nil {
                throw SecurityError(.invalidName, "--dns-nameserver '\(item)': '\(address)' is not an IPv4 or IPv6 address")
            }
            if address == nil, name == zone || name.hasSuffix("." + zone) {
                throw SecurityError(
                    .invalidName, "--dns-nameserver '\(item)' is inside the zone \(zone): give its address too, as \(name)=ADDRESS")
            }
            servers.append(NameServer(name: name, address: address))
        }
        self.zone = zone
        self.federation = federation
        self.ttl = ttl
        self.nameservers = servers.isEmpty ? [NameServer(name: "localhost", address: nil)] : servers
    }

    static func isHostName(_ name: String) -> Bool {
        name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isLabel($0) }
    }

    private static func trimmed(_ name: String) -> String {
        var name = name.lowercased()
        while name.hasSuffix(".") { name.removeLast() }
        return name
    }

    /// A DNS-1123 label: what every part of a name Tether writes must be.
    public static func isLabel(_ label: Substring) -> Bool {
        guard (1...63).contains(label.utf8.count), let first = label.utf8.first, let last = label.utf8.last else { return false }
        func alphanumeric(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        }
        return alphanumeric(first) && alphanumeric(last) && label.utf8.allSatisfy { alphanumeric($0) || $0 == UInt8(ascii: "-") }
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
    /// The zone file the hub writes when the federation has a DNS zone.
    public var dnsZoneFilePath: String { file("dns.zone") }

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
        dns: FederationDNS? = nil,
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

        let config = FederationConfig(trustDomain: trustDomain, hubHosts: hubHosts, dns: dns)
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

    /// Sets (or, with nil, removes) the federation's DNS settings; the hub reads them at start.
    public func configureDNS(_ dns: FederationDNS?) throws(SecurityError) {
        var config = try loadConfig()
        config.dns = dns
        try PEMFiles.writeJSON(config, to: configPath)
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
    /// this directory, a context named `contextName`, and one `<member>-via-hub` context per
    /// member in `members` (default: those `path` already has), readable by its owner only.
    public func writeKubeconfig(server: String, to path: String, contextName: String = "federation", members: [String]? = nil) throws(SecurityError) {
        let members = members ?? Self.memberContexts(inKubeconfigAt: path)
        let (ca, certificate, key) = (
            try PEMFiles.readText(at: caCertificatePath), try PEMFiles.readText(at: adminCertificatePath), try PEMFiles.readText(at: adminKeyPath)
        )
        var base = server
        while base.hasSuffix("/") { base.removeLast() }
        let contexts =
            [Kubeconfig.Context(name: contextName, server: base, caPEM: ca, clientCertificatePEM: certificate, clientKeyPEM: key)]
            + members.map {
                Kubeconfig.Context(
                    name: Kubeconfig.viaHubContextName(of: $0), server: Kubeconfig.viaHubServer(hub: base, cluster: $0), caPEM: ca,
                    clientCertificatePEM: certificate, clientKeyPEM: key)
            }
        try PEMFiles.writeAtomically(Kubeconfig.combined(contexts), to: path, mode: PEMFiles.privateKeyMode)
    }

    /// Adds (or with `removing`, drops) `<cluster>-via-hub` in `D/kubeconfig`, keeping its server
    /// and the other members' contexts. Returns the context's name.
    @discardableResult
    public func updateMemberContext(_ cluster: String, removing: Bool = false) throws(SecurityError) -> String {
        var members = Self.memberContexts(inKubeconfigAt: kubeconfigPath).filter { $0 != cluster }
        if !removing { members.append(cluster) }
        try writeKubeconfig(server: try kubeconfigServer(), to: kubeconfigPath, members: members.sorted())
        return Kubeconfig.viaHubContextName(of: cluster)
    }

    /// The members with a `-via-hub` context in the kubeconfig at `path`, in file order.
    static func memberContexts(inKubeconfigAt path: String) -> [String] {
        guard let text = try? PEMFiles.readText(at: path) else { return [] }
        var members: [String] = []
        var inContexts = false
        for line in text.split(separator: "\n") {
            if !line.hasPrefix(" "), !line.hasPrefix("-") { inContexts = line.hasPrefix("contexts:") }
            guard inContexts, line.hasPrefix("- name: ") else { continue }
            let name = line.dropFirst("- name: ".count).trimmingCharacters(in: .whitespaces)
            if name.hasSuffix(Kubeconfig.viaHubSuffix) { members.append(String(name.dropLast(Kubeconfig.viaHubSuffix.count))) }
        }
        return members
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
