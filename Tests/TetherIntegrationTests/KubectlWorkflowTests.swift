import Foundation
import Testing
import TetherLocal
import TetherTestSupport

/// What an operator types after creating a workload, against the hub with two members: each
/// command checked for its effect at the hub and, where it should reach them, in the members.
@Suite("kubectl workflows against the federation", .timeLimit(.minutes(4)))
struct KubectlWorkflowTests {
    /// Run at the hub by kubectl 1.20, 1.27, 1.32 and 1.33; the members are read with 1.32.
    @Test(
        "rollout status, set image|env|resources, scale, label, annotate, wait for conditions, rollout restart|pause|resume|history|undo (Deployment, DaemonSet, StatefulSet), watch events, delete cascades",
        arguments: Kubectl.Flavor.allCases
    )
    func workflow(flavor: Kubectl.Flavor) async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 1)
            let hubctl = try Kubectl(flavor, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            var members: [Kubectl] = []
            /// `kubectl rollout status`, with the object as the hub holds it when it fails.
            func rolloutStatus() async throws {
                let rollout = try await hubctl.run(["rollout", "status", "deployment/web", "--timeout=60s"], within: .seconds(70))
                guard rollout.status == 0 else {
                    let held = try await hubctl.run(["get", "deployment", "web", "-o", "yaml"])
                    var seen = ""
                    for member in members {
                        seen += (try? await member.run(["get", "rs,deploy", "-o", "yaml"]).stdout) ?? ""
                        seen += (try? await member.run(["get", "pods", "-o", "wide"]).stdout) ?? ""
                    }
                    Issue.record("rollout status failed: \(rollout)\nthe hub holds:\n\(held.stdout)\nmembers:\n\(seen)")
                    throw KubectlError(description: "rollout status failed")
                }
            }
            for name in ["m1", "m2"] { members.append(try await federation.startMember(name, hub: hub, hubPort: port).kubectl) }
            // Setting up (kubectl 1.20 has no `wait --for=jsonpath`).
            let setup = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-setup")
            try await setup.succeed(["wait", "--for=jsonpath={.status.phase}=Ready", "cluster/m1", "cluster/m2", "--timeout=30s"])

            try await hubctl.succeed(["create", "deployment", "web", "--image=nginx:1.27", "--replicas=4"])
            try await rolloutStatus()
            // `-o wide` as kube-apiserver's table has it: AGE, then the wide columns.
            let wide = try await hubctl.succeed(["get", "deployment", "web", "-o", "wide"]).split(separator: "\n")
            let header = wide.first.map { $0.split(separator: " ", omittingEmptySubsequences: true) } ?? []
            #expect(header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"], "\(wide)")
            let row = wide.last.map { $0.split(separator: " ", omittingEmptySubsequences: true) } ?? []
            #expect(row.suffix(3) == ["nginx", "nginx:1.27", "app=web"], "\(wide)")
            // Its revision shows what the members run, as a controller's ReplicaSet would.
            try await setup.succeed(["wait", "--for=jsonpath={.status.readyReplicas}=4", "rs", "-l", "app=web", "--timeout=30s"])
            let revisionRow = try await hubctl.succeed(["get", "rs", "-l", "app=web", "--no-headers"]).split(
                separator: " ", omittingEmptySubsequences: true)
            #expect(revisionRow.dropFirst().prefix(3) == ["4", "4", "4"], "\(revisionRow)")
            let describedDeployment = try await hubctl.succeed(["describe", "deployment", "web"])
            #expect(describedDeployment.contains("(4/4 replicas created)"), "\(describedDeployment)")
            try await hubctl.succeed(["wait", "--for=condition=Available", "deployment/web", "--timeout=60s"], within: .seconds(70))

            try await hubctl.succeed(["set", "image", "deployment/web", "nginx=nginx:1.28"])
            try await hubctl.succeed(["set", "env", "deployment/web", "MODE=blue"])
            try await hubctl.succeed(["set", "resources", "deployment/web", "--limits=cpu=500m,memory=128Mi"])
            try await hubctl.succeed(["label", "deployment/web", "tier=frontend"])
            try await hubctl.succeed(["annotate", "deployment/web", "owner=platform"])
            try await hubctl.succeed(["scale", "deployment/web", "--replicas=6"])
            try await rolloutStatus()
            for member in members {
                try await member.succeed(["wait", "--for=jsonpath={.spec.replicas}=3", "deployment/web", "--timeout=60s"], within: .seconds(70))
                let copy = try await member.succeed([
                    "get", "deployment", "web", "-o",
                    "jsonpath={.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].env[0].value} {.spec.template.spec.containers[0].resources.limits.cpu} {.metadata.labels.tier} {.metadata.annotations.owner}",
                ])
                #expect(copy == "nginx:1.28 blue 500m frontend platform", "\(copy)")
            }

            try await hubctl.succeed(["rollout", "restart", "deployment/web"])
            let restarted = try await hubctl.succeed([
                "get", "deployment", "web", "-o", "jsonpath={.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}",
            ])
            #expect(!restarted.isEmpty)
            try await hubctl.succeed(["rollout", "pause", "deployment/web"])
            #expect(try await hubctl.succeed(["get", "deployment", "web", "-o", "jsonpath={.spec.paused}"]) == "true")
            try await hubctl.succeed(["rollout", "resume", "deployment/web"])
            try await rolloutStatus()

            // The hub keeps each template as a revision: created, then set image, env,
            // resources, and the restart. Undo to the first reaches the members.
            let history = try await hubctl.succeed(["rollout", "history", "deployment/web"])
            let revisions = history.split(separator: "\n").compactMap { Int($0.split(separator: " ").first ?? "") }
            #expect(revisions == [1, 2, 3, 4, 5], "\(history)")
            let first = try await hubctl.succeed(["rollout", "history", "deployment/web", "--revision=1"])
            #expect(first.contains("nginx:1.27") && !first.contains("MODE"), "\(first)")
            try await hubctl.succeed(["rollout", "undo", "deployment/web", "--to-revision=1"])
            let undone = try await hubctl.succeed([
                "get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].env}",
            ])
            #expect(undone == "nginx:1.27 ", "\(undone)")
            let renumbered = try await hubctl.succeed(["rollout", "history", "deployment/web"])
            #expect(renumbered.split(separator: "\n").compactMap { Int($0.split(separator: " ").first ?? "") } == [2, 3, 4, 5, 6], "\(renumbered)")
            try await rolloutStatus()
            for member in members {
                try await member.succeed(
                    ["wait", "--for=jsonpath={.spec.template.spec.containers[0].image}=nginx:1.27", "deployment/web", "--timeout=60s"],
                    within: .seconds(70))
                // The revisions are the hub's own, never propagated: a member's controllers keep
                // their own (the simulated member's API keeps them as the hub's does).
                let memberUID = try await member.succeed(["get", "deployment", "web", "-o", "jsonpath={.metadata.uid}"])
                let owners = try await member.succeed(["get", "replicasets", "-o", "jsonpath={.items[*].metadata.ownerReferences[0].uid}"])
                #expect(!owners.isEmpty && owners.split(separator: " ").allSatisfy { $0 == memberUID }, "\(owners) vs \(memberUID)")
            }

            // A DaemonSet's and a StatefulSet's revisions are ControllerRevisions, as kubectl reads them.
            for (kind, extra) in [("DaemonSet", ""), ("StatefulSet", "  serviceName: agent\n")] {
                let manifest = """
                    apiVersion: apps/v1
                    kind: \(kind)
                    metadata: {name: agent}
                    spec:
                    \(extra)  selector: {matchLabels: {app: agent}}
                      template:
                        metadata: {labels: {app: agent}}
                        spec: {containers: [{name: a, image: "busybox:1.35"}]}
                    """
                try await hubctl.succeed(["apply", "-f", "-"], stdin: manifest)
                try await hubctl.succeed(["set", "image", "\(kind.lowercased())/agent", "a=busybox:1.36"])
                let kept = try await hubctl.succeed(["rollout", "history", "\(kind.lowercased())/agent"])
                #expect(kept.split(separator: "\n").compactMap { Int($0.split(separator: " ").first ?? "") } == [1, 2], "\(kind): \(kept)")
                try await hubctl.succeed(["rollout", "undo", "\(kind.lowercased())/agent"])
                let image = try await hubctl.succeed(["get", kind.lowercased(), "agent", "-o", "jsonpath={.spec.template.spec.containers[0].image}"])
                #expect(image == "busybox:1.35", "\(kind): \(image)")
                for member in members {
                    try await member.succeed(
                        [
                            "wait", "--for=jsonpath={.spec.template.spec.containers[0].image}=busybox:1.35", "\(kind.lowercased())/agent",
                            "--timeout=60s",
                        ],
                        within: .seconds(70))
                }
                try await hubctl.succeed(["delete", kind.lowercased(), "agent"])
            }
            let leftover = try await hubctl.succeed(["get", "controllerrevisions", "-o", "name"])
            #expect(leftover.isEmpty, "a deleted workload's revisions go with it: \(leftover)")

            // Sorting by a field outside metadata: kubectl asks for each table row's whole object
            // (`includeObject=Object`), and sorts the table by it.
            try await hubctl.succeed(["create", "configmap", "sort-a", "--from-literal=k=2"])
            try await hubctl.succeed(["create", "configmap", "sort-b", "--from-literal=k=1"])
            try await hubctl.succeed(["label", "configmaps", "sort-a", "sort-b", "sorted=yes"])
            let byData = try await hubctl.succeed(["get", "configmaps", "-l", "sorted=yes", "--sort-by=.data.k", "--no-headers"])
            let order: [String] = byData.split(separator: "\n").map { line in String(line.prefix { $0 != " " }) }
            #expect(order == ["sort-b", "sort-a"], "\(byData)")
            let events = try await hubctl.succeed(["get", "events", "-o", "name"]).split(separator: "\n").count
            let byTime = try await hubctl.succeed(["get", "events", "--sort-by=.lastTimestamp", "--no-headers"])
            #expect(events > 0 && byTime.split(separator: "\n").count == events, "\(events) events; sorted by time:\n\(byTime)")

            // A watch that prints its event types sees the change it is waiting for.
            let watcher = try federation.launch(
                name: "watch", executable: hubctl.executable,
                arguments: hubctl.prefix + [
                    "--kubeconfig", hubctl.kubeconfig, "--cache-dir", hubctl.home + "/cache", "get", "configmaps", "-w", "--output-watch-events",
                ])
            try await hubctl.succeed(["create", "configmap", "watched", "--from-literal=k=v"])
            try await watcher.waitForLine(within: .seconds(30), "the ADDED event") { $0.raw.hasPrefix("ADDED") && $0.raw.contains("watched") }

            // Deleting with each cascade: orphan keeps the members' copies, background removes them.
            for member in members {
                try await member.succeed(["wait", "--for=create", "configmap/watched", "--timeout=60s"], within: .seconds(70))
            }
            try await hubctl.succeed(["delete", "configmap", "watched", "--cascade=orphan"])
            for member in members { try await member.succeed(["get", "configmap", "watched"]) }
            try await hubctl.succeed(["delete", "deployment", "web", "--cascade=background"])
            for member in members {
                try await member.succeed(["wait", "--for=delete", "deployment/web", "--timeout=60s"], within: .seconds(70))
            }
        }
    }

    @Test(
        "kubectl run at the hub: the Pod runs in every member and is Ready at the hub; logs, exec and port-forward say where containers run; one that crashes in the members is shown so; describe of a StatefulSet lists its Pods; delete removes them everywhere",
        arguments: [Kubectl.Flavor.legacy, .modern])
    func run(flavor: Kubectl.Flavor) async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 1)
            let hubctl = try Kubectl(flavor, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            var members: [Kubectl] = []
            for name in ["m1", "m2"] { members.append(try await federation.startMember(name, hub: hub, hubPort: port).kubectl) }
            let setup = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-setup")
            try await setup.succeed(["wait", "--for=jsonpath={.status.phase}=Ready", "cluster/m1", "cluster/m2", "--timeout=30s"])

            try await hubctl.succeed(["run", "web", "--image=nginx:1.27", "--labels=app=web"])
            for (index, member) in members.enumerated() {
                try await member.succeed(["wait", "--for=condition=Ready", "pod/web", "--timeout=60s"], within: .seconds(70))
                // Each member scheduled it on a node of its own.
                let node = try await member.succeed(["get", "pod", "web", "-o", "jsonpath={.spec.nodeName} {.status.podIP}"])
                #expect(node.hasPrefix("m\(index + 1)-node-") && node.contains(" 10.244."), "\(node)")
            }
            try await hubctl.succeed(["wait", "--for=condition=Ready", "pod/web", "--timeout=60s"], within: .seconds(70))
            let row = try await hubctl.succeed(["get", "pod", "web", "--no-headers"])
            #expect(row.contains("1/1") && row.contains("Running"), "\(row)")

            // No container runs at the hub or in a simulated member: logs, exec and port-forward
            // are refused saying where containers run, not with a 404 that reads as "no such Pod".
            for command in [["logs", "web"], ["exec", "web", "--", "true"], ["port-forward", "pod/web", "18080:80"]] {
                let atHub = try await hubctl.run(command, within: .seconds(20))
                #expect(
                    atHub.status != 0 && atHub.stderr.contains("the hub runs no containers") && atHub.stderr.contains("/clusters/CLUSTER/proxy"),
                    "\(command): \(atHub.stderr)")
                let inMember = try await members[0].run(command, within: .seconds(20))
                #expect(inMember.status != 0 && inMember.stderr.contains("tether-simcluster runs no containers"), "\(command): \(inMember.stderr)")
            }
            let logs = try await hubctl.run(["logs", "web"])
            #expect(logs.stderr.contains("(BadRequest)"), "\(logs.stderr)")

            // A Pod that crashes in the members: Degraded in the propagation state, not Ready.
            try await hubctl.succeed(["run", "bad", "--image=busybox:1.36", "--annotations=sim.tether.io/fail=true"])
            for member in members {
                try await member.succeed(
                    ["wait", "--for=jsonpath={.status.containerStatuses[0].state.waiting.reason}=CrashLoopBackOff", "pod/bad", "--timeout=60s"],
                    within: .seconds(70))
            }
            try await setup.succeed(
                ["wait", "--for=jsonpath={.status.conditions[0].reason}=NotReadyInEveryCluster", "pod/bad", "--timeout=60s"], within: .seconds(70))

            // describe of a StatefulSet reads its Pods (none at the hub, whose members run them).
            try await hubctl.succeed(
                ["apply", "-f", "-"],
                stdin: """
                    {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
                     "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchLabels": {"app": "db"}},
                              "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "pg", "image": "postgres:15"}]}}}}
                    """)
            let described = try await hubctl.succeed(["describe", "statefulset", "db"])
            #expect(described.contains("Pods Status:"), "\(described)")

            try await hubctl.succeed(["delete", "pod", "web", "bad"])
            for member in members {
                try await member.succeed(["wait", "--for=delete", "pod/web", "pod/bad", "--timeout=60s"], within: .seconds(70))
            }
        }
    }

    @Test(
        "a rollout stuck in a member (an image that cannot be pulled) exceeds its progress deadline at the hub: rollout status fails there and says so; rollout undo at the hub recovers every member"
    )
    func stuckRollout() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 1)
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            var members: [Kubectl] = []
            for name in ["m1", "m2"] { members.append(try await federation.startMember(name, hub: hub, hubPort: port).kubectl) }
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.phase}=Ready", "cluster/m1", "cluster/m2", "--timeout=30s"])
            try await hubctl.succeed(["create", "deployment", "web", "--image=nginx:1.27", "--replicas=4"])
            try await hubctl.succeed(["patch", "deployment", "web", "-p", #"{"spec":{"progressDeadlineSeconds":6}}"#])
            try await hubctl.succeed(["rollout", "status", "deployment/web", "--timeout=60s"], within: .seconds(70))

            try await hubctl.succeed(["set", "image", "deployment/web", "nginx=registry.invalid/nginx:2"])
            let stalled = try await hubctl.run(["rollout", "status", "deployment/web", "--timeout=120s"], within: .seconds(150))
            #expect(stalled.status != 0 && stalled.stderr.contains(#"deployment "web" exceeded its progress deadline"#), "\(stalled)")
            let condition = try await hubctl.succeed([
                "get", "deployment", "web", "-o", #"jsonpath={.status.conditions[?(@.type=="Progressing")].message}"#,
            ])
            #expect(
                condition.contains("cluster m1: ProgressDeadlineExceeded") || condition.contains("cluster m2: ProgressDeadlineExceeded"),
                "\(condition)")

            try await hubctl.succeed(["rollout", "undo", "deployment/web"])
            try await hubctl.succeed(["rollout", "status", "deployment/web", "--timeout=60s"], within: .seconds(70))
            for member in members {
                // The stuck Pod goes once its grace period ends.
                try await member.waitForOutput(["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].spec.containers[0].image}"]) {
                    $0 == "nginx:1.27 nginx:1.27"
                }
            }
        }
    }
}
