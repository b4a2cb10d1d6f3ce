import Foundation
import Testing
import TetherTestSupport

extension SimclusterTests {
    @Test(
        "an autoscaler scales its target into its bounds (up to minReplicas, down to maxReplicas, and back after a manual scale), says it has no metrics within them, leaves a target at zero alone, and says so when its target is missing"
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
            #expect(try await kubectl.succeed(["get", "hpa", "web", "-o", "jsonpath={.status.lastScaleTime}"]).isEmpty == false)
            let rescaled = try await kubectl.succeed([
                "get", "events", "--field-selector", "involvedObject.kind=HorizontalPodAutoscaler,reason=SuccessfulRescale", "-o",
                "jsonpath={.items[*].message}",
            ])
            #expect(rescaled == "New size: 3; reason: Current number of replicas below Spec.MinReplicas", "\(rescaled)")
            let table = try await kubectl.succeed(["get", "hpa", "web", "--no-headers"])
            #expect(table.split(separator: " ", omittingEmptySubsequences: true).prefix(5) == ["web", "Deployment/web", "3", "5", "3"], "\(table)")

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
}
