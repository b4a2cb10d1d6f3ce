import TetherJSON
import TetherModel

/// kube-apiserver's ResourceQuota admission and the quota controller's counting, for the
/// resources operators limit most: object counts (`pods`, `services`, `configmaps`, `secrets`,
/// `persistentvolumeclaims`, `replicationcontrollers`, `resourcequotas`,
/// `services.loadbalancers`, `services.nodeports`, and `count/RESOURCE[.GROUP]` for any kind),
/// the compute requests and limits of Pods that have not finished (`requests.cpu` or `cpu`,
/// `requests.memory` or `memory`, `limits.cpu`, `limits.memory`), and `requests.storage` of
/// claims. A resource it does not know is neither counted nor enforced.
public enum ResourceQuotaAdmission {
    /// Why a create is refused, worded as kube-apiserver words it (after `KIND "NAME" is forbidden: `).
    public struct Refusal: Error, Sendable, Equatable {
        public let reason: String
    }

    /// The object counts a quota names by their short names, by resource and group.
    static let shortCounts: [String: (resource: String, group: String)] = [
        "pods": ("pods", ""), "services": ("services", ""), "configmaps": ("configmaps", ""), "secrets": ("secrets", ""),
        "persistentvolumeclaims": ("persistentvolumeclaims", ""), "replicationcontrollers": ("replicationcontrollers", ""),
        "resourcequotas": ("resourcequotas", ""),
    ]

    static let computeNames: [String: (limits: Bool, cpu: Bool)] = [
        "requests.cpu": (false, true), "cpu": (false, true), "requests.memory": (false, false), "memory": (false, false),
        "limits.cpu": (true, true), "limits.memory": (true, false),
    ]

    /// What `object` (of `resource` in `group`) adds to each of `names`; zero for what it does
    /// not count toward. CPU is in millicores, memory and storage in bytes.
    public static func usage(of object: JSONValue, resource: String, group: String, for names: some Sequence<String>) -> [String: Int64] {
        var usage: [String: Int64] = [:]
        let finishedPod =
            resource == "pods" && group.isEmpty && object.podFinished
        for name in names {
            var amount: Int64 = 0
            if let counted = shortCounts[name] {
                amount = counted.resource == resource && counted.group == group && !finishedPod ? 1 : 0
            } else if name.hasPrefix("count/") {
                let qualified = group.isEmpty ? resource : "\(resource).\(group)"
                amount = String(name.dropFirst("count/".count)) == qualified && !finishedPod ? 1 : 0
            } else if let compute = computeNames[name], resource == "pods", group.isEmpty, !finishedPod {
                amount = podCompute(object, limits: compute.limits, cpu: compute.cpu)
            } else if name == "requests.storage", resource == "persistentvolumeclaims", group.isEmpty {
                amount = ResourceQuantity.whole(object.value(at: "spec", "resources", "requests", "storage")?.stringValue) ?? 0
            } else if resource == "services", group.isEmpty, name == "services.loadbalancers" {
                amount = object.string(at: "spec", "type") == "LoadBalancer" ? 1 : 0
            } else if resource == "services", group.isEmpty, name == "services.nodeports" {
                let type = object.string(at: "spec", "type") ?? ""
                amount = type == "NodePort" || type == "LoadBalancer" ? Int64(object.value(at: "spec", "ports")?.arrayElements.count ?? 0) : 0
            }
            usage[name] = amount
        }
        return usage
    }

    /// The kinds (resource, group) whose objects count toward `names`.
    public static func countedKinds(for names: some Sequence<String>) -> Set<Kind> {
        var kinds: Set<Kind> = []
        for name in names {
            if let counted = shortCounts[name] {
                kinds.insert(Kind(resource: counted.resource, group: counted.group))
            } else if name.hasPrefix("count/") {
                let qualified = name.dropFirst("count/".count)
                let parts = qualified.split(separator: ".", maxSplits: 1).map(String.init)
                if let resource = parts.first { kinds.insert(Kind(resource: resource, group: parts.count > 1 ? parts[1] : "")) }
            } else if computeNames[name] != nil {
                kinds.insert(Kind(resource: "pods", group: ""))
            } else if name == "requests.storage" {
                kinds.insert(Kind(resource: "persistentvolumeclaims", group: ""))
            } else if name.hasPrefix("services.") {
                kinds.insert(Kind(resource: "services", group: ""))
            }
        }
        return kinds
    }

    public struct Kind: Hashable, Sendable {
        public var resource: String
        public var group: String

        public init(resource: String, group: String) {
            self.resource = resource
            self.group = group
        }
    }

