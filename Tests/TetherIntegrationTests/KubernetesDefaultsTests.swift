import Foundation
import Testing
import TetherLocal
import TetherTestSupport

/// The defaults kube-apiserver writes, which clients read back: filled in by the hub and the
/// simulated members alike, never over what the client set, and `kubectl diff` after `apply`
/// is empty.
@Suite("kube-apiserver's defaults", .timeLimit(.minutes(3)))
struct KubernetesDefaultsTests {
    static let manifests = """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        spec:
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec:
              containers:
              - {name: web, image: nginx:1.27, ports: [{containerPort: 80}]}
              - {name: side, image: busybox}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        spec:
          selector: {app: web}
          ports: [{port: 80}]
        ---
        apiVersion: batch/v1
        kind: Job
        metadata: {name: once}
        spec:
          backoffLimit: 2
          template:
            spec:
              restartPolicy: Never
              containers: [{name: a, image: busybox}]
        """

    static func check(_ kubectl: Kubectl, root: String) async throws {
        let file = root + "/defaults.yaml"
        try manifests.write(toFile: file, atomically: true, encoding: .utf8)
        try await kubectl.succeed(["apply", "-f", file])
        let deployment = try await kubectl.succeed([
            "get", "deployment", "web", "-o",
            "jsonpath={.spec.replicas} {.spec.strategy.type} {.spec.strategy.rollingUpdate.maxSurge} {.spec.revisionHistoryLimit} {.spec.progressDeadlineSeconds}",
        ])
        #expect(deployment == "1 RollingUpdate 25% 10 600", "\(deployment)")
        let pod = try await kubectl.succeed([
            "get", "deployment", "web", "-o",
            "jsonpath={.spec.template.spec.restartPolicy} {.spec.template.spec.dnsPolicy} {.spec.template.spec.terminationGracePeriodSeconds} {.spec.template.spec.containers[*].imagePullPolicy} {.spec.template.spec.containers[0].terminationMessagePath} {.spec.template.spec.containers[0].ports[0].protocol}",
        ])
        #expect(pod == "Always ClusterFirst 30 IfNotPresent Always /dev/termination-log TCP", "\(pod)")
        let service = try await kubectl.succeed([
            "get", "service", "web", "-o", "jsonpath={.spec.type} {.spec.sessionAffinity} {.spec.ports[0].protocol} {.spec.ports[0].targetPort}",
        ])
        #expect(service == "ClusterIP None TCP 80", "\(service)")
        let job = try await kubectl.succeed([
            "get", "job", "once", "-o", "jsonpath={.spec.backoffLimit} {.spec.completions} {.spec.parallelism} {.spec.template.spec.restartPolicy}",
        ])
        #expect(job == "2 1 1 Never", "what the client set stays: \(job)")
        // The selector kube-apiserver makes from the Job's uid, and the template labels it selects.
        let selector = try await kubectl.succeed([
            "get", "job", "once", "-o",
            #"jsonpath={.metadata.uid} {.spec.selector.matchLabels.batch\.kubernetes\.io/controller-uid} {.spec.template.metadata.labels.controller-uid} {.spec.template.metadata.labels.job-name}"#,
        ])
        let uid = selector.split(separator: " ").first.map(String.init) ?? ""
        #expect(!uid.isEmpty && selector == "\(uid) \(uid) \(uid) once", "\(selector)")
        let diff = try await kubectl.run(["diff", "-f", file])
        #expect(diff.status == 0 && diff.stdout.isEmpty, "\(diff)")
        try await kubectl.succeed(["apply", "-f", file])
        #expect(
            try await kubectl.succeed(["get", "deployment", "web", "-o", "jsonpath={.metadata.generation}"]) == "1", "a second apply changes nothing")
    }

    @Test("at the hub and on a simulated member: defaults filled in, what the client set kept, kubectl diff empty after apply")
    func defaults() async throws {
        try await withFederation { federation in
            _ = try await federation.startHub(heartbeatInterval: 1)
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            try await Self.check(hubctl, root: federation.root)
            let (_, member) = try await startSimcluster("m1", in: federation, nodes: 1)
            try await Self.check(member, root: federation.root)
        }
    }
}

