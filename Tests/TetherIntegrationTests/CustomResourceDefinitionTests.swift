import Foundation
import Testing
import TetherLocal
import TetherTestSupport

/// A kind no plugin knows, added at run time: a CustomResourceDefinition applied at the hub
/// with kubectl, its objects validated, printed and propagated to two members, then deleted everywhere.
@Suite("CustomResourceDefinitions at the hub", .timeLimit(.minutes(4)))
struct CustomResourceDefinitionTests {
    static let definition = """
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata:
          name: crontabs.stable.example.com
        spec:
          group: stable.example.com
          scope: Namespaced
          names: {plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct], categories: [all-crons]}
          versions:
          - name: v1
            served: true
            storage: true
            subresources:
              status: {}
              scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
            additionalPrinterColumns:
            - {name: Spec, type: string, jsonPath: .spec.cronSpec}
            - {name: Replicas, type: integer, jsonPath: .spec.replicas}
            - {name: Mode, type: string, jsonPath: .spec.mode, priority: 1}
            - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
            schema:
              openAPIV3Schema:
                type: object
                description: CronTab runs an image on a schedule.
                properties:
                  spec:
                    type: object
                    required: [cronSpec, image]
                    properties:
                      cronSpec: {type: string, pattern: '^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$'}
                      image: {type: string, minLength: 1}
                      replicas: {type: integer, minimum: 1, maximum: 10, default: 1}
                      mode: {type: string, enum: [Allow, Forbid, Replace], default: Allow}
                      labels: {type: object, additionalProperties: {type: string}}
                  status:
                    type: object
                    x-kubernetes-preserve-unknown-fields: true
        """

    static func cronTab(_ name: String, spec: String) -> String {
        """
        apiVersion: stable.example.com/v1
        kind: CronTab
        metadata: {name: \(name), namespace: default}
        spec: \(spec)
        """
    }

    @Test("apply a definition, create, validate, print, scale and propagate its objects, then delete it everywhere")
    func definitionLifecycle() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 1)
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            var members: [Kubectl] = []
            for name in ["m1", "m2"] {
                let allow = ["--also-allow-kind", "apiextensions.k8s.io/CustomResourceDefinition", "--also-allow-kind", "stable.example.com/*"]
                members.append(try await federation.startMember(name, hub: hub, hubPort: port, agentArguments: allow).kubectl)
            }
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.phase}=Ready", "cluster/m1", "cluster/m2", "--timeout=30s"])

            // The definition, then at once an object of its kind, as `kubectl apply -f dir/` sends them.
            try await hubctl.succeed(["apply", "-f", "-"], stdin: Self.definition)
            try await hubctl.succeed(["wait", "--for=condition=Established", "crd/crontabs.stable.example.com", "--timeout=10s"])
            try await hubctl.succeed(["apply", "-f", "-"], stdin: Self.cronTab("nightly", spec: "{cronSpec: '0 3 * * *', image: backup:1.2}"))

            let resources = try await hubctl.succeed(["api-resources", "--api-group=stable.example.com", "--no-headers"])
            #expect(resources.contains("crontabs") && resources.contains("ct") && resources.contains("CronTab"), "\(resources)")
            let explained = try await hubctl.succeed(["explain", "crontab.spec"])
            #expect(explained.contains("cronSpec") && explained.contains("replicas"), "\(explained)")

            // Printer columns, defaults applied on write, short names and categories.
            let table = try await hubctl.succeed(["get", "ct"])
            let header = table.split(separator: "\n").first.map(String.init) ?? ""
            #expect(header.split(separator: " ", omittingEmptySubsequences: true) == ["NAME", "SPEC", "REPLICAS", "AGE"], "\(table)")
            let row = table.split(separator: "\n").dropFirst().first.map(String.init) ?? ""
            #expect(row.hasPrefix("nightly") && row.contains("0 3 * * *") && row.contains(" 1 "), "\(table)")
            let wide = try await hubctl.succeed(["get", "all-crons", "-o", "wide"])
            #expect(wide.contains("MODE") && wide.contains("Allow"), "\(wide)")

            // Refusals: each 422 names the field, as kube-apiserver words it.
            let refusals: [(spec: String, expected: [String])] = [
                ("{cronSpec: '0 3 * * *', image: backup, replicas: 20}", ["spec.replicas", "less than or equal to 10"]),
                ("{cronSpec: 'every night', image: backup}", ["spec.cronSpec", "should match"]),
                ("{cronSpec: '0 3 * * *', image: backup, mode: Sometimes}", ["spec.mode", "Unsupported value"]),
                ("{cronSpec: '0 3 * * *'}", ["spec.image", "Required value"]),
                ("{cronSpec: 5, image: backup}", ["spec.cronSpec", "must be of type string"]),
            ]
            for (index, refusal) in refusals.enumerated() {
                let result = try await hubctl.run(["create", "-f", "-", "-v=6"], stdin: Self.cronTab("bad-\(index)", spec: refusal.spec))
                #expect(result.status != 0, "\(refusal.spec) was accepted")
                #expect(result.stderr.contains("422"), "\(refusal.spec): \(result.stderr.suffix(600))")
                for text in refusal.expected { #expect(result.stderr.contains(text), "\(refusal.spec): \(result.stderr.suffix(600))") }
            }
            let unknown = try await hubctl.run(
                ["apply", "-f", "-"], stdin: Self.cronTab("strict", spec: "{cronSpec: '0 3 * * *', image: backup, colour: blue}"))
            #expect(unknown.status != 0 && unknown.stderr.contains("unknown field \"spec.colour\""), "\(unknown)")

            // The scale subresource, as `kubectl scale` uses it.
            try await hubctl.succeed(["scale", "crontab/nightly", "--replicas=3"])
            #expect(try await hubctl.succeed(["get", "ct", "nightly", "-o", "jsonpath={.spec.replicas}"]) == "3")

            // Both members get the definition first, then the object, as the hub holds it.
            for member in members {
                try await member.succeed(
                    ["wait", "--for=condition=Established", "crd/crontabs.stable.example.com", "--timeout=60s"], within: .seconds(70))
                try await member.succeed(["wait", "--for=jsonpath={.spec.replicas}=3", "crontab/nightly", "--timeout=60s"], within: .seconds(70))
                #expect(try await member.succeed(["get", "ct", "nightly", "-o", "jsonpath={.spec.image} {.spec.mode}"]) == "backup:1.2 Allow")
            }

            // Deleting the definition deletes its objects at the hub, then both everywhere.
            try await hubctl.succeed(["delete", "crd", "crontabs.stable.example.com", "--timeout=30s"], within: .seconds(40))
            let gone = try await hubctl.run(["get", "crontabs.stable.example.com"])
            #expect(gone.status != 0 && gone.stderr.contains("the server doesn't have a resource type"), "\(gone)")
            for member in members {
                try await member.succeed(["wait", "--for=delete", "crd/crontabs.stable.example.com", "--timeout=60s"], within: .seconds(70))
                let leftover = try await member.run(["get", "crontabs.stable.example.com", "-A", "--no-headers"])
                #expect(leftover.status != 0 || leftover.stdout.isEmpty, "\(leftover)")
            }
        }
    }
}
