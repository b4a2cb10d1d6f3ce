import BuiltinPlugins
import FederationPlugin
import Testing
import TetherJSON
import TetherModel
import TetherPlugin
import WorkloadsPlugin

@Suite("kind schemas")
struct SchemaTests {
    @Test("a valid Deployment has no findings; nulls fit anything; a probe is checked like the rest")
    func validDeployment() {
        let object = yaml(
            """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web, creationTimestamp: null, labels: {app: web}}
            spec:
              replicas: 3
              selector: {matchLabels: {app: web}}
              strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 25%, maxUnavailable: 1}}
              template:
                metadata: {labels: {app: web}}
                spec: {containers: [{name: web, image: nginx, readinessProbe: {httpGet: {path: /ready, port: http}, periodSeconds: 5}}]}
            status: {replicas: 3, conditions: [{type: Available, status: "True", lastTransitionTime: "2026-12-01T10:00:00Z"}]}
            """
        )
        #expect(WorkloadsPlugin.deployment.schema.check(object).isEmpty)
        // The status is modelled as Kubernetes numbers it (for protobuf answers): what it lacks is unknown.
        var unknown = object
        unknown[member: "status"]?[member: "whatever"] = 1
        #expect(WorkloadsPlugin.deployment.schema.check(unknown).unknownFields == ["status.whatever"])
        var probe = object
        probe[member: "spec"]?[member: "template"]?[member: "spec"]?[member: "containers"] = yaml("[{name: web, readinessProbe: {anything: 1}}]")
        #expect(WorkloadsPlugin.deployment.schema.check(probe).unknownFields == ["spec.template.spec.containers[0].readinessProbe.anything"])
    }

    @Test("the Pod spec is modelled: a misspelt container field is found by its path, a quantity may be a number")
    func podSpec() {
        let object = yaml(
            """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web}
            spec:
              selector: {matchLabels: {app: web}}
              template:
                metadata: {labels: {app: web}}
                spec:
                  containers: [{name: web, image: nginx, imagePulPolicy: Always, resources: {limits: {cpu: 1, memory: 1Gi}}}]
            """
        )
        #expect(WorkloadsPlugin.deployment.schema.check(object).unknownFields == ["spec.template.spec.containers[0].imagePulPolicy"])
    }

    @Test("unknown fields are named by their dotted path; wrong types say what was expected")
    func findings() {
        let object = yaml(
            """
            apiVersion: apps/v1
            kind: ReplicaSet
            metadata: {name: web, labels: {app: 3}, colour: blue}
            spec:
              replica: 3
              replicas: three
              selector: {matchExpressions: [{key: a, operator: In, values: [x], extra: 1}]}
            surprise: true
            """
        )
        let findings = WorkloadsPlugin.replicaSet.schema.check(object)
        #expect(findings.unknownFields == ["metadata.colour", "spec.replica", "spec.selector.matchExpressions[0].extra", "surprise"])
        #expect(findings.wrongTypes == [.init(path: "metadata.labels.app", expected: "string"), .init(path: "spec.replicas", expected: "integer")])
    }

    @Test("every built-in kind has a schema that accepts a minimal object of its kind")
    func everyKind() {
        for kind in BuiltinPlugins.hub.kinds + [NodePlugin.node] {
            let object: JSONValue = ["apiVersion": .string(kind.apiVersion), "kind": .string(kind.kind), "metadata": ["name": "x"]]
            #expect(kind.schema.check(object).isEmpty, "\(kind.kind)")
            #expect(kind.fields != nil, "\(kind.kind) declares its fields")
        }
    }
}
