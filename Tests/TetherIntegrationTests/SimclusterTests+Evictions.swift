import Foundation
import Testing
import TetherLocal
import TetherTestSupport

extension SimclusterTests {
    @Test(
        "a node whose Pods' memory leaves less than 100Mi reports MemoryPressure, is tainted, and its kubelet evicts the Pod over its request (not the one within it); the workload makes another, and the pressure ends after the transition period"
    )
    func memoryPressureEvictions() async throws {
        try await withFederation { federation in
            let (_, directory) = try await federation.startSimcluster(
                "s1", nodes: 2, readyAfter: "1s", extraArguments: ["--eviction-pressure-transition-period", "2s"])
            let kubectl = try Kubectl(.modern, kubeconfig: directory + "/kubeconfig", home: directory + "/home")
            // Two workloads on one node, 1Gi requested each.
            for name in ["hog", "calm"] {
                try await kubectl.succeed(["create", "deployment", name, "--image=nginx:1.27", "--replicas=1"])
                try await kubectl.succeed(["set", "resources", "deployment", name, "--requests=memory=1Gi"])
                try await kubectl.succeed([
                    "patch", "deployment", name, "--type=merge", "-p",
                    #"{"spec":{"template":{"spec":{"nodeSelector":{"kubernetes.io/hostname":"s1-node-1"}}}}}"#,
                ])
                try await kubectl.succeed(["rollout", "status", "deployment/\(name)", "--timeout=30s"], within: .seconds(40))
            }
            let calmUID = try await kubectl.succeed(["get", "pods", "-l", "app=calm", "-o", "jsonpath={.items[0].metadata.uid}"])

            // 15Gi used where 1Gi was asked: with calm's 1Gi and the system's 256Mi, nothing is left.
            try await kubectl.succeed(["annotate", "deployment", "hog", "sim.tether.io/memory-usage=15Gi"])
            let evicted = try await kubectl.waitForOutput([
                "get", "pods", "-l", "app=hog", "-o",
                #"jsonpath={range .items[?(@.status.reason=="Evicted")]}{.metadata.name} {.status.phase}{"\n"}{end}"#,
            ]) { !$0.isEmpty }
            let victim = String(evicted.split(separator: " ").first ?? "")
            #expect(evicted.trimmingCharacters(in: .whitespacesAndNewlines).hasSuffix(" Failed"), "\(evicted)")
            let message = try await kubectl.succeed(["get", "pod", victim, "-o", "jsonpath={.status.message}"])
            #expect(
                message.hasPrefix("The node was low on resource: memory. Threshold quantity: 100Mi, available: ")
                    && message.contains("Container nginx was using 15728640Ki, request is 1Gi, has larger consumption of memory."), "\(message)")
            #expect(
                try await kubectl.succeed(["get", "pod", victim, "-o", #"jsonpath={.status.conditions[?(@.type=="DisruptionTarget")].reason}"#])
                    == "TerminationByKubelet")
            #expect(try await kubectl.succeed(["get", "pods", victim, "--no-headers"]).contains(" Evicted "))
            let pressure = try await kubectl.waitForOutput([
                "get", "node", "s1-node-1", "-o",
                #"jsonpath={.status.conditions[?(@.type=="MemoryPressure")].status} {.spec.taints[*].key}"#,
            ]) { $0.hasPrefix("True") }
            #expect(pressure.contains("node.kubernetes.io/memory-pressure"), "\(pressure)")
            for (reason, about) in [("EvictionThresholdMet", "s1-node-1"), ("Evicted", victim)] {
                let recorded = try await kubectl.succeed([
                    "get", "events", "--field-selector", "reason=\(reason)", "-o", "jsonpath={.items[*].involvedObject.name}",
                ])
                #expect(recorded.contains(about), "\(reason): \(recorded)")
            }

            // The load goes; the node is relieved after its transition period, and the workload's
            // new Pod runs there. The Pod within its request was never touched.
            try await kubectl.succeed(["annotate", "deployment", "hog", "sim.tether.io/memory-usage-"])
            _ = try await kubectl.waitForOutput([
                "get", "node", "s1-node-1", "-o", #"jsonpath={.status.conditions[?(@.type=="MemoryPressure")].status}"#,
            ]) { $0 == "False" }
            _ = try await kubectl.waitForOutput([
                "get", "pods", "-l", "app=hog", "-o", #"jsonpath={range .items[?(@.status.phase=="Running")]}{.metadata.name}{end}"#,
            ]) { !$0.isEmpty && $0 != victim }
            #expect(try await kubectl.succeed(["get", "pods", "-l", "app=calm", "-o", "jsonpath={.items[0].metadata.uid}"]) == calmUID)
            #expect(try await kubectl.succeed(["get", "pods", "-l", "app=calm", "-o", "jsonpath={.items[0].status.phase}"]) == "Running")
        }
    }
}
