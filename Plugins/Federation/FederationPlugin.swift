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
    ).describing([
        "spec": "What the operator says of the cluster; the hub writes nothing here.",
        "spec.description": "Free text for operators: what the cluster is for, who runs it.",
        "spec.taints":
            "Taints, as a Node's, kept for operators and tools; placement does not read them (use a PropagationPolicy's clusterSelector or excludeClusters).",
        "spec.confirmedHold":
            "The hold token an operator confirmed with `tetherctl cluster confirm NAME`: the agent then applies the desired state it held back (a mass deletion, another federation's state).",
        "status": "What the hub knows of the cluster, written by the hub: its agent's session, health, certificate and what the agent holds back.",
        "status.phase": "Ready while the agent's session is up, NotReady as soon as it drops, Offline after the hub's --offline-after.",
        "status.conditions":
            "Ready, DesiredStateDelivered, DesiredStateHeld, CertificateExpiring, and ReplicasMovedAway once its divided replicas run in the other clusters.",
        "status.agentVersion": "The version of the agent holding the session.",
        "status.kinds": "The kinds the agent's plugins serve.",
        "status.kubernetesVersion": "The member's Kubernetes version, from the agent's heartbeat.",
        "status.nodeCount": "The member's nodes, from the agent's heartbeat.",
        "status.lastHeartbeatTime": "When the agent last reported the member's health.",
        "status.certificate": "The agent's client certificate: serial, issuer and validity.",
        "status.hold": "What the agent refuses to apply until an operator confirms it, and why.",
    ])
    public static let propagationPolicy = KindDescriptor(
        group: group, version: "v1alpha1", kind: "PropagationPolicy", plural: "propagationpolicies",
        namespaced: true, shortNames: ["pp"], hasStatus: false,
        fields: ["spec": propagationSpec],
        summary: "PropagationPolicy chooses the member clusters of the objects it selects and divides their replicas."
    ).describing([
        "spec":
            "Which objects of the policy's namespace it governs, where they go, and how their replicas are divided. The first policy by name whose selectors match an object governs it; an object no policy selects goes to every cluster.",
        "spec.resourceSelectors":
            "The objects governed: any selector matching. Each selector matches by every field it names (apiVersion, kind, name, labelSelector).",
        "spec.resourceSelectors.apiVersion": "The object's apiVersion (apps/v1).",
        "spec.resourceSelectors.kind": "The object's kind (Deployment).",
        "spec.resourceSelectors.name": "The object's name.",
        "spec.resourceSelectors.labelSelector": "The object's labels.",
        "spec.placement":
            "The clusters that receive the objects: those named (if any), of those the ones the selector matches (if any), less the excluded.",
        "spec.placement.clusterNames": "Only these clusters.",
        "spec.placement.clusterSelector": "Only the clusters whose Cluster labels match.",
        "spec.placement.excludeClusters": "Never these clusters.",
        "spec.replicaScheduling": "How the replicas of a workload (spec.replicas) are spread over its clusters.",
        "spec.replicaScheduling.type":
            "Divided (the default): the replicas are split over the clusters by weight; Duplicated: every cluster runs them all.",
        "spec.replicaScheduling.weights": "Each cluster's weight when dividing, by cluster name (1 when absent).",
        "spec.replicaScheduling.minReplicas": "The fewest replicas a cluster gets when dividing, by cluster name.",
        "spec.replicaScheduling.maxReplicas": "The most replicas a cluster gets when dividing, by cluster name.",
        "spec.propagateDeps":
            "Whether what a governed object depends on (the ConfigMaps, Secrets, claims and ServiceAccount its Pod template names) goes wherever the object goes, besides its own placement.",
    ])
    public static let overridePolicy = KindDescriptor(
        group: group, version: "v1alpha1", kind: "OverridePolicy", plural: "overridepolicies",
        namespaced: true, shortNames: ["op"], hasStatus: false,
        fields: ["spec": overrideSpec],
        summary: "OverridePolicy changes fields of the objects it selects in some member clusters."
    ).describing([
        "spec":
            "Per-cluster changes to the copies of the objects of the policy's namespace it selects. Every policy that selects an object applies, in name order.",
        "spec.resourceSelectors":
            "The objects changed: any selector matching. Each selector matches by every field it names (apiVersion, kind, name, labelSelector).",
        "spec.overrides": "The changes, each for the clusters it names or selects (neither: every cluster), applied in order.",
        "spec.overrides.clusterNames": "Only the copies for these clusters.",
        "spec.overrides.clusterSelector": "Only the copies for the clusters whose Cluster labels match.",
        "spec.overrides.image": "Every container's and init container's image in the Pod template.",
        "spec.overrides.replicas": "The copy's spec.replicas, after division.",
        "spec.overrides.labels": "Labels added to (or replaced in) the copy.",
        "spec.overrides.annotations": "Annotations added to (or replaced in) the copy.",
        "spec.overrides.jsonPatch": "An RFC 6902 JSON patch applied to the copy last.",
    ])

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
                        "name": .string, "state": .string, "health": .string, "message": .string, "revision": .integer, "generation": .integer,
                        "summary": .free,
                    ])),
            ]),
        ],
        summary:
            "Propagation is where one federated object stands in each member cluster it is placed on; the hub writes one per federated object."
    ).describing([
        "spec": "The federated object this record is about.",
        "spec.resource": "The federated object: apiVersion, kind, namespace, name and uid.",
        "status": "Where the object stands in each cluster it is placed on, written by the hub.",
        "status.placed": "How many clusters it is placed on.",
        "status.applied": "How many of them applied it.",
        "status.healthy": "How many of them report it healthy.",
        "status.lastError": "The latest error a cluster reported for it.",
        "status.clusters": "Each cluster's line: its state, health, message and the revision that carried the object.",
        "status.clusters.generation":
            "The generation of the object the cluster holds (acknowledged); status.observedGeneration is the least of them.",
        "status.clusters.summary":
            "What the cluster's agent reported of the object's own status (ready replicas, load-balancer addresses): what the hub sums into the object's status, kept here so that a hub that starts again still counts a cluster whose agent has not returned.",
    ])

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
