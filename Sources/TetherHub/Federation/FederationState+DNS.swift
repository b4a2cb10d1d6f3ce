import TetherJSON
import TetherModel
import TetherWire

/// What DNS publishing reads of the engine's state (``DNSPublisher``).
extension FederationState {
    /// Whether `reference` gets DNS records: a Service of type LoadBalancer, or an Ingress.
    static func publishesDNS(_ reference: ObjectReference, _ object: JSONValue?) -> Bool {
        switch (reference.apiVersion, reference.kind) {
        case ("v1", "Service"): return object?.string(at: "spec", "type") == "LoadBalancer"
        case ("networking.k8s.io/v1", "Ingress"): return true
        default: return false
        }
    }

    /// What DNS reads of the state, taken on the engine's actor in O(1): the collections are
    /// copy-on-write, so the publisher walks them (``DNSInputs/view()``) on its own task and the
    /// engine never waits for a pass over every object and cluster.
    func dnsInputs() -> DNSInputs {
        DNSInputs(
            federated: federated, members: members, reports: reports, clusterLabels: clusterLabels,
            clusterObjects: sharedHub == nil ? [:] : clusterObjects, settled: settled)
    }

    func dnsView() -> DNSView { dnsInputs().view() }
}

/// A snapshot of the engine's state as DNS needs it.
struct DNSInputs: Sendable {
    var federated: [ObjectReference: JSONValue]
    var members: [String: ClusterMember]
    var reports: [ObjectReference: [String: StatusReport.ObjectStatus]]
    var clusterLabels: [String: [String: String]]
    /// The Clusters as stored: with agents on every hub, a session another hub holds is in their status.
    var clusterObjects: [String: JSONValue]
    var settled: Bool

    /// Every federated Service of type LoadBalancer and Ingress with, per cluster it is placed
    /// on, that cluster's topology labels, whether it counts (agent connected, object not
    /// Degraded there) and the addresses it reported.
    func view() -> DNSView {
        var sources: [DNSSource] = []
        var complete = settled
        for (reference, object) in federated where FederationState.publishesDNS(reference, object) {
            guard object.deletionTimestamp == nil, let uid = object.uid else { continue }
            var source = DNSSource(reference: reference, uid: uid, members: [])
            let reported = reports[reference] ?? [:]
            for (cluster, member) in members where member.desired[reference] != nil && !member.excluded {
                let report = reported[cluster]
                let ingress = report?.summary["loadBalancer"]?["ingress"]?.arrayElements ?? []
                let labels = clusterLabels[cluster] ?? [:]
                let connected = member.session != nil || ClusterStatus.session(of: clusterObjects[cluster]) != nil
                source.members.append(
                    DNSSource.Member(
                        cluster: cluster, region: labels[DNSRecordPlanner.regionLabel], zone: labels[DNSRecordPlanner.zoneLabel],
                        healthy: connected && report?.state == .applied && report?.health != .degraded,
                        addresses: ingress.compactMap { $0["ip"]?.stringValue ?? $0["hostname"]?.stringValue }
                    ))
                if !connected || report == nil { complete = false }
            }
            source.members.sort { $0.cluster < $1.cluster }
            sources.append(source)
        }
        sources.sort { $0.reference.description < $1.reference.description }
        return DNSView(sources: sources, complete: complete)
    }
}
