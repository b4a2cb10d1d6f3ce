import Foundation
import Testing
import TetherLocal
import TetherTestSupport

let simulatedWorkloads = """
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: broken
      annotations: {sim.tether.io/fail: "true"}
    spec:
      replicas: 2
      selector: {matchLabels: {app: broken}}
      template:
        metadata: {labels: {app: broken}}
        spec: {containers: [{name: a, image: busybox}]}
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web}
    spec:
      replicas: 5
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec: {containers: [{name: web, image: nginx}]}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: web}
    spec:
      type: LoadBalancer
      selector: {app: web}
      ports: [{port: 80, targetPort: 8080}]
    ---
    apiVersion: apps/v1
    kind: DaemonSet
    metadata: {name: agent}
    spec:
      selector: {matchLabels: {app: agent}}
      template:
        metadata: {labels: {app: agent}}
        spec: {containers: [{name: a, image: busybox}]}
    ---
    apiVersion: batch/v1
    kind: Job
    metadata: {name: once}
    spec:
      template:
        spec: {restartPolicy: Never, containers: [{name: a, image: busybox}]}
    """

/// Starts `tether-simcluster` and returns it with a kubectl for its kubeconfig.
func startSimcluster(
    _ name: String,
    in federation: LocalFederation,
    nodes: Int = 4,
    readyAfter: String = "1s"
) async throws -> (ManagedProcess, Kubectl) {
    let (sim, dir) = try await federation.startSimcluster(name, nodes: nodes, readyAfter: readyAfter)
    return (sim, try Kubectl(.modern, kubeconfig: dir + "/kubeconfig", home: dir + "/home"))
}

@Suite("tether-simcluster with real kubectl", .timeLimit(.minutes(3)))
struct SimclusterTests {
    @Test("workloads become ready, scale, get addresses; DaemonSets follow nodes; a failing workload never becomes ready")
    func workloads() async throws {
        try await withFederation { federation in
            let (sim, kubectl) = try await startSimcluster("east", in: federation)
            #expect(sim.lines.contains { $0.event == "simcluster.starting" && ($0["message"] ?? "").contains("SIMULATED") })
            #expect(try await kubectl.succeed(["config", "current-context"]).trimmingCharacters(in: .whitespacesAndNewlines) == "east")
            let nodes = try await kubectl.succeed(["get", "nodes", "-o", "name"])
            #expect(nodes.split(separator: "\n").count == 4)

            try await kubectl.succeed(["apply", "-f", "-"], stdin: simulatedWorkloads)
            // The ready delay is 1 s; the margin is generous for a loaded machine.
            try await kubectl.succeed(["wait", "--for=condition=Available", "deploy/web", "--timeout=20s"])
            let table = try await kubectl.succeed(["get", "deploy", "web"])
            #expect(table.split(separator: "\n").last?.contains("5/5") == true, "\(table)")

            try await kubectl.succeed(["scale", "deploy", "web", "--replicas=2"])
            try await kubectl.succeed(["wait", "--for=jsonpath={.status.readyReplicas}=2", "deploy/web", "--timeout=20s"])
            #expect(try await kubectl.succeed(["get", "deploy", "web"]).contains("2/2"))

            try await kubectl.succeed(["wait", "--for=jsonpath={.status.loadBalancer.ingress[0].ip}", "svc/web", "--timeout=20s"])
            let address = try await kubectl.succeed(["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP} {.status.loadBalancer.ingress[0].ip}"])
            #expect(address.hasPrefix("10.96.") && address.contains(" 198.1"), "\(address)")

            try await kubectl.succeed(["wait", "--for=jsonpath={.status.numberReady}=4", "ds/agent", "--timeout=20s"])
            try await kubectl.succeed(["wait", "--for=condition=Complete", "job/once", "--timeout=20s"])

            // "broken" was created before "web": web has long been ready, broken still is not.
            let broken = try await kubectl.succeed([
                "get", "deploy", "broken", "-o", "jsonpath={.status.readyReplicas}|{.status.conditions[?(@.type==\"Progressing\")].message}",
            ])
            #expect(broken.hasPrefix("0|") && broken.contains("sim.tether.io/fail"), "\(broken)")
        }
    }

    @Test("a restart keeps the objects, and a new --nodes count shows in DaemonSets")
    func restart() async throws {
        try await withFederation { federation in
            let (sim, kubectl) = try await startSimcluster("east", in: federation, nodes: 2)
            try await kubectl.succeed(["apply", "-f", "-"], stdin: simulatedWorkloads)
            try await kubectl.succeed(["wait", "--for=jsonpath={.status.numberReady}=2", "ds/agent", "--timeout=20s"])
            let before = try await kubectl.succeed(["get", "deploy,svc,ds,job", "-o", "jsonpath={range .items[*]}{.metadata.uid} {end}"])
            sim.send(SIGTERM)
            #expect(await sim.waitForExit(within: .seconds(15)) == 0)

            let (_, again) = try await startSimcluster("east", in: federation, nodes: 3)
            let after = try await again.succeed(["get", "deploy,svc,ds,job", "-o", "jsonpath={range .items[*]}{.metadata.uid} {end}"])
            #expect(after == before)
            #expect(try await again.succeed(["get", "nodes", "-o", "name"]).split(separator: "\n").count == 3)
            try await again.succeed(["wait", "--for=jsonpath={.status.numberReady}=3", "ds/agent", "--timeout=20s"])
        }
    }

    @Test("injected faults: the API answers 503 while asked to, then recovers; delays slow every answer")
    func faults() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("east", in: federation)
            let dir = federation.root + "/sim-east"
            let description =
                try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/simcluster.json"))) as? [String: Any]
            let url = try #require(description?["url"] as? String)
            let credentials = ["--cacert", dir + "/ca.crt", "--cert", dir + "/admin.crt", "--key", dir + "/admin.key"]
            func faults(_ method: String, _ body: String? = nil) async throws -> String {
                try await curl(
                    credentials + ["-X", method] + (body.map { ["-H", "Content-Type: application/json", "-d", $0] } ?? []) + [url + "/debug/faults"],
                    in: federation)
            }

            #expect(try await faults("PUT", #"{"status": 503, "seconds": 120}"#).contains(#""active":true"#))
            let sick = try await kubectl.run(["get", "deploy"])
            #expect(sick.status != 0 && (sick.stderr.contains("ServiceUnavailable") || sick.stderr.contains("503")), "\(sick)")
            #expect(try await faults("DELETE").contains(#""active":false"#))
            try await kubectl.succeed(["get", "deploy"])

