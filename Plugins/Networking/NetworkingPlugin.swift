import TetherJSON
import TetherModel
import TetherPlugin

/// Service and Ingress. A member allocates its own cluster IPs and node ports, so those leave
/// the copy; load-balancer addresses come back and the hub lists every member's.
public struct NetworkingPlugin: ResourcePlugin {
    public let name = "networking"
    public let kinds: [KindDescriptor] = [Self.service, Self.ingress]

    public init() {}

    public static let service = KindDescriptor(
        group: "", version: "v1", kind: "Service", plural: "services", namespaced: true, shortNames: ["svc"],
        categories: ["all"],
        printerColumns: [
            .text("TYPE") { $0.string(at: "spec", "type") ?? "ClusterIP" },
            .text("CLUSTER-IP") { $0.string(at: "spec", "clusterIP") ?? "<none>" },
            .text("EXTERNAL-IP") { serviceExternalIP($0) },
            .text("PORT(S)") { servicePorts($0) },
            .text("SELECTOR", priority: 1) { LabelSelectorText.labels($0.value(at: "spec", "selector")) },
        ],
        fields: [
            "spec": .numbered(
                .field(
                    1, "ports",
                    .keyedList(
                        .numbered(
                            .field(1, "name", .string), .field(2, "protocol", .string), .field(6, "appProtocol", .string, optional: true),
                            .field(3, "port", .integer), .field(4, "targetPort", .intOrString), .field(5, "nodePort", .integer)
                        ), mergeKey: "port")),
                .field(2, "selector", .stringMap), .field(3, "clusterIP", .string), .field(18, "clusterIPs", .stringList),
                .field(4, "type", .string), .field(5, "externalIPs", .stringList), .field(7, "sessionAffinity", .string),
                .field(8, "loadBalancerIP", .string), .field(9, "loadBalancerSourceRanges", .stringList), .field(10, "externalName", .string),
                .field(11, "externalTrafficPolicy", .string), .field(12, "healthCheckNodePort", .integer),
                .field(13, "publishNotReadyAddresses", .boolean),
                .field(
                    14, "sessionAffinityConfig",
                    .numbered(.field(1, "clientIP", .numbered(.field(1, "timeoutSeconds", .integer, optional: true)), optional: true)), optional: true
                ),
                .field(19, "ipFamilies", .stringList), .field(17, "ipFamilyPolicy", .string, optional: true),
                .field(20, "allocateLoadBalancerNodePorts", .boolean, optional: true), .field(21, "loadBalancerClass", .string, optional: true),
                .field(22, "internalTrafficPolicy", .string, optional: true), .field(23, "trafficDistribution", .string, optional: true)
            ),
            "status": serviceStatus,
        ],
        summary: "Service is a named abstraction of software service consisting of a port the proxy listens on and the pods it forwards to.",
        nameRule: .dns1123Label,
        protobufNumbers: ["spec": 2, "status": 3]
    )
    public static let ingress = KindDescriptor(
        group: "networking.k8s.io", version: "v1", kind: "Ingress", plural: "ingresses", namespaced: true,
        shortNames: ["ing"],
        printerColumns: [
            .text("CLASS") { $0.string(at: "spec", "ingressClassName") ?? "<none>" },
            .text("HOSTS") { ingressHosts($0) },
            .text("ADDRESS") { loadBalancerAddresses($0) ?? "" },
        ],
        fields: [
            "spec": .numbered(
                .field(4, "ingressClassName", .string, optional: true), .field(1, "defaultBackend", ingressBackend),
                .field(2, "tls", .array(.numbered(.field(1, "hosts", .stringList), .field(2, "secretName", .string)))),
                .field(
                    3, "rules",
                    .array(
                        .numbered(
                            .field(1, "host", .string),
                            .embedded(
                                2,
                                .numbered(
                                    .field(
                                        1, "http",
                                        .numbered(
                                            .field(
                                                1, "paths",
                                                .array(
                                                    .numbered(
                                                        .field(1, "path", .string), .field(3, "pathType", .string, optional: true),
                                                        .field(2, "backend", ingressBackend)
                                                    )))))
                                ))
                        )))
            ),
            "status": ingressStatus,
        ],
        summary: "Ingress is a collection of rules that allow inbound connections to reach the endpoints defined by a backend.",
        protobufNumbers: ["spec": 2, "status": 3]
    )

