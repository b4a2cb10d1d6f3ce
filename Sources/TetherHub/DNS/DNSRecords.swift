import TetherModel
import TetherSecurity

/// Where the hub publishes DNS records (docs/dns.md): the federation's DNS settings and the
/// zone file's path.
public struct DNSSettings: Sendable, Hashable {
    public var dns: FederationDNS
    public var zoneFilePath: String
    /// How long after the hub starts it waits for every agent to report again before it
    /// publishes what it has: a restart must not empty the answers while agents reconnect.
    public var startupGrace: Duration

    public init(dns: FederationDNS, zoneFilePath: String, startupGrace: Duration = .seconds(30)) {
        self.dns = dns
        self.zoneFilePath = zoneFilePath
        self.startupGrace = startupGrace
    }
}

/// One federated Service of type LoadBalancer or Ingress, as DNS sees it: where it is placed,
/// and what each of those clusters says of it.
struct DNSSource: Sendable, Hashable {
    var reference: ObjectReference
    var uid: String
    var members: [Member]

    struct Member: Sendable, Hashable {
        var cluster: String
        /// The Cluster's `topology.kubernetes.io/region` and `.../zone` labels.
        var region: String?
        var zone: String?
        /// The agent holds a session and the object is not Degraded there.
        var healthy: Bool
        /// The load-balancer addresses the member reported (IPs and host names).
        var addresses: [String]
    }
}

/// What the engine knows that DNS needs, taken at once.
struct DNSView: Sendable {
    var sources: [DNSSource]
    /// Every cluster an object is placed on has reported on it since the hub started.
    var complete: Bool
}

/// A record set: one name, one type.
struct DNSRecord: Sendable, Hashable {
    enum RecordType: String, Sendable, Comparable {
        case a = "A"
        case aaaa = "AAAA"
        case cname = "CNAME"

        static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    /// Fully qualified, lowercase, without the trailing dot.
    var name: String
    var type: RecordType
    var targets: [String]
    var ttl: Int
}

/// The records of one federated object and why each name answers as it does.
struct DNSObjectRecords: Sendable, Hashable {
    var reference: ObjectReference
    var uid: String
    var records: [DNSRecord]
    /// Per name, a line for `kubectl describe`: its answer and, for an alias, why.
    var explanations: [String: String]
    /// Addresses and labels that cannot be published, each with the reason.
    var skipped: [String]
}

/// Federation v1's naming and fallback, computed from a ``DNSView`` (docs/dns.md):
///
///     <name>.<namespace>.<federation>.svc.<zone>.<region>.<dns zone>   healthy members in the zone
///     <name>.<namespace>.<federation>.svc.<region>.<dns zone>          healthy members in the region
///     <name>.<namespace>.<federation>.svc.<dns zone>                   every healthy member
///
/// (`ing` for an Ingress.) A zone without a healthy member is a CNAME to its region's name, a
/// region without one a CNAME to the global name; with no healthy member anywhere there is no
/// record. Only IP addresses are published: A for IPv4, AAAA for IPv6.
enum DNSRecordPlanner {
    static let regionLabel = "topology.kubernetes.io/region"
    static let zoneLabel = "topology.kubernetes.io/zone"

    static func records(for source: DNSSource, dns: FederationDNS) -> DNSObjectRecords {
        let reference = source.reference
        var result = DNSObjectRecords(reference: reference, uid: source.uid, records: [], explanations: [:], skipped: [])
        let type = reference.kind == "Ingress" ? "ing" : "svc"
        let base = [reference.name, reference.namespace ?? "default", dns.federation, type].joined(separator: ".")
        let global = "\(base).\(dns.zone)"

        // One pass over the members: each healthy one's addresses into the global set, its
        // region's and its zone's; every labelled region and zone is named, healthy or not.
        struct Found {
            var v4: Set<String> = []
            var v6: Set<String> = []
            var sorted: (v4: [String], v6: [String]) { (v4.sorted(), v6.sorted()) }
        }
        var everywhere = Found()
        var byRegion: [String: Found] = [:]
        var byZone: [String: [String: Found]] = [:]
        for member in source.members {
            let region = label(member.region, of: member.cluster, "region", &result.skipped)
            let zone = region == nil ? nil : label(member.zone, of: member.cluster, "zone", &result.skipped)
            if let region {
                if byRegion[region] == nil { byRegion[region] = Found() }
                if let zone, byZone[region]?[zone] == nil { byZone[region, default: [:]][zone] = Found() }
            }
            for address in member.addresses {
                let family = IPAddressBytes.parse(address)?.count
                guard family != nil else {
                    result.skipped.append("\(member.cluster): '\(address)' is not an IP address (host-name load balancers are not published)")
                    continue
                }
                guard member.healthy else { continue }
                let v6 = family == 16
                func add(_ found: inout Found) {
                    if v6 { found.v6.insert(address) } else { found.v4.insert(address) }
                }
                add(&everywhere)
                if let region {
                    add(&byRegion[region, default: Found()])
                    if let zone { add(&byZone[region, default: [:]][zone, default: Found()]) }
                }
            }
        }

        /// Records for `name`: its addresses, else an alias to the first wider name that has some.
        func publish(_ name: String, _ found: (v4: [String], v6: [String]), scope: String, wider: [(name: String, has: Bool)]) -> Bool {
            guard name.utf8.count <= 253, name.split(separator: ".").allSatisfy({ $0.utf8.count <= 63 }) else {
                result.skipped.append("\(name): longer than a DNS name may be")
                return false
            }
            if !found.v4.isEmpty || !found.v6.isEmpty {
                if !found.v4.isEmpty { result.records.append(DNSRecord(name: name, type: .a, targets: found.v4, ttl: dns.ttl)) }
                if !found.v6.isEmpty { result.records.append(DNSRecord(name: name, type: .aaaa, targets: found.v6, ttl: dns.ttl)) }
                result.explanations[name] = "\(name): \((found.v4 + found.v6).joined(separator: ", ")) (\(scope))"
                return true
            }
            guard let alias = wider.first(where: \.has) else { return false }
            result.records.append(DNSRecord(name: name, type: .cname, targets: [alias.name], ttl: dns.ttl))
            result.explanations[name] = "\(name): CNAME \(alias.name) (no healthy cluster in \(scope))"
            return true
        }

        let globalPublished = publish(global, everywhere.sorted, scope: "the federation", wider: [])
        for region in byRegion.keys.sorted() {
            let regionName = "\(base).\(region).\(dns.zone)"
            let regionPublished = publish(
                regionName, byRegion[region, default: Found()].sorted, scope: "region \(region)", wider: [(global, globalPublished)])
            for (zone, found) in (byZone[region] ?? [:]).sorted(by: { $0.key < $1.key }) {
                _ = publish(
                    "\(base).\(zone).\(region).\(dns.zone)", found.sorted, scope: "zone \(zone)",
                    wider: [(regionName, regionPublished), (global, globalPublished)])
            }
        }
        result.records.sort { ($0.name, $0.type) < ($1.name, $1.type) }
        return result
    }

    /// A region or zone label usable in a name, lowercased; anything else is noted and left out.
    private static func label(_ value: String?, of cluster: String, _ what: String, _ skipped: inout [String]) -> String? {
        guard let value, !value.isEmpty else { return nil }
        let lowered = value.lowercased()
        guard FederationDNS.isLabel(Substring(lowered)) else {
            skipped.append("\(cluster): \(what) '\(value)' is not a DNS label; the cluster counts for the wider names only")
            return nil
        }
        return lowered
    }
}
