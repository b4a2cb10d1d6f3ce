import Foundation
import Testing
import TetherLocal
import TetherSecurity
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
                      cronSpec: {type: string, description: "When the job runs, in cron's five fields.", pattern: '^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$'}
                      image: {type: string, minLength: 1}
                      replicas: {type: integer, minimum: 1, maximum: 10, default: 1}
                      configName: {type: string}
                      timeout: {type: string, format: duration}
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
            // The schema's descriptions are the fields' in `explain`.
            #expect(explained.contains("When the job runs, in cron's five fields."), "\(explained)")

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

    @Test("a definition serving v1beta1 and v1: objects sent at either are stored at v1, read at either, checked by their version's schema")
    func twoServedVersions() async throws {
        try await withFederation { federation in
            _ = try await federation.startHub(heartbeatInterval: 1)
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            let beta = """
                  - name: v1beta1
                    served: true
                    storage: false
                    schema:
                      openAPIV3Schema:
                        type: object
                        properties:
                          spec:
                            type: object
                            required: [cronSpec, image]
                            properties:
                              cronSpec: {type: string}
                              image: {type: string, minLength: 1}
                              replicas: {type: integer, minimum: 1, maximum: 3, default: 1}
                          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
                """
            let definition = Self.definition.replacingOccurrences(of: "  versions:\n", with: "  versions:\n" + beta + "\n")
            try await hubctl.succeed(["apply", "-f", "-"], stdin: definition)
            try await hubctl.succeed(["wait", "--for=condition=Established", "crd/crontabs.stable.example.com", "--timeout=10s"])
            let versions = try await hubctl.succeed(["api-versions"])
            #expect(versions.contains("stable.example.com/v1\n") && versions.contains("stable.example.com/v1beta1\n"), "\(versions)")

            let sentAtBeta = Self.cronTab("nightly", spec: "{cronSpec: '0 3 * * *', image: backup:1.2}")
                .replacingOccurrences(of: "stable.example.com/v1", with: "stable.example.com/v1beta1")
            try await hubctl.succeed(["apply", "-f", "-"], stdin: sentAtBeta)
            // Applied again unchanged: the client compares what it applied with the v1beta1 view.
            let again = try await hubctl.succeed(["apply", "-f", "-"], stdin: sentAtBeta)
            #expect(again.contains("unchanged"), "\(again)")
            // The preferred version is the storage version; both show the same object.
            let preferred = try await hubctl.succeed(["get", "ct", "nightly", "-o", "jsonpath={.apiVersion} {.spec.image} {.spec.mode}"])
            #expect(preferred == "stable.example.com/v1 backup:1.2 Allow", "\(preferred)")
            let atBeta = try await hubctl.succeed([
                "get", "crontabs.v1beta1.stable.example.com", "nightly", "-o", "jsonpath={.apiVersion} {.spec.image}",
            ])
            #expect(atBeta == "stable.example.com/v1beta1 backup:1.2", "\(atBeta)")

            // v1beta1's own bound (3) refuses what v1 (10) would take.
            let refused = try await hubctl.run(
                ["create", "-f", "-", "-v=6"],
                stdin: Self.cronTab("big", spec: "{cronSpec: '0 3 * * *', image: backup, replicas: 5}")
                    .replacingOccurrences(of: "stable.example.com/v1", with: "stable.example.com/v1beta1"))
            #expect(refused.status != 0 && refused.stderr.contains("422") && refused.stderr.contains("spec.replicas"), "\(refused)")

            // A webhook strategy needs its webhook (conversionByWebhook runs one).
            let webhook = definition.replacingOccurrences(
                of: "  scope: Namespaced\n", with: "  scope: Namespaced\n  conversion: {strategy: Webhook}\n")
            let result = try await hubctl.run(["apply", "-f", "-"], stdin: webhook)
            #expect(
                result.status != 0 && result.stderr.contains("spec.conversion.webhook: Required value: required when strategy is set to Webhook"),
                "\(result)")
        }
    }

    @Test(
        "validation rules (x-kubernetes-validations) are enforced after defaulting, with their message, field path and reason, transition rules on updates; a duration field typed by its format; a rule outside the CEL Tether evaluates is accepted with a warning"
    )
    func validationRules() async throws {
        try await withFederation { federation in
            _ = try await federation.startHub(heartbeatInterval: 1)
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            // At the indentation of `spec`'s own keys in the definition above.
            let rules = """
                            x-kubernetes-validations:
                            - {rule: "self.replicas <= 5 || self.mode == 'Replace'", message: "more than 5 replicas need mode Replace"}
                            - {rule: "!has(self.configName) || self.configName.startsWith(self.image.split(':')[0])", fieldPath: .configName, reason: FieldValueForbidden}
                            - {rule: "self.?configName.orValue('x').size() > 0 && isURL('https://example.com/' + self.image)", message: "image must be a URL path"}
                            - {rule: "!format.dns1123Label().validate(self.image.split(':')[0]).hasValue()", message: "image name must be a DNS label"}
                            - {rule: "'%s:%d'.format([self.image, self.replicas]).size() < 200", message: "image too long"}
                            - {rule: "!has(self.labels) || self.labels.all(key, value, value.size() <= 8 || key.startsWith('long-'))", message: "label values over 8 characters need a key starting long-"}
                            - {rule: "cel.bind(r, self.replicas, r <= 10)"}
                            - {rule: "self.replicas >= oldSelf.replicas", message: "replicas may only grow"}
                            - {rule: "!has(self.timeout) || self.timeout <= duration('1h')", message: "timeout at most an hour"}
                """
            let required = "            required: [cronSpec, image]\n"
            let definition = Self.definition.replacingOccurrences(of: required, with: required + rules + "\n")
            #expect(definition.contains("x-kubernetes-validations"))
            let applied = try await hubctl.run(["apply", "-f", "-"], stdin: definition)
            #expect(applied.status == 0, "\(applied)")
            // Said for the rule Tether leaves unenforced (local bindings are outside the CEL of validation rules), and only that one.
            #expect(applied.stderr.contains("cel.bind(r") && applied.stderr.contains("is not enforced"), "\(applied.stderr)")
            #expect(!applied.stderr.contains("isURL(") && !applied.stderr.contains("format"), "\(applied.stderr)")
            #expect(!applied.stderr.contains("self.labels.all"), "\(applied.stderr)")
            #expect(!applied.stderr.contains("oldSelf"), "\(applied.stderr)")
            try await hubctl.succeed(["wait", "--for=condition=Established", "crd/crontabs.stable.example.com", "--timeout=10s"])

            let tooMany = try await hubctl.run(
                ["create", "-f", "-"], stdin: Self.cronTab("big", spec: "{cronSpec: '0 3 * * *', image: backup, replicas: 8}"))
            #expect(
                tooMany.status != 0 && tooMany.stderr.contains("spec: Invalid value: \"object\": more than 5 replicas need mode Replace"),
                "\(tooMany)")
            try await hubctl.succeed(
                ["create", "-f", "-"], stdin: Self.cronTab("replacing", spec: "{cronSpec: '0 3 * * *', image: backup, replicas: 8, mode: Replace}"))
            // Optionals and the URL library are enforced: an image that is no URL path is refused.
            let notAPath = try await hubctl.run(
                ["create", "-f", "-"], stdin: Self.cronTab("escaped", spec: "{cronSpec: '0 3 * * *', image: 'backup%zz'}"))
            #expect(notAPath.status != 0 && notAPath.stderr.contains("image must be a URL path"), "\(notAPath)")
            // And the format library: an image name that is no DNS label.
            let upper = try await hubctl.run(
                ["create", "-f", "-"], stdin: Self.cronTab("upper", spec: "{cronSpec: '0 3 * * *', image: 'Backup:1'}"))
            #expect(upper.status != 0 && upper.stderr.contains("image name must be a DNS label"), "\(upper)")
            // And a two-variable comprehension over a map's keys and values.
            let longLabel = try await hubctl.run(
                ["create", "-f", "-"],
                stdin: Self.cronTab("labelled", spec: "{cronSpec: '0 3 * * *', image: backup, labels: {team: platform-engineering}}"))
            #expect(longLabel.status != 0 && longLabel.stderr.contains("label values over 8 characters need a key starting long-"), "\(longLabel)")
            try await hubctl.succeed(
                ["create", "-f", "-"],
                stdin: Self.cronTab("labelled", spec: "{cronSpec: '0 3 * * *', image: backup, labels: {long-team: platform-engineering, tier: db}}"))
            // The default (mode Allow, replicas 1) is in place when the rule runs.
            try await hubctl.succeed(["create", "-f", "-"], stdin: Self.cronTab("small", spec: "{cronSpec: '0 3 * * *', image: backup}"))

            let named = try await hubctl.run(
                ["create", "-f", "-"], stdin: Self.cronTab("named", spec: "{cronSpec: '0 3 * * *', image: 'backup:1.2', configName: other}"))
            #expect(named.status != 0 && named.stderr.contains("spec.configName: Forbidden: failed rule:"), "\(named)")
            try await hubctl.succeed(
                ["create", "-f", "-"], stdin: Self.cronTab("named", spec: "{cronSpec: '0 3 * * *', image: 'backup:1.2', configName: backup-settings}")
            )
            // `format: duration` makes the field a duration to the rule, as kube-apiserver types it: 90m is more than 1h.
            let slow = try await hubctl.run(
                ["create", "-f", "-"], stdin: Self.cronTab("slow", spec: "{cronSpec: '0 3 * * *', image: backup, timeout: 90m}"))
            #expect(slow.status != 0 && slow.stderr.contains("timeout at most an hour"), "\(slow)")
            try await hubctl.succeed(
                ["create", "-f", "-"], stdin: Self.cronTab("slow", spec: "{cronSpec: '0 3 * * *', image: backup, timeout: 45m}"))
            // An update is checked too, and the transition rule compares it with what is stored.
            let patched = try await hubctl.run(["patch", "ct", "small", "--type=merge", "-p", #"{"spec": {"replicas": 9}}"#])
            #expect(patched.status != 0 && patched.stderr.contains("more than 5 replicas need mode Replace"), "\(patched)")
            let shrunk = try await hubctl.run(["patch", "ct", "replacing", "--type=merge", "-p", #"{"spec": {"replicas": 6}}"#])
            #expect(shrunk.status != 0 && shrunk.stderr.contains("spec: Invalid value: \"object\": replicas may only grow"), "\(shrunk)")
            try await hubctl.succeed(["patch", "ct", "replacing", "--type=merge", "-p", #"{"spec": {"replicas": 9}}"#])
            #expect(try await hubctl.succeed(["get", "ct", "replacing", "-o", "jsonpath={.spec.replicas}"]) == "9")
        }
    }

    /// Karmada's format: replicas read and revised, health judged in the agent, status summed at the hub.
    static let customization = """
        apiVersion: config.karmada.io/v1alpha1
        kind: ResourceInterpreterCustomization
        metadata:
          name: crontab-interpreter
        spec:
          target: {apiVersion: stable.example.com/v1, kind: CronTab}
          customizations:
            replicaResource:
              luaScript: |
                local kube = require("kube")
                function GetReplicas(obj)
                  local requirement = kube.accuratePodRequirements({spec = {containers = {{resources = {requests = {cpu = "250m"}}}}}})
                  return obj.spec.replicas, requirement
                end
            replicaRevision:
              luaScript: |
                function ReviseReplica(obj, desiredReplica)
                  obj.spec.replicas = desiredReplica
                  return obj
                end
            dependencyInterpretation:
              luaScript: |
                function GetDependencies(desiredObj)
                  if desiredObj.spec.configName == nil then return {} end
                  return {{apiVersion = "v1", kind = "ConfigMap", namespace = desiredObj.metadata.namespace, name = desiredObj.spec.configName}}
                end
            healthInterpretation:
              luaScript: |
                function InterpretHealth(observedObj)
                  return observedObj.status ~= nil and observedObj.status.ready == observedObj.spec.replicas
                end
            statusAggregation:
              luaScript: |
                function AggregateStatus(desiredObj, statusItems)
                  local ready = 0
                  for i = 1, #statusItems do
                    if statusItems[i].status ~= nil and statusItems[i].status.ready ~= nil then
                      ready = ready + statusItems[i].status.ready
                    end
                  end
                  desiredObj.status = {ready = ready, clusters = #statusItems}
                  return desiredObj
                end
        """

    @Test("a Lua customization divides a custom kind's replicas at the hub, judges its health in each agent and sums its status")
    func customizationEndToEnd() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 1)
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            var members: [Kubectl] = []
            var agents: [ManagedProcess] = []
            for name in ["m1", "m2"] {
                let allow = ["--also-allow-kind", "apiextensions.k8s.io/CustomResourceDefinition", "--also-allow-kind", "stable.example.com/*"]
                let member = try await federation.startMember(name, hub: hub, hubPort: port, agentArguments: allow)
                members.append(member.kubectl)
                agents.append(member.agent)
            }
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.phase}=Ready", "cluster/m1", "cluster/m2", "--timeout=30s"])
            try await hubctl.succeed(["apply", "-f", "-"], stdin: Self.definition)
            try await hubctl.succeed(["apply", "-f", "-"], stdin: Self.customization)
            #expect(try await hubctl.succeed(["get", "ric", "--no-headers"]).contains("crontab-interpreter"))

            // A script that does not compile is refused, naming its field and line.
            let broken = Self.customization.replacingOccurrences(of: "return obj.spec.replicas, requirement", with: "return obj.spec.replicas +")
                .replacingOccurrences(of: "name: crontab-interpreter", with: "name: broken")
            let refused = try await hubctl.run(["apply", "-f", "-"], stdin: broken)
            #expect(
                refused.status != 0 && refused.stderr.contains("spec.customizations.replicaResource.luaScript")
                    && refused.stderr.contains("replicaResource of broken:"), "\(refused)")

            // The customization as the hub holds it, through the conformance kit on a sample.
            let sample = federation.root + "/crontab-sample.yaml"
            try Self.cronTab("sample", spec: "{cronSpec: '0 3 * * *', image: backup, replicas: 4}").write(
                toFile: sample, atomically: true, encoding: .utf8)
            let kit = try await run(
                "tetherctl", ["plugin", "test", "--at-hub", "crontab-interpreter", "--dir", federation.directory.path, "--sample", sample])
            #expect(
                kit.status == 0 && kit.output.contains("PASS  InterpretHealth  sample 1 (sample)") && kit.output.contains("replica round trip"),
                "\(kit.output)")
            // And on an object made from the definition the hub serves for the target kind.
            #expect(
                kit.output.contains("PASS  generate  CronTab from crontabs.stable.example.com (the hub)")
                    && kit.output.contains("PASS  InterpretReplica  sample 2 (sample)") && !kit.output.contains("FAIL"), "\(kit.output)")

            try await hubctl.succeed(
                ["apply", "-f", "-"], stdin: Self.cronTab("nightly", spec: "{cronSpec: '0 3 * * *', image: backup, replicas: 4}"))
            // Divided by the customization's GetReplicas and ReviseReplica: 2 and 2.
            for member in members {
                try await member.succeed(
                    ["wait", "--for=condition=Established", "crd/crontabs.stable.example.com", "--timeout=60s"], within: .seconds(70))
                try await member.succeed(["wait", "--for=create", "crontab/nightly", "--timeout=60s"], within: .seconds(70))
                try await member.succeed(["wait", "--for=jsonpath={.spec.replicas}=2", "crontab/nightly", "--timeout=60s"], within: .seconds(70))
                // The member's own controller would write this; here the test does.
                try await member.succeed([
                    "patch", "crontab", "nightly", "--subresource=status", "--type=merge", "-p", "{\"status\":{\"ready\":2}}",
                ])
            }
            // Each agent judged its copy healthy with InterpretHealth; the hub summed with AggregateStatus.
            try await hubctl.succeed(
                ["wait", "--for=jsonpath={.status.healthy}=2", "propagation/crontab.default.nightly", "--timeout=60s"], within: .seconds(70))
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.ready}=4", "crontab/nightly", "--timeout=60s"], within: .seconds(70))
            #expect(try await hubctl.succeed(["get", "ct", "nightly", "-o", "jsonpath={.status.clusters}"]) == "2")
            // GetDependencies at the hub: under a policy with propagateDeps, the ConfigMap a CronTab
            // names goes wherever the CronTab goes, though its own policy sends it to m1 alone.
            try await hubctl.succeed(
                ["apply", "-f", "-"],
                stdin: """
                    apiVersion: core.tether.io/v1alpha1
                    kind: PropagationPolicy
                    metadata: {name: a-settings, namespace: default}
                    spec:
                      resourceSelectors: [{apiVersion: v1, kind: ConfigMap, name: crontab-settings}]
                      placement: {clusterNames: [m1]}
                    ---
                    apiVersion: core.tether.io/v1alpha1
                    kind: PropagationPolicy
                    metadata: {name: b-crontabs, namespace: default}
                    spec:
                      resourceSelectors: [{apiVersion: stable.example.com/v1, kind: CronTab}]
                      placement: {clusterNames: [m1, m2]}
                      propagateDeps: true
                    ---
                    apiVersion: v1
                    kind: ConfigMap
                    metadata: {name: crontab-settings, namespace: default}
                    data: {schedule: nightly}
                    """)
            try await hubctl.succeed([
                "wait", "--for=jsonpath={.status.applied}=1", "propagation/configmap.default.crontab-settings", "--timeout=30s",
            ])
            try await hubctl.succeed(["patch", "crontab", "nightly", "--type=merge", "-p", #"{"spec":{"configName":"crontab-settings"}}"#])
            for member in members {
                try await member.succeed(["wait", "--for=create", "configmap/crontab-settings", "--timeout=60s"], within: .seconds(70))
            }
            try await hubctl.succeed([
                "wait", "--for=jsonpath={.status.applied}=2", "propagation/configmap.default.crontab-settings", "--timeout=30s",
            ])
            // The customization is the agents' own: never written to a member.
            for member in members {
                let served = try await member.run(["get", "resourceinterpretercustomizations"])
                #expect(served.status != 0, "\(served)")
            }
            // Without it the kind has no replicas to divide: each member gets the whole object again.
            try await hubctl.succeed(["delete", "ric", "crontab-interpreter"])
            for member in members {
                try await member.succeed(["wait", "--for=jsonpath={.spec.replicas}=4", "crontab/nightly", "--timeout=60s"], within: .seconds(70))
            }

            // Hostile scripts: an endless loop judging health, one allocating without bound
            // aggregating, one calling os.exit reading replicas. Each is stopped and reported;
            // the hub and the agents go on with the built-in behaviour.
            let hostile = """
                apiVersion: config.karmada.io/v1alpha1
                kind: ResourceInterpreterCustomization
                metadata: {name: hostile}
                spec:
                  target: {apiVersion: stable.example.com/v1, kind: CronTab}
                  customizations:
                    replicaResource: {luaScript: "function GetReplicas(obj) os.exit(1) end"}
                    healthInterpretation: {luaScript: "function InterpretHealth(obj) while true do end end"}
                    statusAggregation: {luaScript: "function AggregateStatus(d, items) local t = {} while true do t[#t + 1] = string.rep('x', 4096) end end"}
                """
            try await hubctl.succeed(["apply", "-f", "-"], stdin: hostile)
            try await hub.waitForEvent("interpreter.failed", within: .seconds(30)) {
                $0["tether.operation"] == "replicaResource" && ($0["tether.error"] ?? "").contains("'os'")
            }
            for member in members {
                try await member.succeed([
                    "patch", "crontab", "nightly", "--subresource=status", "--type=merge", "-p", "{\"status\":{\"ready\":3}}",
                ])
            }
            for agent in agents {
                try await agent.waitForEvent("interpreter.failed", within: .seconds(30)) {
                    $0["tether.operation"] == "healthInterpretation" && ($0["tether.error"] ?? "").contains("stopped after")
                }
            }
            try await hub.waitForEvent("interpreter.failed", within: .seconds(30)) {
                // The memory ceiling, or on a loaded machine the 1 s limit first: either way, stopped.
                $0["tether.operation"] == "statusAggregation" && ($0["tether.error"] ?? "").contains("stopped")
            }
            // Still serving and still federating: a change reaches both members.
            try await hubctl.succeed(["patch", "crontab", "nightly", "--type=merge", "-p", "{\"spec\":{\"image\":\"backup:2\"}}"])
            for member in members {
                try await member.succeed(["wait", "--for=jsonpath={.spec.image}=backup:2", "crontab/nightly", "--timeout=60s"], within: .seconds(70))
            }
        }
    }

    static let widgets = """
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata: {name: widgets.example.com}
        spec:
          group: example.com
          scope: Namespaced
          names: {plural: widgets, kind: Widget}
          versions:
          - name: v1
            served: true
            storage: true
            subresources: {status: {}}
            schema:
              openAPIV3Schema:
                type: object
                properties:
                  spec: {type: object, properties: {size: {type: integer}}}
                  status: {type: object, x-kubernetes-preserve-unknown-fields: true}
        """

    @Test("the Python plugin from --plugin-dir divides a Widget's size at the hub, judges health in each agent and sums readiness")
    func pythonPluginEndToEnd() async throws {
        let plugins = repositoryRoot + "/Plugins/External"
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 1, extraArguments: ["--plugin-dir", plugins])
            try await hub.waitForEvent("plugin.ready", within: .seconds(20)) { ($0.fields["message"] ?? "").contains("python-widgets") }
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            var members: [Kubectl] = []
            for name in ["m1", "m2"] {
                let arguments = [
                    "--plugin-dir", plugins, "--also-allow-kind", "apiextensions.k8s.io/CustomResourceDefinition", "--also-allow-kind",
                    "example.com/*",
                ]
                let member = try await federation.startMember(name, hub: hub, hubPort: port, agentArguments: arguments)
                try await member.agent.waitForEvent("plugin.ready", within: .seconds(20)) { ($0.fields["message"] ?? "").contains("python-widgets") }
                members.append(member.kubectl)
            }
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.phase}=Ready", "cluster/m1", "cluster/m2", "--timeout=30s"])
            try await hubctl.succeed(["apply", "-f", "-"], stdin: Self.widgets)
            try await hubctl.succeed(
                ["apply", "-f", "-"], stdin: "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: default}\nspec: {size: 4}\n")
            for member in members {
                try await member.succeed(["wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=60s"], within: .seconds(70))
                try await member.succeed(["wait", "--for=create", "widget/w1", "--timeout=60s"], within: .seconds(70))
                try await member.succeed(["wait", "--for=jsonpath={.spec.size}=2", "widget/w1", "--timeout=60s"], within: .seconds(70))
                try await member.succeed(["patch", "widget", "w1", "--subresource=status", "--type=merge", "-p", "{\"status\":{\"readyCount\":2}}"])
            }
            try await hubctl.succeed(
                ["wait", "--for=jsonpath={.status.healthy}=2", "propagation/widget.default.w1", "--timeout=60s"], within: .seconds(70))
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.readyCount}=4", "widget/w1", "--timeout=60s"], within: .seconds(70))
            #expect(try await hubctl.succeed(["get", "widget", "w1", "-o", "jsonpath={.status.clusters}"]) == "2")
        }
    }
}
