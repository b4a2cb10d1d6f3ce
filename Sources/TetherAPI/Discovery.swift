import Foundation
import TetherJSON
import TetherModel
import TetherPlugin

/// The discovery documents kubectl reads to learn what the server serves, all from the kind registry.
struct Discovery {
    let registry: KindRegistry
    /// Whether Pods have the `eviction` subresource (``APIServerConfiguration/servesEviction``).
    var servesEviction = false
    /// Whether Pods have the `ephemeralcontainers` subresource (a kubelet runs them here:
    /// ``APIServerConfiguration/podsEndedByKubelet``).
    var servesEphemeralContainers = false
    /// Whether `metrics.k8s.io` is served (``APIServerConfiguration/metrics``).
    var servesMetrics = false

    static let verbs: JSONValue = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

    func version(server: String) -> JSONValue {
        [
            "major": "1", "minor": "32", "gitVersion": .string("v1.32.0+tether.\(server)"), "gitCommit": "",
            "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "swift6.3",
            "compiler": "swiftc", "platform": "linux/amd64",
        ]
    }

    var coreVersions: JSONValue {
        ["kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []]
    }

    /// The registry's groups and those of the self reviews (``AccessReviews``), which no plugin serves.
    private var groups: [(name: String, versions: [String])] {
        registry.groups + AccessReviews.groups.filter { review in !registry.groups.contains { $0.name == review.name } }
            + (servesMetrics ? [(ResourceMetricsAPI.group, [ResourceMetricsAPI.version])] : [])
    }

    /// The metrics resources of `group`/`version`: none unless served and asked for.
    private func metricsResources(group: String, version: String) -> [(plural: String, kind: String, namespaced: Bool)] {
        servesMetrics && group == ResourceMetricsAPI.group && version == ResourceMetricsAPI.version ? ResourceMetricsAPI.resources : []
    }

    var groupList: JSONValue {
        let groups = self.groups.filter { !$0.name.isEmpty }.map(group)
        return ["kind": "APIGroupList", "apiVersion": "v1", "groups": .array(groups)]
    }

    func group(named name: String) -> JSONValue? {
        guard let entry = groups.first(where: { $0.name == name && !name.isEmpty }) else { return nil }
        var document = group(entry)
        document[member: "kind"] = "APIGroup"
        document[member: "apiVersion"] = "v1"
        return document
    }

    private func group(_ entry: (name: String, versions: [String])) -> JSONValue {
        let versions: [JSONValue] = entry.versions.map { ["groupVersion": .string("\(entry.name)/\($0)"), "version": .string($0)] }
        return ["name": .string(entry.name), "versions": .array(versions), "preferredVersion": versions[0]]
    }

    func resourceList(group: String, version: String) -> JSONValue? {
        let kinds = registry.kinds(group: group, version: version)
        let reviews = AccessReviews.reviews(group: group, version: version)
        let metrics = metricsResources(group: group, version: version)
        guard !kinds.isEmpty || !reviews.isEmpty || !metrics.isEmpty else { return nil }
        var resources: [JSONValue] = reviews.map { review in
            ["name": .string(review.plural), "singularName": "", "namespaced": false, "kind": .string(review.kind), "verbs": ["create"]]
        }
        resources += metrics.map { metric in
            [
                "name": .string(metric.plural), "singularName": "", "namespaced": .bool(metric.namespaced), "kind": .string(metric.kind),
                "verbs": ["get", "list"],
            ]
        }
        for kind in kinds {
            var entry: JSONValue = [
                "name": .string(kind.plural), "singularName": .string(kind.singular), "namespaced": .bool(kind.namespaced),
                "kind": .string(kind.kind), "verbs": Self.verbs,
            ]
            if !kind.shortNames.isEmpty { entry[member: "shortNames"] = .array(kind.shortNames.map(JSONValue.string)) }
            if !kind.categories.isEmpty { entry[member: "categories"] = .array(kind.categories.map(JSONValue.string)) }
            resources.append(entry)
            if kind.hasScale {
                resources.append([
                    "name": .string("\(kind.plural)/scale"), "singularName": "", "namespaced": .bool(kind.namespaced),
                    "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"],
                ])
            }
            if kind.hasStatus {
                resources.append([
                    "name": .string("\(kind.plural)/status"), "singularName": "", "namespaced": .bool(kind.namespaced),
                    "kind": .string(kind.kind), "verbs": ["get", "patch", "update"],
                ])
            }
            if evictable(kind) {
                resources.append([
                    "name": "pods/eviction", "singularName": "", "namespaced": true, "group": "policy", "version": "v1", "kind": "Eviction",
                    "verbs": ["create"],
                ])
            }
            if debuggable(kind) {
                resources.append([
                    "name": "pods/ephemeralcontainers", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get", "patch", "update"],
                ])
            }
        }
        let groupVersion = group.isEmpty ? version : "\(group)/\(version)"
        return ["kind": "APIResourceList", "apiVersion": "v1", "groupVersion": .string(groupVersion), "resources": .array(resources)]
    }

