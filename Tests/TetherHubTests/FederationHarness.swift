import BuiltinPlugins
import Foundation
import TetherJSON
import TetherModel
import TetherStore
import TetherWire

@testable import TetherHub

/// Drives a ``FederationState`` with events, as the engine's shell would, and keeps what it
/// answered. Time is a value here: timers fire when a test says so.
struct FederationHarness {
    static let configMaps = ResourceType(group: "", resource: "configmaps", namespaced: true)
    static let deployments = ResourceType(group: "apps", resource: "deployments", namespaced: true)
    static let start = Date(timeIntervalSince1970: 1_800_000_000)

    var state: FederationState
    var version: UInt64 = 100
    var now = FederationHarness.start
    /// Every action answered since the last `take()`.
    var actions: [FederationAction] = []

    init(settings: FederationState.Settings = FederationState.Settings()) {
        state = FederationState(settings: settings, registry: BuiltinPlugins.hub)
    }

    /// Starts and lists every collection once: clusters by name and labels, then policies and objects.
    mutating func settle(
        clusters: [String: [String: String]], objects: [JSONValue] = [], propagationPolicies: [JSONValue] = [], overridePolicies: [JSONValue] = [],
        revisions: [String: RevisionRecord] = [:], stored: [StoredReports] = []
    ) {
        send(.started(storeVersion: version, revisions: revisions, collections: 5, at: now))
        if !stored.isEmpty { send(.reportsStored(stored)) }
        send(
            .listed(
                .clusters, objects: clusters.keys.sorted().map { Self.cluster($0, labels: clusters[$0]!) }, version: version, first: true, at: now))
        send(.listed(.propagationPolicies, objects: propagationPolicies, version: version, first: true, at: now))
        send(.listed(.overridePolicies, objects: overridePolicies, version: version, first: true, at: now))
        send(.listed(.federated(Self.configMaps), objects: objects.filter { $0.kind == "ConfigMap" }, version: version, first: true, at: now))
        send(.listed(.federated(Self.deployments), objects: objects.filter { $0.kind == "Deployment" }, version: version, first: true, at: now))
    }

    @discardableResult
    mutating func send(_ event: FederationEvent) -> [FederationAction] {
        let answered = state.on(event)
        actions += answered
        return answered
    }

    /// Returns and forgets what was answered so far.
    mutating func take() -> [FederationAction] {
        defer { actions = [] }
        return actions
    }

    /// A store change at the next version.
    @discardableResult
    mutating func change(_ object: JSONValue, deleted: Bool = false) -> [FederationAction] {
        version += 1
        let collection: FederationCollection =
            switch object.kind {
            case "Cluster": .clusters
            case "PropagationPolicy": .propagationPolicies
            case "OverridePolicy": .overridePolicies
            case "Deployment": .federated(Self.deployments)
            default: .federated(Self.configMaps)
            }
        return send(.changed(collection, object: object, deleted: deleted, version: version, at: now))
    }

    /// An agent session for `cluster`, announcing `revision` (and `digest`) as held.
    mutating func connect(_ cluster: String, session: String? = nil, revision: UInt64? = nil, digest: String? = nil) {
        let hello = Hello(protocolVersions: [1], agentVersion: "test", cluster: cluster, lastAppliedRevision: revision, lastAppliedDigest: digest)
        send(.sessionEstablished(cluster: cluster, session: session ?? "s-\(cluster)", hello: hello, at: now))
    }

    /// Reports every push in `actions` as written, and every raise of the store's version as
    /// done, as the shell does; the pushes are returned and what they led to is kept in `actions`.
    mutating func deliverPushes() -> [(cluster: String, messages: [WireMessage], revision: UInt64)] {
        var delivered: [(cluster: String, messages: [WireMessage], revision: UInt64)] = []
        while let index = actions.firstIndex(where: {
            switch $0 {
            case .push, .raiseStoreVersion: true
            default: false
            }
        }) {
            switch actions.remove(at: index) {
            case .push(let cluster, let session, let messages, let revision, let changes):
                delivered.append((cluster, messages, revision))
                send(.pushed(cluster: cluster, session: session, revision: revision, changes: changes, failure: nil, at: now))
            case .raiseStoreVersion(let minimum):
                version = max(version, minimum)
                send(.storeVersionRaised(version))
            default:
                break
            }
        }
        return delivered
    }

    // MARK: Objects

    static func cluster(_ name: String, labels: [String: String] = [:], finalizers: [String] = ["tether.io/unjoin"]) -> JSONValue {
        var metadata: JSONValue = ["name": .string(name), "finalizers": .array(finalizers.map { .string($0) })]
        if !labels.isEmpty { metadata[member: "labels"] = .object(labels.mapValues { .string($0) }) }
        return ["apiVersion": "core.tether.io/v1alpha1", "kind": "Cluster", "metadata": metadata, "spec": [:]]
    }

    static func configMap(_ name: String, data: String = "v1", annotations: [String: String] = [:], uid: String? = nil) -> JSONValue {
        var metadata: JSONValue = ["name": .string(name), "namespace": "shop", "uid": .string(uid ?? "uid-\(name)")]
        if !annotations.isEmpty { metadata[member: "annotations"] = .object(annotations.mapValues { .string($0) }) }
        return ["apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": ["key": .string(data)]]
    }

    static func deployment(_ name: String, replicas: Int) -> JSONValue {
        [
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": ["name": .string(name), "namespace": "shop", "uid": .string("uid-\(name)")],
            "spec": [
                "replicas": .integer(Int64(replicas)), "selector": ["matchLabels": ["app": .string(name)]],
                "template": [
                    "metadata": ["labels": ["app": .string(name)]],
                    "spec": ["containers": [["name": "web", "image": "nginx:1.27"]]],
                ],
            ],
        ]
    }

    static func propagationPolicy(_ name: String, spec: JSONValue) -> JSONValue {
        [
            "apiVersion": "core.tether.io/v1alpha1", "kind": "PropagationPolicy", "metadata": ["name": .string(name), "namespace": "shop"],
            "spec": spec,
        ]
    }

    static func overridePolicy(_ name: String, spec: JSONValue) -> JSONValue {
        ["apiVersion": "core.tether.io/v1alpha1", "kind": "OverridePolicy", "metadata": ["name": .string(name), "namespace": "shop"], "spec": spec]
    }

    static func reference(_ object: JSONValue) -> ObjectReference { object.federatedReference! }
}

extension [FederationAction] {
    /// The clusters a `push` goes to, in order.
    var pushedClusters: [String] {
        compactMap { if case .push(let cluster, _, _, _, _) = $0 { cluster } else { nil } }
    }

    var securityEvents: [String] {
        compactMap { if case .securityEvent(let name, _, _, _) = $0 { name } else { nil } }
    }

    var events: [String] {
        compactMap { if case .log(_, _, let metadata) = $0 { metadata["tether.event"] } else { nil } }
    }

    var schedules: [FederationTimer] {
        compactMap { if case .schedule(let timer, _) = $0 { timer } else { nil } }
    }
}

extension WireMessage {
    /// The objects a snapshot chunk or delta carries (upserts), by name.
    var objectNames: [String] {
        switch self {
        case .snapshot(let snapshot): snapshot.objects.compactMap(\.name).sorted()
        case .delta(let delta): delta.upserts.compactMap(\.name).sorted()
        default: []
        }
    }
}
