import Foundation
import Testing
import TetherLocal
import TetherTestSupport

extension SimclusterTests {
    @Test(
        "kubectl debug adds an ephemeral container the simulated kubelet shows running, copies a Pod, and debugs a node; what an ephemeral container may not have is refused with kube's causes; at the hub it explains instead of crashing kubectl"
    )
    func debugging() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 2)
            try await kubectl.succeed(["run", "web", "--image=nginx:1.27"])
            try await kubectl.succeed(["wait", "--for=condition=Ready", "pod/web", "--timeout=30s"])
            let discovery = try await kubectl.succeed(["get", "--raw", "/api/v1"])
            #expect(discovery.contains("\"name\":\"pods/ephemeralcontainers\""), "\(discovery.prefix(300))")

            let added = try await kubectl.succeed(["debug", "web", "--image=busybox:1.36", "--container=probe", "--target=web", "--profile=general"])
            #expect(added.isEmpty || !added.contains("error"), "\(added)")
            _ = try await kubectl.waitForOutput([
                "get", "pod", "web", "-o", "jsonpath={.status.ephemeralContainerStatuses[?(@.name==\"probe\")].state.running.startedAt}",
            ]) { !$0.isEmpty }
            let described = try await kubectl.succeed(["describe", "pod", "web"])
            #expect(described.contains("Ephemeral Containers:\n  probe:") && described.contains("Image:          busybox:1.36"), "\(described)")
            #expect(try await kubectl.succeed(["get", "pod", "web", "-o", "jsonpath={.spec.ephemeralContainers[0].targetContainerName}"]) == "web")

            // What kube-apiserver refuses, with the Pod and the field named as kubectl prints them.
            let custom = federation.root + "/sized.json"
            try Data(#"{"resources":{"limits":{"cpu":"1"}},"ports":[{"containerPort":8080}]}"#.utf8).write(to: URL(fileURLWithPath: custom))
            let refused = try await kubectl.run([
                "debug", "web", "--image=busybox:1.36", "--container=sized", "--custom=\(custom)", "--profile=general",
            ])
            #expect(
                refused.status != 0 && refused.stderr.contains("The Pod \"web\" is invalid: \n")
                    && refused.stderr.contains("* spec.ephemeralContainers[1].ports: Forbidden: cannot be set for an Ephemeral Container")
                    && refused.stderr.contains("* spec.ephemeralContainers[1].resources: Forbidden: cannot be set for an Ephemeral Container"),
                "\(refused.stderr)")
            let taken = try await kubectl.run(["debug", "web", "--image=busybox:1.36", "--container=web", "--profile=general"])
            #expect(taken.status != 0 && taken.stderr.contains("spec.ephemeralContainers[1].name: Duplicate value: \"web\""), "\(taken.stderr)")
            let missing = try await kubectl.run(["debug", "nosuch", "--image=busybox:1.36", "--profile=general"])
            #expect(missing.stderr.contains("pods \"nosuch\" not found"), "\(missing.stderr)")
            #expect(
                try await kubectl.succeed(["get", "pod", "web", "-o", "jsonpath={.spec.ephemeralContainers[*].name}"]) == "probe",
                "a refused update changes nothing")

            // A copy with a debugging container beside the Pod's own, and a Pod on a node.
            try await kubectl.succeed(["debug", "web", "--copy-to=web-copy", "--image=busybox:1.36", "--container=shell", "--profile=general"])
            try await kubectl.succeed(["wait", "--for=condition=Ready", "pod/web-copy", "--timeout=30s"])
            #expect(try await kubectl.succeed(["get", "pod", "web-copy", "-o", "jsonpath={.spec.containers[*].name}"]) == "web shell")
            let node = try await kubectl.succeed(["debug", "node/s1-node-2", "--image=busybox:1.36", "--profile=general"])
            let debugPod = try #require(node.split(separator: " ").first { $0.hasPrefix("node-debugger-s1-node-2-") }.map(String.init))
            try await kubectl.succeed(["wait", "--for=condition=Ready", "pod/\(debugPod)", "--timeout=30s"])
            #expect(try await kubectl.succeed(["get", "pod", debugPod, "-o", "jsonpath={.spec.nodeName}"]) == "s1-node-2")

            // The hub runs no Pod: kubectl 1.32 used to crash on its answer.
            _ = try await federation.startHub()
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            try await hubctl.succeed(["run", "web", "--image=nginx:1.27"])
            let atHub = try await hubctl.run(["debug", "web", "--image=busybox:1.36", "--profile=general"])
            #expect(
                atHub.status != 0 && atHub.stderr.contains("ephemeral containers are disabled for this cluster")
                    && atHub.stderr.contains("runs no containers") && !atHub.stderr.contains("panic"), "\(atHub.stderr)")
        }
    }
}
