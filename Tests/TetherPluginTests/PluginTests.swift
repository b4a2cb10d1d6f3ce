import BuiltinPlugins
import ConfigPlugin
import Foundation
import NetworkingPlugin
import Testing
import TetherJSON
import TetherModel
import TetherPlugin
import WorkloadsPlugin

func yaml(_ text: String) -> JSONValue { try! YAMLDocument.decode(text) }

let workloads = WorkloadsPlugin()
let networking = NetworkingPlugin()
let configPlugin = ConfigPlugin()

func deployment(generation: Int = 2, replicas: Int = 3, status: String) -> JSONValue {
    yaml(
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web, namespace: shop, generation: \(generation), uid: abc, resourceVersion: "17", creationTimestamp: "2026-01-01T00:00:00Z", managedFields: [{}]}
        spec:
          replicas: \(replicas)
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec: {nodeName: node-7, containers: [{name: web, image: nginx}]}
        status: \(status)
        """
    )
}

@Suite("Workloads plugin")
struct WorkloadsPluginTests {
    @Test("a workload's dependencies are what its Pod template names: ConfigMaps, Secrets, claims and a ServiceAccount, once each")
    func dependencies() {
        let job = yaml(
            """
            apiVersion: batch/v1
            kind: CronJob
            metadata: {name: nightly, namespace: shop}
            spec:
              schedule: "0 3 * * *"
              jobTemplate:
                spec:
                  template:
                    spec:
                      serviceAccountName: reporter
                      imagePullSecrets: [{name: registry}]
                      volumes:
                      - {name: a, configMap: {name: settings}}
                      - {name: b, secret: {secretName: tls}}
                      - {name: c, persistentVolumeClaim: {claimName: data}}
                      - {name: d, projected: {sources: [{configMap: {name: extra}}, {secret: {name: tls}}]}}
                      containers:
                      - name: run
                        image: busybox:1.36
                        env: [{name: K, valueFrom: {configMapKeyRef: {name: settings, key: k}}}, {name: P, valueFrom: {secretKeyRef: {name: pass, key: p}}}]
                        envFrom: [{configMapRef: {name: env}}]
            """)
        let found = workloads.dependencies(of: job).map { "\($0.kind)/\($0.namespace ?? "")/\($0.name)" }
        #expect(
            Set(found) == [
                "ConfigMap/shop/settings", "Secret/shop/tls", "PersistentVolumeClaim/shop/data", "ConfigMap/shop/extra", "Secret/shop/pass",
                "ConfigMap/shop/env", "Secret/shop/registry", "ServiceAccount/shop/reporter",
            ])
        #expect(found.count == 8, "each once: \(found)")
        #expect(workloads.dependencies(of: deployment(status: "{}")).isEmpty)
    }

    @Test("replica counts are read and set for Deployment, ReplicaSet and StatefulSet; not for DaemonSet and Job")
    func replicas() {
        let web = deployment(status: "{}")
        #expect(workloads.replicas(of: web) == 3)
        #expect(workloads.replicas(of: workloads.setting(replicas: 334, on: web)) == 334)
        let defaulted = yaml("{apiVersion: apps/v1, kind: ReplicaSet, metadata: {name: r}, spec: {}}")
        #expect(workloads.replicas(of: defaulted) == 1)
        let sts = yaml("{apiVersion: apps/v1, kind: StatefulSet, metadata: {name: s}, spec: {replicas: 4}}")
        #expect(workloads.replicas(of: workloads.setting(replicas: 2, on: sts)) == 2)
        let daemonSet = yaml("{apiVersion: apps/v1, kind: DaemonSet, metadata: {name: d}, spec: {}}")
        #expect(workloads.replicas(of: daemonSet) == nil)
        #expect(workloads.setting(replicas: 5, on: daemonSet) == daemonSet)
        #expect(workloads.replicas(of: yaml("{apiVersion: batch/v1, kind: Job, metadata: {name: j}, spec: {parallelism: 3}}")) == nil)
    }

    @Test("preparing for a member drops status, server-set metadata, the node binding and the hub's revision number")
    func preparation() {
        let prepared = workloads.prepareForMember(deployment(status: "{readyReplicas: 3}"))
        #expect(prepared["status"] == nil)
        for field in ["uid", "resourceVersion", "generation", "creationTimestamp", "managedFields"] {
            #expect(prepared.metadata[field] == nil, "\(field)")
        }
        #expect(prepared.value(at: "spec", "template", "spec", "nodeName") == nil)
        #expect(prepared.value(at: "spec", "template", "spec", "containers") != nil)
        #expect(prepared.name == "web" && prepared.namespace == "shop")
        // The hub's revision number is the hub's; each member's API numbers its own.
        var numbered = deployment(status: "{}")
        numbered.annotations = ["deployment.kubernetes.io/revision": "4", "team": "a"]
        #expect(workloads.prepareForMember(numbered).annotations == ["team": "a"])

        let job = yaml(
            """
            apiVersion: batch/v1
            kind: Job
            metadata: {name: j}
            spec:
              selector: {matchLabels: {batch.kubernetes.io/controller-uid: u1}}
              template: {metadata: {labels: {batch.kubernetes.io/controller-uid: u1, app: j}}, spec: {}}
            """
        )
        let preparedJob = workloads.prepareForMember(job)
        #expect(preparedJob.value(at: "spec", "selector") == nil)
        #expect(preparedJob.value(at: "spec", "template", "metadata", "labels") == ["app": "j"])
    }

    @Test("Deployment health: observed generation, updated, old, available, deadline exceeded")
    func deploymentHealth() {
        let cases: [(String, Int, Health.State, String)] = [
            ("{observedGeneration: 1, replicas: 3, updatedReplicas: 3, availableReplicas: 3}", 2, .progressing, "observe generation 2"),
            ("{observedGeneration: 2, replicas: 3, updatedReplicas: 1, availableReplicas: 1}", 2, .progressing, "1 of 3 updated"),
            ("{observedGeneration: 2, replicas: 5, updatedReplicas: 3, availableReplicas: 3}", 2, .progressing, "2 old replicas"),
            (
                "{observedGeneration: 2, replicas: 3, updatedReplicas: 3, availableReplicas: 2}", 2, .progressing,
                "2 of 3 updated replicas are available"
            ),
            ("{observedGeneration: 2, replicas: 3, updatedReplicas: 3, availableReplicas: 3, readyReplicas: 3}", 2, .healthy, ""),
            (
                "{observedGeneration: 2, conditions: [{type: Progressing, status: \"False\", reason: ProgressDeadlineExceeded, message: \"ReplicaSet web-1 has timed out progressing.\"}]}",
                2, .degraded, "timed out progressing"
            ),
        ]
        for (status, generation, state, reason) in cases {
            let health = workloads.health(of: deployment(generation: generation, status: status))
            #expect(health.state == state, "\(status) -> \(health)")
            #expect(reason.isEmpty ? health.reason.isEmpty : health.reason.contains(reason), "\(status) -> \(health)")
        }
    }

    @Test("ReplicaSet, StatefulSet, DaemonSet and Job health")
    func otherHealth() {
        func rs(_ status: String) -> JSONValue {
            yaml("{apiVersion: apps/v1, kind: ReplicaSet, metadata: {name: r, generation: 1}, spec: {replicas: 2}, status: \(status)}")
        }
        #expect(workloads.health(of: rs("{observedGeneration: 1, readyReplicas: 2}")).state == .healthy)
        #expect(workloads.health(of: rs("{observedGeneration: 1, readyReplicas: 1}")).reason == "1 of 2 replicas ready")
        let failure = workloads.health(
            of: rs("{observedGeneration: 1, conditions: [{type: ReplicaFailure, status: \"True\", message: \"pods forbidden: quota\"}]}"))
        #expect(failure == Health(.degraded, "pods forbidden: quota"))
        let sts = yaml(
            "{apiVersion: apps/v1, kind: StatefulSet, metadata: {name: s, generation: 1}, spec: {replicas: 2}, status: {observedGeneration: 1, readyReplicas: 2, updatedReplicas: 1}}"
        )
        #expect(workloads.health(of: sts).state == .progressing)

        func ds(_ status: String) -> JSONValue {
            yaml("{apiVersion: apps/v1, kind: DaemonSet, metadata: {name: d, generation: 1}, spec: {}, status: \(status)}")
        }
        #expect(
            workloads.health(of: ds("{observedGeneration: 1, desiredNumberScheduled: 3, updatedNumberScheduled: 3, numberAvailable: 3}")).state
                == .healthy)
        #expect(
            workloads.health(of: ds("{observedGeneration: 1, desiredNumberScheduled: 3, updatedNumberScheduled: 3, numberAvailable: 1}")).state
                == .progressing)

        func job(_ status: String) -> JSONValue {
            yaml("{apiVersion: batch/v1, kind: Job, metadata: {name: j}, spec: {completions: 2}, status: \(status)}")
        }
        #expect(workloads.health(of: job("{succeeded: 1}")) == Health(.progressing, "1 of 2 completions"))
        #expect(workloads.health(of: job("{conditions: [{type: Complete, status: \"True\"}]}")).state == .healthy)
        #expect(
            workloads.health(of: job("{conditions: [{type: Failed, status: \"True\", reason: BackoffLimitExceeded}]}"))
                == Health(.degraded, "BackoffLimitExceeded"))
        let suspended = workloads.health(of: job("{conditions: [{type: Suspended, status: \"True\", reason: JobSuspended}]}"))
        #expect(suspended == Health(.progressing, "JobSuspended: the Job is suspended"))
        // At the hub: Suspended when every member's is, not while one still runs.
        let live = job("{}")
        func suspendedAtHub(_ other: Health) -> JSONValue? {
            let members = [
                MemberObjectStatus(cluster: "a", health: suspended, summary: [:]), MemberObjectStatus(cluster: "b", health: other, summary: [:]),
            ]
            return workloads.aggregateStatus(of: live, members: members)?["conditions"]?.arrayElements.first { $0["type"] == "Suspended" }
        }
        #expect(suspendedAtHub(suspended)?["reason"] == "SuspendedInEveryCluster")
        #expect(suspendedAtHub(Health(.progressing, "0 of 2 completions")) == nil)
    }

    @Test("summaries carry the counts, and aggregation sums them across members")
    func summaries() {
        let live = deployment(status: "{replicas: 334, readyReplicas: 300, availableReplicas: 300, updatedReplicas: 334}")
        let summary = workloads.summary(of: live)
        #expect(summary["readyReplicas"] == 300 && summary["replicas"] == 334 && summary["unavailableReplicas"] == 0)
        let members = [
            MemberObjectStatus(cluster: "a", health: .healthy, summary: ["readyReplicas": 334, "replicas": 334]),
            MemberObjectStatus(cluster: "b", health: .healthy, summary: ["readyReplicas": 333, "replicas": 333]),
            MemberObjectStatus(cluster: "c", health: .healthy, summary: ["readyReplicas": 333, "replicas": 333]),
        ]
        let total = workloads.aggregateStatus(of: live, members: members)
        #expect(total?["readyReplicas"] == 1000 && total?["replicas"] == 1000 && total?["availableReplicas"] == 0)
    }

    @Test(
        "a member's rollout past its progress deadline is the federated Deployment's, which kubectl rollout status fails on; other failures are MemberDegraded"
    )
    func federatedProgressDeadline() {
        let live = deployment(status: "{}")
        func progressing(_ degraded: Health) -> (reason: String?, message: String?) {
            let members = [
                MemberObjectStatus(cluster: "a", health: .healthy, summary: ["replicas": 3]),
                MemberObjectStatus(cluster: "b", health: degraded, summary: ["replicas": 3]),
            ]
            let condition = workloads.aggregateStatus(of: live, members: members)?["conditions"]?.arrayElements.first { $0["type"] == "Progressing" }
            return (condition?["reason"]?.stringValue, condition?["message"]?.stringValue)
        }
        let stuck = workloads.health(
            of: deployment(
                status:
                    "{observedGeneration: 1, conditions: [{type: Progressing, status: \"False\", reason: ProgressDeadlineExceeded, message: \"ReplicaSet \\\"web-2\\\" has timed out progressing.\"}]}"
            ))
        let timedOut = progressing(stuck)
        #expect(timedOut.reason == "ProgressDeadlineExceeded")
        #expect(timedOut.message == "cluster b: ProgressDeadlineExceeded: ReplicaSet \"web-2\" has timed out progressing.")
        #expect(progressing(Health(.degraded, "simulated failure")).reason == "MemberDegraded")
    }

    @Test("validation: selector required, template labels must match, replicas non-negative, a progress deadline beyond minReadySeconds")
    func validation() {
        #expect(workloads.validate(deployment(status: "{}")).isEmpty)
        let bad = yaml(
            """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web}
            spec: {replicas: -1, minReadySeconds: 30, progressDeadlineSeconds: 30, selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: other}}}}
            """
        )
        func daemonSet(_ rolling: String) -> JSONValue {
            yaml(
                "{apiVersion: apps/v1, kind: DaemonSet, metadata: {name: d}, spec: {selector: {matchLabels: {a: b}}, updateStrategy: {rollingUpdate: \(rolling)}, template: {metadata: {labels: {a: b}}}}}"
            )
        }
        #expect(workloads.validate(daemonSet("{maxUnavailable: 0}")).map(\.field) == ["spec.updateStrategy.rollingUpdate.maxUnavailable"])
        #expect(workloads.validate(daemonSet("{maxUnavailable: 0, maxSurge: 1}")).isEmpty)
        #expect(workloads.validate(daemonSet("{maxUnavailable: '0%', maxSurge: 0}")).count == 1)
        let indexed = yaml(
            "{apiVersion: batch/v1, kind: Job, metadata: {name: j}, spec: {completionMode: Indexed, parallelism: 2, backoffLimit: -1, template: {}}}")
        #expect(Set(workloads.validate(indexed).map(\.field)) == ["spec.completions", "spec.backoffLimit"])
        #expect(
            workloads.validate(yaml("{apiVersion: batch/v1, kind: Job, metadata: {name: j}, spec: {completionMode: Indexed, template: {}}}")).isEmpty)
        #expect(
            workloads.validate(yaml("{apiVersion: batch/v1, kind: Job, metadata: {name: j}, spec: {completionMode: Sometimes, template: {}}}")).map(
                \.field)
                == ["spec.completionMode"])
        let fields = workloads.validate(bad).map(\.field)
        #expect(fields.contains("spec.replicas") && fields.contains("spec.template.metadata.labels"))
        #expect(
            workloads.validate(bad).contains { $0.field == "spec.progressDeadlineSeconds" && $0.message.contains("greater than minReadySeconds") })
        #expect(
            workloads.validate(yaml("{apiVersion: apps/v1, kind: ReplicaSet, metadata: {name: r}, spec: {template: {}}}")).map(\.field) == [
                "spec.selector"
            ])
    }
}

@Suite("Pod table")
struct PodTableTests {
    @Test(
        "a Pod's STATUS column is what kubectl's own printer shows",
        arguments: [
            ("{phase: Pending, containerStatuses: [{name: a, ready: false, state: {waiting: {reason: ContainerCreating}}}]}", "ContainerCreating"),
            ("{phase: Running, containerStatuses: [{name: a, ready: true, state: {running: {}}}]}", "Running"),
            ("{phase: Succeeded, containerStatuses: [{name: a, ready: false, state: {terminated: {exitCode: 0, reason: Completed}}}]}", "Completed"),
            ("{phase: Failed, containerStatuses: [{name: a, ready: false, state: {terminated: {exitCode: 1, reason: Error}}}]}", "Error"),
            ("{phase: Failed, containerStatuses: [{name: a, ready: false, state: {terminated: {exitCode: 137, signal: 9}}}]}", "Signal:9"),
            ("{phase: Failed, containerStatuses: [{name: a, ready: false, state: {terminated: {exitCode: 2}}}]}", "ExitCode:2"),
            (
                "{phase: Running, conditions: [{type: Ready, status: 'False'}], containerStatuses: [{name: a, ready: false, state: {terminated: {exitCode: 0, reason: Completed}}}, {name: b, ready: true, state: {running: {}}}]}",
                "NotReady"
            ),
            ("{phase: Failed, reason: Evicted}", "Evicted"),
        ])
    func status(status: String, shown: String) throws {
        let pod = yaml("{apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {containers: [{name: a, image: busybox}]}, status: \(status)}")
        let column = try #require(PodsPlugin.pod.printerColumns.first { $0.name == "STATUS" })
        #expect(column.cell(pod) == .string(shown))
    }

    @Test("a Pod in its grace period shows Terminating, whatever its phase")
    func terminating() throws {
        let pod = yaml(
            "{apiVersion: v1, kind: Pod, metadata: {name: p, deletionTimestamp: '2026-12-03T12:00:30Z', deletionGracePeriodSeconds: 30}, spec: {containers: [{name: a, image: busybox}]}, status: {phase: Running, containerStatuses: [{name: a, ready: true, state: {running: {}}}]}}"
        )
        let column = try #require(PodsPlugin.pod.printerColumns.first { $0.name == "STATUS" })
        #expect(column.cell(pod) == .string("Terminating"))
    }
}
@Suite("Networking and config plugins")
struct NetworkingConfigPluginTests {
    @Test(
        "a Service's EXTERNAL-IP column is what kubectl prints for its type",
        arguments: [
            ("{type: ExternalName, externalName: db.example.com}", "{}", "db.example.com"),
            ("{type: LoadBalancer}", "{}", "<pending>"),
            ("{type: LoadBalancer, externalIPs: [203.0.113.9]}", "{loadBalancer: {ingress: [{ip: 198.18.0.4}]}}", "198.18.0.4,203.0.113.9"),
            ("{type: ClusterIP}", "{}", "<none>"),
            ("{type: NodePort, externalIPs: [203.0.113.9]}", "{}", "203.0.113.9"),
        ])
    func externalIPColumn(spec: String, status: String, shown: String) throws {
        let service = yaml("{apiVersion: v1, kind: Service, metadata: {name: s}, spec: \(spec), status: \(status)}")
        let column = try #require(NetworkingPlugin.service.printerColumns.first { $0.name == "EXTERNAL-IP" })
        #expect(column.cell(service) == .string(shown))
    }

    @Test(
        "Endpoints and EndpointSlices: kubectl's ENDPOINTS and PORTS cells; a slice port without a name gets \"\" and TCP, as kube-apiserver defaults it"
    )
    func endpoints() throws {
        let endpoints = yaml(
            """
            apiVersion: v1
            kind: Endpoints
            metadata: {name: web}
            subsets:
            - addresses: [{ip: 10.244.0.2}, {ip: 10.244.0.3}, {ip: 10.244.0.4}, {ip: 10.244.0.5}]
              notReadyAddresses: [{ip: 10.244.0.9}]
              ports: [{port: 8080}]
            """)
        let column = try #require(EndpointsPlugin.endpoints.printerColumns.first { $0.name == "ENDPOINTS" })
        #expect(column.cell(endpoints) == .string("10.244.0.2:8080,10.244.0.3:8080,10.244.0.4:8080 + 1 more..."))
        #expect(column.cell(yaml("{apiVersion: v1, kind: Endpoints, metadata: {name: e}}")) == .string("<none>"))
        #expect(
            EndpointsPlugin().normalizeOnWrite(endpoints).value(at: "subsets")?.arrayElements.first?["ports"] == [["port": 8080, "protocol": "TCP"]])

        let slice = EndpointsPlugin().normalizeOnWrite(
            yaml(
                """
                apiVersion: discovery.k8s.io/v1
                kind: EndpointSlice
                metadata: {name: web-abcde}
                addressType: IPv4
                endpoints: [{addresses: [10.244.0.2]}]
                ports: [{port: 8080}]
                """))
        #expect(slice["ports"] == [["name": "", "port": 8080, "protocol": "TCP"]])
        let ports = try #require(EndpointsPlugin.endpointSlice.printerColumns.first { $0.name == "PORTS" })
        #expect(ports.cell(slice) == .string("8080"))
        #expect(!EndpointsPlugin().propagates(EndpointsPlugin.endpoints) && !EndpointsPlugin().propagates(EndpointsPlugin.endpointSlice))
        #expect(BuiltinPlugins.memberCluster.kind(apiVersion: "discovery.k8s.io/v1", kind: "EndpointSlice") != nil)
        // The hub lists them (always empty) and refuses to hold any.
        let atHub = BuiltinPlugins.hub.plugin(apiVersion: "v1", kind: "Endpoints")
        #expect(BuiltinPlugins.hub.kind(apiVersion: "v1", kind: "Endpoints") != nil && !atHub.propagates(EndpointsPlugin.endpoints))
        #expect(
            atHub.validate(["apiVersion": "v1", "kind": "Endpoints", "metadata": ["name": "x"]]).map(\.description).joined().contains(
                "the hub holds no Endpoints"))
        #expect(
            !BuiltinPlugins.hub.propagatedKindNames.contains { $0.hasSuffix("/Endpoints") || $0.hasSuffix("/EndpointSlice") || $0.hasSuffix("/Node") }
        )
        #expect(BuiltinPlugins.agent.kindsAllowedByDefault.allSatisfy { $0.kind != "Endpoints" && $0.kind != "EndpointSlice" })
    }

    @Test("a Service's copy loses its cluster IP and node ports, unless headless; health waits for a load-balancer address")
    func service() {
        let service = yaml(
            """
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec: {type: LoadBalancer, clusterIP: 10.0.0.7, clusterIPs: [10.0.0.7], healthCheckNodePort: 31000, ports: [{port: 80, nodePort: 30080}]}
            status: {loadBalancer: {ingress: [{ip: 198.18.0.4}]}}
            """
        )
        let prepared = networking.prepareForMember(service)
        #expect(prepared.value(at: "spec", "clusterIP") == nil && prepared.value(at: "spec", "clusterIPs") == nil)
        #expect(prepared.value(at: "spec", "healthCheckNodePort") == nil)
        #expect(prepared.value(at: "spec", "ports") == [["port": 80]])
        #expect(prepared["status"] == nil)
        let headless = yaml("{apiVersion: v1, kind: Service, metadata: {name: h}, spec: {clusterIP: None}}")
        #expect(networking.prepareForMember(headless).value(at: "spec", "clusterIP") == "None")

        #expect(networking.health(of: service).state == .healthy)
        var pending = service
        pending[member: "status"] = [:]
        #expect(networking.health(of: pending) == Health(.progressing, "waiting for a load-balancer address"))
        #expect(networking.health(of: headless).state == .healthy)

        let members = [
            MemberObjectStatus(cluster: "us", health: .healthy, summary: networking.summary(of: service)),
            MemberObjectStatus(cluster: "eu", health: .healthy, summary: ["loadBalancer": ["ingress": [["ip": "198.19.0.9"]]]]),
        ]
        #expect(
            networking.aggregateStatus(of: service, members: members) == ["loadBalancer": ["ingress": [["ip": "198.19.0.9"], ["ip": "198.18.0.4"]]]])
        #expect(networking.validate(yaml("{apiVersion: v1, kind: Service, metadata: {name: s}, spec: {type: Weird, ports: [{port: 0}]}}")).count == 2)
    }

    @Test("Secret stringData folds into data, type defaults to Opaque; a Namespace loses its finalizers; phases order the apply")
    func config() {
        let secret = yaml("{apiVersion: v1, kind: Secret, metadata: {name: s}, data: {a: YQ==}, stringData: {b: hello}}")
        let folded = ConfigPlugin().normalizeOnWrite(secret)
        #expect(folded["stringData"] == nil)
        #expect(folded.value(at: "data", "b") == .string(Data("hello".utf8).base64EncodedString()))
        #expect(folded.value(at: "data", "a") == "YQ==")
        #expect(folded["type"] == "Opaque", "a Secret without a type is Opaque, as Kubernetes defaults it")
        #expect(
            ConfigPlugin().normalizeOnWrite(yaml("{apiVersion: v1, kind: Secret, metadata: {name: s}, type: kubernetes.io/tls}"))["type"]
                == "kubernetes.io/tls")
        #expect(
            configPlugin.validate(yaml("{apiVersion: v1, kind: Secret, metadata: {name: s}, data: {a: \"not base64!\"}}")).map(\.field) == ["data.a"])
        let namespace = yaml("{apiVersion: v1, kind: Namespace, metadata: {name: n}, spec: {finalizers: [kubernetes]}, status: {phase: Terminating}}")
        #expect(configPlugin.prepareForMember(namespace).value(at: "spec", "finalizers") == nil)
        #expect(configPlugin.health(of: namespace).state == .progressing)

        let registry = BuiltinPlugins.agent
        func phase(_ apiVersion: String, _ kind: String) -> ApplyPhase? {
            registry.kind(apiVersion: apiVersion, kind: kind).map { registry.plugin(apiVersion: apiVersion, kind: kind).applyPhase(of: $0) }
        }
        #expect(phase("v1", "Namespace") == .namespaces)
        #expect(phase("v1", "ConfigMap") == .configuration)
        #expect(phase("v1", "Service") == .networking)
        #expect(phase("apps/v1", "Deployment") == .workloads)
    }

    @Test("a kind without a plugin gets the generic one: health from Ready or Available, else Unknown")
    func generic() {
        let registry = BuiltinPlugins.hub
        let widget = yaml("{apiVersion: example.com/v1, kind: Widget, metadata: {name: w}, status: {conditions: [{type: Ready, status: \"True\"}]}}")
        let plugin = registry.plugin(for: widget)
        #expect(plugin.name == "generic")
        #expect(plugin.health(of: widget).state == .healthy)
        #expect(
            plugin.health(of: yaml("{kind: Widget, status: {conditions: [{type: Available, status: \"False\", message: broken}]}}"))
                == Health(.degraded, "Available is False: broken"))
        #expect(plugin.health(of: yaml("{kind: Widget}")).state == .unknown)
        #expect(
            plugin.prepareForMember(yaml("{kind: Widget, metadata: {name: w, uid: x}, status: {a: 1}}"))
                == yaml("{kind: Widget, metadata: {name: w}}"))
        #expect(
            registry.plugin(apiVersion: "core.tether.io/v1alpha1", kind: "Cluster").propagates(
                registry.kind(apiVersion: "core.tether.io/v1alpha1", kind: "Cluster")!) == false)
        #expect(BuiltinPlugins.agent.propagatedKindNames.contains("apps/v1/Deployment"))
        #expect(!BuiltinPlugins.memberCluster.propagatedKindNames.contains("/v1/Node"))
    }
}

@Suite("DefaultTolerationSeconds")
struct DefaultTolerationSecondsTests {
    func added(to tolerations: JSONValue) -> [String] {
        var pod: JSONValue = ["kind": "Pod", "spec": ["tolerations": tolerations]]
        KubernetesDefaults.defaultTolerationSeconds(in: &pod)
        return (pod.value(at: "spec", "tolerations")?.arrayElements ?? []).map {
            "\($0["key"]?.stringValue ?? "*")/\($0["effect"]?.stringValue ?? "*")/\($0["tolerationSeconds"]?.integerValue.map(String.init) ?? "forever")"
        }
    }

    @Test(
        "a Pod tolerates a not-ready or unreachable node for 300 s unless it already tolerates it: same key or every key, NoExecute or every effect")
    func tolerations() {
        #expect(added(to: []) == ["node.kubernetes.io/not-ready/NoExecute/300", "node.kubernetes.io/unreachable/NoExecute/300"])
        #expect(
            added(to: [["key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2]]) == [
                "node.kubernetes.io/unreachable/NoExecute/2", "node.kubernetes.io/not-ready/NoExecute/300",
            ])
        #expect(added(to: [["operator": "Exists"]]) == ["*/*/forever"], "tolerating everything")
        #expect(
            added(to: [["key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"]]).count == 3,
            "a NoSchedule toleration does not keep it on the node")
    }
}