    /// kubectl drain looks for `pods/eviction` (group `policy`, kind `Eviction`) in `/api/v1`.
    private func evictable(_ kind: KindDescriptor) -> Bool {
        servesEviction && kind.group.isEmpty && kind.kind == "Pod"
    }

    /// `kubectl debug` adds its container through `pods/ephemeralcontainers`.
    private func debuggable(_ kind: KindDescriptor) -> Bool {
        servesEphemeralContainers && kind.group.isEmpty && kind.kind == "Pod"
    }

    // MARK: Aggregated discovery

    /// The aggregated discovery version a client's `Accept` asks for (`v2`, or `v2beta1` of
    /// kubectl 1.26 to 1.29), or nil for the legacy documents.
    static func aggregatedVersion(accepting accept: String) -> String? {
        for choice in accept.split(separator: ",") {
            let parameters = Set(choice.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) })
            guard parameters.contains("g=apidiscovery.k8s.io"), parameters.contains("as=APIGroupDiscoveryList") else { continue }
            if parameters.contains("v=v2") { return "v2" }
            if parameters.contains("v=v2beta1") { return "v2beta1" }
        }
        return nil
    }

    static func aggregatedContentType(_ version: String) -> String {
        "application/json;g=apidiscovery.k8s.io;v=\(version);as=APIGroupDiscoveryList"
    }

    /// `/api` (the core group) or `/apis` (every other group) in one document: kubectl learns
    /// every resource in two requests instead of one per group version.
    func aggregated(core: Bool, version discoveryVersion: String) -> JSONValue {
        let groups = self.groups.filter { $0.name.isEmpty == core }
        let items: [JSONValue] = groups.map { group in
            var metadata: [String: JSONValue] = ["creationTimestamp": .null]
            if !group.name.isEmpty { metadata["name"] = .string(group.name) }
            let versions: [JSONValue] = group.versions.map { version in
                let reviews: [JSONValue] = AccessReviews.reviews(group: group.name, version: version).map { review in
                    [
                        "resource": .string(review.plural), "singularResource": "", "scope": "Cluster", "verbs": ["create"],
                        "responseKind": ["group": .string(review.group), "version": .string(review.version), "kind": .string(review.kind)],
                    ]
                }
                let metrics: [JSONValue] = metricsResources(group: group.name, version: version).map { metric in
                    [
                        "resource": .string(metric.plural), "singularResource": "", "scope": metric.namespaced ? "Namespaced" : "Cluster",
                        "verbs": ["get", "list"],
                        "responseKind": ["group": .string(group.name), "version": .string(version), "kind": .string(metric.kind)],
                    ]
                }
                return [
                    "version": .string(version), "freshness": "Current",
                    "resources": .array(reviews + metrics + registry.kinds(group: group.name, version: version).map(aggregatedResource)),
                ]
            }
            return ["metadata": .object(metadata), "versions": .array(versions)]
        }
        return [
            "kind": "APIGroupDiscoveryList", "apiVersion": .string("apidiscovery.k8s.io/\(discoveryVersion)"), "metadata": [:],
            "items": .array(items),
        ]
    }

    private func aggregatedResource(_ kind: KindDescriptor) -> JSONValue {
        var entry: JSONValue = [
            "resource": .string(kind.plural), "singularResource": .string(kind.singular),
            "responseKind": ["group": .string(kind.group), "version": .string(kind.version), "kind": .string(kind.kind)],
            "scope": kind.namespaced ? "Namespaced" : "Cluster", "verbs": Self.verbs,
        ]
        if !kind.shortNames.isEmpty { entry[member: "shortNames"] = .array(kind.shortNames.map(JSONValue.string)) }
        if !kind.categories.isEmpty { entry[member: "categories"] = .array(kind.categories.map(JSONValue.string)) }
        var subresources: [JSONValue] = []
        if kind.hasScale {
            subresources.append([
                "subresource": "scale", "responseKind": ["group": "autoscaling", "version": "v1", "kind": "Scale"],
                "verbs": ["get", "patch", "update"],
            ])
        }
        if kind.hasStatus {
            subresources.append([
                "subresource": "status",
                "responseKind": ["group": .string(kind.group), "version": .string(kind.version), "kind": .string(kind.kind)],
                "verbs": ["get", "patch", "update"],
            ])
        }
        if evictable(kind) {
            subresources.append([
                "subresource": "eviction", "responseKind": ["group": "policy", "version": "v1", "kind": "Eviction"], "verbs": ["create"],
            ])
        }
        if debuggable(kind) {
            subresources.append([
                "subresource": "ephemeralcontainers", "responseKind": ["group": "", "version": "v1", "kind": "Pod"],
                "verbs": ["get", "patch", "update"],
            ])
        }
        if !subresources.isEmpty { entry[member: "subresources"] = .array(subresources) }
        return entry
    }
}
