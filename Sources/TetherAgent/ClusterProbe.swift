import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import TetherJSON
import TetherModel
import TetherPlugin
import TetherWire

/// Reads the member's health for heartbeats: whether its API answers, its version, its nodes
/// and their allocatable capacity. A health probe is a poll by nature; it runs once per
/// `interval`, one request for the version and one (paged) list of nodes.
public final class ClusterProbe: Service, Sendable {
    private let client: KubernetesClient
    private let interval: Duration
    private let logger: Logger
    private let latest = NIOLockedValueBox<Heartbeat.ClusterHealth?>(nil)

    public init(client: KubernetesClient, interval: Duration = .seconds(10), logger: Logger) {
        self.client = client
        self.interval = interval
        self.logger = logger
    }

    /// The last reading, or nil before the first.
    public var health: Heartbeat.ClusterHealth? { latest.withLockedValue { $0 } }

    public func run() async throws {
        let nodes = ServedResource(apiVersion: "v1", kind: "Node", plural: "nodes", namespaced: false)
        var wasReachable: Bool?
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            // A probe in flight at shutdown is abandoned: its retries against a member that may be
            // gone held the agent's exit for seconds.
            let reading = await cancelWhenGracefulShutdown { await self.probe(nodes) }
            if Task.isShuttingDownGracefully { return }
            latest.withLockedValue { $0 = reading }
            if reading.apiReachable != wasReachable {
                logger.log(
                    level: reading.apiReachable ? .info : .warning,
                    reading.apiReachable ? "member API reachable" : "member API unreachable",
                    metadata: [
                        "tether.event": "cluster.probe", "tether.reachable": "\(reading.apiReachable)",
                        "tether.version": "\(reading.kubernetesVersion ?? "")", "tether.nodes": "\(reading.nodeCount ?? 0)",
                        "tether.error": "\(reading.message ?? "")",
                    ]
                )
                wasReachable = reading.apiReachable
            }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
            } catch {
                return
            }
        }
    }

    private func probe(_ nodes: ServedResource) async -> Heartbeat.ClusterHealth {
        do {
            let version = try await client.serverVersion()
            let list = try await client.list(nodes, labelSelector: "")
            var allocatable: [String: Int64] = ["cpu": 0, "memory": 0, "pods": 0]
            for node in list.items {
                let resources = node.value(at: "status", "allocatable") ?? node.value(at: "status", "capacity") ?? [:]
                allocatable["cpu", default: 0] += ResourceQuantity.milli(resources["cpu"]?.stringValue) ?? 0
                allocatable["memory", default: 0] += ResourceQuantity.whole(resources["memory"]?.stringValue) ?? 0
                allocatable["pods", default: 0] += ResourceQuantity.whole(resources["pods"]?.stringValue) ?? 0
            }
            let ready = list.items.filter { Conditions($0).has("Ready", "True") }.count
            return Heartbeat.ClusterHealth(
                apiReachable: true, kubernetesVersion: version, nodeCount: list.items.count, readyNodeCount: ready,
                allocatable: allocatable
            )
        } catch {
            return Heartbeat.ClusterHealth(apiReachable: false, message: "\(error)")
        }
    }
}
