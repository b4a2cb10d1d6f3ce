import Foundation
import Testing
import TetherJSON
import TetherLocal
import TetherModel
import TetherTestSupport

/// kubectl's generator commands, which send protobuf (kubectl 1.32) or JSON (kubectl 1.20),
/// against the hub with a member attached and against a simulated member: each object must
/// arrive with the fields the command set, and what the hub federates must reach the member.
@Suite("kubectl generator commands", .timeLimit(.minutes(4)))
struct KubectlGeneratorTests {
    /// Runs the generators against `kubectl`, then checks each object's fields there.
    /// kubectl 1.20 makes PodDisruptionBudgets as policy/v1beta1 and CronJobs as batch/v1beta1,
    /// which are served and stored at v1.
    static func generate(_ kubectl: Kubectl, suffix: String) async throws {
        let deployment = "web\(suffix)"
        try await kubectl.succeed(["create", "deployment", deployment, "--image=nginx:1.27", "--replicas=6", "--port=8080"])
        try await kubectl.succeed(["create", "job", "once\(suffix)", "--image=busybox", "--", "echo", "hi"])
        try await kubectl.succeed(["create", "service", "clusterip", "svc\(suffix)", "--tcp=80:8080"])
        try await kubectl.succeed(["create", "service", "nodeport", "np\(suffix)", "--tcp=80:8080"])
        try await kubectl.succeed(["expose", "deployment", deployment, "--port=80", "--target-port=8080"])
        try await kubectl.succeed(["create", "ingress", "ing\(suffix)", "--rule=foo.com/bar=svc\(suffix):80", "--class=nginx"])

        let spec = try await kubectl.succeed([
            "get", "deployment", deployment, "-o",
            "jsonpath={.spec.replicas} {.spec.selector.matchLabels.app} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort}",
        ])
        #expect(spec == "6 \(deployment) nginx:1.27 8080", "\(spec)")
        let job = try await kubectl.succeed([
            "get", "job", "once\(suffix)", "-o",
            "jsonpath={.spec.template.spec.restartPolicy} {.spec.template.spec.containers[0].command}",
        ])
        #expect(job == "Never [\"echo\",\"hi\"]", "\(job)")
        let exposed = try await kubectl.succeed([
            "get", "service", deployment, "-o", "jsonpath={.spec.ports[0].port} {.spec.ports[0].targetPort} {.spec.selector.app}",
        ])
        #expect(exposed == "80 8080 \(deployment)", "\(exposed)")
        let nodePort = try await kubectl.succeed(["get", "service", "np\(suffix)", "-o", "jsonpath={.spec.type} {.spec.ports[0].name}"])
        #expect(nodePort == "NodePort 80-8080", "\(nodePort)")
        let ingress = try await kubectl.succeed([
            "get", "ingress", "ing\(suffix)", "-o",
            "jsonpath={.spec.ingressClassName} {.spec.rules[0].host} {.spec.rules[0].http.paths[0].path} {.spec.rules[0].http.paths[0].backend.service.port.number}",
        ])
        #expect(ingress == "nginx foo.com /bar 80", "\(ingress)")

        try await kubectl.succeed(["create", "serviceaccount", "robot\(suffix)"])
        // Nothing here states CPU requests, and members enforce quotas: a quota on CPU would refuse the Pods.
        try await kubectl.succeed(["create", "quota", "quota\(suffix)", "--hard=persistentvolumeclaims=4,pods=100"])
        try await kubectl.succeed(["create", "role", "reader\(suffix)", "--verb=get,list", "--resource=configmaps,deployments.apps"])
        try await kubectl.succeed(["create", "rolebinding", "reader\(suffix)", "--role=reader\(suffix)", "--serviceaccount=default:robot\(suffix)"])
        let quota = try await kubectl.succeed([
            "get", "quota", "quota\(suffix)", "-o", "jsonpath={.spec.hard.persistentvolumeclaims} {.spec.hard.pods}",
        ])
        #expect(quota == "4 100", "\(quota)")
        try await kubectl.succeed(["create", "poddisruptionbudget", "pdb\(suffix)", "--selector=app=\(deployment)", "--min-available=50%"])
        let pdb = try await kubectl.succeed([
            "get", "pdb", "pdb\(suffix)", "-o", "jsonpath={.apiVersion} {.spec.minAvailable} {.spec.selector.matchLabels.app}",
        ])
        #expect(pdb == "policy/v1 50% \(deployment)", "\(pdb)")
        try await kubectl.succeed(["create", "cronjob", "nightly\(suffix)", "--image=busybox", "--schedule=0 3 * * *", "--", "date"])
        let cron = try await kubectl.succeed([
            "get", "cronjob", "nightly\(suffix)", "-o",
            "jsonpath={.apiVersion} {.spec.schedule} {.spec.jobTemplate.spec.template.spec.containers[0].image}",
        ])
        #expect(cron == "batch/v1 0 3 * * * busybox", "\(cron)")
        let role = try await kubectl.succeed(["get", "role", "reader\(suffix)", "-o", "jsonpath={.rules[1].apiGroups[0]} {.rules[1].verbs}"])
        #expect(role == "apps [\"get\",\"list\"]", "\(role)")
        let binding = try await kubectl.succeed([
            "get", "rolebinding", "reader\(suffix)", "-o", "jsonpath={.roleRef.kind}/{.roleRef.name} {.subjects[0].kind}/{.subjects[0].name}",
        ])
        #expect(binding == "Role/reader\(suffix) ServiceAccount/robot\(suffix)", "\(binding)")
        try await kubectl.succeed(["create", "priorityclass", "high\(suffix)", "--value=1000", "--description=for the shop"])
        let priority = try await kubectl.succeed([
            "get", "priorityclass", "high\(suffix)", "-o", "jsonpath={.value} {.preemptionPolicy} {.description}",
        ])
        #expect(priority == "1000 PreemptLowerPriority for the shop", "\(priority)")
        let tooHigh = try await kubectl.run(["create", "priorityclass", "huge\(suffix)", "--value=2000000000"])
        #expect(tooHigh.status != 0 && tooHigh.stderr.contains("maximum allowed value of a user defined priority is 1000000000"), "\(tooHigh)")
    }

