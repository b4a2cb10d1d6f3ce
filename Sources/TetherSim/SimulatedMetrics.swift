import Foundation
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore

/// What metrics-server would report in a simulated member, so `kubectl top` works and
/// HorizontalPodAutoscalers scale on CPU and memory. No container runs, so a Pod's usage is
/// what its operator says it is: the annotation `sim.tether.io/cpu-usage` on the Pod or on the
/// workload that owns it (a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job: annotating the
/// workload changes the load without a rollout), as a share of each container's CPU request
/// (`150%`; of 100m when a container requests none) or as an amount per container (`250m`).
/// Without it a container is idle: 1m of CPU. Memory is each container's request, else 8 MiB
/// (`sim.tether.io/memory-usage` likewise). A node uses what its running Pods use, plus what
/// the system takes (100m, 256 MiB).
public struct SimulatedMetrics: ResourceMetricsSource {
    public static let cpuAnnotation = "sim.tether.io/cpu-usage"
    public static let memoryAnnotation = "sim.tether.io/memory-usage"
    static let idleCPUMillis: Int64 = 1
    static let idleMemoryBytes: Int64 = 8 << 20
    static let requestWithoutOneMillis: Int64 = 100
    static let systemCPUMillis: Int64 = 100
    static let systemMemoryBytes: Int64 = 256 << 20
    /// metrics-server's default resolution, which it reports as the window of every figure.
    static let window = "30s"

    private let store: any ResourceStore

    public init(store: any ResourceStore) {
        self.store = store
    }

    /// One container's usage: CPU in millicores, memory in bytes.
    struct ContainerUsage: Equatable {
        var name: String
        var cpuMillis: Int64
        var memoryBytes: Int64
    }

    /// Each container's usage under the loads in force (`cpu`, `memory`: the annotations' values).
    /// The Pod's containers' usage from the load annotations in force for it (``LoadLookup``).
    static func usage(of pod: JSONValue, annotations: [String: String]) -> [ContainerUsage] {
        usage(of: pod, cpu: annotations[cpuAnnotation], memory: annotations[memoryAnnotation])
    }

    static func usage(of pod: JSONValue, cpu: String?, memory: String?) -> [ContainerUsage] {
        (pod.value(at: "spec", "containers")?.arrayElements ?? []).map { container in
            let requests = container.value(at: "resources", "requests")
            let cpuRequest = ResourceQuantity.milli(requests?["cpu"]?.stringValue ?? container.value(at: "resources", "limits", "cpu")?.stringValue)
            let memoryRequest = ResourceQuantity.whole(requests?["memory"]?.stringValue)
            return ContainerUsage(
                name: container["name"]?.stringValue ?? "",
                cpuMillis: amount(cpu, of: cpuRequest ?? requestWithoutOneMillis, milli: true) ?? idleCPUMillis,
                memoryBytes: amount(memory, of: memoryRequest ?? idleMemoryBytes, milli: false) ?? memoryRequest ?? idleMemoryBytes)
        }
    }

    /// `150%` of `base`, or a quantity (`250m`, `64Mi`); nil for no load or one that does not parse.
    private static func amount(_ load: String?, of base: Int64, milli: Bool) -> Int64? {
        guard let load = load?.trimmingCharacters(in: .whitespaces), !load.isEmpty else { return nil }
        if load.hasSuffix("%") {
            guard let percent = Double(load.dropLast()), percent >= 0, percent <= 100_000 else { return nil }
            return Int64((Double(base) * percent / 100).rounded())
        }
        guard let value = milli ? ResourceQuantity.milli(load) : ResourceQuantity.whole(load), value >= 0 else { return nil }
        return value
    }

    public func podMetrics(namespace: String?) async throws -> [JSONValue] {
        let now = kubernetesTimestamp()
        var loads = LoadLookup(store: store)
        var items: [JSONValue] = []
        for pod in try await runningPods(namespace: namespace) {
            let containers: [JSONValue] = await loads.usage(of: pod).map { usage in
                [
                    "name": .string(usage.name),
                    "usage": ["cpu": .string(Self.cpu(usage.cpuMillis)), "memory": .string(Self.memory(usage.memoryBytes))],
                ]
            }
            var metadata: [String: JSONValue] = [
                "name": .string(pod.name ?? ""), "namespace": .string(pod.namespace ?? "default"), "creationTimestamp": .string(now),
            ]
            if let labels = pod.metadata["labels"] { metadata["labels"] = labels }
            items.append([
                "kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": .object(metadata), "timestamp": .string(now),
                "window": .string(Self.window), "containers": .array(containers),
            ])
        }
        return items
    }