            #expect(try await faults("PUT", #"{"delayMilliseconds": 700, "seconds": 120}"#).contains(#""delayMilliseconds":700"#))
            let timing = try await curl(
                credentials + ["-o", "/dev/null", "-w", "%{time_total}", url + "/api/v1/namespaces/default/configmaps"], in: federation)
            #expect((Double(timing.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) >= 0.7, "\(timing)")
            let invalid = try await faults("PUT", #"{"status": 418, "seconds": 5}"#)
            #expect(invalid.contains(#""code":422"#), "\(invalid)")
        }
    }

    @Test(
        "namespaces are Active; deleting one marks it Terminating, refuses new content, and deletes what it held (a ReplicaSet's Pods too) before it goes"
    )
    func namespaceCascade() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("east", in: federation)
            try await kubectl.succeed(
                ["create", "-f", "-"],
                stdin: """
                    apiVersion: v1
                    kind: Namespace
                    metadata: {name: shop}
                    ---
                    apiVersion: v1
                    kind: ConfigMap
                    metadata: {name: settings, namespace: shop}
                    data: {mode: fast}
                    ---
                    apiVersion: apps/v1
                    kind: ReplicaSet
                    metadata: {name: front, namespace: shop}
                    spec:
                      replicas: 2
                      selector: {matchLabels: {app: shop-front}}
                      template:
                        metadata: {labels: {app: shop-front}}
                        spec: {containers: [{name: web, image: nginx}]}
                    """)
            try await kubectl.succeed(["wait", "--for=jsonpath={.status.phase}=Active", "namespace/shop", "--timeout=20s"])
            _ = try await waitForPods(kubectl, "app=shop-front", namespace: "shop") { $0.count == 2 }
            // An object whose finalizer someone else holds keeps the namespace Terminating, and
            // nothing new may be made in it meanwhile.
            try await kubectl.succeed([
                "patch", "configmap", "settings", "-n", "shop", "--type=merge", "-p", #"{"metadata":{"finalizers":["example.com/hold"]}}"#,
            ])
            try await kubectl.succeed(["delete", "namespace", "shop", "--wait=false"])
            try await kubectl.succeed(["wait", "--for=jsonpath={.status.phase}=Terminating", "namespace/shop", "--timeout=20s"])
            let refused = try await kubectl.run(["create", "configmap", "late", "-n", "shop"])
            #expect(
                refused.status != 0
                    && refused.stderr.contains(
                        "configmaps \"late\" is forbidden: unable to create new content in namespace shop because it is being terminated"),
                "\(refused)")
            #expect(try await kubectl.succeed(["get", "configmap", "settings", "-n", "shop", "-o", "jsonpath={.metadata.deletionTimestamp}"]) != "")
            try await kubectl.succeed(["patch", "configmap", "settings", "-n", "shop", "--type=merge", "-p", #"{"metadata":{"finalizers":null}}"#])
            try await kubectl.succeed(["wait", "--for=delete", "-n", "shop", "configmap/settings", "--timeout=20s"])
            try await kubectl.succeed(["wait", "--for=delete", "namespace/shop", "--timeout=20s"])
            // Its ReplicaSet's Pods went with it, and none was made again in the namespace that went.
            #expect(try await kubectl.succeed(["get", "pods", "-A", "-l", "app=shop-front", "-o", "name"]).isEmpty)
        }
    }

    @Test(
        "a Deployment's newest ReplicaSet holds its replicas, the older none; one made by create deployment is undone (its revision annotation is there for kubectl's patch)"
    )
    func replicaSets() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 1)
            try await kubectl.succeed(["create", "deployment", "web", "--image=nginx:1.27", "--replicas=3"])
            try await kubectl.succeed(["rollout", "status", "deployment/web", "--timeout=30s"], within: .seconds(40))
            try await kubectl.succeed(["set", "image", "deployment/web", "nginx=nginx:1.28"])
            try await kubectl.succeed(["rollout", "status", "deployment/web", "--timeout=30s"], within: .seconds(40))
            /// The ReplicaSet whose template runs `image`.
            func replicaSet(running image: String) async throws -> String {
                let rows = try await kubectl.succeed([
                    "get", "rs", "-l", "app=web", "-o", "jsonpath={range .items[*]}{.metadata.name}={.spec.template.spec.containers[0].image} {end}",
                ])
                let row = rows.split(separator: " ").first { $0.hasSuffix("=\(image)") }
                return try #require(row.map { String($0.prefix { $0 != "=" }) }, "\(rows)")
            }
            func wait(_ name: String, _ field: String, _ value: Int) async throws {
                try await kubectl.succeed(["wait", "--for=jsonpath={\(field)}=\(value)", "rs/\(name)", "--timeout=30s"], within: .seconds(40))
            }
            let (older, newer) = (try await replicaSet(running: "nginx:1.27"), try await replicaSet(running: "nginx:1.28"))
            try await wait(newer, ".status.readyReplicas", 3)
            try await wait(older, ".spec.replicas", 0)
            let annotation = try await kubectl.succeed([
                "get", "deployment", "web", "-o", #"jsonpath={.metadata.annotations.deployment\.kubernetes\.io/revision}"#,
            ])
            #expect(annotation == "2")
            try await kubectl.succeed(["rollout", "undo", "deployment/web"])
            #expect(
                try await kubectl.succeed(["get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"]) == "nginx:1.27")
            try await wait(older, ".status.readyReplicas", 3)
            try await wait(newer, ".spec.replicas", 0)
            let described = try await kubectl.succeed(["describe", "deployment", "web"])
            #expect(described.contains("NewReplicaSet:   \(older) (3/3 replicas created)"), "\(described)")
        }
    }

    @Test(
        "workloads make their Pods as a cluster's controllers would: a ReplicaSet's follow scale and rollout and come back when deleted; a StatefulSet's are NAME-0 up; a DaemonSet's one per node; a Job's complete; a failing workload's crash-loop; all go with their owner; an exposed Deployment's endpoints follow its Pods"
    )
    func pods() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 3, readyAfter: "500ms")
            try await kubectl.succeed(["create", "deployment", "front", "--image=nginx:1.27", "--replicas=3"])
            var front = try await waitForPods(kubectl, "app=front") { $0.count == 3 && $0.allSatisfy { $0.phase == "Running" && $0.ready } }
            let firstSet = try #require(front.first?.owner)
            #expect(firstSet.hasPrefix("ReplicaSet/front-"), "\(front)")
            #expect(front.allSatisfy { $0.owner == firstSet && $0.name.hasPrefix(firstSet.dropFirst("ReplicaSet/".count) + "-") }, "\(front)")
            #expect(front.allSatisfy { $0.node.hasPrefix("s1-node-") && $0.ip.hasPrefix("10.244.") }, "\(front)")
            #expect(Set(front.map(\.ip)).count == 3, "\(front)")
            // `expose` as an operator would: the Service's endpoints are the Pods' addresses, in the
            // core Endpoints (`get endpoints`) and an EndpointSlice, which kubectl 1.32's and 1.33's
            // `describe service` read.
            try await kubectl.succeed(["expose", "deployment/front", "--port=80", "--target-port=8080"])
            let addresses = front.map { "\($0.ip):8080" }.sorted()
            let listed = try await kubectl.waitForOutput([
                "get", "endpoints", "front", "-o", "jsonpath={range .subsets[*].addresses[*]}{.ip}:8080 {end}",
            ]) { $0.split(separator: " ").count == 3 }
            #expect(listed.split(separator: " ").map(String.init).sorted() == addresses, "\(listed)")
            let described = try await kubectl.succeed(["describe", "service", "front"])
            #expect(described.contains("Endpoints:") && addresses.allSatisfy { described.contains($0) }, "\(described)")
            let newer = try Kubectl(.v133, kubeconfig: kubectl.kubeconfig, home: kubectl.home)
            let describedBySlices = try await newer.succeed(["describe", "service", "front"])
            #expect(addresses.allSatisfy { describedBySlices.contains($0) }, "\(describedBySlices)")
            let slices = try await kubectl.succeed(["get", "endpointslices", "-l", "kubernetes.io/service-name=front", "--no-headers"])
            #expect(slices.hasPrefix("front-") && slices.contains("IPv4") && slices.contains("8080"), "\(slices)")
            // kubectl resolves a Deployment to one of its Pods, then hears why no log exists.
            let logs = try await kubectl.run(["logs", "deploy/front"])
            #expect(logs.status != 0 && logs.stderr.contains("runs no containers"), "\(logs)")

            // A deleted Pod is made again; a rollout replaces every Pod; scaling removes some.
            let deleted = front[0].name
            try await kubectl.succeed(["delete", "pod", deleted, "--wait=true"])
            front = try await waitForPods(kubectl, "app=front") { pods in
                pods.count == 3 && !pods.contains { $0.name == deleted } && pods.allSatisfy(\.ready)
            }
            try await kubectl.succeed(["set", "image", "deployment/front", "nginx=nginx:1.28"])
            front = try await waitForPods(kubectl, "app=front") { $0.count == 3 && $0.allSatisfy { $0.image == "nginx:1.28" && $0.ready } }
            #expect(front.allSatisfy { $0.owner != firstSet }, "\(front)")
            try await kubectl.succeed(["scale", "deployment/front", "--replicas=1"])
            let last = try await waitForPods(kubectl, "app=front") { $0.count == 1 && $0.allSatisfy(\.ready) }
            try await kubectl.waitForOutput(["get", "endpoints", "front", "-o", "jsonpath={.subsets[*].addresses[*].ip}"]) { $0 == last[0].ip }

            try await kubectl.succeed(["apply", "-f", "-"], stdin: simulatedWorkloads + "\n---\n" + statefulSet)
            let database = try await waitForPods(kubectl, "app=db") { $0.count == 2 && $0.allSatisfy(\.ready) }
            #expect(database.map(\.name).sorted() == ["db-0", "db-1"] && database.allSatisfy { $0.owner == "StatefulSet/db" }, "\(database)")
            #expect(try await kubectl.succeed(["get", "pod", "db-1", "-o", "jsonpath={.spec.hostname}.{.spec.subdomain}"]) == "db-1.db")
            try await kubectl.succeed(["scale", "statefulset/db", "--replicas=1"])
            _ = try await waitForPods(kubectl, "app=db") { $0.map(\.name) == ["db-0"] }
            let daemons = try await waitForPods(kubectl, "app=agent") { $0.count == 3 && $0.allSatisfy(\.ready) }
            #expect(Set(daemons.map(\.node)) == ["s1-node-1", "s1-node-2", "s1-node-3"], "\(daemons)")
            _ = try await waitForPods(kubectl, "job-name=once") { $0.count == 1 && $0[0].phase == "Succeeded" }
            #expect(try await kubectl.succeed(["get", "pods", "-l", "job-name=once", "--no-headers"]).contains("Completed"))
            let broken = try await waitForPods(kubectl, "app=broken") { $0.count == 2 && $0.allSatisfy { $0.phase == "Running" } }
            #expect(broken.allSatisfy { !$0.ready }, "\(broken)")
            let brokenTable = try await kubectl.succeed(["get", "pods", "-l", "app=broken", "--no-headers"])
            #expect(brokenTable.split(separator: "\n").allSatisfy { $0.contains("CrashLoopBackOff") }, "\(brokenTable)")

            try await kubectl.succeed([
                "delete", "deployment/front", "deployment/web", "deployment/broken", "statefulset/db", "daemonset/agent", "job/once", "service/front",
            ])
            try await kubectl.succeed(["wait", "--for=delete", "endpoints/front", "--timeout=20s"])
            #expect(try await kubectl.succeed(["get", "endpointslices", "-l", "kubernetes.io/service-name=front", "-o", "name"]).isEmpty)
            for selector in ["app=front", "app=web", "app=broken", "app=db", "app=agent", "job-name=once"] {
                _ = try await waitForPods(kubectl, selector) { $0.isEmpty }
            }
        }
    }

    @Test(
        "the scheduler, kubelet and controllers record Events that describe and kubectl events show; a ReplicaSet's many creates combine into one Event"
    )
    func events() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 3, readyAfter: "300ms")
            try await kubectl.succeed(["apply", "-f", "-"], stdin: simulatedWorkloads)
            try await kubectl.succeed(["create", "deployment", "many", "--image=nginx", "--replicas=15"])
            let web = try await waitForPods(kubectl, "app=web") { $0.count == 5 && $0.allSatisfy(\.ready) }

            let pod = try await kubectl.waitForOutput(["describe", "pod", web[0].name]) { $0.contains("Started container web") }
            #expect(pod.contains("default-scheduler") && pod.contains("Successfully assigned default/\(web[0].name) to \(web[0].node)"), "\(pod)")
            #expect(pod.contains("kubelet") && pod.contains("Created container: web"), "\(pod)")
            let deployment = try await kubectl.waitForOutput(["describe", "deployment", "web"]) { $0.contains("ScalingReplicaSet") }
            #expect(deployment.contains("Scaled up replica set web-") && deployment.contains("from 0 to 5"), "\(deployment)")
            let service = try await kubectl.waitForOutput(["describe", "service", "web"]) { $0.contains("EnsuredLoadBalancer") }
            #expect(service.contains("EnsuringLoadBalancer") && service.contains("service-controller"), "\(service)")
            _ = try await kubectl.waitForOutput(["describe", "job", "once"]) { $0.contains("Job completed") }
            _ = try await kubectl.waitForOutput(["describe", "daemonset", "agent"]) { $0.contains("SuccessfulCreate") }
            let broken = try await waitForPods(kubectl, "app=broken") { $0.count == 2 }
            let backOff = try await kubectl.waitForOutput(["describe", "pod", broken[0].name]) { $0.contains("BackOff") }
            #expect(backOff.contains("Warning") && backOff.contains("Back-off restarting failed container a in pod \(broken[0].name)_default("))

            // kubectl's own events command (1.26 and later), filtered to one object.
            let listed = try await kubectl.succeed(["events", "--for", "deployment/web"])
            #expect(listed.contains("ScalingReplicaSet") && !listed.contains("SuccessfulCreate"), "\(listed)")

            // Fifteen creates by one ReplicaSet: nine Events of their own, the rest in one combined Event.
            _ = try await waitForPods(kubectl, "app=many") { $0.count == 15 }
            let format = "jsonpath={range .items[*]}{.count}|{.message}{\"\\n\"}{end}"
            let creates = try await kubectl.waitForOutput([
                "get", "events", "--field-selector", "involvedObject.kind=ReplicaSet,reason=SuccessfulCreate", "-o", format,
            ]) { output in
                let rows = output.split(separator: "\n").filter { $0.contains("Created pod: many-") }
                return rows.reduce(0) { $0 + (Int($1.prefix { $0 != "|" }) ?? 0) } == 15
            }
            let rows = creates.split(separator: "\n").filter { $0.contains("Created pod: many-") }
            #expect(rows.count == 10 && rows.filter { $0.contains("(combined from similar events): ") }.count == 1, "\(creates)")
        }
    }

    @Test(
        "a StatefulSet's Pods come one at a time, each once those before it are Ready, roll out from the highest ordinal down to the partition, and scale down from the highest; Parallel makes them at once; rollout status follows the Pods"
    )
    func orderedStatefulSet() async throws {
        try await withFederation { federation in
            // Two seconds per step, so that a loaded machine's kubectl still looks between steps.
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 3, readyAfter: "2s")
            let scaled = statefulSet.replacingOccurrences(of: "replicas: 2", with: "replicas: 3")
            try await kubectl.succeed(["apply", "-f", "-"], stdin: scaled)
            let seen = PodHistory()
            func ordinal(_ pod: SimulatedPod) -> Int { Int(pod.name.dropFirst("db-".count)) ?? -1 }
            // Every look at the Pods: each one present has every lower ordinal present and Ready.
            func orderedReady(_ pods: [SimulatedPod]) -> Bool {
                let byOrdinal = Dictionary(uniqueKeysWithValues: pods.map { (ordinal($0), $0) })
                return pods.allSatisfy { pod in (0..<ordinal(pod)).allSatisfy { byOrdinal[$0]?.ready == true } }
            }
            _ = try await waitForPods(kubectl, "app=db") { pods in
                seen.record(pods, holds: orderedReady(pods))
                return pods.count == 3 && pods.allSatisfy(\.ready)
            }
            #expect(seen.violations.isEmpty, "\(seen.violations)")
            #expect(seen.looks >= 2, "the Pods were seen \(seen.looks) times")
            // kube-apiserver defaults `partition: 0`, and kubectl then reports any rollout as partitioned.
            let complete = try await kubectl.succeed(["rollout", "status", "statefulset/db", "--timeout=30s"])
            #expect(complete.contains("partitioned roll out complete: 3 new pods have been updated"), "\(complete)")

            // A new template: db-2 first, then db-1, then db-0, each once all are Ready again.
            try await kubectl.succeed(["set", "image", "statefulset/db", "db=postgres:16"])
            let rolling = PodHistory()
            _ = try await waitForPods(kubectl, "app=db") { pods in
                let updated = pods.filter { $0.image == "postgres:16" }.map(ordinal)
                let suffix = updated.allSatisfy { number in ((number + 1)..<3).allSatisfy { updated.contains($0) } }
                rolling.record(pods, holds: suffix && pods.filter { !$0.ready }.count <= 1)
                return pods.count == 3 && pods.allSatisfy { $0.image == "postgres:16" && $0.ready }
            }
            #expect(rolling.violations.isEmpty, "\(rolling.violations)")
            let rolled = try await kubectl.succeed(["rollout", "status", "statefulset/db", "--timeout=30s"])
            #expect(rolled.contains("partitioned roll out complete: 3 new pods have been updated"), "\(rolled)")
            let revisions = try await kubectl.succeed(["get", "statefulset/db", "-o", "jsonpath={.status.currentRevision} {.status.updateRevision}"])
            let pair = revisions.split(separator: " ")
            #expect(pair.count == 2 && pair[0] == pair[1] && pair[0].hasPrefix("db-"), "\(revisions)")

            // A partition of 1 leaves db-0 on the old template.
            try await kubectl.succeed(["patch", "statefulset/db", "-p", #"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":1}}}}"#])
            try await kubectl.succeed(["set", "image", "statefulset/db", "db=postgres:17"])
            let partitioned = try await waitForPods(kubectl, "app=db") { pods in
                pods.count == 3 && pods.filter { $0.image == "postgres:17" && $0.ready }.count == 2
            }
            #expect(partitioned.first { $0.name == "db-0" }?.image == "postgres:16", "\(partitioned)")
            let partial = try await kubectl.succeed(["rollout", "status", "statefulset/db", "--timeout=30s"])
            #expect(partial.contains("partitioned roll out complete: 2 new pods have been updated"), "\(partial)")

            // Scaling down removes db-2 before db-1.
            try await kubectl.succeed(["scale", "statefulset/db", "--replicas=1"])
            let shrinking = PodHistory()
            _ = try await waitForPods(kubectl, "app=db") { pods in
                let ordinals = Set(pods.map(ordinal))
                shrinking.record(pods, holds: ordinals == Set(0..<ordinals.count))
                return pods.map(\.name) == ["db-0"]
            }
            #expect(shrinking.violations.isEmpty, "\(shrinking.violations)")

            // Parallel: all three are made before any is Ready.
            let parallel = scaled.replacingOccurrences(of: "{name: db}", with: "{name: par}")
                .replacingOccurrences(of: "app: db", with: "app: par")
                .replacingOccurrences(of: "serviceName: db", with: "serviceName: par\n  podManagementPolicy: Parallel")
            try await kubectl.succeed(["apply", "-f", "-"], stdin: parallel)
            let firstReady = try await waitForPods(kubectl, "app=par") { $0.contains(where: \.ready) }
            #expect(firstReady.count == 3, "\(firstReady)")
        }
    }

    @Test(
        "a deleted Pod is Terminating until the simulated kubelet stops it, and its owner replaces it meanwhile; --grace-period=0 --force deletes at once; a negative grace period is refused; a terminating Pod stays in EndpointSlices as terminating"
    )
    func gracefulPodDeletion() async throws {
        try await withFederation { federation in
            // Five seconds for the kubelet to stop a Pod, so that a loaded machine's kubectl sees it Terminating.
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 3, readyAfter: "5s")
            try await kubectl.succeed(["create", "deployment", "front", "--image=nginx", "--replicas=2"])
            let pods = try await waitForPods(kubectl, "app=front") { $0.count == 2 && $0.allSatisfy(\.ready) }
            let victim = pods[0].name
            // Held by a finalizer until the replacement has been seen, so a loaded machine's
            // kubectl, slower than the kubelet's five seconds, still sees both at once.
            try await kubectl.succeed(["patch", "pod", victim, "--type=merge", "-p", #"{"metadata":{"finalizers":["tether.io/test-hold"]}}"#])
            try await kubectl.succeed(["delete", "pod", victim, "--wait=false"])
            // One look right after the delete (a loaded machine's kubectl may take seconds per run):
            // the table kubectl prints and the marks of the deletion, both from the same answer.
            let listed = try await kubectl.succeed([
                "get", "pod", victim, "--no-headers", "--show-labels=false", "-o",
                "custom-columns=NAME:.metadata.name,DELETING:.metadata.deletionTimestamp,GRACE:.metadata.deletionGracePeriodSeconds",
            ])
            let columns = listed.split(whereSeparator: \.isWhitespace).map(String.init)
            #expect(columns.count == 3 && columns[0] == victim && columns[1] != "<none>" && columns[2] == "30", "\(listed)")
            // The ReplicaSet does not count a terminating Pod: a third is made meanwhile.
            _ = try await waitForPods(kubectl, "app=front") { current in
                current.count == 3 && current.contains { $0.name == victim }
            }
            try await kubectl.succeed(["patch", "pod", victim, "--type=json", "-p", #"[{"op":"remove","path":"/metadata/finalizers"}]"#])
            try await kubectl.succeed(["wait", "--for=delete", "pod/\(victim)", "--timeout=20s"])
            let described = try await kubectl.succeed(["get", "events", "--field-selector", "involvedObject.name=\(victim),reason=Killing"])
            #expect(described.contains("Stopping container nginx"), "\(described)")

            let forced = try #require(try await waitForPods(kubectl, "app=front") { $0.count == 2 && $0.allSatisfy(\.ready) }.first).name
            let force = try await kubectl.run(["delete", "pod", forced, "--grace-period=0", "--force", "--wait=false"])
            #expect(force.status == 0, "\(force)")
            let gone = try await kubectl.run(["get", "pod", forced])
            #expect(gone.status != 0 && gone.stderr.contains("NotFound"), "\(gone)")
            let negative = try await kubectl.run(["delete", "--raw", "/api/v1/namespaces/default/pods/\(pods[1].name)?gracePeriodSeconds=-5"])
            #expect(negative.status != 0 && negative.stderr.contains("must be >= 0"), "\(negative)")

            // A terminating Pod (held by a finalizer, so it stays) is still in its Service's
            // EndpointSlice, terminating and not ready (serving until its containers stop), as
            // connections drain; the Endpoints leave it out.
            try await kubectl.succeed(["expose", "deployment", "front", "--port=80"])
            let serving = try await waitForPods(kubectl, "app=front") { $0.count == 2 && $0.allSatisfy(\.ready) }
            let held = serving[0]
            let slices = [
                "get", "endpointslices", "-l", "kubernetes.io/service-name=front", "-o",
                "jsonpath={range .items[*].endpoints[*]}{.targetRef.name}={.conditions.ready}/{.conditions.serving}/{.conditions.terminating} {end}",
            ]
            _ = try await kubectl.waitForOutput(slices) { $0.contains("\(held.name)=true/true/false") }
            try await kubectl.succeed(["patch", "pod", held.name, "--type=merge", "-p", #"{"metadata":{"finalizers":["tether.io/test-hold"]}}"#])
            try await kubectl.succeed(["delete", "pod", held.name, "--wait=false"])
            // Serving while its containers stop, not once they have: either is a terminating endpoint.
            _ = try await kubectl.waitForOutput(slices) {
                $0.contains("\(held.name)=false/true/true") || $0.contains("\(held.name)=false/false/true")
            }
            let addresses = try await kubectl.waitForOutput(["get", "endpoints", "front", "-o", "jsonpath={.subsets[*].addresses[*].targetRef.name}"])
            {
                !$0.contains(held.name)
            }
            #expect(!addresses.isEmpty, "the other Pod is still an address")
            try await kubectl.succeed(["patch", "pod", held.name, "--type=json", "-p", #"[{"op":"remove","path":"/metadata/finalizers"}]"#])
            try await kubectl.succeed(["wait", "--for=delete", "pod/\(held.name)", "--timeout=20s"])
            _ = try await kubectl.waitForOutput(slices) { !$0.contains(held.name) }
        }
    }

    @Test(
        "kubectl drain evicts within a PodDisruptionBudget, which refuses what would break it; cordoned nodes take no Pods, and a Pod no node takes waits Pending until one is uncordoned; requests count against a node's CPU"
    )
    func drainWithDisruptionBudget() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 3)
            try await kubectl.succeed(["create", "deployment", "web", "--image=nginx", "--replicas=4"])
            try await kubectl.succeed(["create", "pdb", "web", "--selector=app=web", "--min-available=3"])
            let pods = try await waitForPods(kubectl, "app=web") { $0.count == 4 && $0.allSatisfy(\.ready) }
            let allowed = ["get", "pdb", "web", "-o", "jsonpath={.status.disruptionsAllowed}/{.status.currentHealthy}/{.status.desiredHealthy}"]
            _ = try await kubectl.waitForOutput(allowed) { $0 == "1/4/3" }

            // A budget that allows nothing refuses an eviction (sent as JSON here; drain sends protobuf).
            try await kubectl.succeed(["patch", "pdb", "web", "--type=merge", "-p", #"{"spec":{"minAvailable":4}}"#])
            _ = try await kubectl.waitForOutput(allowed) { $0 == "0/4/4" }
            let eviction = #"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"\#(pods[0].name)","namespace":"default"}}"#
            let refused = try await kubectl.run(
                ["create", "--raw", "/api/v1/namespaces/default/pods/\(pods[0].name)/eviction", "-f", "-"], stdin: eviction)
            #expect(refused.status != 0 && refused.stderr.contains("would violate the pod's disruption budget"), "\(refused)")
            try await kubectl.succeed(["get", "pod", pods[0].name])
            // A body that is not an Eviction, or too large to read, is refused, and the Pod stays.
            let evictionPath = "/api/v1/namespaces/default/pods/\(pods[0].name)/eviction"
            let garbled = try await kubectl.run(["create", "--raw", evictionPath, "-f", "-"], stdin: "[1, 2]")
            #expect(garbled.status != 0 && garbled.stderr.contains("not a JSON Eviction object"), "\(garbled)")
            let padded =
                #"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"\#(pods[0].name)","annotations":{"pad":""#
                + String(repeating: "x", count: 70_000) + #""}}}"#
            let oversized = try await kubectl.run(["create", "--raw", evictionPath, "-f", "-"], stdin: padded)
            #expect(oversized.status != 0 && oversized.stderr.contains("exceeds 65536 bytes"), "\(oversized)")
            try await kubectl.succeed(["get", "pod", pods[0].name])
            try await kubectl.succeed(["patch", "pdb", "web", "--type=merge", "-p", #"{"spec":{"minAvailable":3}}"#])
            _ = try await kubectl.waitForOutput(allowed) { $0 == "1/4/3" }

            // Drain the node of the first Pod: cordoned, its Pods evicted one disruption at a time and made again elsewhere.
            let node = pods[0].node
            let drained = try await kubectl.succeed(["drain", node, "--ignore-daemonsets", "--timeout=60s"])
            #expect(drained.contains("evicted") && drained.contains("drained"), "\(drained)")
            let nodes = try await kubectl.succeed(["get", "node", node, "--no-headers"])
            #expect(nodes.contains("Ready,SchedulingDisabled"), "\(nodes)")
            let after = try await waitForPods(kubectl, "app=web") { $0.count == 4 && $0.allSatisfy(\.ready) }
            #expect(after.allSatisfy { $0.node != node }, "\(after)")

            // Every node cordoned: a new Pod waits Pending, as the scheduler leaves it, until one opens.
            let everyNode = try await kubectl.succeed(["get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"]).split(separator: " ").map(
                String.init)
            try await kubectl.succeed(["cordon"] + everyNode.filter { $0 != node })
            try await kubectl.succeed(["scale", "deployment", "web", "--replicas=5"])
            let pending = try await waitForPods(kubectl, "app=web") { $0.count == 5 && $0.contains { $0.phase == "Pending" && $0.node.isEmpty } }
            let waiting = try #require(pending.first { $0.node.isEmpty })
            let reason = try await kubectl.waitForOutput([
                "get", "events", "--field-selector", "involvedObject.name=\(waiting.name),reason=FailedScheduling",
            ]) {
                $0.contains("3 node(s) were unschedulable")
            }
            #expect(reason.contains("FailedScheduling"), "\(reason)")
            try await kubectl.succeed(["uncordon", node])
            let placed = try await waitForPods(kubectl, "app=web") { $0.count == 5 && $0.allSatisfy(\.ready) }
            #expect(placed.first { $0.name == waiting.name }?.node == node, "\(placed)")

            // Without evictions drain deletes, its DeleteOptions in protobuf as client-go sends them.
            let deleted = try await kubectl.succeed(["drain", node, "--disable-eviction", "--ignore-daemonsets", "--timeout=60s"])
            #expect(deleted.contains("deleted") && deleted.contains("drained"), "\(deleted)")

            // Requests count against a node's 4 CPUs: with one node cordoned (the drained one),
            // two Pods of 1.5 CPU fit on each of the other two, and the scheduler says why the rest wait.
            try await kubectl.succeed(["uncordon"] + everyNode.filter { $0 != node })
            try await kubectl.succeed(["apply", "-f", "-"], stdin: Self.requestingDeployment(replicas: 7))
            let crowded = try await waitForPods(kubectl, "app=big") { pods in
                pods.count == 7 && pods.filter(\.ready).count == 4 && pods.filter { $0.node.isEmpty }.count == 3
            }
            #expect(crowded.allSatisfy { $0.node != node }, "\(crowded)")
            let waitingPod = try #require(crowded.first { $0.node.isEmpty }).name
            let why = ["get", "pod", waitingPod, "-o", #"jsonpath={.status.conditions[?(@.type=="PodScheduled")].message}"#]
            _ = try await kubectl.waitForOutput(why) { $0.hasPrefix("0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu.") }
            try await kubectl.succeed(["uncordon", node])
            _ = try await waitForPods(kubectl, "app=big") { pods in
                pods.filter(\.ready).count == 6 && pods.filter { $0.node.isEmpty }.count == 1
            }
            let stillWaiting = try #require(try await waitForPods(kubectl, "app=big") { $0.count == 7 }.first { $0.node.isEmpty }).name
            let whyNow = ["get", "pod", stillWaiting, "-o", #"jsonpath={.status.conditions[?(@.type=="PodScheduled")].message}"#]
            _ = try await kubectl.waitForOutput(whyNow) { $0.hasPrefix("0/3 nodes are available: 3 Insufficient cpu.") }
            let allocated = try await kubectl.succeed(["describe", "node", node])
            #expect(allocated.contains("cpu                3 (75%)"), "\(allocated)")
        }
    }

    @Test(
        "kubectl label and taint steer the scheduler: node selectors, required anti-affinity, taints and tolerations, DaemonSets on the nodes they select, and NoExecute evictions"
    )
    func taintsAndAffinity() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 3, readyAfter: "300ms")
            let labels = try await kubectl.succeed(["get", "node", "s1-node-2", "-o", "jsonpath={.metadata.labels}"])
            #expect(labels.contains(#""kubernetes.io/os":"linux""#) && labels.contains(#""topology.kubernetes.io/zone":"zone-b""#), "\(labels)")
            try await kubectl.succeed(["label", "node", "s1-node-1", "disk=ssd"])
            try await kubectl.succeed(["taint", "nodes", "s1-node-2", "dedicated=gpu:NoSchedule"])
            let taints = try await kubectl.succeed([
                "get", "node", "s1-node-2", "-o", "jsonpath={.spec.taints[0].key}={.spec.taints[0].value}:{.spec.taints[0].effect}",
            ])
            #expect(taints == "dedicated=gpu:NoSchedule")
            try await kubectl.succeed(["apply", "-f", "-"], stdin: Self.steeredWorkloads)

            // The node selector puts both on the ssd node; required anti-affinity spreads one per
            // node, over the two the taint leaves, and the third says why it waits.
            let pinned = try await waitForPods(kubectl, "app=pinned") { $0.count == 2 && $0.allSatisfy(\.ready) }
            #expect(pinned.allSatisfy { $0.node == "s1-node-1" }, "\(pinned)")
            let spread = try await waitForPods(kubectl, "app=spread") { pods in
                pods.count == 3 && pods.filter(\.ready).count == 2 && pods.filter { $0.node.isEmpty }.count == 1
            }
            #expect(Set(spread.map(\.node)) == ["s1-node-1", "s1-node-3", ""], "\(spread)")
            let waiting = try #require(spread.first { $0.node.isEmpty }).name
            let expected =
                "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 node(s) didn't match pod anti-affinity rules."
            _ = try await kubectl.waitForOutput([
                "get", "events", "--field-selector", "involvedObject.name=\(waiting),reason=FailedScheduling", "-o", "jsonpath={.items[*].message}",
            ]) { $0.hasPrefix(expected) }
            // Spread by zone with a skew of 1: the tainted node's zone still counts (the scheduler's
            // default nodeTaintsPolicy ignores taints), so with it empty only one Pod goes to each other zone.
            let zonal = try await waitForPods(kubectl, "app=zonal") { pods in
                pods.count == 3 && pods.filter(\.ready).count == 2 && pods.filter { $0.node.isEmpty }.count == 1
            }
            #expect(Set(zonal.map(\.node)) == ["s1-node-1", "s1-node-3", ""], "\(zonal)")
            let unspread = try #require(zonal.first { $0.node.isEmpty }).name
            _ = try await kubectl.waitForOutput([
                "get", "pod", unspread, "-o", #"jsonpath={.status.conditions[?(@.type=="PodScheduled")].message}"#,
            ]) {
                $0.hasPrefix(
                    "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 node(s) didn't match pod topology spread constraints."
                )
            }
            // A toleration lets the gpu Deployment onto the tainted node, and only there (its node affinity).
            let gpu = try await waitForPods(kubectl, "app=gpu") { $0.count == 1 && $0.allSatisfy(\.ready) }
            #expect(gpu.first?.node == "s1-node-2", "\(gpu)")
            // The DaemonSet runs on the nodes its selector picks, and follows a new label.
            let desired = ["get", "ds", "agent", "-o", "jsonpath={.status.desiredNumberScheduled}"]
            _ = try await kubectl.waitForOutput(desired) { $0 == "1" }
            _ = try await waitForPods(kubectl, "app=agent") { $0.count == 1 && $0.first?.node == "s1-node-1" }

            // The taint removed, the waiting Pod goes to the node it freed.
            try await kubectl.succeed(["taint", "nodes", "s1-node-2", "dedicated-"])
            let placed = try await waitForPods(kubectl, "app=spread") { $0.count == 3 && $0.allSatisfy(\.ready) }
            #expect(placed.first { $0.name == waiting }?.node == "s1-node-2", "\(placed)")
            let spreadOut = try await waitForPods(kubectl, "app=zonal") { $0.count == 3 && $0.allSatisfy(\.ready) }
            #expect(Set(spreadOut.map(\.node)).count == 3, "one per zone: \(spreadOut)")
            try await kubectl.succeed(["label", "node", "s1-node-3", "disk=ssd"])
            _ = try await kubectl.waitForOutput(desired) { $0 == "2" }
            _ = try await waitForPods(kubectl, "app=agent") { Set($0.map(\.node)) == ["s1-node-1", "s1-node-3"] && $0.allSatisfy(\.ready) }

            // NoExecute: what does not tolerate it leaves node 1 at once (the DaemonSet's Pod too:
            // its tolerations are for node conditions), and the Deployments make Pods elsewhere.
            try await kubectl.succeed(["taint", "nodes", "s1-node-1", "maintenance=now:NoExecute"])
            let moved = try await waitForPods(kubectl, "app=pinned") { pods in
                pods.count == 2 && pods.allSatisfy { $0.ready && $0.node == "s1-node-3" }
            }
            #expect(moved.allSatisfy { !pinned.map(\.name).contains($0.name) }, "\(moved)")
            _ = try await kubectl.waitForOutput(desired) { $0 == "1" }
            _ = try await waitForPods(kubectl, "app=agent") { $0.count == 1 && $0.first?.node == "s1-node-3" }
            let evictions = try await kubectl.waitForOutput([
                "get", "events", "--field-selector", "reason=TaintManagerEviction", "-o", "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
            ]) { $0.split(separator: "\n").count >= 4 }
            #expect(evictions.contains("Marking for deletion Pod default/\(pinned[0].name)"), "\(evictions)")
            // The spread Pod from node 1 waits: nodes 2 and 3 have one each, node 1 the taint.
            let respread = try await waitForPods(kubectl, "app=spread") { pods in
                pods.count == 3 && pods.filter(\.ready).count == 2 && pods.contains { $0.node.isEmpty }
            }
            let stuck = try #require(respread.first { $0.node.isEmpty }).name
            let whyStuck = ["get", "pod", stuck, "-o", #"jsonpath={.status.conditions[?(@.type=="PodScheduled")].message}"#]
            _ = try await kubectl.waitForOutput(whyStuck) {
                $0.hasPrefix(
                    "0/3 nodes are available: 1 node(s) had untolerated taint {maintenance: now}, 2 node(s) didn't match pod anti-affinity rules.")
            }
        }
    }

    /// A Deployment of `name` whose Pods are labelled `app: NAME`, with `podSpec` (YAML at the
    /// indentation of a template's `spec:` keys) and optional `extraSpec` lines of its own spec.
    static func deployment(_ name: String, replicas: Int, extraSpec: String = "", podSpec: String) -> String {
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: \(name)}
        spec:
          replicas: \(replicas)\(extraSpec.isEmpty ? "" : "\n  " + extraSpec)
          selector: {matchLabels: {app: \(name)}}
          template:
            metadata: {labels: {app: \(name)}}
            spec:
        \(podSpec)
        """
    }

    static let steeredWorkloads = [
        deployment("pinned", replicas: 2, podSpec: "      nodeSelector: {disk: ssd}\n      containers: [{name: app, image: nginx}]"),
        deployment(
            "spread", replicas: 3,
            podSpec: """
                      affinity:
                        podAntiAffinity:
                          requiredDuringSchedulingIgnoredDuringExecution:
                          - {topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app: spread}}}
                      containers: [{name: app, image: nginx}]
                """),
        deployment(
            "zonal", replicas: 3,
            podSpec: """
                      topologySpreadConstraints:
                      - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: zonal}}}
                      containers: [{name: app, image: nginx}]
                """),
        deployment(
            "gpu", replicas: 1,
            podSpec: """
                      tolerations: [{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}]
                      affinity:
                        nodeAffinity:
                          requiredDuringSchedulingIgnoredDuringExecution:
                            nodeSelectorTerms:
                            - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [s1-node-2]}]
                      containers: [{name: app, image: nginx}]
                """),
        """
        apiVersion: apps/v1
        kind: DaemonSet
        metadata: {name: agent}
        spec:
          selector: {matchLabels: {app: agent}}
          template:
            metadata: {labels: {app: agent}}
            spec: {nodeSelector: {disk: ssd}, containers: [{name: agent, image: busybox}]}
        """,
    ].joined(separator: "\n---\n")

    @Test(
        "a Deployment rolls out as its strategy says: RollingUpdate within maxSurge and maxUnavailable, each step waiting on new Pods' readiness; Recreate removes every old Pod first; rollout status follows the Pods"
    )
    func deploymentStrategies() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 3, readyAfter: "1s")
            try await kubectl.succeed(["apply", "-f", "-"], stdin: Self.rollingDeployment(image: "nginx:1.0"))
            _ = try await waitForPods(kubectl, "app=roll") { $0.count == 4 && $0.allSatisfy { $0.ready && $0.image == "nginx:1.0" } }

            // maxSurge 1, maxUnavailable 0: never more than 5 Pods counted, never fewer than 4 available,
            // in any status the Deployment takes (a watch sees every one).
            let watcher = try await Self.watchStatus("roll", kubectl, in: federation)
            try await kubectl.succeed(["set", "image", "deployment/roll", "app=nginx:1.1"])
            let status = try await kubectl.succeed(["rollout", "status", "deployment/roll", "--timeout=60s"])
            #expect(status.contains("out of 4 new replicas have been updated...") && status.contains("successfully rolled out"), "\(status)")
            try await watcher.waitForLine(within: .seconds(60), "generation 2 complete") { $0.raw == "4/4/4/2/2" }
            let statuses = watcher.lines.map(\.raw).filter { $0.hasSuffix("/2") }
            let violations = statuses.filter { line in
                let numbers = line.split(separator: "/").map { Int($0) ?? -1 }
                return numbers.count != 5 || numbers[0] > 5 || numbers[2] < 4
            }
            #expect(statuses.count >= 3 && violations.isEmpty, "\(statuses); broke the bounds: \(violations)")
            let scaling = try await kubectl.succeed([
                "get", "events", "--field-selector", "involvedObject.name=roll,reason=ScalingReplicaSet", "--sort-by=.metadata.creationTimestamp",
                "-o", "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
            ])
            // One new Pod at a time, each followed by one old Pod going.
            #expect(scaling.contains("from 0 to 1\n") && scaling.contains("from 4 to 3\n") && scaling.contains("from 1 to 0"), "\(scaling)")
            _ = try await waitForPods(kubectl, "app=roll") { $0.count == 4 && $0.allSatisfy { $0.ready && $0.image == "nginx:1.1" } }

            // Recreate: no Pod of the new template while any of the old one exists, terminating or not.
            try await kubectl.succeed([
                "patch", "deployment", "roll", "--type=merge", "-p", #"{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null}}}"#,
            ])
            try await kubectl.succeed(["set", "image", "deployment/roll", "app=nginx:1.2"])
            let history = PodHistory()
            _ = try await waitForPods(kubectl, "app=roll") { pods in
                let images = Set(pods.map(\.image))
                history.record(pods, holds: !(images.contains("nginx:1.2") && images.contains("nginx:1.1")))
                return pods.count == 4 && pods.allSatisfy { $0.ready && $0.image == "nginx:1.2" }
            }
            #expect(history.violations.isEmpty, "old and new Pods together: \(history.violations)")
            try await kubectl.succeed(["rollout", "status", "deployment/roll", "--timeout=30s"])
        }
    }

    /// A `kubectl get -w` of one object (`kind`, a Deployment by default, and `name`) printing a
    /// line of `fields` (a jsonpath of fields joined by `/`) for each change, once it has printed the first.
    static func watchStatus(
        _ name: String, _ kubectl: Kubectl, in federation: LocalFederation, kind: String = "deployment",
        fields: String =
            "{.status.replicas}/{.status.updatedReplicas}/{.status.availableReplicas}/{.status.observedGeneration}/{.metadata.generation}"
    ) async throws -> ManagedProcess {
        let watcher = try federation.launch(
            name: "watch-\(name)", executable: kubectl.executable,
            arguments: kubectl.prefix + [
                "--kubeconfig", kubectl.kubeconfig, "--cache-dir", kubectl.home + "/cache", "get", kind, name, "-w", "-o",
                "jsonpath=\(fields){\"\\n\"}",
            ])
        try await watcher.waitForLine(within: .seconds(30), "its first status") { $0.raw.contains("/") }
        return watcher
    }

    static func rollingDeployment(image: String) -> String {
        deployment(
            "roll", replicas: 4, extraSpec: "strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}",
            podSpec: "      containers: [{name: app, image: \(image)}]")
    }

    /// A Deployment whose Pods ask 1.5 CPU and 1 GiB each.
    static func requestingDeployment(replicas: Int) -> String {
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: big}
        spec:
          replicas: \(replicas)
          selector: {matchLabels: {app: big}}
          template:
            metadata: {labels: {app: big}}
            spec: {containers: [{name: app, image: nginx, resources: {requests: {cpu: 1500m, memory: 1Gi}}}]}
        """
    }

    @Test("two simulated clusters side by side give different load-balancer addresses")
    func twoClusters() async throws {
        try await withFederation { federation in
            var addresses: [String] = []
            for name in ["east", "west"] {
                let (_, kubectl) = try await startSimcluster(name, in: federation)
                try await kubectl.succeed(["apply", "-f", "-"], stdin: simulatedWorkloads)
                try await kubectl.succeed(["wait", "--for=jsonpath={.status.loadBalancer.ingress[0].ip}", "svc/web", "--timeout=20s"])
                addresses.append(try await kubectl.succeed(["get", "svc", "web", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"]))
            }
            #expect(addresses.count == 2 && addresses[0] != addresses[1], "\(addresses)")
        }
    }
}

/// A StatefulSet, beside ``simulatedWorkloads``, for the Pods test.
let statefulSet = """
    apiVersion: apps/v1
    kind: StatefulSet
    metadata: {name: db}
    spec:
      replicas: 2
      serviceName: db
      selector: {matchLabels: {app: db}}
      template:
        metadata: {labels: {app: db}}
        spec: {containers: [{name: db, image: postgres:15}]}
    """

/// One Pod as a test reads it.
struct SimulatedPod: CustomStringConvertible {
    var name, phase, owner, node, ip, image: String
    var ready: Bool
    var description: String { "\(name) \(phase) ready=\(ready) \(owner) \(node) \(ip) \(image)" }
}

/// The Pods matching `selector` once `condition` holds of them (within 30 s): the simulated
/// controllers work from the member's own watches, and no kubectl verb waits for a count of Pods.
func waitForPods(
    _ kubectl: Kubectl, _ selector: String, namespace: String = "default", until condition: @escaping ([SimulatedPod]) -> Bool
) async throws -> [SimulatedPod] {
    let format =
        "jsonpath={range .items[*]}{.metadata.name}|{.status.phase}|{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}|{.spec.nodeName}|{.status.podIP}|{.spec.containers[0].image}|{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}"
    func pods(_ rows: String) -> [SimulatedPod] {
        rows.split(separator: "\n").map { row in
            let fields = row.split(separator: "|", omittingEmptySubsequences: false).map(String.init) + Array(repeating: "", count: 7)
            return SimulatedPod(
                name: fields[0], phase: fields[1], owner: fields[2], node: fields[3], ip: fields[4], image: fields[5], ready: fields[6] == "True")
        }
    }
    return pods(try await kubectl.waitForOutput(["get", "pods", "-n", namespace, "-l", selector, "-o", format]) { condition(pods($0)) })
}

/// What a test saw of a set of Pods over time: how many looks, and the ones that broke a rule.
final class PodHistory {
    private(set) var looks = 0
    private(set) var violations: [[SimulatedPod]] = []

    func record(_ pods: [SimulatedPod], holds: Bool) {
        looks += 1
        if !holds { violations.append(pods) }
    }
}