    @Test("kubectl 1.32, 1.33 and 1.27 (protobuf) and 1.20 (JSON) generators against a simulated member: every field the command set is there")
    func againstMember() async throws {
        try await withFederation { federation in
            let (_, member) = try await startSimcluster("m1", in: federation, nodes: 1)
            try await Self.generate(member, suffix: "")
            for flavor in [Kubectl.Flavor.legacy, .v127, .v133] {
                let other = try Kubectl(flavor, kubeconfig: member.kubeconfig, home: federation.root + "/home-\(flavor)")
                try await Self.generate(other, suffix: "-\(flavor.minor)")
            }
        }
    }

    /// Runs `kubectl describe` at -v=8: what it prints, and the paths of the GETs answered in
    /// protobuf (from its log: each request's line, then its response's headers).
    static func describe(_ kubectl: Kubectl, _ object: String) async throws -> (output: String, protobufAnswers: [String]) {
        let result = try await kubectl.run(["describe", object, "-v=8"])
        guard result.status == 0 else { throw KubectlError(description: "kubectl describe \(object) failed: \(result)") }
        var request = ""
        var inResponse = false
        var answers: [String] = []
        for line in result.stderr.split(separator: "\n") {
            // `] GET https://...` (kubectl 1.32), or `"Request" verb="GET" url="https://..."` (1.33).
            if line.contains("] GET ") || line.contains("verb=\"GET\""), let start = line.range(of: "https://") {
                let url = line[start.lowerBound...].prefix { $0 != " " && $0 != "\"" }
                request = URL(string: String(url))?.path ?? ""
                inResponse = false
            } else if line.hasSuffix("Response Headers:") {
                inResponse = true
            } else if inResponse, line.hasSuffix("Content-Type: application/vnd.kubernetes.protobuf") {
                answers.append(request)
            }
        }
        return (result.stdout, answers)
    }

