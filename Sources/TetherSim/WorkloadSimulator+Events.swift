import Foundation
import TetherJSON
import TetherModel

extension WorkloadSimulator {
    /// The Events the kubelet, the Job controller and the service controller record as an object
    /// reaches a new state (its status was `object`'s and is now `status`).
    func recordEvents(of object: JSONValue, becoming status: JSONValue) async {
        let before = object["status"] ?? [:]
        switch object.kind {
        case "Pod":
            guard let node = object.string(at: "spec", "nodeName") else { return }
            let kubelet = EventRecorder.Source(component: "kubelet", host: node)
            func states(_ status: JSONValue) -> [String: JSONValue] {
                Dictionary((status["containerStatuses"]?.arrayElements ?? []).map { ($0["name"]?.stringValue ?? "", $0["state"] ?? [:]) }) {
                    first, _ in first
                }
            }
            let (was, now) = (states(before), states(status))
            for container in object.value(at: "spec", "containers")?.arrayElements ?? [] {
                guard let name = container["name"]?.stringValue, let state = now[name] else { continue }
                let fieldPath = "spec.containers{\(name)}"
                if state["running"] != nil || state["terminated"] != nil, was[name]?["running"] == nil, was[name]?["terminated"] == nil {
                    await events.record(.normal, "Created", "Created container: \(name)", about: object, fieldPath: fieldPath, source: kubelet)
                    await events.record(.normal, "Started", "Started container \(name)", about: object, fieldPath: fieldPath, source: kubelet)
                }
                if state["waiting"]?["reason"] == "ImagePullBackOff", was[name]?["waiting"]?["reason"] != "ImagePullBackOff" {
                    let image = container["image"]?.stringValue ?? ""
                    let host = image.split(separator: "/").first.map(String.init) ?? image
                    await events.record(.normal, "Pulling", "Pulling image \"\(image)\"", about: object, fieldPath: fieldPath, source: kubelet)
                    await events.record(
                        .warning, "Failed",
                        "Failed to pull image \"\(image)\": failed to resolve reference \"\(image)\": dial tcp: lookup \(host): no such host (simulated)",
                        about: object, fieldPath: fieldPath, source: kubelet)
                    await events.record(.warning, "Failed", "Error: ErrImagePull", about: object, fieldPath: fieldPath, source: kubelet)
                    await events.record(
                        .normal, "BackOff", "Back-off pulling image \"\(image)\"", about: object, fieldPath: fieldPath, source: kubelet)
                    await events.record(.warning, "Failed", "Error: ImagePullBackOff", about: object, fieldPath: fieldPath, source: kubelet)
                }
                if state["waiting"]?["reason"] == "CrashLoopBackOff", was[name]?["waiting"]?["reason"] != "CrashLoopBackOff" {
                    let pod = "\(object.name ?? "")_\(object.namespace ?? "default")(\(object.uid ?? ""))"
                    await events.record(
                        .warning, "BackOff", "Back-off restarting failed container \(name) in pod \(pod)", about: object, fieldPath: fieldPath,
                        source: kubelet)
                }
            }
        case "Job":
            func holds(_ type: String, in status: JSONValue) -> Bool {
                (status["conditions"]?.arrayElements ?? []).contains { $0["type"]?.stringValue == type && $0["status"] == "True" }
            }
            let source = PodController.controllerSource("Job")
            if holds("Complete", in: status), !holds("Complete", in: before) {
                await events.record(.normal, "Completed", "Job completed", about: object, source: source)
            }
            let failed = (status["conditions"]?.arrayElements ?? []).first { $0["type"] == "Failed" && $0["status"] == "True" }
            if let failed, !holds("Failed", in: before) {
                // Its reason (BackoffLimitExceeded, DeadlineExceeded) and message, as the Job controller records them.
                await events.record(
                    .warning, failed["reason"]?.stringValue ?? "Failed", failed["message"]?.stringValue ?? "Job failed", about: object, source: source
                )
            }
            if holds("Suspended", in: status) != holds("Suspended", in: before) {
                let suspended = holds("Suspended", in: status)
                await events.record(
                    .normal, suspended ? "Suspended" : "Resumed", suspended ? "Job suspended" : "Job resumed", about: object, source: source)
            }
        case "Service":
            guard StatusPlan.loadBalancerIP(of: ["status": status]) != nil, StatusPlan.loadBalancerIP(of: object) == nil else { return }
            let source = EventRecorder.Source(component: "service-controller")
            await events.record(.normal, "EnsuringLoadBalancer", "Ensuring load balancer", about: object, source: source)
            await events.record(.normal, "EnsuredLoadBalancer", "Ensured load balancer", about: object, source: source)
        default: return
        }
    }
}
