import Foundation
import TetherJSON
import TetherModel

/// kube-apiserver's LimitRanger admission for a Pod being created in a namespace with
/// LimitRanges: each container without a request or limit gets its `Container` item's
/// `defaultRequest` and `default` (and says so in the `kubernetes.io/limit-ranger`
/// annotation), then every container (`Container` items) and the Pod as a whole (`Pod` items)
/// is held to `min`, `max` and `maxLimitRequestRatio`, with kube-apiserver's messages; and a
/// PersistentVolumeClaim's storage request to `PersistentVolumeClaim` items.
public enum LimitRangeAdmission {
    public struct Refusal: Error, Sendable, Equatable {
        public let reason: String
    }

    static let annotation = "kubernetes.io/limit-ranger"

    /// `pod` with the defaults of `limitRanges` applied, or why it is refused.
    public static func admit(_ pod: JSONValue, limitRanges: [JSONValue]) throws(Refusal) -> JSONValue {
        let items = limitRanges.sorted { ($0.name ?? "") < ($1.name ?? "") }.flatMap { $0.value(at: "spec", "limits")?.arrayElements ?? [] }
        guard !items.isEmpty else { return pod }
        var admitted = pod
        var applied: [String] = []
        for list in ["initContainers", "containers"] {
            guard var containers = admitted.value(at: "spec", list)?.arrayElements else { continue }
            for index in containers.indices {
                let name = containers[index]["name"]?.stringValue ?? ""
                var requestsSet: [String] = []
                var limitsSet: [String] = []
                for item in items where item["type"]?.stringValue == "Container" {
                    for (field, defaults) in [("limits", "default"), ("requests", "defaultRequest")] {
                        for (resource, value) in item[defaults]?.objectMembers ?? [:]
                        where containers[index].value(at: "resources", field, resource) == nil {
                            containers[index].set(value, at: ["resources", field, resource])
                            if field == "limits" { limitsSet.append(resource) } else { requestsSet.append(resource) }
                        }
                    }
                }
                if !requestsSet.isEmpty {
                    applied.append(
                        "\(requestsSet.sorted().joined(separator: ", ")) request for \(list == "containers" ? "container" : "init container") \(name)"
                    )
                }
                if !limitsSet.isEmpty {
                    applied.append(
                        "\(limitsSet.sorted().joined(separator: ", ")) limit for \(list == "containers" ? "container" : "init container") \(name)")
                }
            }
            admitted.set(.array(containers), at: ["spec", list])
        }
        if !applied.isEmpty {
            admitted.set(.string("LimitRanger plugin set: \(applied.joined(separator: "; "))"), at: ["metadata", "annotations", annotation])
        }
        var problems: [String] = []
        let containers =
            (admitted.value(at: "spec", "initContainers")?.arrayElements ?? []) + (admitted.value(at: "spec", "containers")?.arrayElements ?? [])
        for item in items {
            switch item["type"]?.stringValue {
            case "Container":
                for container in containers {
                    problems += violations(
                        of: item, limitType: "Container", requests: members(container, "requests"), limits: members(container, "limits"))
                }
            case "Pod":
                problems += violations(of: item, limitType: "Pod", requests: podTotal(admitted, "requests"), limits: podTotal(admitted, "limits"))
            default:
                continue
            }
        }
        guard problems.isEmpty else { throw Refusal(reason: problems.count == 1 ? problems[0] : "[\(problems.joined(separator: ", "))]") }
        return admitted
    }

    /// Why a PersistentVolumeClaim's requests break a `PersistentVolumeClaim` item's `min` or
    /// `max` (kube-apiserver holds both to the request); nil when they do not.
    public static func claimRefusal(_ claim: JSONValue, limitRanges: [JSONValue]) -> Refusal? {
        let requests = (claim.value(at: "spec", "resources", "requests")?.objectMembers ?? [:]).compactMapValues(\.stringValue)
        var problems: [String] = []
        let items = limitRanges.sorted { ($0.name ?? "") < ($1.name ?? "") }.flatMap { $0.value(at: "spec", "limits")?.arrayElements ?? [] }
        for item in items where item["type"]?.stringValue == "PersistentVolumeClaim" {
            for (bound, below) in [("min", true), ("max", false)] {
                for (resource, value) in (item[bound]?.objectMembers ?? [:]).sorted(by: { $0.key < $1.key }) {
                    guard let enforced = value.stringValue, let limit = ResourceQuantity.milli(enforced) else { continue }
                    let word = below ? "minimum" : "maximum"
                    guard let request = requests[resource] else {
                        problems.append("\(word) \(resource) usage per PersistentVolumeClaim is \(enforced).  No request is specified")
                        continue
                    }
                    let amount = ResourceQuantity.milli(request) ?? 0
                    if below ? amount < limit : amount > limit {
                        problems.append("\(word) \(resource) usage per PersistentVolumeClaim is \(enforced), but request is \(request)")
                    }
                }
            }
        }
        guard !problems.isEmpty else { return nil }
        return Refusal(reason: problems.count == 1 ? problems[0] : "[\(problems.joined(separator: ", "))]")
    }