    @Test("kubectl's typed reads are answered in protobuf, and what it decodes is the object, status included")
    func protobufAnswers() async throws {
        try await withFederation { federation in
            let (_, member) = try await startSimcluster("m1", in: federation, nodes: 1)
            // The create's own answer is protobuf: kubectl prints what it decoded.
            let created = try await member.run(["create", "deployment", "web", "--image=nginx:1.27", "--replicas=3", "-o", "json", "-v=8"])
            #expect(created.status == 0, "\(created)")
            #expect(created.stderr.contains("Content-Type: application/vnd.kubernetes.protobuf\n"), "\(created.stderr.suffix(2000))")
            let stored = try await member.succeed(["get", "deployment", "web", "-o", "jsonpath={.metadata.uid}"])
            let decoded = try JSONDecoder().decode(CreatedDeployment.self, from: Data(created.stdout.utf8))
            #expect(decoded.metadata.uid == stored)
            #expect(decoded.spec.template.spec.containers.first?.image == "nginx:1.27")

            try await member.succeed(["create", "service", "loadbalancer", "lb", "--tcp=80:8080"])
            try await member.succeed(["create", "secret", "generic", "s1", "--from-literal=password=hunter2"])
            try await member.succeed(["create", "quota", "q1", "--hard=pods=3"])
            try await member.succeed(["wait", "--for=condition=Available", "deployment/web", "--timeout=30s"], within: .seconds(40))
            try await member.succeed(
                ["wait", "--for=jsonpath={.status.loadBalancer.ingress[0].ip}", "service/lb", "--timeout=30s"], within: .seconds(40))

            let deployment = try await Self.describe(member, "deployment/web")
            #expect(deployment.protobufAnswers.contains("/apis/apps/v1/namespaces/default/deployments/web"), "\(deployment.protobufAnswers)")
            #expect(deployment.output.contains("3 desired | 3 updated | 3 total | 3 available | 0 unavailable"), "\(deployment.output)")
            #expect(deployment.output.contains("MinimumReplicasAvailable"), "\(deployment.output)")
            let service = try await Self.describe(member, "service/lb")
            #expect(service.protobufAnswers.contains("/api/v1/namespaces/default/services/lb"), "\(service.protobufAnswers)")
            #expect(service.output.contains("LoadBalancer Ingress:"), "\(service.output)")
            let secret = try await Self.describe(member, "secret/s1")
            #expect(secret.protobufAnswers.contains("/api/v1/namespaces/default/secrets/s1"), "\(secret.protobufAnswers)")
            #expect(secret.output.contains("password:  7 bytes"), "\(secret.output)")
            // The namespace, and its quotas as a protobuf list.
            let namespace = try await Self.describe(member, "namespace/default")
            #expect(
                namespace.protobufAnswers.contains("/api/v1/namespaces/default")
                    && namespace.protobufAnswers.contains("/api/v1/namespaces/default/resourcequotas"), "\(namespace.protobufAnswers)")
            #expect(namespace.output.contains("Status:       Active") && namespace.output.contains("Name:     q1"), "\(namespace.output)")

            // A pod template with probes, hooks, security contexts, affinity, volumes and env
            // sources is numbered all through: kubectl reads it in protobuf.
            try await member.succeed(
                ["apply", "-f", "-"], stdin: Self.fullTemplate(name: "full", volume: #"{"name": "cfg", "configMap": {"name": "c1"}}"#))
            let full = try await Self.describe(member, "deployment/full")
            #expect(full.protobufAnswers.contains("/apis/apps/v1/namespaces/default/deployments/full"), "\(full.protobufAnswers)")
            for shown in ["Readiness:  tcp-socket :80", "Liveness:   http-get http://:8080/healthz", "ConfigMap (a volume populated by a ConfigMap)"]
            {
                #expect(full.output.contains(shown), "\(shown): \(full.output)")
            }
            // The rare volume sources are numbered too (a git repository here), and so is a Node.
            try await member.succeed(
                ["apply", "-f", "-"],
                stdin: Self.fullTemplate(name: "gitrepo", volume: #"{"name": "cfg", "gitRepo": {"repository": "https://example.com/r.git"}}"#))
            let gitRepo = try await Self.describe(member, "deployment/gitrepo")
            #expect(gitRepo.protobufAnswers.contains("/apis/apps/v1/namespaces/default/deployments/gitrepo"), "\(gitRepo.protobufAnswers)")
            #expect(gitRepo.output.contains("GitRepo"), "\(gitRepo.output)")
            let node = try await Self.describe(member, "node/m1-node-1")
            #expect(node.protobufAnswers.contains("/api/v1/nodes/m1-node-1"), "\(node.protobufAnswers)")
            #expect(node.output.contains("Kubelet Version:            v1.32.0-sim"), "\(node.output)")
        }
    }

    @Test(
        "kubectl events lists and watches Events, in protobuf when kubectl asks for it (a length-delimited watch stream), microsecond times included",
        arguments: [Kubectl.Flavor.v127, .modern, .v133])
    func events(flavor: Kubectl.Flavor) async throws {
        try await withFederation { federation in
            let (_, modern) = try await startSimcluster("m1", in: federation, nodes: 1)
            let member = try Kubectl(flavor, kubeconfig: modern.kubeconfig, home: federation.root + "/home-\(flavor)")
            func event(_ name: String, reason: String) -> String {
                let now = kubernetesTimestamp()
                return """
                    {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "\(name)"},
                     "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "p1", "namespace": "default"},
                     "reason": "\(reason)", "message": "from the test", "type": "Normal",
                     "eventTime": "\(now.dropLast()).123456Z", "reportingComponent": "kubelet", "reportingInstance": "node-1",
                     "action": "Pull", "series": {"count": 2, "lastObservedTime": "\(now.dropLast()).000001Z"}}
                    """
            }
            try await member.succeed(["create", "-f", "-"], stdin: event("ev1", reason: "Pulled"))
            let watcher = try federation.launch(
                name: "events-watch", executable: member.executable,
                arguments: member.prefix + ["--kubeconfig", member.kubeconfig, "--cache-dir", member.home + "/cache", "events", "--watch", "-v=8"])
            try await watcher.waitForLine(within: .seconds(30), "the first event") { $0.raw.contains("Pulled") && $0.raw.contains("Pod/p1") }
            try await member.succeed(["create", "-f", "-"], stdin: event("ev2", reason: "Started"))
            try await watcher.waitForLine(within: .seconds(30), "the event made while watching") { $0.raw.contains("Started") }
            // kubectl 1.27 asks for JSON; 1.32 and 1.33 for protobuf.
            let protobuf = flavor.minor >= 32
            #expect(
                watcher.lines.contains { $0.raw.hasSuffix("Content-Type: application/vnd.kubernetes.protobuf;stream=watch") } == protobuf,
                "\(watcher.tail(40))")
            await watcher.stop()
            // The list is protobuf too, and the times are kept to the microsecond.
            let listed = try await member.run(["events", "-v=8"])
            #expect(listed.stdout.contains("Started"), "\(listed)")
            #expect(listed.stderr.contains("Content-Type: application/vnd.kubernetes.protobuf\n") == protobuf, "\(listed.stderr.suffix(3000))")
            let times = try await member.succeed(["get", "event", "ev1", "-o", "jsonpath={.eventTime} {.series.lastObservedTime}"])
            #expect(times.contains(".123456Z ") && times.hasSuffix(".000001Z"), "\(times)")
        }
    }

    @Test(
        "an autoscaler patched through autoscaling/v1 keeps what only v2 holds; a watch at batch/v1beta1 shows v1beta1; a body must match its URL's version; managed fields name the version written at"
    )
    func otherVersions() async throws {
        try await withFederation { federation in
            let (_, member) = try await startSimcluster("m1", in: federation, nodes: 1)
            try await member.succeed(
                ["apply", "-f", "-"],
                stdin: """
                    {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
                     "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 5,
                              "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                                          {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}}}],
                              "behavior": {"scaleDown": {"stabilizationWindowSeconds": 120}}}}
                    """)
            try await member.succeed([
                "patch", "horizontalpodautoscalers.v1.autoscaling", "web", "--type=merge", "-p",
                #"{"spec": {"maxReplicas": 7, "targetCPUUtilizationPercentage": 65}}"#,
            ])
            let stored = try await member.succeed([
                "get", "hpa", "web", "-o",
                "jsonpath={.apiVersion} {.spec.maxReplicas} {.spec.metrics[0].resource.target.averageUtilization} {.spec.metrics[1].resource.name} {.spec.behavior.scaleDown.stabilizationWindowSeconds}",
            ])
            #expect(stored == "autoscaling/v2 7 65 memory 120", "\(stored)")
            // The annotations that carried them through v1 are not stored.
            let annotations = try await member.succeed(["get", "hpa", "web", "-o", "jsonpath={.metadata.annotations}"])
            #expect(!annotations.contains("autoscaling.alpha.kubernetes.io"), "\(annotations)")
            let shown = try await member.succeed(["get", "--raw", "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/web"])
            let v1 = try JSONValue(parsing: shown)
            #expect(v1["apiVersion"] == "autoscaling/v1" && v1["spec"]?["targetCPUUtilizationPercentage"] == 65, "\(shown)")

            try await member.succeed(["create", "cronjob", "nightly", "--image=busybox", "--schedule=0 3 * * *"])
            let watched = try await member.succeed([
                "get", "--raw", "/apis/batch/v1beta1/namespaces/default/cronjobs?watch=1&timeoutSeconds=1",
            ])
            let event = try JSONValue(parsing: String(watched.split(separator: "\n").first ?? ""))
            #expect(event["type"] == "ADDED" && event["object"]?["apiVersion"] == "batch/v1beta1", "\(watched)")
            let list = try JSONValue(parsing: try await member.succeed(["get", "--raw", "/apis/batch/v1beta1/namespaces/default/cronjobs"]))
            #expect(list["apiVersion"] == "batch/v1beta1" && list["items"]?.arrayElements.first?["apiVersion"] == "batch/v1beta1")

            // A v1 body sent to the v1beta1 URL is refused, as kube-apiserver refuses it.
            let mismatch = try await member.run(
                ["create", "--raw", "/apis/batch/v1beta1/namespaces/default/cronjobs", "-f", "-"],
                stdin: #"{"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "x"}, "spec": {"schedule": "* * * * *"}}"#)
            #expect(mismatch.status != 0 && mismatch.stderr.contains("the URL is for batch/v1beta1 CronJob"), "\(mismatch)")

            // Managed fields name the version each write was made at, as kube-apiserver records them.
            try await member.succeed(
                ["create", "--raw", "/apis/batch/v1beta1/namespaces/default/cronjobs?fieldManager=old-tool", "-f", "-"],
                stdin: #"""
                    {"apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": {"name": "older"},
                     "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
                              "containers": [{"name": "a", "image": "busybox"}]}}}}}}
                    """#)
            let managers = "jsonpath={range .metadata.managedFields[*]}{.manager}={.apiVersion} {end}"
            let older = try await member.succeed(["get", "cronjob", "older", "-o", managers])
            #expect(older.contains("old-tool=batch/v1beta1"), "\(older)")
            let nightly = try await member.succeed(["get", "cronjob", "nightly", "-o", managers])
            #expect(nightly.contains("kubectl-create=batch/v1 "), "\(nightly)")
        }
    }

    /// A Deployment whose pod template uses most of the Pod spec, with one volume.
    static func fullTemplate(name: String, volume: String) -> String {
        """
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "\(name)"},
         "spec": {"selector": {"matchLabels": {"app": "\(name)"}},
                  "template": {"metadata": {"labels": {"app": "\(name)"}},
                               "spec": {"securityContext": {"runAsNonRoot": true, "fsGroup": 2000, "seccompProfile": {"type": "RuntimeDefault"}},
                                        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                                            {"weight": 50, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                                                               "labelSelector": {"matchLabels": {"app": "\(name)"}}}}]}},
                                        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                                                       "whenUnsatisfiable": "ScheduleAnyway"}],
                                        "volumes": [\(volume)],
                                        "containers": [{"name": "c", "image": "nginx",
                                                        "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 7},
                                                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                                                        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
                                                        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                                                        "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                                                        "envFrom": [{"configMapRef": {"name": "c1"}}],
                                                        "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}]}]}}}}
        """
    }

    /// The parts of `kubectl create deployment -o json` the protobuf test compares.
    struct CreatedDeployment: Decodable {
        struct Metadata: Decodable { var uid: String }
        struct Container: Decodable { var image: String }
        struct PodSpec: Decodable { var containers: [Container] }
        struct Template: Decodable { var spec: PodSpec }
        struct Spec: Decodable { var template: Template }
        var metadata: Metadata
        var spec: Spec
    }

    @Test("generators against the hub: the objects are made there and reach the member")
    func againstHub() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 1)
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            let member = try await federation.startMember("m1", hub: hub, hubPort: port).kubectl
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.phase}=Ready", "cluster/m1", "--timeout=30s"])
            try await Self.generate(hubctl, suffix: "")
            // `kubectl autoscale` makes an autoscaling/v1 autoscaler; the hub stores and federates autoscaling/v2.
            try await hubctl.succeed(["autoscale", "deployment", "web", "--min=2", "--max=8", "--cpu-percent=60"])
            for object in [
                "deployment/web", "job/once", "service/svc", "service/web", "ingress/ing", "cronjob/nightly", "serviceaccount/robot",
                "resourcequota/quota", "poddisruptionbudget/pdb", "horizontalpodautoscaler/web", "priorityclass/high",
            ] {
                try await member.succeed(["wait", "--for=create", object, "--timeout=60s"], within: .seconds(70))
            }
            // The quota at the hub shows its limits and the fullest member's use, as the member counts it.
            _ = try await hubctl.waitForOutput([
                "get", "quota", "quota", "-o", "jsonpath={.status.hard.persistentvolumeclaims}/{.status.used.persistentvolumeclaims}",
            ]) {
                $0 == "4/0"
            }
            // A Pod at the hub takes its class's priority there, and the member's admission computes its copy's.
            try await hubctl.succeed(["run", "urgent", "--image=nginx:1.27", #"--overrides={"apiVersion":"v1","spec":{"priorityClassName":"high"}}"#])
            #expect(try await hubctl.succeed(["get", "pod", "urgent", "-o", "jsonpath={.spec.priority}"]) == "1000")
            try await member.succeed(["wait", "--for=create", "pod/urgent", "--timeout=60s"], within: .seconds(70))
            #expect(try await member.succeed(["get", "pod", "urgent", "-o", "jsonpath={.spec.priority}"]) == "1000")
            let copy = try await member.succeed([
                "get", "deployment", "web", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image}",
            ])
            #expect(copy == "6 nginx:1.27", "\(copy)")
            let autoscaler = try await member.succeed([
                "get", "hpa", "web", "-o",
                "jsonpath={.apiVersion} {.spec.minReplicas} {.spec.maxReplicas} {.spec.metrics[0].resource.target.averageUtilization}",
            ])
            #expect(autoscaler == "autoscaling/v2 2 8 60", "\(autoscaler)")
            // The hub's Deployment carries the members' summed status, and kubectl reads it in protobuf.
            try await hubctl.succeed(["wait", "--for=condition=Available", "deployment/web", "--timeout=60s"], within: .seconds(70))
            let described = try await Self.describe(hubctl, "deployment/web")
            #expect(described.protobufAnswers.contains("/apis/apps/v1/namespaces/default/deployments/web"), "\(described.protobufAnswers)")
            #expect(described.output.contains("6 desired | 6 updated | 6 total | 6 available | 0 unavailable"), "\(described.output)")
            // The hub's disruption budget sums what the member's disruption controller counted:
            // 50 % of 6 Pods must stay, so 3 may go.
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.disruptionsAllowed}=3", "pdb/pdb", "--timeout=60s"], within: .seconds(70))
            let budget = try await hubctl.succeed([
                "get", "pdb", "pdb", "-o",
                #"jsonpath={.status.currentHealthy}/{.status.desiredHealthy}/{.status.expectedPods} {.status.conditions[?(@.type=="DisruptionAllowed")].status}"#,
            ])
            #expect(budget == "6/3/6 True", "\(budget)")
            // Writing RBAC grants access: an agent does it only when its allow-list names it, and says so.
            try await hubctl.succeed([
                "wait", "--for=jsonpath={.status.clusters[0].state}=failed", "propagation/role.default.reader", "--timeout=30s",
            ])
            let refusal = try await hubctl.succeed(["get", "propagation", "role.default.reader", "-o", "jsonpath={.status.lastError}"])
            #expect(refusal.contains("allow-list"), "\(refusal)")
            #expect(try await member.run(["get", "role", "reader"]).status != 0)
        }
    }

    @Test(
        "kubectl apply --prune works at the hub and at a member (every kind on kubectl's default prune list is served); a ReplicationController is divided and run; a PersistentVolume reaches the member Available; endpoints and Nodes at the hub are listed, empty, and never written; a Lease stays at the hub"
    )
    func pruneAndLegacyKinds() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 1)
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            // Volumes are written only where an allow-list names them: m1's does.
            let m1 = try await federation.startMember("m1", hub: hub, hubPort: port, agentArguments: ["--also-allow-kind", "/PersistentVolume"])
                .kubectl
            let m2 = try await federation.startMember("m2", hub: hub, hubPort: port).kubectl
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.phase}=Ready", "cluster/m1", "cluster/m2", "--timeout=30s"])
            let both = """
                apiVersion: v1
                kind: ConfigMap
                metadata: {name: keep, labels: {set: app}}
                data: {k: v}
                ---
                apiVersion: v1
                kind: ConfigMap
                metadata: {name: drop, labels: {set: app}}
                data: {k: v}
                """
            let one = String(both.prefix { $0 != "-" })
            for kubectl in [hubctl, m1] {
                try await kubectl.succeed(["apply", "-f", "-", "-l", "set=app", "--prune"], stdin: both)
                let pruned = try await kubectl.succeed(["apply", "-f", "-", "-l", "set=app", "--prune"], stdin: one)
                #expect(pruned.contains("configmap/drop pruned"), "\(pruned)")
            }
            try await m2.succeed(["wait", "--for=create", "configmap/keep", "--timeout=30s"], within: .seconds(40))
            try await m2.succeed(["wait", "--for=delete", "configmap/drop", "--timeout=30s"], within: .seconds(40))

            let legacy = """
                apiVersion: v1
                kind: ReplicationController
                metadata: {name: legacy}
                spec:
                  replicas: 4
                  template:
                    metadata: {labels: {app: legacy}}
                    spec: {containers: [{name: web, image: "nginx:1.27"}]}
                ---
                apiVersion: v1
                kind: PersistentVolume
                metadata: {name: data}
                spec:
                  capacity: {storage: 5Gi}
                  accessModes: [ReadWriteOnce]
                  hostPath: {path: /data}
                """
            try await hubctl.succeed(["apply", "-f", "-"], stdin: legacy)
            // The selector is defaulted from the template's labels; the replicas are divided, 2 and 2.
            #expect(
                try await hubctl.succeed(["get", "rc", "legacy", "-o", "jsonpath={.spec.selector.app} {.metadata.labels.app}"]) == "legacy legacy")
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.readyReplicas}=4", "rc/legacy", "--timeout=60s"], within: .seconds(70))
            for member in [m1, m2] {
                try await member.succeed(["wait", "--for=jsonpath={.status.readyReplicas}=2", "rc/legacy", "--timeout=30s"], within: .seconds(40))
                #expect(try await member.succeed(["get", "pods", "-l", "app=legacy", "-o", "name"]).split(separator: "\n").count == 2)
            }
            try await m1.succeed(["wait", "--for=jsonpath={.status.phase}=Available", "pv/data", "--timeout=30s"], within: .seconds(40))
            try await hubctl.succeed([
                "wait", "--for=jsonpath={.status.clusters[?(@.name==\"m2\")].state}=failed", "propagation/persistentvolume.data", "--timeout=30s",
            ])
            #expect(try await m2.run(["get", "pv", "data"]).status != 0)
            let volume = try await hubctl.succeed(["get", "pv", "data", "--no-headers"]).split(separator: " ", omittingEmptySubsequences: true)
            #expect(volume.prefix(4) == ["data", "5Gi", "RWO", "Retain"], "\(volume)")
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.phase}=Available", "pv/data", "--timeout=30s"], within: .seconds(40))
            // A volume names exactly one source.
            let sourceless = try await hubctl.run(
                ["apply", "-f", "-"],
                stdin:
                    "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: nothing}\nspec: {capacity: {storage: 1Gi}, accessModes: [ReadWriteOnce]}\n"
            )
            #expect(sourceless.status != 0 && sourceless.stderr.contains("must specify a volume type"), "\(sourceless)")

            // Endpoints are listed at the hub (empty) and never written there.
            #expect(try await hubctl.succeed(["get", "endpoints", "-o", "name"]).isEmpty)
            let endpoints = try await hubctl.run(
                ["apply", "-f", "-"], stdin: "apiVersion: v1\nkind: Endpoints\nmetadata: {name: manual}\nsubsets: []\n")
            #expect(endpoints.status != 0 && endpoints.stderr.contains("the hub holds no Endpoints"), "\(endpoints)")
            try await hubctl.succeed([
                "create", "role", "watcher", "--verb=get,list", "--resource=endpoints,pods,replicationcontrollers,persistentvolumeclaims",
            ])
            // A Lease, as a controller run against the hub elects its leader with, stays at the hub.
            let lease = """
                apiVersion: coordination.k8s.io/v1
                kind: Lease
                metadata: {name: my-controller}
                spec: {holderIdentity: replica-a, leaseDurationSeconds: 15, renewTime: "2026-12-04T06:00:00.123456Z"}
                """
            try await hubctl.succeed(["apply", "-f", "-"], stdin: lease)
            let leaseRow = try await hubctl.succeed(["get", "lease", "my-controller", "--no-headers"]).split(
                separator: " ", omittingEmptySubsequences: true)
            #expect(leaseRow.prefix(2) == ["my-controller", "replica-a"], "\(leaseRow)")
            #expect(try await hubctl.succeed(["get", "lease", "my-controller", "-o", "jsonpath={.spec.renewTime}"]) == "2026-12-04T06:00:00.123456Z")
            #expect(try await m1.run(["get", "lease", "my-controller"]).status != 0)
            // So are Nodes, which each member has its own of.
            try await hubctl.succeed(["create", "clusterrole", "node-reader", "--verb=get,list,watch", "--resource=nodes,persistentvolumes"])
            #expect(try await hubctl.succeed(["get", "nodes", "-o", "name"]).isEmpty)
            let node = try await hubctl.run(["apply", "-f", "-"], stdin: "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n")
            #expect(node.status != 0 && node.stderr.contains("kubectl --context NAME get nodes"), "\(node)")
        }
    }
}