    /// What the objects `list` returns for each counted kind use of each of `names`, summed:
    /// the quota controller's `status.used`, and the usage admission compares against.
    /// A scoped `quota` counts only the Pods its scopes match.
    public static func used<Failure: Error>(
        of names: [String], in quota: JSONValue, list: (Kind) async throws(Failure) -> [JSONValue]
    ) async throws(Failure) -> [String: Int64] {
        var used = Dictionary(uniqueKeysWithValues: names.map { ($0, Int64(0)) })
        for kind in countedKinds(for: names) {
            for object in try await list(kind) where scopesMatch(quota, object, resource: kind.resource, group: kind.group) {
                for (name, amount) in usage(of: object, resource: kind.resource, group: kind.group, for: names) where amount > 0 {
                    used[name] = used[name, default: 0].addingReportingOverflow(amount).partialValue
                }
            }
        }
        return used
    }

    /// A Pod's request or limit of CPU (millicores) or memory (bytes), as LimitRanger adds it up.
    static func podCompute(_ pod: JSONValue, limits: Bool, cpu: Bool) -> Int64 {
        let total = LimitRangeAdmission.podMilliTotal(pod, limits ? "limits" : "requests", cpu ? "cpu" : "memory")
        return cpu ? total : total / 1_000
    }

    /// The quota's limits: each resource's hard amount, in the units ``usage(of:resource:group:for:)`` counts.
    public static func hard(of quota: JSONValue) -> [String: Int64] {
        (quota.value(at: "spec", "hard")?.objectMembers ?? [:]).compactMapValues { value in
            value.stringValue.flatMap { text in ResourceQuantity.milli(text) }
        }.reduce(into: [:]) { hard, entry in
            // CPU counts in millicores; everything else in whole units.
            hard[entry.key] = isCPU(entry.key) ? entry.value : entry.value / 1_000
        }
    }

    static func isCPU(_ name: String) -> Bool { name == "cpu" || name.hasSuffix(".cpu") }

    /// An amount as a quantity, as kube-apiserver prints it: `500m` or `2` CPUs, `1Gi` of memory.
    public static func quantity(_ amount: Int64, of name: String) -> String {
        if isCPU(name) { return amount % 1_000 == 0 ? "\(amount / 1_000)" : "\(amount)m" }
        for (suffix, unit) in [("Gi", Int64(1) << 30), ("Mi", Int64(1) << 20), ("Ki", Int64(1) << 10)] where amount != 0 && amount % unit == 0 {
            return "\(amount / unit)\(suffix)"
        }
        return "\(amount)"
    }

    /// Why `object` (being created as `resource` in `group`) may not be created under the
    /// quotas of its namespace, listing each counted kind of the namespace with `list` only for
    /// a quota the object counts toward; nil when it may. Refused when a Pod leaves out a request
    /// or limit a quota tracks ("must specify"), or when a quota would go over ("exceeded quota").
    public static func refusal<Failure: Error>(
        of object: JSONValue, resource: String, group: String, quotas: [JSONValue], list: (Kind) async throws(Failure) -> [JSONValue]
    ) async throws(Failure) -> Refusal? {
        for quota in quotas.sorted(by: { ($0.name ?? "") < ($1.name ?? "") }) where scopesMatch(quota, object, resource: resource, group: group) {
            let hard = hard(of: quota)
            let quotaName = quota.name ?? ""
            if resource == "pods", group.isEmpty {
                var missing: [String] = []
                for name in hard.keys.sorted() {
                    guard let compute = computeNames[name] else { continue }
                    let field = compute.limits ? "limits" : "requests"
                    let unspecified = (object.value(at: "spec", "containers")?.arrayElements ?? []).filter {
                        $0.value(at: "resources", field, compute.cpu ? "cpu" : "memory") == nil
                    }.compactMap { $0["name"]?.stringValue }
                    if !unspecified.isEmpty { missing.append("\(name) for: \(unspecified.joined(separator: ","))") }
                }
                if !missing.isEmpty { return Refusal(reason: "failed quota: \(quotaName): must specify \(missing.joined(separator: "; "))") }
            }
            let requested = usage(of: object, resource: resource, group: group, for: hard.keys).filter { $0.value > 0 }
            guard !requested.isEmpty else { continue }
            let current = try await used(of: Array(requested.keys), in: quota, list: list)
            let exceeded = requested.keys.sorted().filter { name in
                (current[name] ?? 0).addingReportingOverflow(requested[name]!).partialValue > hard[name]!
            }
            guard !exceeded.isEmpty else { continue }
            func listed(_ amounts: (String) -> Int64) -> String { exceeded.map { "\($0)=\(quantity(amounts($0), of: $0))" }.joined(separator: ",") }
            return Refusal(
                reason:
                    "exceeded quota: \(quotaName), requested: \(listed { requested[$0]! }), used: \(listed { current[$0] ?? 0 }), limited: \(listed { hard[$0]! })"
            )
        }
        return nil
    }
}
