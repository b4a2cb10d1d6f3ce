import Foundation
import Testing
import TetherTestSupport

extension SimclusterTests {
    @Test(
        "an autoscaler scales its target into its bounds (up to minReplicas, down to maxReplicas, and back after a manual scale), says why it cannot read utilization of Pods that request no CPU, leaves a target at zero alone, and says so when its target is missing"
    )
    func autoscaler() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 2)
            try await kubectl.succeed(["create", "deployment", "web", "--image=nginx:1.27", "--replicas=1"])
            try await kubectl.succeed(["autoscale", "deployment", "web", "--min=3", "--max=5", "--cpu-percent=70"])
            try await kubectl.succeed(["wait", "--for=jsonpath={.spec.replicas}=3", "deployment/web", "--timeout=30s"])
            try await kubectl.succeed(["wait", "--for=jsonpath={.status.currentReplicas}=3", "hpa/web", "--timeout=30s"])
            let status = try await kubectl.succeed([
                "get", "hpa", "web", "-o",
                "jsonpath={.status.desiredReplicas} {.status.conditions[?(@.type==\"AbleToScale\")].status} {.status.conditions[?(@.type==\"ScalingActive\")].reason}",
            ])
            #expect(status == "3 True FailedGetResourceMetric", "\(status)")
            // Once its Pods are ready, the controller says why it cannot read their utilization.
            _ = try await kubectl.waitForOutput([
                "get", "hpa", "web", "-o", "jsonpath={.status.conditions[?(@.type==\"ScalingActive\")].message}",
            ]) { $0.contains("failed to get cpu utilization: missing request for cpu in container nginx of Pod web-") }
            #expect(try await kubectl.succeed(["get", "hpa", "web", "-o", "jsonpath={.status.lastScaleTime}"]).isEmpty == false)
            let rescaled = try await kubectl.succeed([
                "get", "events", "--field-selector", "involvedObject.kind=HorizontalPodAutoscaler,reason=SuccessfulRescale", "-o",
                "jsonpath={.items[*].message}",
            ])
            #expect(rescaled == "New size: 3; reason: Current number of replicas below Spec.MinReplicas", "\(rescaled)")
            let table = try await kubectl.succeed(["get", "hpa", "web", "--no-headers"])
            #expect(
                table.split(separator: " ", omittingEmptySubsequences: true).prefix(7) == [
                    "web", "Deployment/web", "cpu:", "<unknown>/70%", "3", "5", "3",
                ],
                "\(table)")

            // A lower maximum scales it down; a manual scale past it is undone.
            try await kubectl.succeed(["patch", "hpa", "web", "--type=merge", "-p", #"{"spec":{"maxReplicas":3,"minReplicas":2}}"#])
            try await kubectl.succeed(["scale", "deployment", "web", "--replicas=6"])
            try await kubectl.succeed(["wait", "--for=jsonpath={.spec.replicas}=3", "deployment/web", "--timeout=30s"])
            try await kubectl.succeed(["wait", "--for=jsonpath={.status.readyReplicas}=3", "deployment/web", "--timeout=30s"])
            let down = try await kubectl.succeed([
                "get", "events", "--field-selector", "involvedObject.kind=HorizontalPodAutoscaler,reason=SuccessfulRescale", "-o",
                "jsonpath={.items[*].message}",
            ])
            #expect(down.contains("New size: 3; reason: Current number of replicas above Spec.MaxReplicas"), "\(down)")

            // Scaled to zero by hand, the target is left there: autoscaling is off.
            try await kubectl.succeed(["scale", "deployment", "web", "--replicas=0"])
            try await kubectl.succeed([
                "wait", "--for=jsonpath={.status.conditions[?(@.type==\"ScalingActive\")].reason}=ScalingDisabled", "hpa/web", "--timeout=30s",
            ])
            #expect(try await kubectl.succeed(["get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"]) == "0")

            // An autoscaler whose target does not exist cannot scale, and says why.
            // (`kubectl autoscale` reads its target first, so the autoscaler is applied as YAML.)
            let orphan = """
                apiVersion: autoscaling/v2
                kind: HorizontalPodAutoscaler
                metadata: {name: nowhere}
                spec:
                  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: nowhere}
                  minReplicas: 1
                  maxReplicas: 2
                """
            try await kubectl.succeed(["apply", "-f", "-"], stdin: orphan)
            try await kubectl.succeed([
                "wait", "--for=jsonpath={.status.conditions[?(@.type==\"AbleToScale\")].reason}=FailedGetScale", "hpa/nowhere", "--timeout=30s",
            ])
            let missing = try await kubectl.succeed([
                "get", "hpa", "nowhere", "-o", "jsonpath={.status.conditions[?(@.type==\"AbleToScale\")].message}",
            ])
            #expect(missing.contains("deployments.apps \"nowhere\" not found"), "\(missing)")
            // Made later, the target is scaled into the bounds.
            try await kubectl.succeed(["create", "deployment", "nowhere", "--image=nginx:1.27", "--replicas=5"])
            try await kubectl.succeed(["wait", "--for=jsonpath={.spec.replicas}=2", "deployment/nowhere", "--timeout=30s"])
        }
    }

    @Test(
        "kubectl top reads the simulated metrics server; an autoscaler follows the load an operator puts on its workload: up within its rate limit to its maximum, down after its stabilization window"
    )
    func autoscalingOnLoad() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 2)
            try await kubectl.succeed(["create", "deployment", "web", "--image=nginx:1.27", "--replicas=2"])
            try await kubectl.succeed(["set", "resources", "deployment", "web", "--requests=cpu=200m,memory=64Mi"])
            try await kubectl.succeed(["rollout", "status", "deployment/web", "--timeout=30s"], within: .seconds(40))
            _ = try await waitForPods(kubectl, "app=web") { $0.count == 2 && $0.allSatisfy(\.ready) }

            // Idle: 1m of CPU per container, memory at its request; nodes add the system's share.
            let pods = try await kubectl.waitForOutput(["top", "pods", "-l", "app=web", "--no-headers"]) {
                $0.split(separator: "\n").count == 2
            }
            func usage(_ table: String) -> [String] {
                table.split(separator: "\n").map { $0.split(separator: " ").dropFirst().joined(separator: " ") }
            }
            #expect(usage(pods) == ["1m 64Mi", "1m 64Mi"], "\(pods)")
            let nodes = try await kubectl.succeed(["top", "nodes", "--no-headers"])
            #expect(nodes.split(separator: "\n").count == 2 && nodes.contains("s1-node-1"), "\(nodes)")
            let raw = try await kubectl.succeed(["get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes/s1-node-1"])
            #expect(raw.contains("\"kind\":\"NodeMetrics\"") && raw.contains("\"window\":\"30s\""), "\(raw)")
            let unknown = try await kubectl.run(["get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/nosuch"])
            #expect(unknown.stderr.contains("pods.metrics.k8s.io \"nosuch\" not found"), "\(unknown.stderr)")

            try await kubectl.succeed(
                ["apply", "-f", "-"],
                stdin: """
                    apiVersion: autoscaling/v2
                    kind: HorizontalPodAutoscaler
                    metadata: {name: web}
                    spec:
                      scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
                      minReplicas: 2
                      maxReplicas: 7
                      metrics:
                      - type: Resource
                        resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
                      behavior:
                        scaleDown: {stabilizationWindowSeconds: 3}
                    """)
            _ = try await kubectl.waitForOutput(["get", "hpa", "web", "--no-headers"]) { $0.contains("cpu: 0%/50%") }

            // 150 % of the request against a 50 % target: three times the Pods, at most 4 more
            // per step (kube's default scale-up policy), and never past the maximum.
            try await kubectl.succeed(["annotate", "deployment", "web", "sim.tether.io/cpu-usage=150%"])
            // 2 × 3 = 6 at the first step; then 6 × 3 = 18 wanted, 7 allowed. (The step through 6
            // can pass before a `kubectl wait` for it starts, so it is read from the Events.)
            try await kubectl.succeed(["wait", "--for=jsonpath={.spec.replicas}=7", "deployment/web", "--timeout=60s"], within: .seconds(70))
            let rescaled = try await kubectl.succeed([
                "get", "events", "--field-selector", "involvedObject.kind=HorizontalPodAutoscaler,reason=SuccessfulRescale", "-o",
                "jsonpath={.items[*].message}",
            ])
            #expect(
                rescaled.contains("New size: 6; reason: cpu resource utilization (percentage of request) above target")
                    && rescaled.contains("New size: 7; reason: cpu resource utilization (percentage of request) above target"),
                "\(rescaled)")
            try await kubectl.succeed(["rollout", "status", "deployment/web", "--timeout=30s"], within: .seconds(40))
            _ = try await kubectl.waitForOutput(["get", "hpa", "web", "--no-headers"]) { $0.contains("cpu: 150%/50%") }
            let busy = try await kubectl.waitForOutput(["top", "pods", "-l", "app=web", "--no-headers"]) { $0.split(separator: "\n").count == 7 }
            #expect(Set(usage(busy)) == ["300m 64Mi"], "\(busy)")
            let limited = try await kubectl.waitForOutput([
                "get", "hpa", "web", "-o", "jsonpath={.status.conditions[?(@.type==\"ScalingLimited\")].reason}",
            ]) { $0 == "TooManyReplicas" }
            #expect(limited == "TooManyReplicas")

            // Load gone: back to the minimum once the 3 s window has passed.
            try await kubectl.succeed(["annotate", "deployment", "web", "sim.tether.io/cpu-usage-"])
            try await kubectl.succeed(["wait", "--for=jsonpath={.spec.replicas}=2", "deployment/web", "--timeout=40s"], within: .seconds(50))
            let down = try await kubectl.succeed([
                "get", "events", "--field-selector", "involvedObject.kind=HorizontalPodAutoscaler,reason=SuccessfulRescale", "-o",
                "jsonpath={.items[*].message}",
            ])
            #expect(down.contains("New size: 2; reason: All metrics below target"), "\(down)")
            let active = try await kubectl.succeed([
                "get", "hpa", "web", "-o", "jsonpath={.status.conditions[?(@.type==\"ScalingActive\")].message}",
            ])
            #expect(active == "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)")
        }
    }
}

