import Foundation
import Testing
import TetherTestSupport

extension SimclusterTests {
    @Test(
        "a node whose kubelet stops is NotReady and tainted unreachable; its Pods are marked not ready, evicted when their toleration runs out and left Terminating while replacements run elsewhere; a Pod with the default 300 s stays, and is ready again when the kubelet is back, as the terminating ones finish"
    )
    func lostNode() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 3, readyAfter: "3s")
            try await kubectl.succeed(
                ["apply", "-f", "-"],
                stdin: Self.deployment(
                    "web", replicas: 3,
                    podSpec: """
                              terminationGracePeriodSeconds: 1
                              tolerations: [{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}]
                              containers: [{name: web, image: nginx}]
                        """))
            let placed = try await waitForPods(kubectl, "app=web") { $0.count == 3 && $0.allSatisfy(\.ready) }
            let lost = placed[0].node
            let stranded = placed.filter { $0.node == lost }.map(\.name)
            try await kubectl.succeed(["run", "keeper", "--image=nginx", #"--overrides={"apiVersion":"v1","spec":{"nodeName":"\#(lost)"}}"#])
            try await kubectl.succeed(["wait", "--for=condition=Ready", "pod/keeper", "--timeout=30s"])
            // kube-apiserver's DefaultTolerationSeconds: five minutes on a not-ready or unreachable node.
            let tolerations = try await kubectl.succeed([
                "get", "pod", "keeper", "-o", #"jsonpath={range .spec.tolerations[*]}{.key}={.tolerationSeconds} {end}"#,
            ])
            #expect(tolerations == "node.kubernetes.io/not-ready=300 node.kubernetes.io/unreachable=300 ", "\(tolerations)")

            try await kubectl.succeed(["annotate", "node", lost, "sim.tether.io/kubelet=stopped"])
            try await kubectl.waitForOutput(["get", "node", lost, "--no-headers"]) { $0.contains(" NotReady ") }
            let taints = try await kubectl.succeed(["get", "node", lost, "-o", #"jsonpath={range .spec.taints[*]}{.key}:{.effect} {end}"#])
            #expect(taints == "node.kubernetes.io/unreachable:NoSchedule node.kubernetes.io/unreachable:NoExecute ", "\(taints)")
            try await kubectl.succeed(["wait", "--for=condition=Ready=false", "pod/keeper", "--timeout=30s"])

            // Evicted after 2 s; replacements on the other nodes are ready 3 s after that, while the evicted stay Terminating.
            _ = try await waitForPods(kubectl, "app=web") { pods in pods.filter { $0.ready && $0.node != lost }.count == 3 }
            for pod in stranded {
                let state = try await kubectl.succeed([
                    "get", "pod", pod, "-o", #"jsonpath={.metadata.deletionTimestamp}/{.status.conditions[?(@.type=="Ready")].status}"#,
                ])
                #expect(state.hasSuffix("/False") && state.count > "/False".count, "\(pod): \(state)")
            }
            let evictions = try await kubectl.succeed([
                "get", "events", "--field-selector", "reason=TaintManagerEviction", "-o", "jsonpath={.items[*].involvedObject.name}",
            ])
            #expect(Set(evictions.split(separator: " ").map(String.init)) == Set(stranded), "\(evictions)")
            #expect(try await kubectl.succeed(["get", "pod", "keeper", "-o", "jsonpath={.metadata.deletionTimestamp}"]).isEmpty)
            let nodeEvents = try await kubectl.succeed([
                "get", "events", "--field-selector", "involvedObject.name=\(lost)", "-o", "jsonpath={.items[*].message}",
            ])
            #expect(nodeEvents.contains("Node \(lost) status is now: NodeNotReady"), "\(nodeEvents)")

            // The kubelet is back.
            try await kubectl.succeed(["annotate", "node", lost, "sim.tether.io/kubelet-"])
            try await kubectl.succeed(["wait", "--for=condition=Ready", "node/\(lost)", "--timeout=30s"])
            for pod in stranded { try await kubectl.succeed(["wait", "--for=delete", "pod/\(pod)", "--timeout=30s"], within: .seconds(40)) }
            try await kubectl.succeed(["wait", "--for=condition=Ready", "pod/keeper", "--timeout=30s"])
            #expect(try await kubectl.succeed(["get", "node", lost, "-o", "jsonpath={.spec.taints}"]).isEmpty)
        }
    }

    @Test(
        "a StatefulSet's Pod stuck Terminating on a lost node starts on another node once the operator deletes the Node, the other Pods of that node go too, and the node stays gone; a live node deleted registers again with its Pods"
    )
    func deletedNode() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 3, readyAfter: "1s")
            let manifest = """
                apiVersion: apps/v1
                kind: StatefulSet
                metadata: {name: db}
                spec:
                  replicas: 1
                  serviceName: db
                  selector: {matchLabels: {app: db}}
                  template:
                    metadata: {labels: {app: db}}
                    spec:
                      tolerations: [{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 1}]
                      containers: [{name: db, image: postgres:15}]
                """
            try await kubectl.succeed(["apply", "-f", "-"], stdin: manifest)
            let first = try await waitForPods(kubectl, "app=db") { $0.count == 1 && $0.allSatisfy(\.ready) }
            let lost = first[0].node
            try await kubectl.succeed(["run", "bystander", "--image=nginx", #"--overrides={"apiVersion":"v1","spec":{"nodeName":"\#(lost)"}}"#])
            try await kubectl.succeed(["wait", "--for=condition=Ready", "pod/bystander", "--timeout=30s"])

            // The kubelet stops: db-0 is evicted and stays Terminating, and a StatefulSet makes no second db-0 meanwhile.
            try await kubectl.succeed(["annotate", "node", lost, "sim.tether.io/kubelet=stopped"])
            _ = try await kubectl.waitForOutput(["get", "pod", "db-0", "-o", "jsonpath={.metadata.deletionTimestamp}"]) { !$0.isEmpty }
            #expect(try await kubectl.succeed(["get", "pod", "db-0", "-o", "jsonpath={.spec.nodeName}"]) == lost)

            try await kubectl.succeed(["delete", "node", lost])
            let moved = try await waitForPods(kubectl, "app=db") { $0.count == 1 && $0[0].node != lost && $0[0].ready }
            #expect(moved[0].name == "db-0" && moved[0].node != lost, "\(moved)")
            try await kubectl.succeed(["wait", "--for=delete", "pod/bystander", "--timeout=30s"], within: .seconds(40))
            let left = try await kubectl.succeed(["get", "pods", "-A", "-o", "jsonpath={range .items[*]}{.spec.nodeName} {end}"])
            #expect(!left.contains(lost), "no Pod is bound to the deleted node: \(left)")
            let nodes = try await kubectl.succeed(["get", "nodes", "-o", "name"])
            #expect(!nodes.contains(lost), "a node whose kubelet is stopped does not register again: \(nodes)")
            // Its Lease, which its Node owns, went with it (the garbage collector).
            try await kubectl.succeed(["wait", "--for=delete", "-n", "kube-node-lease", "lease/\(lost)", "--timeout=30s"], within: .seconds(40))

            // A node whose kubelet runs registers again at once, and its Pods stay.
            let live = moved[0].node
            try await kubectl.succeed(["delete", "node", live])
            try await kubectl.succeed(["wait", "--for=condition=Ready", "node/\(live)", "--timeout=30s"], within: .seconds(40))
            let kept = try await waitForPods(kubectl, "app=db") { $0.count == 1 && $0[0].ready }
            #expect(kept[0].node == live, "\(kept)")
            // Registered again, with a Lease of its own again, which `kubectl describe node` reads.
            let uid = try await kubectl.succeed(["get", "node", live, "-o", "jsonpath={.metadata.uid}"])
            _ = try await kubectl.waitForOutput(["get", "lease", live, "-n", "kube-node-lease", "-o", "jsonpath={.metadata.ownerReferences[0].uid}"])
            {
                $0 == uid
            }
            let described = try await kubectl.succeed(["describe", "node", live])
            #expect(described.contains("HolderIdentity:  \(live)") && !described.contains("Failed to get lease"), "\(described)")
            #expect(!described.contains("0001"), "condition times are set: \(described)")
        }
    }

    @Test(
        "a node under simulated memory pressure reports MemoryPressure and is tainted for it, so new Pods go elsewhere and DaemonSets stay; relieved, the condition and taint go; every node reports its pressures as a kubelet does"
    )
    func nodePressure() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 2)
            let types = try await kubectl.succeed(["get", "node", "s1-node-2", "-o", "jsonpath={.status.conditions[*].type}"])
            #expect(types == "MemoryPressure DiskPressure PIDPressure Ready")
            try await kubectl.succeed(["annotate", "node", "s1-node-1", "sim.tether.io/pressure=memory"])
            try await kubectl.succeed(["wait", "--for=condition=MemoryPressure", "node/s1-node-1", "--timeout=30s"], within: .seconds(40))
            _ = try await kubectl.waitForOutput(["get", "node", "s1-node-1", "-o", "jsonpath={.spec.taints[*].key}"]) {
                $0 == "node.kubernetes.io/memory-pressure"
            }
            let described = try await kubectl.succeed(["describe", "node", "s1-node-1"])
            #expect(described.contains("KubeletHasInsufficientMemory") && described.contains("kubelet has insufficient memory available"))
            #expect(described.contains("node.kubernetes.io/memory-pressure:NoSchedule"), "\(described)")
            #expect(try await kubectl.succeed(["get", "node", "s1-node-1", "--no-headers"]).contains(" Ready "))

            try await kubectl.succeed(["create", "deployment", "web", "--image=nginx:1.27", "--replicas=4"])
            let web = try await waitForPods(kubectl, "app=web") { $0.count == 4 && $0.allSatisfy(\.ready) }
            #expect(web.allSatisfy { $0.node == "s1-node-2" }, "\(web)")
            try await kubectl.succeed(
                ["apply", "-f", "-"],
                stdin: """
                    apiVersion: apps/v1
                    kind: DaemonSet
                    metadata:
                      name: agent
                    spec:
                      selector:
                        matchLabels:
                          app: agent
                      template:
                        metadata:
                          labels:
                            app: agent
                        spec:
                          containers:
                          - name: agent
                            image: agent:1
                    """)
            let agents = try await waitForPods(kubectl, "app=agent") { $0.count == 2 && $0.allSatisfy(\.ready) }
            #expect(Set(agents.map(\.node)) == ["s1-node-1", "s1-node-2"], "\(agents)")

            try await kubectl.succeed(["annotate", "node", "s1-node-1", "sim.tether.io/pressure-"])
            try await kubectl.succeed(["wait", "--for=condition=MemoryPressure=False", "node/s1-node-1", "--timeout=30s"], within: .seconds(40))
            _ = try await kubectl.waitForOutput(["get", "node", "s1-node-1", "-o", "jsonpath={.spec.taints}"]) { $0.isEmpty }
            let reasons = try await kubectl.succeed([
                "get", "events", "--field-selector", "involvedObject.name=s1-node-1", "-o", "jsonpath={.items[*].reason}",
            ])
            #expect(reasons.contains("NodeHasInsufficientMemory") && reasons.contains("NodeHasSufficientMemory"), "\(reasons)")
        }
    }
}
