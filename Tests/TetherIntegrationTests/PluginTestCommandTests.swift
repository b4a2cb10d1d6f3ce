import Foundation
import Testing
import TetherLocal
import TetherTestSupport

/// `tetherctl plugin test` as an operator runs it: the committed customizations pass their own
/// Karmada-format tests, and a wrong expectation, a hostile script and a compiled-in kind are each reported.
@Suite("tetherctl plugin test", .timeLimit(.minutes(2)))
struct PluginTestCommandTests {
    static let customizations = repositoryRoot + "/Plugins/Customizations"

    @Test("the five committed customizations pass their own tests, in text and JSON")
    func committedCustomizations() async throws {
        let text = try await run("tetherctl", ["plugin", "test", Self.customizations])
        #expect(text.status == 0, "\(text.output)")
        for kind in ["CloneSet", "Rollout", "Certificate", "Kafka", "Prometheus"] { #expect(text.output.contains(" \(kind))"), "\(kind)") }
        #expect(!text.output.contains("FAIL"))
        let json = try await run("tetherctl", ["plugin", "test", Self.customizations, "--output", "json"])
        #expect(json.status == 0)
        let reports = try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [[String: Any]] ?? []
        #expect(reports.count == 5)
        let checks = reports.flatMap { $0["checks"] as? [[String: Any]] ?? [] }
        #expect(checks.count >= 30 && checks.allSatisfy { $0["passed"] as? Bool == true })
        #expect(checks.contains { ($0["microsecondsPerCall"] as? Double ?? 0) > 0 })
    }

    @Test("a wrong expectation fails with what came back; a script that never ends is stopped and reported")
    func failures() async throws {
        let scratch = try ScratchDirectory("plugin-test")
        let kind = scratch.file("Prometheus")
        try FileManager.default.copyItem(atPath: Self.customizations + "/monitoring.coreos.com/v1/Prometheus", toPath: kind)
        let cases = kind + "/testdata/prometheus-test.yaml"
        let original = try String(contentsOfFile: cases, encoding: .utf8)
        try original.replacingOccurrences(of: "output: {replica: 1}", with: "output: {replica: 5}").write(
            toFile: cases, atomically: true, encoding: .utf8)
        let wrong = try await run("tetherctl", ["plugin", "test", kind])
        #expect(wrong.status == 1, "\(wrong.output)")
        #expect(
            wrong.output.contains("FAIL  InterpretReplica  one replica when none is named") && wrong.output.contains("replica is 1, expected 5"),
            "\(wrong.output)")

        let customization = kind + "/customizations.yaml"
        let script = try String(contentsOfFile: customization, encoding: .utf8)
        try script.replacingOccurrences(
            of: "for _, condition in ipairs((observedObj.status or {}).conditions or {}) do",
            with: "while true do end\n          for _, condition in ipairs((observedObj.status or {}).conditions or {}) do"
        )
        .write(toFile: customization, atomically: true, encoding: .utf8)
        let started = ContinuousClock.now
        let looping = try await run("tetherctl", ["plugin", "test", kind, "--repeats", "1"], within: .seconds(60))
        #expect(looping.status == 1)
        #expect(looping.output.contains("FAIL  InterpretHealth") && looping.output.contains("stopped after"), "\(looping.output)")
        #expect(ContinuousClock.now - started < .seconds(30))

        let usage = try await run("tetherctl", ["plugin", "test"])
        #expect(usage.status == 64 && usage.output.contains("name a customization file or directory"), "\(usage.output)")
    }

