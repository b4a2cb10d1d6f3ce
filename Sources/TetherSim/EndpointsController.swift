import Foundation
import Logging
import TetherJSON
import TetherModel
import TetherStore

/// The endpoints controllers of a real cluster: a Service with a selector gets an `Endpoints`
/// of its name and `EndpointSlice`s labelled `kubernetes.io/service-name`, listing the Pods it
/// selects that have an address (ready ones as ready, the others as not ready), with each
/// Service port's target port resolved against the Pod's container ports. A Service without a
/// selector keeps the endpoints its owner writes. Both go when the Service goes.
struct EndpointsController: Sendable {
    let store: any ResourceStore
    let logger: Logger

    static let endpoints = ResourceType(group: "", resource: "endpoints", namespaced: true)
    static let slices = ResourceType(group: "discovery.k8s.io", resource: "endpointslices", namespaced: true)
    static let services = ResourceType(group: "", resource: "services", namespaced: true)
    static let serviceNameLabel = "kubernetes.io/service-name"
    static let managedByLabel = "endpointslice.kubernetes.io/managed-by"
    static let managedBy = "endpointslice-controller.k8s.io"
    /// Marks the Endpoints this controller wrote, so deleting a Service deletes only those (not
    /// the ones written by hand for a Service without a selector).
    static let writtenByController = "sim.tether.io/endpoints"
    /// kube-controller-manager's default `--max-endpoints-per-slice`.
    static let endpointsPerSlice = 100

    /// One selected Pod as an endpoint: its address, its conditions as an EndpointSlice states
    /// them, and the port each Service port reaches on it.
    private struct Backend {
        var pod: JSONValue
        var ip: String
        /// Ready to take new connections: Ready and not terminating, or the Service publishes
        /// addresses that are not ready.
        var ready: Bool
        /// The Pod's own readiness, terminating or not.
        var serving: Bool
        /// Being deleted: its connections drain.
        var terminating: Bool
        var ports: [JSONValue]
    }

    /// Writes the endpoints of `service` as its Pods stand now; writes nothing that would not change.
    func sync(_ service: JSONValue) async {
        guard let name = service.name, let namespace = service.namespace, service.deletionTimestamp == nil,
            service.string(at: "spec", "type") != "ExternalName",
            let selector = service.value(at: "spec", "selector")?.objectMembers.compactMapValues(\.stringValue), !selector.isEmpty
        else { return }
        let text = selector.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        guard let labels = try? LabelSelector(parsing: text),
            let pods = try? await store.list(PodController.pods, options: ListOptions(namespace: namespace, labelSelector: labels)).objects
        else { return }
        let servicePorts = service.value(at: "spec", "ports")?.arrayElements ?? []
        let publishNotReady = service.value(at: "spec", "publishNotReadyAddresses") == .bool(true)
        // As the EndpointSlice controller: a terminating Pod stays, `terminating` and not
        // `ready` (unless the Service publishes unready addresses), so its connections drain;
        // the older Endpoints leave it out.
        let backends: [Backend] = pods.compactMap { pod in
            guard let ip = pod.string(at: "status", "podIP"), !pod.podFinished
            else { return nil }
            let serving = Self.isReady(pod)
            let terminating = pod.deletionTimestamp != nil
            let ready = publishNotReady || (serving && !terminating)
            let ports = servicePorts.compactMap { Self.endpointPort($0, on: pod) }
            return Backend(pod: pod, ip: ip, ready: ready, serving: serving, terminating: terminating, ports: ports)
        }
        .sorted { $0.ip < $1.ip }
        let listed = backends.filter { publishNotReady || !$0.terminating }
        await write(endpoints: Self.endpointsObject(service, name: name, namespace: namespace, backends: listed))
        await writeSlices(of: service, name: name, namespace: namespace, backends: backends)
    }

    /// The Service `name` is gone: so are the endpoints its controller wrote.
    func serviceDeleted(namespace: String?, name: String) async {
        if let existing = try? await store.get(Self.endpoints, namespace: namespace, name: name),
            existing.annotations[Self.writtenByController] == "controller"
        {
            await delete(existing, as: Self.endpoints)
        }
        for slice in await slices(of: name, namespace: namespace) { await delete(slice, as: Self.slices) }
    }

