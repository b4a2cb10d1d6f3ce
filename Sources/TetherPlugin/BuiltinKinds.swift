import TetherModel

/// The kinds Tether serves out of the box, in one place.
///
/// Until resource-kind plugins exist (the agent/plugin issue), their API descriptions live
/// here; each will move into its plugin under `Plugins/`, and the registry will be built from
/// the plugins instead.
public enum BuiltinKinds {
    public static let all: [KindDescriptor] = [
        namespace, configMap, secret, service, deployment, replicaSet, daemonSet, statefulSet, job, ingress,
        cluster, propagationPolicy, overridePolicy,
    ]

    public static let registry = KindRegistry(all)

    /// What a member cluster serves (the simulated one included): the Kubernetes kinds and Nodes,
    /// without Tether's own federation kinds.
    public static let memberCluster = KindRegistry(all.filter { $0.group != "core.tether.io" } + [node])

    static let namespace = KindDescriptor(
        group: "", version: "v1", kind: "Namespace", plural: "namespaces", namespaced: false, shortNames: ["ns"],
        printerColumns: [column("STATUS") { $0.path("status", "phase") ?? "Active" }]
    )
    static let node = KindDescriptor(
        group: "", version: "v1", kind: "Node", plural: "nodes", namespaced: false, shortNames: ["no"],
        printerColumns: [
            column("STATUS") { node in
                guard case .array(let conditions)? = node["status"]?["conditions"] else { return "Unknown" }
                let ready = conditions.first { $0["type"]?.stringValue == "Ready" }
                return ready?["status"]?.stringValue == "True" ? "Ready" : "NotReady"
            },
            column("VERSION") { $0.path("status", "nodeInfo", "kubeletVersion") ?? "" },
        ]
    )
    static let configMap = KindDescriptor(
        group: "", version: "v1", kind: "ConfigMap", plural: "configmaps", namespaced: true, shortNames: ["cm"],
        printerColumns: [integer("DATA") { $0.count("data") + $0.count("binaryData") }],
        hasStatus: false
    )
    static let secret = KindDescriptor(
        group: "", version: "v1", kind: "Secret", plural: "secrets", namespaced: true,
        printerColumns: [
            column("TYPE") { $0["type"]?.stringValue ?? "Opaque" },
            integer("DATA") { $0.count("data") + $0.count("stringData") },
        ],
        hasStatus: false
    )
    static let service = KindDescriptor(
        group: "", version: "v1", kind: "Service", plural: "services", namespaced: true, shortNames: ["svc"],
        categories: ["all"],
        printerColumns: [
            column("TYPE") { $0.path("spec", "type") ?? "ClusterIP" },
            column("CLUSTER-IP") { $0.path("spec", "clusterIP") ?? "<none>" },
            column("EXTERNAL-IP") { $0.loadBalancerAddresses ?? "<none>" },
            column("PORT(S)") { $0.servicePorts },
        ]
    )
    static let deployment = KindDescriptor(
        group: "apps", version: "v1", kind: "Deployment", plural: "deployments", namespaced: true, shortNames: ["deploy"],
        categories: ["all"],
        printerColumns: [
            column("READY") { "\($0.int("status", "readyReplicas"))/\($0.int("spec", "replicas", default: 1))" },
            integer("UP-TO-DATE") { $0.int("status", "updatedReplicas") },
            integer("AVAILABLE") { $0.int("status", "availableReplicas") },
        ],
        hasScale: true
    )
    static let replicaSet = KindDescriptor(
        group: "apps", version: "v1", kind: "ReplicaSet", plural: "replicasets", namespaced: true, shortNames: ["rs"],
        categories: ["all"],
        printerColumns: [
            integer("DESIRED") { $0.int("spec", "replicas", default: 1) },
            integer("CURRENT") { $0.int("status", "replicas") },
            integer("READY") { $0.int("status", "readyReplicas") },
        ],
        hasScale: true
    )
    static let daemonSet = KindDescriptor(
        group: "apps", version: "v1", kind: "DaemonSet", plural: "daemonsets", namespaced: true, shortNames: ["ds"],
        categories: ["all"],
        printerColumns: [
            integer("DESIRED") { $0.int("status", "desiredNumberScheduled") },
            integer("CURRENT") { $0.int("status", "currentNumberScheduled") },
            integer("READY") { $0.int("status", "numberReady") },
            integer("UP-TO-DATE") { $0.int("status", "updatedNumberScheduled") },
            integer("AVAILABLE") { $0.int("status", "numberAvailable") },
        ]
    )
    static let statefulSet = KindDescriptor(
        group: "apps", version: "v1", kind: "StatefulSet", plural: "statefulsets", namespaced: true, shortNames: ["sts"],
        categories: ["all"],
        printerColumns: [column("READY") { "\($0.int("status", "readyReplicas"))/\($0.int("spec", "replicas", default: 1))" }],
        hasScale: true
    )
    static let job = KindDescriptor(
        group: "batch", version: "v1", kind: "Job", plural: "jobs", namespaced: true, categories: ["all"],
        printerColumns: [
            column("COMPLETIONS") { "\($0.int("status", "succeeded"))/\($0.int("spec", "completions", default: 1))" }
        ]
    )
    static let ingress = KindDescriptor(
        group: "networking.k8s.io", version: "v1", kind: "Ingress", plural: "ingresses", namespaced: true, shortNames: ["ing"],
        printerColumns: [
            column("CLASS") { $0.path("spec", "ingressClassName") ?? "<none>" },
            column("HOSTS") { $0.ingressHosts },
            column("ADDRESS") { $0.loadBalancerAddresses ?? "" },
        ]
    )
    static let cluster = KindDescriptor(
        group: "core.tether.io", version: "v1alpha1", kind: "Cluster", plural: "clusters", namespaced: false,
        printerColumns: [
            column("STATUS") { $0.path("status", "phase") ?? "Unknown" },
            column("AGENT", priority: 1) { $0.path("status", "agentVersion") ?? "<none>" },
            column("KUBERNETES", priority: 1) { $0.path("status", "kubernetesVersion") ?? "<none>" },
        ]
    )
    static let propagationPolicy = KindDescriptor(
        group: "core.tether.io", version: "v1alpha1", kind: "PropagationPolicy", plural: "propagationpolicies",
        namespaced: true, shortNames: ["pp"], hasStatus: false
    )
    static let overridePolicy = KindDescriptor(
        group: "core.tether.io", version: "v1alpha1", kind: "OverridePolicy", plural: "overridepolicies",
        namespaced: true, shortNames: ["op"], hasStatus: false
    )

