import TetherJSON
import TetherModel
import TetherPlugin

/// Tether's own kinds in `core.tether.io`, and the `DNSEndpoint`s the hub publishes: they
/// describe the federation and stay at the hub.
public struct FederationPlugin: ResourcePlugin {
    public let name = "federation"
    public let kinds: [KindDescriptor] = [Self.cluster, Self.propagationPolicy, Self.overridePolicy, Self.propagation, Self.dnsEndpoint]

    public init() {}

    public static let group = "core.tether.io"

    public static let cluster = KindDescriptor(
        group: group, version: "v1alpha1", kind: "Cluster", plural: "clusters", namespaced: false,
        printerColumns: [
            // As a cordoned Node shows `Ready,SchedulingDisabled`: a cluster whose divided replicas
            // run elsewhere says so beside its phase.
            .text("STATUS") { cluster in
                let phase = cluster.string(at: "status", "phase") ?? "Unknown"
                let movedAway = (cluster["status"]?["conditions"]?.arrayElements ?? []).contains {
                    $0["type"]?.stringValue == "ReplicasMovedAway" && $0["status"]?.stringValue == "True"
                }
                return movedAway ? phase + ",ReplicasMovedAway" : phase
            },
            .text("AGENT", priority: 1) { $0.string(at: "status", "agentVersion") ?? "<none>" },
            .text("KUBERNETES", priority: 1) { $0.string(at: "status", "kubernetesVersion") ?? "<none>" },
            .text("NODES", priority: 1) { $0.integer(at: "status", "nodeCount").map(String.init) ?? "<none>" },
            .text("LAST-HEARTBEAT", priority: 1) { $0.string(at: "status", "lastHeartbeatTime") ?? "<none>" },
            .text("PROXY", priority: 1) { $0.string(at: "status", "proxy") ?? "<none>" },
        ],
        fields: [
            "spec": .object(["taints": .freeList, "description": .string, "confirmedHold": .string]),
            "status": .free,
        ],
        summary: "Cluster is a member cluster of the federation; its agent holds a session to the hub.",
        nameRule: .dns1123Label
    )
    public static let propagationPolicy = KindDescriptor(
        group: group, version: "v1alpha1", kind: "PropagationPolicy", plural: "propagationpolicies",
        namespaced: true, shortNames: ["pp"], hasStatus: false,
        fields: ["spec": propagationSpec],
        summary: "PropagationPolicy chooses the member clusters of the objects it selects and divides their replicas."
    )
    public static let overridePolicy = KindDescriptor(
        group: group, version: "v1alpha1", kind: "OverridePolicy", plural: "overridepolicies",
        namespaced: true, shortNames: ["op"], hasStatus: false,
        fields: ["spec": overrideSpec],
        summary: "OverridePolicy changes fields of the objects it selects in some member clusters."
    )

    /// Where one federated object stands in every cluster it is placed on, written by the hub
    /// (docs/api.md, "Per-cluster state"): every kind has one, whatever its own schema allows.
    public static let propagation = KindDescriptor(
        group: group, version: "v1alpha1", kind: "Propagation", plural: "propagations", namespaced: false,
        shortNames: ["prop"],
        printerColumns: [
            .text("KIND") { $0.string(at: "spec", "resource", "kind") ?? "" },
            .text("NAMESPACE") { $0.string(at: "spec", "resource", "namespace") ?? "" },
            .text("OBJECT") { $0.string(at: "spec", "resource", "name") ?? "" },
            PrinterColumn(name: "CLUSTERS", type: "integer") { .integer($0.integer(at: "status", "placed") ?? 0) },
            PrinterColumn(name: "APPLIED", type: "integer") { .integer($0.integer(at: "status", "applied") ?? 0) },
            PrinterColumn(name: "HEALTHY", type: "integer") { .integer($0.integer(at: "status", "healthy") ?? 0) },
            .text("LAST-ERROR") { $0.string(at: "status", "lastError") ?? "" },
        ],
        fields: [
            "spec": .object([
                "resource": .object(["apiVersion": .string, "kind": .string, "namespace": .string, "name": .string, "uid": .string])
            ]),
            "status": .object([
                "observedGeneration": .integer, "placed": .integer, "applied": .integer, "healthy": .integer, "lastError": .string,
                "clusters": .array(
                    .object([
                        "name": .string, "state": .string, "health": .string, "message": .string, "revision": .integer,
                    ])),
            ]),
        ],
        summary:
            "Propagation is where one federated object stands in each member cluster it is placed on; the hub writes one per federated object."
    )

    /// external-dns's `DNSEndpoint` (its CRD source reads them): the hub writes one per federated
    /// Service of type LoadBalancer and Ingress when the federation has a DNS zone (docs/dns.md).
    public static let dnsEndpoint = KindDescriptor(
        group: "externaldns.k8s.io", version: "v1alpha1", kind: "DNSEndpoint", plural: "dnsendpoints", namespaced: true,
        printerColumns: [
            .text("NAMES") { object in
                let names = (object.value(at: "spec", "endpoints")?.arrayElements ?? []).compactMap { $0["dnsName"]?.stringValue }
                return names.isEmpty ? "<none>" : names.count == 1 ? names[0] : "\(names[0]) +\(names.count - 1)"
            },
            PrinterColumn(name: "RECORDS", type: "integer") { .integer(Int64(($0.value(at: "spec", "endpoints")?.arrayElements ?? []).count)) },
        ],
        fields: [
            "spec": .object([
                "endpoints": .array(
                    .object([
                        "dnsName": .string, "recordTTL": .integer, "recordType": .string, "setIdentifier": .string, "targets": .stringList,
                        "labels": .stringMap, "providerSpecific": .array(.object(["name": .string, "value": .string])),
                    ]))
            ]),
            "status": .object(["observedGeneration": .integer]),
        ],
        summary: "DNSEndpoint is a set of DNS records for external-dns to publish; the hub writes one per federated Service and Ingress."
    )

    static let resourceSelectors = FieldSchema.array(
        .object([
            "apiVersion": .string, "kind": .string, "name": .string, "labelSelector": .labelSelector,
        ]))
    static let propagationSpec = FieldSchema.object([
        "resourceSelectors": resourceSelectors,
        "placement": .object(["clusterNames": .stringList, "clusterSelector": .labelSelector, "excludeClusters": .stringList]),
        "replicaScheduling": .object([
            "type": .string, "weights": .map(.integer), "minReplicas": .map(.integer), "maxReplicas": .map(.integer),
        ]),
        "propagateDeps": .boolean,
    ])
    static let overrideSpec = FieldSchema.object([
        "resourceSelectors": resourceSelectors,
        "overrides": .array(
            .object([
                "clusterNames": .stringList, "clusterSelector": .labelSelector, "image": .string, "replicas": .integer,
                "labels": .stringMap, "annotations": .stringMap, "jsonPatch": .freeList,
            ])),
    ])

    public func propagates(_ kind: KindDescriptor) -> Bool { false }
}