/// One object of every built-in kind that can be applied: after `kubectl apply`, `kubectl diff`
/// of the same file is empty, at the hub and in a simulated member, with kubectl 1.20, 1.27,
/// 1.32 and 1.33.
@Suite("kubectl diff after apply, every built-in kind", .timeLimit(.minutes(3)))
struct EveryKindDiffTests {
    static let manifests = """
        apiVersion: v1
        kind: Namespace
        metadata: {name: team-a}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: settings, namespace: team-a}
        data: {mode: blue}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: creds, namespace: team-a}
        stringData: {password: hunter2}
        ---
        apiVersion: v1
        kind: ServiceAccount
        metadata: {name: builder, namespace: team-a}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: team-a}
        spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: one, namespace: team-a}
        spec: {containers: [{name: c, image: busybox:1.36, command: [sleep, "3600"]}]}
        ---
        apiVersion: v1
        kind: ResourceQuota
        metadata: {name: quota, namespace: team-a}
        spec: {hard: {pods: "20"}}
        ---
        apiVersion: v1
        kind: LimitRange
        metadata: {name: limits, namespace: team-a}
        spec: {limits: [{type: Container, default: {memory: 256Mi}}]}
        ---
        apiVersion: v1
        kind: PersistentVolumeClaim
        metadata: {name: data, namespace: team-a}
        spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web, namespace: team-a}
        spec:
          replicas: 2
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec: {containers: [{name: web, image: nginx:1.27, ports: [{containerPort: 8080}]}]}
        ---
        apiVersion: apps/v1
        kind: ReplicaSet
        metadata: {name: cache, namespace: team-a}
        spec:
          selector: {matchLabels: {app: cache}}
          template:
            metadata: {labels: {app: cache}}
            spec: {containers: [{name: redis, image: redis:7}]}
        ---
        apiVersion: apps/v1
        kind: StatefulSet
        metadata: {name: db, namespace: team-a}
        spec:
          serviceName: db
          selector: {matchLabels: {app: db}}
          template:
            metadata: {labels: {app: db}}
            spec: {containers: [{name: pg, image: postgres:15}]}
          volumeClaimTemplates:
          - metadata: {name: pgdata}
            spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
        ---
        apiVersion: apps/v1
        kind: DaemonSet
        metadata: {name: agent, namespace: team-a}
        spec:
          selector: {matchLabels: {app: agent}}
          template:
            metadata: {labels: {app: agent}}
            spec: {containers: [{name: a, image: busybox:1.36}]}
        ---
        apiVersion: batch/v1
        kind: Job
        metadata: {name: once, namespace: team-a}
        spec:
          template:
            spec: {restartPolicy: Never, containers: [{name: a, image: busybox:1.36}]}
        ---
        apiVersion: batch/v1
        kind: CronJob
        metadata: {name: nightly, namespace: team-a}
        spec:
          schedule: "0 1 * * *"
          jobTemplate:
            spec:
              template:
                spec: {restartPolicy: OnFailure, containers: [{name: a, image: busybox:1.36}]}
        ---
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata: {name: web, namespace: team-a}
        spec:
          rules:
          - host: web.example.com
            http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: web, namespace: team-a}
        spec:
          podSelector: {matchLabels: {app: web}}
          ingress: [{from: [{podSelector: {matchLabels: {role: client}}}], ports: [{port: 8080}]}]
        ---
        apiVersion: policy/v1
        kind: PodDisruptionBudget
        metadata: {name: web, namespace: team-a}
        spec: {minAvailable: 1, selector: {matchLabels: {app: web}}}
        ---
        apiVersion: autoscaling/v2
        kind: HorizontalPodAutoscaler
        metadata: {name: web, namespace: team-a}
        spec:
          scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
          minReplicas: 2
          maxReplicas: 6
          metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}}]
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: Role
        metadata: {name: reader, namespace: team-a}
        rules: [{apiGroups: [""], resources: [pods], verbs: [get, list]}]
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: RoleBinding
        metadata: {name: reader, namespace: team-a}
        roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
        subjects: [{kind: ServiceAccount, name: builder, namespace: team-a}]
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata: {name: team-a-reader}
        rules: [{apiGroups: [apps], resources: [deployments], verbs: [get]}]
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRoleBinding
        metadata: {name: team-a-reader}
        roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: team-a-reader}
        subjects: [{kind: ServiceAccount, name: builder, namespace: team-a}]
        """

    /// The kinds above, by the names `kubectl get` takes.
    static let kinds = [
        "namespace", "configmap", "secret", "serviceaccount", "service", "pod", "resourcequota", "limitrange", "persistentvolumeclaim",
        "deployment", "replicaset", "statefulset", "daemonset", "job", "cronjob", "ingress", "networkpolicy", "poddisruptionbudget",
        "horizontalpodautoscaler", "role", "rolebinding", "clusterrole", "clusterrolebinding",
    ]

    static func check(_ kubectl: Kubectl, file: String, where place: String) async throws {
        try await kubectl.succeed(["apply", "-f", file])
        // Every kind is there, and a second apply changes nothing.
        let listed = try await kubectl.succeed(["get", "-n", "team-a", Self.kinds.joined(separator: ","), "-o", "name"])
        #expect(listed.split(separator: "\n").count >= Self.kinds.count, "\(place): \(listed)")
        let diff = try await kubectl.run(["diff", "-f", file])
        #expect(diff.status == 0 && diff.stdout.isEmpty, "\(place): \(diff.stdout.prefix(3000)) \(diff.stderr.prefix(1000))")
        let again = try await kubectl.succeed(["apply", "-f", file])
        // As against kube-apiserver: a Secret's `stringData` is folded into `data` on write, so
        // kubectl sends it again each time; a PodDisruptionBudget's selector has the `replace`
        // patch strategy, which kubectl always sends whole; kubectl 1.20 knows no batch/v1
        // CronJob, so it sends a merge patch that replaces lists the server filled defaults in; a
        // LimitRange's `limits` list has no merge key either, and the API defaults a Container
        // item's `defaultRequest` from its `default`, so kubectl sends the list again.
        let alwaysConfigured = [
            "secret/creds configured", "poddisruptionbudget.policy/web configured", "cronjob.batch/nightly configured",
            "limitrange/limits configured",
        ]
        let changed = again.split(separator: "\n").filter { !$0.hasSuffix(" unchanged") && !alwaysConfigured.contains(String($0)) }
        #expect(changed.isEmpty, "\(place): a second apply changed \(changed)")
    }

    @Test("at the hub with a member attached, and on a simulated member", arguments: Kubectl.Flavor.allCases)
    func everyKind(flavor: Kubectl.Flavor) async throws {
        try await withFederation { federation in
            let file = federation.root + "/every-kind.yaml"
            try Self.manifests.write(toFile: file, atomically: true, encoding: .utf8)
            let (hub, port) = try await federation.startHub(heartbeatInterval: 1)
            _ = try await federation.startMember("m1", hub: hub, hubPort: port)
            let hubctl = try Kubectl(flavor, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            try await Self.check(hubctl, file: file, where: "hub")
            let (_, modern) = try await startSimcluster("m2", in: federation, nodes: 1)
            let member = try Kubectl(flavor, kubeconfig: modern.kubeconfig, home: federation.root + "/home-m2")
            try await Self.check(member, file: file, where: "member m2")
        }
    }
}