    /// `networking/v1.IngressBackend`.
    static let ingressBackend = FieldSchema.numbered(
        .field(
            4, "service",
            .numbered(.field(1, "name", .string), .field(2, "port", .numbered(.field(1, "name", .string), .field(2, "number", .integer))))),
        .field(
            3, "resource",
            .numbered(.field(1, "apiGroup", .string, optional: true), .field(2, "kind", .string), .field(3, "name", .string)))
    )

    static let serviceTypes: Set<String> = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]

    public func applyPhase(of kind: KindDescriptor) -> ApplyPhase { .networking }

    /// kube-apiserver's Service defaults: type, session affinity, traffic policies, and each
    /// port's protocol and target port.
    public func normalizeOnWrite(_ object: JSONValue) -> JSONValue {
        guard object.kind == "Service", case .object? = object["spec"] else { return object }
        var service = object
        KubernetesDefaults.fill(&service, ["spec", "type"], "ClusterIP")
        let type = service.string(at: "spec", "type") ?? "ClusterIP"
        guard type != "ExternalName" else { return service }
        KubernetesDefaults.fill(&service, ["spec", "sessionAffinity"], "None")
        KubernetesDefaults.fill(&service, ["spec", "internalTrafficPolicy"], "Cluster")
        if type == "NodePort" || type == "LoadBalancer" { KubernetesDefaults.fill(&service, ["spec", "externalTrafficPolicy"], "Cluster") }
        if type == "LoadBalancer" { KubernetesDefaults.fill(&service, ["spec", "allocateLoadBalancerNodePorts"], .bool(true)) }
        if case .array(let ports)? = service.value(at: "spec", "ports") {
            service.set(
                .array(
                    ports.map { port in
                        guard case .object = port else { return port }
                        var port = port
                        KubernetesDefaults.fill(&port, ["protocol"], "TCP")
                        if let number = port["port"] { KubernetesDefaults.fill(&port, ["targetPort"], number) }
                        return port
                    }), at: ["spec", "ports"])
        }
        return service
    }

    public func validate(_ object: JSONValue) -> [ValidationProblem] {
        var problems: [ValidationProblem] = []
        switch object.kind {
        case "Service":
            if let type = object.string(at: "spec", "type"), !Self.serviceTypes.contains(type) {
                problems.append(
                    ValidationProblem(field: "spec.type", "must be one of \(Self.serviceTypes.sorted().joined(separator: ", ")), not \(type)"))
            }
            for (index, port) in (object.value(at: "spec", "ports")?.arrayElements ?? []).enumerated() {
                guard let number = port["port"]?.integerValue, (1...65535).contains(number) else {
                    problems.append(ValidationProblem(field: "spec.ports[\(index)].port", "must be between 1 and 65535"))
                    continue
                }
            }
        case "Ingress":
            for (index, rule) in (object.value(at: "spec", "rules")?.arrayElements ?? []).enumerated() {
                for (pathIndex, path) in (rule.value(at: "http", "paths")?.arrayElements ?? []).enumerated() where path["backend"] == nil {
                    problems.append(ValidationProblem(field: "spec.rules[\(index)].http.paths[\(pathIndex)].backend", "required"))
                }
            }
        default:
            break
        }
        return problems
    }

    public func prepareForMember(_ object: JSONValue) -> JSONValue {
        var copy = MemberCopy.stripServerFields(object)
        guard object.kind == "Service" else { return copy }
        // A headless Service (clusterIP None) stays headless; any other address is the hub's, not the member's.
        if object.string(at: "spec", "clusterIP") != "None" {
            copy.remove(at: "spec", "clusterIP")
            copy.remove(at: "spec", "clusterIPs")
        }
        copy.remove(at: "spec", "healthCheckNodePort")
        if case .array(let ports)? = copy.value(at: "spec", "ports") {
            copy.set(
                .array(
                    ports.map { port in
                        var port = port
                        port[member: "nodePort"] = nil
                        return port
                    }), at: ["spec", "ports"])
        }
        return copy
    }

    public func health(of live: JSONValue) -> Health {
        let wantsAddress = live.kind == "Ingress" || live.string(at: "spec", "type") == "LoadBalancer"
        guard wantsAddress else { return .healthy }
        let ingress = live.value(at: "status", "loadBalancer", "ingress")?.arrayElements ?? []
        return ingress.isEmpty ? Health(.progressing, "waiting for a load-balancer address") : .healthy
    }

    public func summary(of live: JSONValue) -> [String: JSONValue] {
        StatusSummary.loadBalancer(of: live)
    }

    public func aggregateStatus(of object: JSONValue, members: [MemberObjectStatus]) -> JSONValue? {
        StatusSummary.combinedLoadBalancer(of: members)
    }

    // MARK: Statuses (field numbers of k8s.io/api core/v1 and networking/v1)

    static let serviceStatus = FieldSchema.numbered(
        .field(
            1, "loadBalancer",
            .numbered(
                .field(
                    1, "ingress",
                    .array(
                        .numbered(
                            .field(1, "ip", .string), .field(2, "hostname", .string), .field(3, "ipMode", .string, optional: true),
                            .field(4, "ports", .array(portStatus))
                        ))))),
        .field(2, "conditions", .array(.condition))
    )
    static let ingressStatus = FieldSchema.numbered(
        .field(
            1, "loadBalancer",
            .numbered(
                .field(
                    1, "ingress",
                    .array(.numbered(.field(1, "ip", .string), .field(2, "hostname", .string), .field(4, "ports", .array(portStatus))))))
        )
    )
    static let portStatus = FieldSchema.numbered(
        .field(1, "port", .integer), .field(2, "protocol", .string), .field(3, "error", .string, optional: true))

    static func loadBalancerAddresses(_ object: JSONValue) -> String? {
        let ingress = object.value(at: "status", "loadBalancer", "ingress")?.arrayElements ?? []
        guard !ingress.isEmpty else { return nil }
        return ingress.compactMap { $0["ip"]?.stringValue ?? $0["hostname"]?.stringValue }.joined(separator: ",")
    }

    /// As kubectl prints it: an ExternalName's name; a LoadBalancer's addresses (`<pending>`
    /// until it has one) and external IPs; otherwise the external IPs.
    static func serviceExternalIP(_ service: JSONValue) -> String {
        let external = (service.value(at: "spec", "externalIPs")?.arrayElements ?? []).compactMap(\.stringValue)
        switch service.string(at: "spec", "type") {
        case "ExternalName": return service.string(at: "spec", "externalName") ?? "<none>"
        case "LoadBalancer":
            let addresses = [loadBalancerAddresses(service)].compactMap { $0 } + external
            return addresses.isEmpty ? "<pending>" : addresses.joined(separator: ",")
        default: return external.isEmpty ? "<none>" : external.joined(separator: ",")
        }
    }

    static func servicePorts(_ object: JSONValue) -> String {
        let ports = object.value(at: "spec", "ports")?.arrayElements ?? []
        guard !ports.isEmpty else { return "<none>" }
        return ports.map { port in
            let number = port["port"]?.integerValue.map(String.init) ?? "?"
            let node = port["nodePort"]?.integerValue.map { ":\($0)" } ?? ""
            return "\(number)\(node)/\(port["protocol"]?.stringValue ?? "TCP")"
        }.joined(separator: ",")
    }

    static func ingressHosts(_ object: JSONValue) -> String {
        let hosts = (object.value(at: "spec", "rules")?.arrayElements ?? []).compactMap { $0["host"]?.stringValue }
        return hosts.isEmpty ? "*" : hosts.joined(separator: ",")
    }
}