    @Test(
        "--crd makes an object from the definition's schema and runs every operation on it; a definition whose rules no made object meets fails, saying why"
    )
    func samplesFromDefinitions() async throws {
        let scratch = try ScratchDirectory("plugin-test-crd")
        let definition = scratch.file("rollouts.yaml")
        let schema = """
            apiVersion: apiextensions.k8s.io/v1
            kind: CustomResourceDefinition
            metadata: {name: rollouts.argoproj.io}
            spec:
              group: argoproj.io
              scope: Namespaced
              names: {kind: Rollout, plural: rollouts}
              versions:
              - name: v1alpha1
                served: true
                storage: true
                schema:
                  openAPIV3Schema:
                    type: object
                    properties:
                      spec:
                        type: object
                        required: [selector]
                        properties:
                          replicas: {type: integer, minimum: 0}
                          selector: {type: object, properties: {matchLabels: {type: object, additionalProperties: {type: string}}}}
                          template: {type: object, x-kubernetes-preserve-unknown-fields: true}
                          strategy:
                            type: object
                            properties:
                              canary:
                                type: object
                                properties:
                                  steps: {type: array, items: {type: object, properties: {setWeight: {type: integer, minimum: 0, maximum: 100}}}}
                      status: {type: object, x-kubernetes-preserve-unknown-fields: true}
            """
        try schema.write(toFile: definition, atomically: true, encoding: .utf8)
        let rollout = Self.customizations + "/argoproj.io/v1alpha1/Rollout"
        let made = try await run("tetherctl", ["plugin", "test", rollout, "--crd", definition])
        #expect(made.status == 0, "\(made.output)")
        #expect(made.output.contains("PASS  generate  Rollout from rollouts.argoproj.io (\(definition))"), "\(made.output)")
        for operation in ["InterpretReplica", "ReviseReplica", "InterpretHealth", "InterpretStatus", "AggregateStatus"] {
            #expect(made.output.contains("PASS  \(operation)  sample 1 (sample)"), "\(operation): \(made.output)")
        }

        let impossible = scratch.file("impossible.yaml")
        try schema.replacingOccurrences(of: "replicas: {type: integer, minimum: 0}", with: "replicas: {type: integer, minimum: 200, maximum: 100}")
            .write(toFile: impossible, atomically: true, encoding: .utf8)
        let refused = try await run("tetherctl", ["plugin", "test", rollout, "--crd", impossible])
        #expect(refused.status == 1, "\(refused.output)")
        #expect(
            refused.output.contains("FAIL  generate  rollouts.argoproj.io (\(impossible))")
                && refused.output.contains("give an object of Rollout with --sample"),
            "\(refused.output)")
    }

    @Test("a compiled-in kind through its operations on a sample")
    func compiledPlugin() async throws {
        let scratch = try ScratchDirectory("plugin-test")
        try """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web, namespace: shop}
        spec:
          replicas: 3
          selector: {matchLabels: {app: web}}
          template: {metadata: {labels: {app: web}}, spec: {containers: [{name: web, image: nginx}]}}
        """.write(toFile: scratch.file("deploy.yaml"), atomically: true, encoding: .utf8)
        let result = try await run("tetherctl", ["plugin", "test", "--kind", "apps/v1/Deployment", "--sample", scratch.file("deploy.yaml")])
        #expect(result.status == 0, "\(result.output)")
        #expect(
            result.output.contains("PASS  replicas") && result.output.contains("PASS  health") && result.output.contains("plugin workloads"),
            "\(result.output)")
        let unknown = try await run("tetherctl", ["plugin", "test", "--kind", "example.com/v1/Nothing", "--sample", scratch.file("deploy.yaml")])
        #expect(unknown.status == 64 && unknown.output.contains("no compiled-in plugin serves it"), "\(unknown.output)")
    }

    @Test("an out-of-process plugin started from its directory, checked on a sample, stopped")
    func externalPlugin() async throws {
        let scratch = try ScratchDirectory("plugin-test")
        try "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: ns}\nspec: {size: 3}\nstatus: {readyCount: 1}\n"
            .write(toFile: scratch.file("widget.yaml"), atomically: true, encoding: .utf8)
        let result = try await run(
            "tetherctl", ["plugin", "test", "--plugin", repositoryRoot + "/Plugins/External/python-widgets", "--sample", scratch.file("widget.yaml")])
        #expect(result.status == 0, "\(result.output)")
        #expect(
            result.output.contains("plugin python-widgets") && result.output.contains("PASS  health") && result.output.contains("PASS  replicas"),
            "\(result.output)")
    }
}