    public func nodeMetrics() async throws -> [JSONValue] {
        let now = kubernetesTimestamp()
        var loads = LoadLookup(store: store)
        var used: [String: (cpu: Int64, memory: Int64)] = [:]
        for pod in try await runningPods(namespace: nil) {
            guard let node = pod.string(at: "spec", "nodeName") else { continue }
            for usage in await loads.usage(of: pod) {
                used[node, default: (0, 0)].cpu += usage.cpuMillis
                used[node, default: (0, 0)].memory += usage.memoryBytes
            }
        }
        return try await store.list(Nodes.type, options: ListOptions()).objects.map { node in
            let name = node.name ?? ""
            let total = used[name] ?? (0, 0)
            var metadata: [String: JSONValue] = ["name": .string(name), "creationTimestamp": .string(now)]
            if let labels = node.metadata["labels"] { metadata["labels"] = labels }
            return [
                "kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": .object(metadata), "timestamp": .string(now),
                "window": .string(Self.window),
                "usage": [
                    "cpu": .string(Self.cpu(total.cpu + Self.systemCPUMillis)),
                    "memory": .string(Self.memory(total.memory + Self.systemMemoryBytes)),
                ],
            ]
        }
    }

    /// The usage of each Running and Ready Pod `selector` picks in `namespace`: what the
    /// autoscaler controller reads.
    func readyPodUsage(namespace: String, selector: LabelSelector) async throws -> [PodReading] {
        var loads = LoadLookup(store: store)
        var result: [PodReading] = []
        for pod in try await runningPods(namespace: namespace) where selector.matches(pod.labels) && Conditions(pod).has("Ready", "True") {
            let annotations = await loads.annotations(of: pod)
            result.append(PodReading(pod: pod, usage: Self.usage(of: pod, annotations: annotations), annotations: annotations))
        }
        return result
    }

    /// A ready Pod as the autoscaler reads it: its containers' usage, and the annotations in
    /// force for it (its own over its controllers'), where custom metrics are declared.
    struct PodReading {
        var pod: JSONValue
        var usage: [ContainerUsage]
        var annotations: [String: String]
    }

    /// Where a custom metric's value is declared: `sim.tether.io/metric.NAME` (a quantity) on a
    /// Pod or its workload (`Pods` metrics), on the object an `Object` metric describes, or on
    /// the autoscaler's namespace (`External` metrics).
    static func metricAnnotation(_ name: String) -> String { "sim.tether.io/metric.\(name)" }

    /// Pods whose containers run: scheduled, Running, not being deleted (metrics-server reports no other).
    func runningPods(namespace: String?) async throws -> [JSONValue] {
        try await store.list(PodController.pods, options: ListOptions(namespace: namespace)).objects.filter {
            $0.string(at: "status", "phase") == "Running" && $0.deletionTimestamp == nil && $0.string(at: "spec", "nodeName") != nil
        }
    }

    /// CPU as metrics-server writes it, in nanocores (`250000000n`), which kubectl reads as 250m.
    static func cpu(_ millis: Int64) -> String { "\(millis * 1_000_000)n" }
    /// Memory in KiB, as metrics-server writes it.
    static func memory(_ bytes: Int64) -> String { "\(bytes / 1024)Ki" }

    /// The simulator's annotations in force for a Pod: its own, else its controllers' (a
    /// ReplicaSet's over its Deployment's), read once per owner per request.
    struct LoadLookup {
        let store: any ResourceStore
        var owners: [String: [String: String]] = [:]

        /// The Pod's containers' usage, from the load annotations in force for it.
        mutating func usage(of pod: JSONValue) async -> [ContainerUsage] {
            SimulatedMetrics.usage(of: pod, annotations: await annotations(of: pod))
        }

        mutating func annotations(of pod: JSONValue) async -> [String: String] {
            let own = Self.simulated(on: pod)
            guard let owner = WorkloadSimulator.controller(of: pod) else { return own }
            return await resolved(owner, namespace: pod.namespace, depth: 0).merging(own) { _, mine in mine }
        }

        /// An owner's annotations over its own owner's.
        private mutating func resolved(_ owner: (kind: String, name: String, uid: String), namespace: String?, depth: Int) async -> [String: String] {
            if let known = owners[owner.uid] { return known }
            var result: [String: String] = [:]
            let type = PodController.ownerTypes[owner.kind] ?? (owner.kind == "Deployment" ? WorkloadSimulator.deployments : nil)
            if let type, let stored = try? await store.get(type, namespace: namespace, name: owner.name), stored.uid == owner.uid {
                result = Self.simulated(on: stored)
                if depth < 2, let next = WorkloadSimulator.controller(of: stored) {
                    result = await resolved(next, namespace: namespace, depth: depth + 1).merging(result) { _, nearer in nearer }
                }
            }
            owners[owner.uid] = result
            return result
        }

        private static func simulated(on object: JSONValue) -> [String: String] {
            object.annotations.filter { $0.key.hasPrefix("sim.tether.io/") }
        }
    }
}