    /// The Services in the Pod's namespace whose selector matches its labels.
    func services(selecting pod: JSONValue) async -> [String] {
        guard let services = try? await store.list(Self.services, options: ListOptions(namespace: pod.namespace)).objects else { return [] }
        let labels = pod.labels
        return services.compactMap { service in
            guard let selector = service.value(at: "spec", "selector")?.objectMembers, !selector.isEmpty,
                selector.allSatisfy({ labels[$0.key] == $0.value.stringValue })
            else { return nil }
            return service.name
        }
    }

    static func isReady(_ pod: JSONValue) -> Bool {
        (pod.value(at: "status", "conditions")?.arrayElements ?? []).contains { $0["type"] == "Ready" && $0["status"] == "True" }
    }

    /// A Service port as an endpoint port on `pod`: its target port by number, or by the name of
    /// a container port; nil when the Pod has no port of that name.
    private static func endpointPort(_ servicePort: JSONValue, on pod: JSONValue) -> JSONValue? {
        let number: Int64
        switch servicePort["targetPort"] ?? servicePort["port"] {
        case .integer(let value)?: number = value
        case .string(let portName)?:
            let containerPorts = (pod.value(at: "spec", "containers")?.arrayElements ?? []).flatMap { $0["ports"]?.arrayElements ?? [] }
            guard let found = containerPorts.first(where: { $0["name"]?.stringValue == portName })?["containerPort"]?.integerValue else {
                return nil
            }
            number = found
        default: return nil
        }
        var port: JSONValue = ["port": .integer(number), "protocol": servicePort["protocol"] ?? "TCP"]
        if let name = servicePort["name"]?.stringValue, !name.isEmpty { port[member: "name"] = .string(name) }
        if let appProtocol = servicePort["appProtocol"] { port[member: "appProtocol"] = appProtocol }
        return port
    }

    private static func targetReference(_ pod: JSONValue) -> JSONValue {
        ["kind": "Pod", "namespace": .string(pod.namespace ?? ""), "name": .string(pod.name ?? ""), "uid": .string(pod.uid ?? "")]
    }

    /// The core `Endpoints`: one subset per set of resolved ports, addresses split by readiness.
    private static func endpointsObject(_ service: JSONValue, name: String, namespace: String, backends: [Backend]) -> JSONValue {
        var subsets: [JSONValue] = []
        var groups: [[JSONValue]: [Backend]] = [:]
        var order: [[JSONValue]] = []
        for backend in backends {
            if groups[backend.ports] == nil { order.append(backend.ports) }
            groups[backend.ports, default: []].append(backend)
        }
        for ports in order {
            let members = groups[ports] ?? []
            func address(_ backend: Backend) -> JSONValue {
                var address: JSONValue = ["ip": .string(backend.ip), "targetRef": targetReference(backend.pod)]
                if let node = backend.pod.string(at: "spec", "nodeName") { address[member: "nodeName"] = .string(node) }
                return address
            }
            var subset: JSONValue = [:]
            let ready = members.filter(\.ready).map(address)
            let notReady = members.filter { !$0.ready }.map(address)
            if !ready.isEmpty { subset[member: "addresses"] = .array(ready) }
            if !notReady.isEmpty { subset[member: "notReadyAddresses"] = .array(notReady) }
            if !ports.isEmpty { subset[member: "ports"] = .array(ports) }
            subsets.append(subset)
        }
        var labels = service.labels
        labels[managedByLabel] = nil
        var object: JSONValue = [
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": ["name": .string(name), "namespace": .string(namespace), "annotations": .object([writtenByController: "controller"])],
        ]
        if !labels.isEmpty { object.set(.object(labels.mapValues(JSONValue.string)), at: ["metadata", "labels"]) }
        if !subsets.isEmpty { object[member: "subsets"] = .array(subsets) }
        return object
    }

