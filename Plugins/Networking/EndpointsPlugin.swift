import TetherJSON
import TetherModel
import TetherPlugin

/// Endpoints and EndpointSlices: a member cluster's list of the Pods behind each Service, which
/// its endpoints controllers write (the simulated member's too). Served by members only and
/// never propagated: the hub holds no Pods to list, and writing endpoints can send a Service's
/// traffic anywhere, which Kubernetes keeps from every role but its controllers'. An agent
/// neither watches nor writes them.
public struct EndpointsPlugin: ResourcePlugin {
    public let name = "endpoints"
    public let kinds: [KindDescriptor] = [Self.endpoints, Self.endpointSlice]

    public init() {}

    public func propagates(_ kind: KindDescriptor) -> Bool { false }

    public func normalizeOnWrite(_ object: JSONValue) -> JSONValue {
        object.kind == "EndpointSlice" ? Self.endpointSliceDefaults(object) : Self.endpointsDefaults(object)
    }

    /// A Service's backends as the core API lists them: `kubectl get endpoints`.
    public static let endpoints = KindDescriptor(
        group: "", version: "v1", kind: "Endpoints", plural: "endpoints", namespaced: true, shortNames: ["ep"],
        printerColumns: [.text("ENDPOINTS") { endpointsColumn($0) }],
        fields: [
            "subsets": .array(
                .numbered(
                    .field(1, "addresses", .array(endpointAddress)), .field(2, "notReadyAddresses", .array(endpointAddress)),
                    .field(
                        3, "ports",
                        .array(
                            .numbered(
                                .field(1, "name", .string), .field(2, "port", .integer), .field(3, "protocol", .string),
                                .field(4, "appProtocol", .string, optional: true)))))
            )
        ],
        summary: "Endpoints is a collection of endpoints that implement the actual service.",
        protobufNumbers: ["subsets": 2]
    )

    /// `core/v1.EndpointAddress`.
    static let endpointAddress = FieldSchema.numbered(
        .field(1, "ip", .string), .field(3, "hostname", .string), .field(4, "nodeName", .string, optional: true),
        .field(2, "targetRef", .objectReference, optional: true)
    )

    /// The slices of a Service's backends, which kube-proxy and kubectl's `describe service` read.
    public static let endpointSlice = KindDescriptor(
        group: "discovery.k8s.io", version: "v1", kind: "EndpointSlice", plural: "endpointslices", namespaced: true,
        printerColumns: [
            .text("ADDRESSTYPE") { $0.string(at: "addressType") ?? "" },
            .text("PORTS") { slice in
                let ports = (slice["ports"]?.arrayElements ?? []).map { $0["port"]?.integerValue.map(String.init) ?? "<unset>" }
                return ports.isEmpty ? "<unset>" : ports.joined(separator: ",")
            },
            .text("ENDPOINTS") { slice in
                listedWithMore((slice["endpoints"]?.arrayElements ?? []).flatMap { $0["addresses"]?.arrayElements.compactMap(\.stringValue) ?? [] })
            },
        ],
        fields: [
            "addressType": .string,
            "endpoints": .array(
                .numbered(
                    .field(1, "addresses", .stringList),
                    .field(
                        2, "conditions",
                        .numbered(
                            .field(1, "ready", .boolean, optional: true), .field(2, "serving", .boolean, optional: true),
                            .field(3, "terminating", .boolean, optional: true)), optional: true),
                    .field(3, "hostname", .string, optional: true), .field(4, "targetRef", .objectReference, optional: true),
                    .field(5, "deprecatedTopology", .stringMap), .field(6, "nodeName", .string, optional: true),
                    .field(7, "zone", .string, optional: true),
                    .field(
                        8, "hints",
                        .numbered(
                            .field(1, "forZones", .array(.numbered(.field(1, "name", .string)))),
                            .field(2, "forNodes", .array(.numbered(.field(1, "name", .string))))), optional: true)
                )),
            "ports": .array(
                .numbered(
                    .field(1, "name", .string, optional: true), .field(2, "protocol", .string, optional: true),
                    .field(3, "port", .integer, optional: true), .field(4, "appProtocol", .string, optional: true))),
        ],
        summary: "EndpointSlice represents a set of service endpoints.",
        protobufNumbers: ["endpoints": 2, "ports": 3, "addressType": 4]
    )

    /// kubectl's ENDPOINTS cell: each ready address with each port, `IP:PORT`, the first three
    /// and how many more; `<none>` when there is none.
    static func endpointsColumn(_ endpoints: JSONValue) -> String {
        var pairs: [String] = []
        for subset in endpoints["subsets"]?.arrayElements ?? [] {
            let addresses = (subset["addresses"]?.arrayElements ?? []).compactMap { $0["ip"]?.stringValue }
            let ports = (subset["ports"]?.arrayElements ?? []).compactMap { $0["port"]?.integerValue }
            for address in addresses {
                if ports.isEmpty { pairs.append(address) } else { pairs.append(contentsOf: ports.map { "\(address):\($0)" }) }
            }
        }
        return listedWithMore(pairs)
    }

    static func listedWithMore(_ items: [String]) -> String {
        guard !items.isEmpty else { return "<none>" }
        let shown = items.prefix(3).joined(separator: ",")
        return items.count > 3 ? "\(shown) + \(items.count - 3) more..." : shown
    }

    /// kube-apiserver's EndpointSlice defaults: each port's protocol, and its name as "" when
    /// absent (kubectl's `describe service` reads the name of every slice port).
    static func endpointSliceDefaults(_ object: JSONValue) -> JSONValue {
        guard case .array(let ports)? = object["ports"] else { return object }
        var slice = object
        slice[member: "ports"] = .array(defaulted(ports, naming: true))
        return slice
    }

    /// kube-apiserver's Endpoints defaults: each port's protocol.
    static func endpointsDefaults(_ object: JSONValue) -> JSONValue {
        guard case .array(let subsets)? = object["subsets"] else { return object }
        var endpoints = object
        endpoints[member: "subsets"] = .array(
            subsets.map { subset in
                guard case .array(let ports)? = subset["ports"] else { return subset }
                var subset = subset
                subset[member: "ports"] = .array(defaulted(ports, naming: false))
                return subset
            })
        return endpoints
    }

    /// Endpoint ports with their protocol (TCP) and, if `naming`, their name ("") filled in.
    private static func defaulted(_ ports: [JSONValue], naming: Bool) -> [JSONValue] {
        ports.map { port in
            guard case .object = port else { return port }
            var port = port
            if naming { KubernetesDefaults.fill(&port, ["name"], "") }
            KubernetesDefaults.fill(&port, ["protocol"], "TCP")
            return port
        }
    }
}