extension SimclusterTests {
    @Test(
        "an autoscaler scales on Pods, Object, External and ContainerResource metrics declared where each lives (the Pods' workload, the described object, the namespace), shows each in TARGETS, and names the missing one"
    )
    func customMetrics() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 2)
            try await kubectl.succeed(["create", "deployment", "web", "--image=nginx:1.27", "--replicas=2"])
            try await kubectl.succeed(["set", "resources", "deployment", "web", "--requests=cpu=100m"])
            try await kubectl.succeed(["create", "service", "clusterip", "web", "--tcp=80:80"])
            try await kubectl.succeed(["rollout", "status", "deployment/web", "--timeout=30s"], within: .seconds(40))
            // Pods: 30 per Pod against 10 each, so three times the Pods: 2 -> 6.
            try await kubectl.succeed(["annotate", "deployment", "web", "sim.tether.io/metric.requests-per-second=30"])
            try await kubectl.succeed(
                ["apply", "-f", "-"],
                stdin: Self.webAutoscaler(
                    "{type: Pods, pods: {metric: {name: requests-per-second}, target: {type: AverageValue, averageValue: \"10\"}}}"))
            try await kubectl.succeed(["wait", "--for=jsonpath={.spec.replicas}=6", "deployment/web", "--timeout=60s"], within: .seconds(70))
            _ = try await kubectl.waitForOutput(["get", "hpa", "web", "--no-headers"]) { $0.contains(" 30/10 ") }
            _ = try await kubectl.waitForOutput([
                "get", "events", "--field-selector", "involvedObject.kind=HorizontalPodAutoscaler,reason=SuccessfulRescale", "-o",
                "jsonpath={.items[*].message}",
            ]) { $0.contains("New size: 6; reason: pods metric requests-per-second above target") }

            // Object: the Service's 50 at 25 per replica: 6 -> 2.
            try await kubectl.succeed(["annotate", "service", "web", "sim.tether.io/metric.queue-length=50"])
            try await kubectl.succeed(
                ["apply", "-f", "-"],
                stdin: Self.webAutoscaler(
                    "{type: Object, object: {describedObject: {apiVersion: v1, kind: Service, name: web}, metric: {name: queue-length}, target: {type: AverageValue, averageValue: \"25\"}}}"
                ))
            try await kubectl.succeed(["wait", "--for=jsonpath={.spec.replicas}=2", "deployment/web", "--timeout=60s"], within: .seconds(70))
            _ = try await kubectl.waitForOutput(["get", "hpa", "web", "--no-headers"]) { $0.contains(" 25/25 (avg) ") }

            // External: the namespace's backlog of 20, 5 per replica: 2 -> 4.
            try await kubectl.succeed(["annotate", "namespace", "default", "sim.tether.io/metric.backlog=20"])
            try await kubectl.succeed(
                ["apply", "-f", "-"],
                stdin: Self.webAutoscaler("{type: External, external: {metric: {name: backlog}, target: {type: AverageValue, averageValue: \"5\"}}}"))
            try await kubectl.succeed(["wait", "--for=jsonpath={.spec.replicas}=4", "deployment/web", "--timeout=60s"], within: .seconds(70))
            _ = try await kubectl.waitForOutput(["get", "hpa", "web", "--no-headers"]) { $0.contains("/5 (avg)") }

            // ContainerResource: the nginx container at 100 % of its request against 50 %: 4 -> 6 (the maximum).
            try await kubectl.succeed(["annotate", "deployment", "web", "sim.tether.io/cpu-usage=100%"])
            try await kubectl.succeed(
                ["apply", "-f", "-"],
                stdin: Self.webAutoscaler(
                    "{type: ContainerResource, containerResource: {name: cpu, container: nginx, target: {type: Utilization, averageUtilization: 50}}}"
                ))
            try await kubectl.succeed(["wait", "--for=jsonpath={.spec.replicas}=6", "deployment/web", "--timeout=60s"], within: .seconds(70))
            _ = try await kubectl.waitForOutput(["get", "hpa", "web", "--no-headers"]) { $0.contains(" cpu: 100%/50% ") }

            // A Pods metric nothing declares: the controller says which Pod lacks it, and scales nothing.
            try await kubectl.succeed(
                ["apply", "-f", "-"],
                stdin: Self.webAutoscaler("{type: Pods, pods: {metric: {name: latency}, target: {type: AverageValue, averageValue: \"1\"}}}"))
            let missing = try await kubectl.waitForOutput([
                "get", "hpa", "web", "-o",
                #"jsonpath={.status.conditions[?(@.type=="ScalingActive")].reason}: {.status.conditions[?(@.type=="ScalingActive")].message}"#,
            ]) { $0.hasPrefix("FailedGetPodsMetric") }
            #expect(missing.contains("declares no value (annotate it or its workload with sim.tether.io/metric.latency)"), "\(missing)")
            #expect(try await kubectl.succeed(["get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"]) == "6")
        }
    }

    /// An autoscaler of the Deployment `web` on `metric` (one YAML flow item), 1 to 6 replicas, 10 Pods a step either way.
    static func webAutoscaler(_ metric: String) -> String {
        """
        apiVersion: autoscaling/v2
        kind: HorizontalPodAutoscaler
        metadata: {name: web}
        spec:
          scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
          minReplicas: 1
          maxReplicas: 6
          metrics:
          - \(metric)
          behavior:
            scaleUp: {policies: [{type: Pods, value: 10, periodSeconds: 15}]}
            scaleDown: {stabilizationWindowSeconds: 0, policies: [{type: Pods, value: 10, periodSeconds: 15}]}
        """
    }

}