    private func write(endpoints wanted: JSONValue) async {
        guard let name = wanted.name else { return }
        do throws(StoreError) {
            let existing = try await store.get(Self.endpoints, namespace: wanted.namespace, name: name)
            // Endpoints someone else wrote (for a Service that had no selector then) are taken over, as the controller does.
            guard
                existing["subsets"] != wanted["subsets"] || existing.labels != wanted.labels
                    || existing.annotations[Self.writtenByController] != "controller"
            else { return }
            var updated = existing
            updated[member: "subsets"] = wanted["subsets"]
            updated.labels = wanted.labels
            updated.annotations[Self.writtenByController] = "controller"
            _ = try await store.update(updated, as: Self.endpoints, dryRun: false)
        } catch  where error.code == .notFound {
            _ = try? await store.create(wanted, as: Self.endpoints, dryRun: false)
        } catch {
            // A conflict: the Service's or a Pod's next event brings the key back.
            logger.debug("simulated endpoints not written", metadata: ["tether.object": "\(name)", "tether.error": "\(error)"])
        }
    }

    private func slices(of service: String, namespace: String?) async -> [JSONValue] {
        guard let labels = try? LabelSelector(parsing: "\(Self.serviceNameLabel)=\(service),\(Self.managedByLabel)=\(Self.managedBy)") else {
            return []
        }
        return
            (try? await store.list(Self.slices, options: ListOptions(namespace: namespace, labelSelector: labels)).objects.sorted {
                ($0.name ?? "") < ($1.name ?? "")
            }) ?? []
    }

    /// EndpointSlices of at most ``endpointsPerSlice`` endpoints each, for the backends in address
    /// order: existing slices are rewritten in name order, more are made, the rest deleted.
    private func writeSlices(of service: JSONValue, name: String, namespace: String, backends: [Backend]) async {
        let existing = await slices(of: name, namespace: namespace)
        // A slice's port always names itself, if only with "": kubectl's describe dereferences the name.
        let ports = (backends.first?.ports ?? []).map { port in
            var port = port
            if port["name"] == nil { port[member: "name"] = "" }
            return port
        }
        let chunks: [[Backend]] =
            backends.isEmpty
            ? [[]]
            : stride(from: 0, to: backends.count, by: Self.endpointsPerSlice).map {
                Array(backends[$0..<min($0 + Self.endpointsPerSlice, backends.count)])
            }
        for (index, chunk) in chunks.enumerated() {
            let endpoints: [JSONValue] = chunk.map { backend in
                var endpoint: JSONValue = [
                    "addresses": [.string(backend.ip)],
                    "conditions": [
                        "ready": .bool(backend.ready), "serving": .bool(backend.serving), "terminating": .bool(backend.terminating),
                    ],
                    "targetRef": Self.targetReference(backend.pod),
                ]
                if let node = backend.pod.string(at: "spec", "nodeName") { endpoint[member: "nodeName"] = .string(node) }
                return endpoint
            }
            var labels = service.labels
            labels[Self.serviceNameLabel] = name
            labels[Self.managedByLabel] = Self.managedBy
            if index < existing.count {
                var slice = existing[index]
                guard slice["endpoints"] != .array(endpoints) || slice["ports"] != .array(ports) || slice.labels != labels else { continue }
                slice[member: "endpoints"] = .array(endpoints)
                slice[member: "ports"] = .array(ports)
                slice.labels = labels
                _ = try? await store.update(slice, as: Self.slices, dryRun: false)
                continue
            }
            var metadata: JSONValue = [
                "generateName": .string("\(name.prefix(57))-"), "namespace": .string(namespace),
                "labels": .object(labels.mapValues(JSONValue.string)),
            ]
            if let uid = service.uid {
                metadata[member: "ownerReferences"] = [
                    [
                        "apiVersion": "v1", "kind": "Service", "name": .string(name), "uid": .string(uid), "controller": true,
                        "blockOwnerDeletion": true,
                    ]
                ]
            }
            let slice: JSONValue = [
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": metadata, "addressType": "IPv4",
                "endpoints": .array(endpoints), "ports": .array(ports),
            ]
            _ = try? await store.create(slice, as: Self.slices, dryRun: false)
        }
        for surplus in existing.dropFirst(chunks.count) { await delete(surplus, as: Self.slices) }
    }

    private func delete(_ object: JSONValue, as type: ResourceType) async {
        guard let name = object.name else { return }
        _ = try? await store.delete(type, namespace: object.namespace, name: name, preconditions: DeletePreconditions(uid: object.uid), dryRun: false)
    }
}