    /// A container's requests or limits, as written.
    static func members(_ container: JSONValue, _ field: String) -> [String: String] {
        (container.value(at: "resources", field)?.objectMembers ?? [:]).compactMapValues(\.stringValue)
    }

    /// A Pod's requests or limits (`field`) of every resource its containers name, as quantities.
    static func podTotal(_ pod: JSONValue, _ field: String) -> [String: String] {
        let containers = (pod.value(at: "spec", "containers")?.arrayElements ?? []) + (pod.value(at: "spec", "initContainers")?.arrayElements ?? [])
        let resources = Set(containers.flatMap { members($0, field).keys })
        var totals: [String: String] = [:]
        for resource in resources {
            let total = podMilliTotal(pod, field, resource)
            totals[resource] = total % 1_000 == 0 ? "\(total / 1_000)" : "\(total)m"
        }
        return totals
    }

    /// A Pod's request or limit (`field`) of `resource` in thousandths of a unit, as admission
    /// counts it: its containers' summed, at least its largest init container's.
    static func podMilliTotal(_ pod: JSONValue, _ field: String, _ resource: String) -> Int64 {
        func amount(_ container: JSONValue) -> Int64 { max(0, ResourceQuantity.milli(members(container, field)[resource]) ?? 0) }
        let sum = (pod.value(at: "spec", "containers")?.arrayElements ?? []).reduce(Int64(0)) { $0.addingReportingOverflow(amount($1)).partialValue }
        let largestInit = (pod.value(at: "spec", "initContainers")?.arrayElements ?? []).map(amount).max() ?? 0
        return max(sum, largestInit)
    }

    /// The `min`, `max` and `maxLimitRequestRatio` of one item, in kube-apiserver's words.
    static func violations(of item: JSONValue, limitType: String, requests: [String: String], limits: [String: String]) -> [String] {
        var problems: [String] = []
        func milli(_ text: String?) -> Int64? { ResourceQuantity.milli(text) }
        for (resource, enforcedValue) in (item["min"]?.objectMembers ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard let enforced = enforcedValue.stringValue, let minimum = milli(enforced) else { continue }
            if let request = requests[resource] {
                if (milli(request) ?? 0) < minimum {
                    problems.append("minimum \(resource) usage per \(limitType) is \(enforced), but request is \(request)")
                } else if let limit = limits[resource], (milli(limit) ?? 0) < minimum {
                    problems.append("minimum \(resource) usage per \(limitType) is \(enforced), but limit is \(limit)")
                }
            } else {
                problems.append("minimum \(resource) usage per \(limitType) is \(enforced).  No request is specified")
            }
        }
        for (resource, enforcedValue) in (item["max"]?.objectMembers ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard let enforced = enforcedValue.stringValue, let maximum = milli(enforced) else { continue }
            if let limit = limits[resource] {
                if (milli(limit) ?? 0) > maximum {
                    problems.append("maximum \(resource) usage per \(limitType) is \(enforced), but limit is \(limit)")
                } else if let request = requests[resource], (milli(request) ?? 0) > maximum {
                    problems.append("maximum \(resource) usage per \(limitType) is \(enforced), but request is \(request)")
                }
            } else {
                problems.append("maximum \(resource) usage per \(limitType) is \(enforced).  No limit is specified")
            }
        }
        for (resource, enforcedValue) in (item["maxLimitRequestRatio"]?.objectMembers ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard let enforced = enforcedValue.stringValue, let ratio = milli(enforced) else { continue }
            let request = milli(requests[resource]) ?? 0
            let limit = milli(limits[resource]) ?? 0
            if request == 0 {
                problems.append("\(resource) max limit to request ratio per \(limitType) is \(enforced), but no request is specified or request is 0")
            } else if limit == 0 {
                problems.append("\(resource) max limit to request ratio per \(limitType) is \(enforced), but no limit is specified or limit is 0")
            } else if Double(limit) / Double(request) * 1_000 > Double(ratio) {
                problems.append(
                    "\(resource) max limit to request ratio per \(limitType) is \(enforced), but provided ratio is \(String(format: "%f", Double(limit) / Double(request)))"
                )
            }
        }
        return problems
    }
}
