import TetherJSON
import TetherModel
import TetherPlugin

/// Pods: `kubectl run` makes one, and `kubectl describe` of a ReplicaSet, StatefulSet, DaemonSet
/// or Job lists those its selector matches. A Pod sent from the hub is one Pod in each cluster it
/// is placed in (never divided), scheduled there by the member: its `nodeName` stays behind.
///
/// Health is what `kubectl wait --for=condition=Ready` waits for: Running with every container
/// ready, or Succeeded; Failed, or a container waiting on a crash or an image it cannot pull,
/// is Degraded with the reason.
public struct PodsPlugin: ResourcePlugin {
    public let name = "pods"
    public let kinds: [KindDescriptor] = [Self.pod]

    public init() {}

    public static let pod = KindDescriptor(
        group: "", version: "v1", kind: "Pod", plural: "pods", namespaced: true, shortNames: ["po"], categories: ["all"],
        printerColumns: [
            .text("READY") { pod in
                let statuses = pod.value(at: "status", "containerStatuses")?.arrayElements ?? []
                let total = max(statuses.count, pod.value(at: "spec", "containers")?.arrayElements.count ?? 0)
                // At the hub a Pod has no containers of its own: Ready means ready in every cluster.
                let ready = statuses.isEmpty && Conditions(pod).has("Ready", "True") ? total : statuses.filter { $0["ready"] == .bool(true) }.count
                return "\(ready)/\(total)"
            },
            .text("STATUS") { Self.shownStatus($0) },
            .count("RESTARTS") { pod in
                (pod.value(at: "status", "containerStatuses")?.arrayElements ?? []).reduce(0) { $0 + ($1["restartCount"]?.integerValue ?? 0) }
            },
            .text("IP", priority: 1) { $0.string(at: "status", "podIP") ?? "<none>" },
            .text("NODE", priority: 1) { $0.string(at: "spec", "nodeName") ?? "<none>" },
            .text("NOMINATED NODE", priority: 1) { $0.string(at: "status", "nominatedNodeName") ?? "<none>" },
            .text("READINESS GATES", priority: 1) { pod in
                // `1/2`: the gates whose condition is True, of those the Pod names.
                let gates = (pod.value(at: "spec", "readinessGates")?.arrayElements ?? []).compactMap { $0["conditionType"]?.stringValue }
                guard !gates.isEmpty else { return "<none>" }
                let conditions = Conditions(pod)
                return "\(gates.filter { conditions.has($0, "True") }.count)/\(gates.count)"
            },
        ],
        selectableFields: [
            "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
            "status.podIP", "status.nominatedNodeName",
        ],
        fields: ["spec": .podSpec, "status": podStatus],
        summary: "Pod is a collection of containers that can run on a host.",
        protobufNumbers: ["spec": 2, "status": 3]
    )

    /// `core/v1.ContainerState`: waiting, running or terminated.
    static let containerState = FieldSchema.numbered(
        .field(1, "waiting", .numbered(.field(1, "reason", .string), .field(2, "message", .string)), optional: true),
        .field(2, "running", .numbered(.field(1, "startedAt", .time)), optional: true),
        .field(
            3, "terminated",
            .numbered(
                .field(1, "exitCode", .integer), .field(2, "signal", .integer), .field(3, "reason", .string), .field(4, "message", .string),
                .field(5, "startedAt", .time), .field(6, "finishedAt", .time), .field(7, "containerID", .string)), optional: true)
    )

    /// `core/v1.ContainerStatus`, the parts a kubelet writes for every container.
    static let containerStatus = FieldSchema.numbered(
        .field(1, "name", .string), .field(2, "state", containerState), .field(3, "lastState", containerState),
        .field(4, "ready", .boolean), .field(5, "restartCount", .integer), .field(6, "image", .string), .field(7, "imageID", .string),
        .field(8, "containerID", .string), .field(9, "started", .boolean, optional: true),
        .field(10, "allocatedResources", .map(.quantity)), .field(15, "stopSignal", .string, optional: true)
    )

    /// `core/v1.PodStatus`.
    static let podStatus = FieldSchema.numbered(
        .field(17, "observedGeneration", .integer), .field(1, "phase", .string),
        .field(2, "conditions", .array(.probedCondition(.field(7, "observedGeneration", .integer)))),
        .field(3, "message", .string), .field(4, "reason", .string), .field(11, "nominatedNodeName", .string),
        .field(5, "hostIP", .string), .field(16, "hostIPs", .array(.numbered(.field(1, "ip", .string)))), .field(6, "podIP", .string),
        .field(12, "podIPs", .array(.numbered(.field(1, "ip", .string)))), .field(7, "startTime", .time),
        .field(10, "initContainerStatuses", .array(containerStatus)), .field(8, "containerStatuses", .array(containerStatus)),
        .field(9, "qosClass", .string), .field(13, "ephemeralContainerStatuses", .array(containerStatus)), .field(14, "resize", .string)
    )

