import Foundation
import Testing
import TetherTestSupport

extension SimclusterTests {
    @Test(
        "a Pod takes its priority from the PriorityClass it names, or from the global default, or 0; one naming no such class, or stating another priority, is refused; a workload's Pods go through the same admission, and are made once a missing class is created"
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
            // The class created, the controller makes the Pod it could not.
            try await kubectl.succeed(["create", "priorityclass", "nowhere", "--value=5"])
            _ = try await kubectl.waitForOutput(["get", "pods", "-l", "app=odd", "-o", "jsonpath={.items[*].spec.priority}"]) { $0.contains("5") }
        }
    }

    @Test(
        "a Pod no node has room for preempts the least important Pods it must on one node: they are deleted and told why, their replacements cannot take the room kept for it, and it runs there; a Pod whose policy is Never, or with no Pod below it, only waits and says why"
    )
    func preemption() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 2)
            try await kubectl.succeed(["create", "priorityclass", "low", "--value=10"])
            try await kubectl.succeed(["create", "priorityclass", "high", "--value=1000"])
            try await kubectl.succeed(["create", "priorityclass", "polite", "--value=1000", "--preemption-policy=Never"])
            func run(_ pod: String, priorityClass: String?, node: String? = nil) async throws {
                var spec = #"{"containers":[{"name":"main","image":"nginx:1.27","resources":{"requests":{"cpu":"1"}}}]"#
                if let priorityClass { spec += #","priorityClassName":"\#(priorityClass)""# }
                if let node { spec += #","nodeSelector":{"kubernetes.io/hostname":"\#(node)"}"# }
                try await kubectl.succeed(["run", pod, "--image=nginx:1.27", "--overrides={\"apiVersion\":\"v1\",\"spec\":\(spec)}}"])
            }
            // Each node's 4 CPUs taken: a Deployment's Pod of 3 (priority 0) and one of 1 (priority 10).
            let filler = """
                apiVersion: apps/v1
                kind: Deployment
                metadata:
                  name: filler
                spec:
                  replicas: 2
                  selector:
                    matchLabels:
                      app: filler
                  template:
                    metadata:
                      labels:
                        app: filler
                    spec:
                      containers:
                      - name: main
                        image: nginx:1.27
                        resources:
                          requests:
                            cpu: "3"
                """
            try await kubectl.succeed(["apply", "-f", "-"], stdin: filler)
            let filled = try await waitForPods(kubectl, "app=filler") { $0.count == 2 && $0.allSatisfy(\.ready) }
            #expect(Set(filled.map(\.node)) == ["s1-node-1", "s1-node-2"], "\(filled)")
            try await run("batch-1", priorityClass: "low", node: "s1-node-1")
            try await run("batch-2", priorityClass: "low", node: "s1-node-2")
            for pod in ["batch-1", "batch-2"] {
                try await kubectl.succeed(["wait", "--for=condition=Ready", "pod/\(pod)", "--timeout=30s"], within: .seconds(40))
            }
            func waitingReason(_ pod: String) async throws -> String {
                try await kubectl.waitForOutput(["get", "pod", pod, "-o", #"jsonpath={.status.conditions[?(@.type=="PodScheduled")].message}"#]) {
                    !$0.isEmpty
                }
            }
            try await run("polite", priorityClass: "polite")
            #expect(
                try await waitingReason("polite")
                    == "0/2 nodes are available: 2 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.")
            try await run("equal", priorityClass: nil)
            #expect(
                try await waitingReason("equal")
                    == "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
            )
            try await kubectl.succeed(["delete", "pod", "polite", "equal", "--wait=true"])

            // The 1-CPU Pod of priority 10 is kept (removing it is not needed); the 3-CPU one of
            // priority 0 on the first node goes, and its replacement waits: the room is the VIP's.
            try await run("vip", priorityClass: "high")
            try await kubectl.succeed(["wait", "--for=condition=Ready", "pod/vip", "--timeout=30s"], within: .seconds(40))
            #expect(try await kubectl.succeed(["get", "pod", "vip", "-o", "jsonpath={.spec.nodeName}"]) == "s1-node-1")
            let vipUID = try await kubectl.succeed(["get", "pod", "vip", "-o", "jsonpath={.metadata.uid}"])
            let victim = try #require(filled.first { $0.node == "s1-node-1" })
            let preempted = try await kubectl.waitForOutput([
                "get", "events", "--field-selector", "reason=Preempted", "-o", "jsonpath={.items[*].involvedObject.name}:{.items[*].message}",
            ]) { !$0.isEmpty }
            #expect(preempted == "\(victim.name):Preempted by pod \(vipUID) on node s1-node-1")
            let after = try await waitForPods(kubectl, "app=filler") { pods in pods.count == 2 && !pods.contains { $0.name == victim.name } }
            let replacement = try #require(after.first { $0.name != filled.first { $0.node == "s1-node-2" }?.name })
            #expect(replacement.phase == "Pending" && replacement.node.isEmpty, "\(after)")
            #expect(
                try await waitingReason(replacement.name)
                    == "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
            )
            for pod in ["batch-1", "batch-2"] {
                #expect(try await kubectl.succeed(["get", "pod", pod, "-o", "jsonpath={.status.phase}"]) == "Running")
            }
        }
    }
}
