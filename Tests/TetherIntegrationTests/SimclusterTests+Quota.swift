import Foundation
import Testing
import TetherTestSupport

extension SimclusterTests {
    @Test(
        "ResourceQuotas count what their namespace uses and refuse what would go over, to kubectl and to a Deployment's controller, which makes its Pods once the quota is raised; a quota on requests refuses a Pod that states none"
    )
    func resourceQuota() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 2)
            try await kubectl.succeed(["create", "namespace", "team"])
            try await kubectl.succeed(["-n", "team", "create", "quota", "objects", "--hard=pods=3,count/deployments.apps=1,services.loadbalancers=0"])
            _ = try await kubectl.waitForOutput(["-n", "team", "get", "quota", "objects", "-o", "jsonpath={.status.used.pods}/{.status.hard.pods}"]) {
                $0 == "0/3"
            }

            // Five replicas wanted, three Pods allowed: the controller says why it stops there.
            try await kubectl.succeed(["-n", "team", "create", "deployment", "web", "--image=nginx:1.27", "--replicas=5"])
            _ = try await waitForPods(kubectl, "app=web", namespace: "team") { $0.count == 3 }
            let refused = try await kubectl.waitForOutput([
                "-n", "team", "get", "events", "--field-selector", "reason=FailedCreate", "-o", "jsonpath={.items[*].message}",
            ]) { $0.contains("exceeded quota: objects, requested: pods=1, used: pods=3, limited: pods=3") }
            #expect(refused.contains("Error creating: pods \"web-"), "\(refused)")
            _ = try await kubectl.waitForOutput(["-n", "team", "get", "quota", "objects", "-o", "jsonpath={.status.used.pods}"]) { $0 == "3" }
            let described = try await kubectl.succeed(["-n", "team", "describe", "quota", "objects"])
            #expect(described.contains("count/deployments.apps  1     1") && described.contains("pods                    3     3"), "\(described)")

            // kubectl is refused as kube-apiserver refuses it.
            let second = try await kubectl.run(["-n", "team", "create", "deployment", "second", "--image=nginx:1.27"])
            #expect(
                second.status != 0
                    && second.stderr.contains(
                        "deployments.apps \"second\" is forbidden: exceeded quota: objects, requested: count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1"
                    ), "\(second.stderr)")
            let balancer = try await kubectl.run(["-n", "team", "create", "service", "loadbalancer", "edge", "--tcp=80:80"])
            #expect(balancer.stderr.contains("exceeded quota: objects, requested: services.loadbalancers=1"), "\(balancer.stderr)")
            #expect(try await kubectl.run(["-n", "team", "create", "service", "clusterip", "inside", "--tcp=80:80"]).status == 0)

            // Raised, the quota lets the controller make the rest.
            try await kubectl.succeed(["-n", "team", "patch", "quota", "objects", "-p", #"{"spec":{"hard":{"pods":"7"}}}"#])
            _ = try await waitForPods(kubectl, "app=web", namespace: "team") { $0.count == 5 && $0.allSatisfy(\.ready) }

            // A quota on CPU requests: a Pod must state one, and the sum stays within it.
            try await kubectl.succeed(["-n", "team", "create", "quota", "compute", "--hard=requests.cpu=1"])
            _ = try await kubectl.waitForOutput(["-n", "team", "get", "quota", "compute", "-o", "jsonpath={.status.used.requests\\.cpu}"]) {
                $0 == "0"
            }
            let unsized = try await kubectl.run(["-n", "team", "run", "unsized", "--image=nginx:1.27"])
            #expect(
                unsized.stderr.contains("pods \"unsized\" is forbidden: failed quota: compute: must specify requests.cpu for: unsized"),
                "\(unsized.stderr)")
            func sized(_ name: String) async throws -> Kubectl.Result {
                try await kubectl.run([
                    "-n", "team", "run", name, "--image=nginx:1.27",
                    "--overrides={\"apiVersion\":\"v1\",\"spec\":{\"containers\":[{\"name\":\"\(name)\",\"image\":\"nginx:1.27\",\"resources\":{\"requests\":{\"cpu\":\"600m\"}}}]}}",
                ])
            }
            #expect(try await sized("first").status == 0)
            _ = try await kubectl.waitForOutput(["-n", "team", "get", "quota", "compute", "-o", "jsonpath={.status.used.requests\\.cpu}"]) {
                $0 == "600m"
            }
            let over = try await sized("second")
            #expect(
                over.stderr.contains("exceeded quota: compute, requested: requests.cpu=600m, used: requests.cpu=600m, limited: requests.cpu=1"),
                "\(over.stderr)")
        }
    }

    @Test(
        "a LimitRange gives a namespace's containers their default requests and limits (and says so on the Pod), refuses one over its max and a claim over its storage bound in kube-apiserver's words, to kubectl and to a Deployment's controller, which makes its Pods once the range allows them"
    )
    func limitRange() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 2)
            try await kubectl.succeed(["create", "namespace", "bounded"])
            try await kubectl.succeed(
                ["apply", "-f", "-"],
                stdin: """
                    apiVersion: v1
                    kind: LimitRange
                    metadata:
                      name: bounds
                      namespace: bounded
                    spec:
                      limits:
                      - type: Container
                        default: {cpu: 500m, memory: 256Mi}
                        defaultRequest: {cpu: 100m}
                        max: {cpu: "1"}
                      - type: PersistentVolumeClaim
                        min: {storage: 1Gi}
                        max: {storage: 10Gi}
                    """)
            // The API's defaults: a request by default for what is limited by default.
            #expect(
                try await kubectl.succeed(["-n", "bounded", "get", "limitrange", "bounds", "-o", "jsonpath={.spec.limits[0].defaultRequest}"])
                    == #"{"cpu":"100m","memory":"256Mi"}"#)
            try await kubectl.succeed(["-n", "bounded", "run", "plain", "--image=nginx:1.27"])
            let resources = try await kubectl.succeed(["-n", "bounded", "get", "pod", "plain", "-o", "jsonpath={.spec.containers[0].resources}"])
            #expect(resources == #"{"limits":{"cpu":"500m","memory":"256Mi"},"requests":{"cpu":"100m","memory":"256Mi"}}"#, "\(resources)")
            let note = try await kubectl.succeed([
                "-n", "bounded", "get", "pod", "plain", "-o", #"jsonpath={.metadata.annotations.kubernetes\.io/limit-ranger}"#,
            ])
            #expect(note == "LimitRanger plugin set: cpu, memory request for container plain; cpu, memory limit for container plain")

            let greedy = try await kubectl.run([
                "-n", "bounded", "run", "greedy", "--image=nginx:1.27",
                #"--overrides={"apiVersion":"v1","spec":{"containers":[{"name":"greedy","image":"nginx:1.27","resources":{"limits":{"cpu":"2"}}}]}}"#,
            ])
            #expect(greedy.stderr.contains(#"pods "greedy" is forbidden: maximum cpu usage per Container is 1, but limit is 2"#), "\(greedy.stderr)")
            func claim(_ name: String, _ size: String) -> String {
                """
                apiVersion: v1
                kind: PersistentVolumeClaim
                metadata: {name: \(name)}
                spec:
                  accessModes: [ReadWriteOnce]
                  resources: {requests: {storage: \(size)}}
                """
            }
            let hoard = try await kubectl.run(["-n", "bounded", "apply", "-f", "-"], stdin: claim("hoard", "20Gi"))
            #expect(
                hoard.stderr.contains(
                    #"persistentvolumeclaims "hoard" is forbidden: maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"#),
                "\(hoard.stderr)")
            try await kubectl.succeed(["-n", "bounded", "apply", "-f", "-"], stdin: claim("data", "5Gi"))

            try await kubectl.succeed(["-n", "bounded", "create", "deployment", "big", "--image=nginx:1.27", "--replicas=2"])
            try await kubectl.succeed(["-n", "bounded", "set", "resources", "deployment", "big", "--limits=cpu=2"])
            _ = try await kubectl.waitForOutput([
                "-n", "bounded", "get", "events", "--field-selector", "reason=FailedCreate", "-o", "jsonpath={.items[*].message}",
            ]) { $0.contains("is forbidden: maximum cpu usage per Container is 1, but limit is 2") }
            try await kubectl.succeed([
                "-n", "bounded", "patch", "limitrange", "bounds", "--type=json", "-p",
                #"[{"op":"replace","path":"/spec/limits/0/max/cpu","value":"4"}]"#,
            ])
            try await kubectl.succeed(["-n", "bounded", "rollout", "status", "deployment/big", "--timeout=60s"], within: .seconds(70))
        }
    }

    @Test(
        "a scoped quota counts and refuses only the Pods its scopes match: best-effort Pods under one, Pods of a PriorityClass under another; a scope on a resource it cannot limit is refused"
    )
    func quotaScopes() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 2)
            try await kubectl.succeed(["create", "namespace", "team"])
            try await kubectl.succeed(["-n", "team", "create", "quota", "best-effort", "--hard=pods=1", "--scopes=BestEffort"])
            try await kubectl.succeed(["create", "priorityclass", "high", "--value=1000"])
            try await kubectl.succeed(
                ["-n", "team", "apply", "-f", "-"],
                stdin: """
                    apiVersion: v1
                    kind: ResourceQuota
                    metadata:
                      name: high-priority
                    spec:
                      hard:
                        pods: "1"
                        requests.cpu: "1"
                      scopeSelector:
                        matchExpressions:
                        - scopeName: PriorityClass
                          operator: In
                          values: [high]
                    """)
            _ = try await kubectl.waitForOutput(["-n", "team", "get", "quota", "-o", "jsonpath={.items[*].status.used.pods}"]) { $0 == "0 0" }

            try await kubectl.succeed(["-n", "team", "run", "bare", "--image=nginx:1.27"])
            let second = try await kubectl.run(["-n", "team", "run", "bare-2", "--image=nginx:1.27"])
            #expect(
                second.stderr.contains("pods \"bare-2\" is forbidden: exceeded quota: best-effort, requested: pods=1, used: pods=1, limited: pods=1"),
                "\(second.stderr)")
            func run(_ name: String, priority: String? = nil) async throws -> Kubectl.Result {
                let priorityField = priority.map { ",\"priorityClassName\":\"\($0)\"" } ?? ""
                return try await kubectl.run([
                    "-n", "team", "run", name, "--image=nginx:1.27",
                    "--overrides={\"apiVersion\":\"v1\",\"spec\":{\"containers\":[{\"name\":\"\(name)\",\"image\":\"nginx:1.27\",\"resources\":{\"requests\":{\"cpu\":\"500m\"}}}]\(priorityField)}}",
                ])
            }
            #expect(try await run("sized").status == 0, "not best-effort and of no class: neither quota counts it")
            #expect(try await run("vip", priority: "high").status == 0)
            let vip2 = try await run("vip-2", priority: "high")
            #expect(vip2.stderr.contains("exceeded quota: high-priority, requested: pods=1, used: pods=1, limited: pods=1"), "\(vip2.stderr)")
            _ = try await kubectl.waitForOutput([
                "-n", "team", "get", "quota", "high-priority", "-o", "jsonpath={.status.used.pods}/{.status.used.requests\\.cpu}",
            ]) { $0 == "1/500m" }
            _ = try await kubectl.waitForOutput(["-n", "team", "get", "quota", "best-effort", "-o", "jsonpath={.status.used.pods}"]) { $0 == "1" }
            let described = try await kubectl.succeed(["-n", "team", "describe", "quota", "best-effort"])
            #expect(described.contains("Scopes:     BestEffort"), "\(described)")

            let wrong = try await kubectl.run(["-n", "team", "create", "quota", "wrong", "--hard=requests.cpu=1", "--scopes=BestEffort"])
            #expect(
                wrong.status != 0
                    && wrong.stderr.contains(
                        "ResourceQuota \"wrong\" is invalid: spec.hard[requests.cpu]: Invalid value: \"requests.cpu\": unsupported scope applied to resource"
                    ),
                "\(wrong.stderr)")
        }
    }
}