    /// What `kubectl get pods` shows as STATUS, as kubectl's own printer decides it: a
    /// terminating Pod; else the last container's waiting or terminated reason (`Completed` for a
    /// finished Job's Pod), unless another container still runs; else the Pod's reason or phase.
    static func shownStatus(_ pod: JSONValue) -> String {
        if pod.value(at: "metadata", "deletionTimestamp") != nil { return "Terminating" }
        var shown = pod.string(at: "status", "reason") ?? pod.string(at: "status", "phase") ?? "Pending"
        var running = false
        for status in (pod.value(at: "status", "containerStatuses")?.arrayElements ?? []).reversed() {
            if let reason = status.string(at: "state", "waiting", "reason"), !reason.isEmpty {
                shown = reason
            } else if let terminated = status.value(at: "state", "terminated") {
                if let reason = terminated["reason"]?.stringValue, !reason.isEmpty {
                    shown = reason
                } else if let signal = terminated["signal"]?.integerValue, signal != 0 {
                    shown = "Signal:\(signal)"
                } else {
                    shown = "ExitCode:\(terminated["exitCode"]?.integerValue ?? 0)"
                }
            } else if status["ready"] == .bool(true), status.value(at: "state", "running") != nil {
                running = true
            }
        }
        if shown == "Completed", running { return Conditions(pod).has("Ready", "True") ? "Running" : "NotReady" }
        return shown
    }

    public func normalizeOnWrite(_ object: JSONValue) -> JSONValue {
        var object = object
        KubernetesDefaults.podSpec(at: ["spec"], in: &object)
        KubernetesDefaults.fill(&object, ["spec", "enableServiceLinks"], .bool(true))
        if object.kind == "Pod" { KubernetesDefaults.defaultTolerationSeconds(in: &object) }
        return object
    }

    public func validate(_ object: JSONValue) -> [ValidationProblem] {
        guard let containers = object.value(at: "spec", "containers")?.arrayElements, !containers.isEmpty else {
            return [ValidationProblem(field: "spec.containers", "required: a Pod runs at least one container")]
        }
        return containers.enumerated().compactMap { index, container in
            container["image"]?.stringValue?.isEmpty == false ? nil : ValidationProblem(field: "spec.containers[\(index)].image", "required")
        }
    }

    /// Each member schedules the Pod itself: the hub's node, if one was named, means nothing there.
    public func prepareForMember(_ object: JSONValue) -> JSONValue {
        var copy = MemberCopy.stripServerFields(object)
        copy.set(nil, at: ["spec", "nodeName"])
        // The member's own Priority admission computes these from its copy of the class.
        copy.set(nil, at: ["spec", "priority"])
        copy.set(nil, at: ["spec", "preemptionPolicy"])
        return copy
    }

    /// What the Pod names (``PodDependencies``), sent with it under a policy's `propagateDeps`.
    public func dependencies(of object: JSONValue) -> [ObjectReference] {
        guard let spec = object.value(at: "spec") else { return [] }
        return PodDependencies.of(podSpec: spec, namespace: object.namespace)
    }

    public func health(of live: JSONValue) -> Health {
        switch live.string(at: "status", "phase") {
        case "Succeeded": return .healthy
        case "Failed": return Health(.degraded, live.string(at: "status", "message") ?? live.string(at: "status", "reason") ?? "the Pod failed")
        default: break
        }
        for status in live.value(at: "status", "containerStatuses")?.arrayElements ?? [] {
            let reason = status.string(at: "state", "waiting", "reason") ?? ""
            if ["CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError", "InvalidImageName"].contains(reason) {
                let name = status.string(at: "name") ?? ""
                return Health(.degraded, "container \(name): \(reason)")
            }
        }
        if live.string(at: "status", "phase") == "Running", Conditions(live).has("Ready", "True") { return .healthy }
        return Health(.progressing, "phase \(live.string(at: "status", "phase") ?? "Pending"), not ready")
    }

    /// What the hub shows of each member's copy: its phase, whether it is ready, its restarts.
    public func summary(of live: JSONValue) -> [String: JSONValue] {
        let statuses = live.value(at: "status", "containerStatuses")?.arrayElements ?? []
        return [
            "phase": .string(live.string(at: "status", "phase") ?? "Pending"),
            "ready": .bool(Conditions(live).has("Ready", "True")),
            "restarts": .integer(statuses.reduce(0) { $0 + ($1["restartCount"]?.integerValue ?? 0) }),
        ]
    }

    /// One phase for the copies in every cluster: Failed if any failed, Pending while any is,
    /// Succeeded when all have, Running otherwise; Ready when every copy is.
    public func aggregateStatus(of object: JSONValue, members: [MemberObjectStatus]) -> JSONValue? {
        guard !members.isEmpty else { return nil }
        let phases = members.map { $0.summary["phase"]?.stringValue ?? "Pending" }
        let phase =
            phases.contains("Failed")
            ? "Failed"
            : phases.contains("Pending") || phases.contains("Unknown") ? "Pending" : phases.allSatisfy { $0 == "Succeeded" } ? "Succeeded" : "Running"
        let ready = members.allSatisfy { $0.summary["ready"] == .bool(true) }
        return [
            "phase": .string(phase),
            "conditions": [
                ready
                    ? ["type": "Ready", "status": "True"]
                    : ["type": "Ready", "status": "False", "reason": "NotReadyInEveryCluster"]
            ],
        ]
    }
}
