import Foundation
import Testing
import TetherTestSupport

extension SimclusterTests {
    @Test(
        "an Indexed Job limited per index fails an index for good past its limit and the Job once every index finished (FailedIndexes), or at once past maxFailedIndexes; a FailIndex rule fails the index without a retry; the API's rules for them hold"
    )
    func backoffLimitPerIndex() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 2, readyAfter: "1s")
            func job(_ name: String, failing: String, spec: String) -> String {
                """
                apiVersion: batch/v1
                kind: Job
                metadata: {name: \(name), annotations: {sim.tether.io/fail: "\(failing)"}}
                spec:
                  completionMode: Indexed
                \(spec)
                  template:
                    spec: {restartPolicy: Never, containers: [{name: a, image: busybox}]}
                """
            }
            func failure(_ name: String) async throws -> String {
                try await kubectl.succeed(["wait", "--for=condition=Failed", "job/\(name)", "--timeout=30s"], within: .seconds(40))
                return try await kubectl.succeed([
                    "get", "job", name, "-o",
                    #"jsonpath={.status.conditions[?(@.type=="Failed")].reason}|{.status.conditions[?(@.type=="Failed")].message}|{.status.failedIndexes}|{.status.completedIndexes}"#,
                ])
            }
            func podsOf(_ name: String) async throws -> [String] {
                try await kubectl.succeed([
                    "get", "pods", "-l", "job-name=\(name)", "-o",
                    #"jsonpath={range .items[*]}{.metadata.annotations.batch\.kubernetes\.io/job-completion-index}={.metadata.annotations.batch\.kubernetes\.io/job-index-failure-count}{"\n"}{end}"#,
                ]).split(separator: "\n").map(String.init).sorted()
            }

            // Index 1 fails once, its limit being 0: it is not run again, the others complete, and the Job fails.
            try await kubectl.succeed(
                ["apply", "-f", "-"], stdin: job("shards", failing: "1", spec: "  completions: 3\n  parallelism: 3\n  backoffLimitPerIndex: 0"))
            #expect(try await failure("shards") == "FailedIndexes|Job has failed indexes|1|0,2")
            #expect(try await podsOf("shards") == ["0=0", "1=0", "2=0"])
            #expect(try await kubectl.succeed(["get", "job", "shards", "-o", "jsonpath={.spec.backoffLimit}"]) == "2147483647")

            // No more than 0 failed indexes: the first index to fail fails the Job, and no other index runs.
            try await kubectl.succeed(
                ["apply", "-f", "-"],
                stdin: job("capped", failing: "0", spec: "  completions: 4\n  parallelism: 1\n  backoffLimitPerIndex: 0\n  maxFailedIndexes: 0"))
            #expect(try await failure("capped") == "MaxFailedIndexesExceeded|Job has exceeded the specified maximal number of failed indexes|0|")
            #expect(try await podsOf("capped") == ["0=0"])

            // A FailIndex rule: index 0 fails at its first failure although its limit allows a retry.
            let policy = """
                  completions: 2
                  parallelism: 2
                  backoffLimitPerIndex: 1
                  podFailurePolicy:
                    rules:
                    - {action: FailIndex, onExitCodes: {operator: In, values: [1]}}
                """
            try await kubectl.succeed(["apply", "-f", "-"], stdin: job("judged", failing: "0", spec: policy))
            #expect(try await failure("judged") == "FailedIndexes|Job has failed indexes|0|1")
            #expect(try await podsOf("judged") == ["0=0", "1=0"])

            let refusals = try await kubectl.run(
                ["apply", "-f", "-"],
                stdin: """
                    apiVersion: batch/v1
                    kind: Job
                    metadata: {name: wrong}
                    spec:
                      completions: 3
                      backoffLimitPerIndex: 1
                      maxFailedIndexes: 5
                      podFailurePolicy: {rules: [{action: FailIndex, onExitCodes: {operator: In, values: [1]}}]}
                      template: {spec: {restartPolicy: Never, containers: [{name: a, image: busybox}]}}
                    """)
            #expect(refusals.status != 0)
            #expect(refusals.stderr.contains("spec.backoffLimitPerIndex: Forbidden: requires indexed completion mode"), "\(refusals.stderr)")
            #expect(
                refusals.stderr.contains("spec.maxFailedIndexes: Invalid value: 5: must be less than or equal to completions"), "\(refusals.stderr)")
            let unlimited = try await kubectl.run(
                ["apply", "-f", "-"],
                stdin: job(
                    "unlimited", failing: "",
                    spec: "  completions: 1\n  podFailurePolicy: {rules: [{action: FailIndex, onPodConditions: [{type: DisruptionTarget}]}]}"))
            #expect(
                unlimited.status != 0
                    && unlimited.stderr.contains("action: Invalid value: \"FailIndex\": requires the backoffLimitPerIndex to be set"),
                "\(unlimited.stderr)")
        }
    }
}
