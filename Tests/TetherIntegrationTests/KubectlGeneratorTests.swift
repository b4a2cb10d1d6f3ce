import Foundation
import Testing
import TetherLocal
import TetherTestSupport

/// kubectl's generator commands, which send protobuf (kubectl 1.32) or JSON (kubectl 1.20),
/// against the hub with a member attached and against a simulated member: each object must
/// arrive with the fields the command set, and what the hub federates must reach the member.
@Suite("kubectl generator commands", .timeLimit(.minutes(4)))
struct KubectlGeneratorTests {
    /// Runs the generators against `kubectl`, then checks each object's fields there.
    /// kubectl 1.20 makes PodDisruptionBudgets as policy/v1beta1, which is not served (`legacy`).
    static func generate(_ kubectl: Kubectl, suffix: String, legacy: Bool = false) async throws {
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
        try await kubectl.succeed(["create", "quota", "quota\(suffix)", "--hard=cpu=4,pods=10"])
        try await kubectl.succeed(["create", "role", "reader\(suffix)", "--verb=get,list", "--resource=configmaps,deployments.apps"])
        try await kubectl.succeed(["create", "rolebinding", "reader\(suffix)", "--role=reader\(suffix)", "--serviceaccount=default:robot\(suffix)"])
        let quota = try await kubectl.succeed(["get", "quota", "quota\(suffix)", "-o", "jsonpath={.spec.hard.cpu} {.spec.hard.pods}"])
        #expect(quota == "4 10", "\(quota)")
        if !legacy {
            try await kubectl.succeed(["create", "poddisruptionbudget", "pdb\(suffix)", "--selector=app=\(deployment)", "--min-available=50%"])
            let pdb = try await kubectl.succeed([
                "get", "pdb", "pdb\(suffix)", "-o", "jsonpath={.spec.minAvailable} {.spec.selector.matchLabels.app}",
            ])
            #expect(pdb == "50% \(deployment)", "\(pdb)")
        }
        let role = try await kubectl.succeed(["get", "role", "reader\(suffix)", "-o", "jsonpath={.rules[1].apiGroups[0]} {.rules[1].verbs}"])
        #expect(role == "apps [\"get\",\"list\"]", "\(role)")
        let binding = try await kubectl.succeed([
            "get", "rolebinding", "reader\(suffix)", "-o", "jsonpath={.roleRef.kind}/{.roleRef.name} {.subjects[0].kind}/{.subjects[0].name}",
        ])
        #expect(binding == "Role/reader\(suffix) ServiceAccount/robot\(suffix)", "\(binding)")
    }

    @Test("kubectl 1.32 (protobuf) and 1.20 (JSON) generators against a simulated member: every field the command set is there")
    func againstMember() async throws {
        try await withFederation { federation in
            let (_, member) = try await startSimcluster("m1", in: federation, nodes: 1)
            try await Self.generate(member, suffix: "")
            try await member.succeed(["create", "cronjob", "nightly", "--image=busybox", "--schedule=0 3 * * *", "--", "date"])
            let cron = try await member.succeed([
                "get", "cronjob", "nightly", "-o", "jsonpath={.spec.schedule} {.spec.jobTemplate.spec.template.spec.containers[0].image}",
            ])
            #expect(cron == "0 3 * * * busybox", "\(cron)")
            let legacy = try Kubectl(.legacy, kubeconfig: member.kubeconfig, home: federation.root + "/home-legacy")
            try await Self.generate(legacy, suffix: "-old", legacy: true)
        }
    }

    @Test("generators against the hub: the objects are made there and reach the member")
    func againstHub() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 1)
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            let member = try await federation.startMember("m1", hub: hub, hubPort: port).kubectl
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.phase}=Ready", "cluster/m1", "--timeout=30s"])
            try await Self.generate(hubctl, suffix: "")
            try await hubctl.succeed(["create", "cronjob", "nightly", "--image=busybox", "--schedule=0 3 * * *", "--", "date"])
            for object in [
                "deployment/web", "job/once", "service/svc", "service/web", "ingress/ing", "cronjob/nightly", "serviceaccount/robot",
                "resourcequota/quota", "poddisruptionbudget/pdb",
            ] {
                try await member.succeed(["wait", "--for=create", object, "--timeout=60s"], within: .seconds(70))
            }
            let copy = try await member.succeed([
                "get", "deployment", "web", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image}",
            ])
            #expect(copy == "6 nginx:1.27", "\(copy)")
            // Writing RBAC grants access: an agent does it only when its allow-list names it, and says so.
            try await hubctl.succeed([
                "wait", "--for=jsonpath={.status.clusters[0].state}=failed", "propagation/role.default.reader", "--timeout=30s",
            ])
            let refusal = try await hubctl.succeed(["get", "propagation", "role.default.reader", "-o", "jsonpath={.status.lastError}"])
            #expect(refusal.contains("allow-list"), "\(refusal)")
            #expect(try await member.run(["get", "role", "reader"]).status != 0)
        }
    }
}
