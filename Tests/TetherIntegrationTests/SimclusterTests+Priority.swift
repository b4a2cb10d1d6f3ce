import Foundation
import Testing
import TetherTestSupport

extension SimclusterTests {
    @Test(
        "a Pod takes its priority from the PriorityClass it names, or from the global default, or 0; one naming no such class, or stating another priority, is refused; a workload's Pods go through the same admission"
    )
    func podPriority() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 2)
            func priority(_ pod: String) async throws -> String {
                try await kubectl.succeed(["get", "pod", pod, "-o", "jsonpath={.spec.priorityClassName}/{.spec.priority}/{.spec.preemptionPolicy}"])
            }
            func run(_ pod: String, spec: String = "{}") async throws -> Kubectl.Result {
                try await kubectl.run(["run", pod, "--image=nginx:1.27", "--overrides={\"apiVersion\":\"v1\",\"spec\":\(spec)}"])
            }
            try await kubectl.succeed(["create", "priorityclass", "high", "--value=1000", "--preemption-policy=Never"])
            #expect(try await run("plain").status == 0)
            #expect(try await priority("plain") == "/0/PreemptLowerPriority")
            #expect(try await run("chosen", spec: #"{"priorityClassName":"high"}"#).status == 0)
            #expect(try await priority("chosen") == "high/1000/Never")
            #expect(try await run("critical", spec: #"{"priorityClassName":"system-cluster-critical"}"#).status == 0)
            #expect(try await priority("critical") == "system-cluster-critical/2000000000/PreemptLowerPriority")

            let missing = try await run("lost", spec: #"{"priorityClassName":"nowhere"}"#)
            #expect(
                missing.status != 0 && missing.stderr.contains("pods \"lost\" is forbidden: no PriorityClass with name nowhere was found"),
                "\(missing)")
            let stated = try await run("stated", spec: #"{"priorityClassName":"high","priority":5}"#)
            #expect(stated.status != 0 && stated.stderr.contains("the integer value of priority (5) must not be provided in pod spec"), "\(stated)")

            // A global default names itself on Pods that name none.
            try await kubectl.succeed(["create", "priorityclass", "everyone", "--value=10", "--global-default"])
            #expect(try await run("defaulted").status == 0)
            #expect(try await priority("defaulted") == "everyone/10/PreemptLowerPriority")

            // A ReplicaSet's Pods too: the controller's creation is refused, and says so.
            try await kubectl.succeed(["create", "deployment", "web", "--image=nginx:1.27", "--replicas=2"])
            try await kubectl.succeed(["rollout", "status", "deployment/web", "--timeout=60s"], within: .seconds(70))
            let webPods = try await kubectl.succeed(["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].spec.priority}"])
            #expect(webPods == "10 10", "\(webPods)")
            try await kubectl.succeed(["create", "deployment", "odd", "--image=nginx:1.27"])
            try await kubectl.succeed([
                "patch", "deployment", "odd", "--type=merge", "-p", #"{"spec":{"template":{"spec":{"priorityClassName":"nowhere"}}}}"#,
            ])
            _ = try await kubectl.waitForOutput([
                "get", "events", "--field-selector", "reason=FailedCreate", "-o", "jsonpath={.items[*].message}",
            ]) { $0.contains("is forbidden: no PriorityClass with name nowhere was found") }
        }
    }
}
