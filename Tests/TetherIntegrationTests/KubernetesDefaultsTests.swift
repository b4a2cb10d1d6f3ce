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