    private static func column(
        _ name: String,
        priority: Int = 0,
        _ cell: @escaping @Sendable (JSONValue) -> String
    ) -> PrinterColumn {
        PrinterColumn(name: name, priority: priority) { .string(cell($0)) }
    }

    private static func integer(_ name: String, _ cell: @escaping @Sendable (JSONValue) -> Int64) -> PrinterColumn {
        PrinterColumn(name: name, type: "integer") { .integer(cell($0)) }
    }
}

extension JSONValue {
    fileprivate func path(_ keys: String...) -> String? {
        var value: JSONValue? = self
        for key in keys { value = value?[key] }
        return value?.stringValue
    }

    fileprivate func int(_ keys: String..., default fallback: Int64 = 0) -> Int64 {
        var value: JSONValue? = self
        for key in keys { value = value?[key] }
        return value?.integerValue ?? fallback
    }

    fileprivate func count(_ key: String) -> Int64 {
        if case .object(let members)? = self[key] { return Int64(members.count) }
        return 0
    }

    fileprivate var loadBalancerAddresses: String? {
        guard case .array(let ingress)? = self["status"]?["loadBalancer"]?["ingress"], !ingress.isEmpty else { return nil }
        return ingress.compactMap { $0["ip"]?.stringValue ?? $0["hostname"]?.stringValue }.joined(separator: ",")
    }

    fileprivate var servicePorts: String {
        guard case .array(let ports)? = self["spec"]?["ports"], !ports.isEmpty else { return "<none>" }
        return ports.map { port in
            let number = port["port"]?.integerValue.map(String.init) ?? "?"
            let node = port["nodePort"]?.integerValue.map { ":\($0)" } ?? ""
            return "\(number)\(node)/\(port["protocol"]?.stringValue ?? "TCP")"
        }.joined(separator: ",")
    }

    fileprivate var ingressHosts: String {
        guard case .array(let rules)? = self["spec"]?["rules"] else { return "*" }
        let hosts = rules.compactMap { $0["host"]?.stringValue }
        return hosts.isEmpty ? "*" : hosts.joined(separator: ",")
    }
}
