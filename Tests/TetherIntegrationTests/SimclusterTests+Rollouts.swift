import Foundation
import Testing
import TetherLocal
import TetherModel
import TetherTestSupport

extension SimclusterTests {
    @Test(
        "minReadySeconds holds ready Pods unavailable for their minimum; a rollout to an image that cannot be pulled backs off, exceeds its progress deadline and fails rollout status; rollout undo restores the last good template"
    )
    func stalledRolloutAndUndo() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 3, readyAfter: "1s")
            try await kubectl.succeed(
                ["apply", "-f", "-"],
                stdin: Self.deployment(
                    "steady", replicas: 3, extraSpec: "minReadySeconds: 8\n  progressDeadlineSeconds: 12",
                    podSpec: "      containers: [{name: app, image: nginx:1.0}]"))

            // Every status the Deployment takes, as a watch sees it: all Pods ready before all are available.
            let watcher = try await Self.watchStatus(
                "steady", kubectl, in: federation, fields: "{.status.readyReplicas}/{.status.availableReplicas}")
            try await watcher.waitForLine(within: .seconds(60), "all available") { $0.raw == "3/3" }
            let available = Date()
            let readySince = try await kubectl.succeed([
                "get", "pods", "-l", "app=steady", "-o",
                #"jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].lastTransitionTime}{"\n"}{end}"#,
            ]).split(separator: "\n").compactMap { try? Date(String($0), strategy: .iso8601) }
            #expect(readySince.count == 3)
            let latest = readySince.max() ?? available
            // Ready times are whole seconds: available more than 8 s after the time written, so at least 7 s after the real one.
            #expect(available.timeIntervalSince(latest) >= 7, "available \(available.timeIntervalSince(latest)) s after the last Pod was ready")
            let readyNotAvailable = try? await watcher.waitForLine(within: .seconds(1), "all ready, not all available") {
                ["3/", "3/0", "3/1", "3/2"].contains($0.raw)
            }
            #expect(readyNotAvailable != nil, "every Pod ready while not all were available yet: \(watcher.lines.map(\.raw))")
            try await kubectl.succeed(["rollout", "status", "deployment/steady", "--timeout=60s"])

            // The new template's Pod never pulls its image; the rollout stops there and times out.
            try await kubectl.succeed(["set", "image", "deployment/steady", "app=registry.invalid/app:2"])
            let stalled = try await kubectl.run(["rollout", "status", "deployment/steady", "--timeout=120s"], within: .seconds(150))
            #expect(stalled.status != 0 && stalled.stderr.contains(#"deployment "steady" exceeded its progress deadline"#), "\(stalled)")
            let progressing = try await kubectl.succeed([
                "get", "deployment", "steady", "-o", #"jsonpath={.status.conditions[?(@.type=="Progressing")].reason}"#,
            ])
            #expect(progressing == "ProgressDeadlineExceeded")
            let waiting = try await kubectl.succeed([
                "get", "pods", "-l", "app=steady", "-o",
                #"jsonpath={range .items[*]}{.spec.containers[0].image}={.status.containerStatuses[0].state.waiting.reason}{"\n"}{end}"#,
            ])
            #expect(waiting.contains("registry.invalid/app:2=ImagePullBackOff"), "\(waiting)")
            #expect(waiting.components(separatedBy: "nginx:1.0=\n").count - 1 == 3, "the old Pods keep serving: \(waiting)")
            let pulls = try await kubectl.succeed([
                "get", "events", "--field-selector", "reason=Failed", "-o", "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
            ])
            #expect(pulls.contains("Error: ImagePullBackOff") && pulls.contains(#"Failed to pull image "registry.invalid/app:2""#), "\(pulls)")

            // Back to the template that worked: its ReplicaSet takes over, the stuck Pod goes.
            try await kubectl.succeed(["rollout", "undo", "deployment/steady"])
            try await kubectl.succeed(["rollout", "status", "deployment/steady", "--timeout=60s"])
            _ = try await waitForPods(kubectl, "app=steady") { $0.count == 3 && $0.allSatisfy { $0.ready && $0.image == "nginx:1.0" } }
            let history = try await kubectl.succeed(["rollout", "history", "deployment/steady"])
            #expect(history.contains("2 ") && history.contains("3 ") && !history.contains("\n1 "), "the restored template is revision 3: \(history)")
        }
    }
}

extension SimclusterTests {
    @Test(
        "a Deployment scaled while its rollout is stuck spreads the new Pods over its old and new ReplicaSets in proportion, as in the Kubernetes documentation's example"
    )
    func proportionalScaling() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 3, readyAfter: "1s")
            try await kubectl.succeed(
                ["apply", "-f", "-"],
                stdin: Self.deployment(
                    "wide", replicas: 10, extraSpec: "strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 3, maxUnavailable: 2}}",
                    podSpec: "      containers: [{name: app, image: nginx:1.0}]"))
            try await kubectl.succeed(["rollout", "status", "deployment/wide", "--timeout=60s"])
            // A template that never becomes ready: the rollout stops at 8 old and 5 new (10 + 3 surge, 2 unavailable).
            try await kubectl.succeed(["set", "image", "deployment/wide", "app=registry.invalid/app:2"])
            let sizes = "jsonpath={range .items[*]}{.spec.template.spec.containers[0].image}={.spec.replicas} {end}"
            try await kubectl.waitForOutput(["get", "replicasets", "-l", "app=wide", "-o", sizes], within: .seconds(60)) {
                Self.words($0) == ["nginx:1.0=8", "registry.invalid/app:2=5"]
            }
            try await kubectl.succeed(["scale", "deployment/wide", "--replicas=15"])
            try await kubectl.waitForOutput(["get", "replicasets", "-l", "app=wide", "-o", sizes], within: .seconds(60)) {
                Self.words($0) == ["nginx:1.0=11", "registry.invalid/app:2=7"]
            }
            let annotations = try await kubectl.succeed([
                "get", "replicasets", "-l", "app=wide", "-o",
                #"jsonpath={range .items[*]}{.metadata.annotations.deployment\.kubernetes\.io/desired-replicas}/{.metadata.annotations.deployment\.kubernetes\.io/max-replicas} {end}"#,
            ])
            #expect(annotations == "15/18 15/18 ", "\(annotations)")
        }
    }

    static func words(_ text: String) -> Set<String> { Set(text.split(separator: " ").map(String.init)) }

    @Test(
        "a DaemonSet rolls out node by node within maxUnavailable, each new Pod only once its node's old one is gone; rollout status follows its Pods"
    )
    func daemonSetRollingUpdate() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 3, readyAfter: "1s")
            let manifest = """
                apiVersion: apps/v1
                kind: DaemonSet
                metadata: {name: agent}
                spec:
                  selector: {matchLabels: {app: agent}}
                  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 1}}
                  template:
                    metadata: {labels: {app: agent}}
                    spec: {terminationGracePeriodSeconds: 1, containers: [{name: agent, image: busybox:1}]}
                """
            try await kubectl.succeed(["apply", "-f", "-"], stdin: manifest)
            try await kubectl.succeed(["rollout", "status", "daemonset/agent", "--timeout=60s"])
            let fields = "{.status.desiredNumberScheduled}/{.status.updatedNumberScheduled}/{.status.numberAvailable}/{.status.observedGeneration}"
            let watcher = try await Self.watchStatus("agent", kubectl, in: federation, kind: "daemonset", fields: fields)
            try await kubectl.succeed(["set", "image", "daemonset/agent", "agent=busybox:2"])
            let status = try await kubectl.succeed(["rollout", "status", "daemonset/agent", "--timeout=60s"])
            #expect(
                status.contains("out of 3 new pods have been updated...") && status.contains(#"daemon set "agent" successfully rolled out"#),
                "\(status)")
            try await watcher.waitForLine(within: .seconds(60), "generation 2 complete") { $0.raw == "3/3/3/2" }
            // Never more than one node without an available Pod, and the updated count climbs one node at a time.
            let statuses = watcher.lines.map(\.raw).filter { $0.hasSuffix("/2") }
            let numbers = statuses.map { $0.split(separator: "/").map { Int($0) ?? -1 } }
            #expect(numbers.allSatisfy { $0.count == 4 && $0[2] >= 2 }, "\(statuses)")
            #expect(Self.words(numbers.map { "\($0[1])" }.joined(separator: " ")).isSuperset(of: ["1", "2", "3"]), "\(statuses)")
            let pods = try await waitForPods(kubectl, "app=agent") { $0.count == 3 && $0.allSatisfy { $0.ready && $0.image == "busybox:2" } }
            #expect(Set(pods.map(\.node)).count == 3, "one per node: \(pods)")
        }
    }

    @Test("a DaemonSet with maxSurge 1 and maxUnavailable 0 starts each new Pod beside the old one and never has a node without an available Pod")
    func daemonSetSurge() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 3, readyAfter: "1s")
            let manifest = """
                apiVersion: apps/v1
                kind: DaemonSet
                metadata: {name: proxy}
                spec:
                  selector: {matchLabels: {app: proxy}}
                  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
                  template:
                    metadata: {labels: {app: proxy}}
                    spec: {terminationGracePeriodSeconds: 1, containers: [{name: proxy, image: envoy:1}]}
                """
            try await kubectl.succeed(["apply", "-f", "-"], stdin: manifest)
            try await kubectl.succeed(["rollout", "status", "daemonset/proxy", "--timeout=60s"])
            let fields = "{.status.desiredNumberScheduled}/{.status.updatedNumberScheduled}/{.status.numberAvailable}/{.status.observedGeneration}"
            let watcher = try await Self.watchStatus("proxy", kubectl, in: federation, kind: "daemonset", fields: fields)
            try await kubectl.succeed(["set", "image", "daemonset/proxy", "proxy=envoy:2"])
            try await kubectl.succeed(["rollout", "status", "daemonset/proxy", "--timeout=60s"])
            try await watcher.waitForLine(within: .seconds(60), "generation 2 complete") { $0.raw == "3/3/3/2" }
            // Every node kept an available Pod (with maxUnavailable 0 only a surge can make progress), node by node.
            let numbers = watcher.lines.map(\.raw).filter { $0.hasSuffix("/2") }.map { $0.split(separator: "/").map { Int($0) ?? -1 } }
            #expect(numbers.allSatisfy { $0.count == 4 && $0[2] == 3 }, "\(numbers)")
            #expect(Self.words(numbers.map { "\($0[1])" }.joined(separator: " ")).isSuperset(of: ["1", "2", "3"]), "\(numbers)")
            let final = try await waitForPods(kubectl, "app=proxy") { $0.count == 3 && $0.allSatisfy { $0.ready && $0.image == "envoy:2" } }
            #expect(Set(final.map(\.node)).count == 3, "one per node: \(final)")
        }
    }

    @Test("an OrderedReady StatefulSet with minReadySeconds makes each next Pod only once the one before has been available for it")
    func statefulSetMinReadySeconds() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 3, readyAfter: "1s")
            let manifest = """
                apiVersion: apps/v1
                kind: StatefulSet
                metadata: {name: db}
                spec:
                  replicas: 3
                  minReadySeconds: 3
                  serviceName: db
                  selector: {matchLabels: {app: db}}
                  template:
                    metadata: {labels: {app: db}}
                    spec: {containers: [{name: db, image: postgres:15}]}
                """
            try await kubectl.succeed(["apply", "-f", "-"], stdin: manifest)
            try await kubectl.succeed(["rollout", "status", "statefulset/db", "--timeout=60s"])
            try await kubectl.succeed(["wait", "--for=jsonpath={.status.availableReplicas}=3", "statefulset/db", "--timeout=30s"])
            func time(_ pod: String, _ path: String) async throws -> Date? {
                try Date(try await kubectl.succeed(["get", "pod", pod, "-o", "jsonpath=\(path)"]), strategy: .iso8601)
            }
            let ready = #"{.status.conditions[?(@.type=="Ready")].lastTransitionTime}"#
            // Times are whole seconds: made more than 3 s after the one before was ready, so at least 2 s after in the times written
            // (without the minimum it is made within the same second or the next).
            for ordinal in 1...2 {
                let before = try await time("db-\(ordinal - 1)", ready)
                let made = try await time("db-\(ordinal)", "{.metadata.creationTimestamp}")
                #expect(
                    before != nil && made != nil && made!.timeIntervalSince(before!) >= 2,
                    "db-\(ordinal): \(String(describing: made)) after \(String(describing: before))")
            }
        }
    }

    @Test(
        "a Job runs its Pods up to parallelism until its completions succeed; a failing one is retried after the controller's 10 s back-off and fails past backoffLimit"
    )
    func jobs() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 3, readyAfter: "1s")
            let manifests = """
                apiVersion: batch/v1
                kind: Job
                metadata: {name: batch}
                spec:
                  completions: 4
                  parallelism: 2
                  template:
                    spec: {restartPolicy: Never, containers: [{name: a, image: busybox}]}
                ---
                apiVersion: batch/v1
                kind: Job
                metadata: {name: doomed, annotations: {sim.tether.io/fail: "true"}}
                spec:
                  backoffLimit: 1
                  template:
                    spec: {restartPolicy: Never, containers: [{name: a, image: busybox}]}
                """
            try await kubectl.succeed(["apply", "-f", "-"], stdin: manifests)
            // Never more than 2 running at once; 4 Pods succeeded in all.
            let watcher = try await Self.watchStatus(
                "batch", kubectl, in: federation, kind: "job", fields: "{.status.active}/{.status.succeeded}/{.status.failed}")
            try await kubectl.succeed(["wait", "--for=condition=Complete", "job/batch", "--timeout=60s"], within: .seconds(70))
            let statuses = watcher.lines.map(\.raw).filter { $0.contains("/") }
            #expect(statuses.allSatisfy { (Int($0.split(separator: "/", omittingEmptySubsequences: false).first ?? "") ?? 0) <= 2 }, "\(statuses)")
            let batch = try await kubectl.succeed(["get", "job", "batch", "-o", "jsonpath={.status.succeeded}/{.status.active}"])
            #expect(batch == "4/0", "\(batch)")
            _ = try await waitForPods(kubectl, "job-name=batch") { $0.count == 4 && $0.allSatisfy { $0.phase == "Succeeded" } }

            // The failing Job: its Pod fails, the next one 10 s later fails too, and with backoffLimit 1 the Job has failed.
            try await kubectl.succeed(["wait", "--for=condition=Failed", "job/doomed", "--timeout=60s"], within: .seconds(70))
            let doomed = try await kubectl.succeed([
                "get", "job", "doomed", "-o", #"jsonpath={.status.failed}/{.status.conditions[?(@.type=="Failed")].reason}"#,
            ])
            #expect(doomed == "2/BackoffLimitExceeded", "\(doomed)")
            let finished = try await kubectl.succeed([
                "get", "pods", "-l", "job-name=doomed", "-o",
                "jsonpath={range .items[*]}{.status.containerStatuses[0].state.terminated.finishedAt} {end}",
            ]).split(separator: " ").compactMap { try? Date(String($0), strategy: .iso8601) }.sorted()
            #expect(finished.count == 2 && finished[1].timeIntervalSince(finished[0]) >= 10, "retried after the back-off: \(finished)")
            let events = try await kubectl.succeed([
                "get", "events", "--field-selector", "involvedObject.name=doomed", "-o", "jsonpath={.items[*].reason}",
            ])
            #expect(events.contains("BackoffLimitExceeded"), "\(events)")
        }
    }

    @Test(
        "a Job past activeDeadlineSeconds fails with DeadlineExceeded and its Pod goes, and with a TTL is deleted after it; a suspended Job runs nothing until resumed, then completes"
    )
    func jobDeadlineAndSuspend() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 2, readyAfter: "1s")
            // Its image can never be pulled, so its Pod waits until the deadline ends the Job.
            let manifests = """
                apiVersion: batch/v1
                kind: Job
                metadata: {name: slow}
                spec:
                  activeDeadlineSeconds: 3
                  template:
                    spec: {restartPolicy: Never, containers: [{name: a, image: registry.invalid/slow:1}]}
                ---
                apiVersion: batch/v1
                kind: Job
                metadata: {name: later}
                spec:
                  suspend: true
                  completions: 2
                  template:
                    spec: {restartPolicy: Never, containers: [{name: a, image: busybox}]}
                """
            try await kubectl.succeed(["apply", "-f", "-"], stdin: manifests)
            try await kubectl.succeed(["wait", "--for=condition=Failed", "job/slow", "--timeout=30s"], within: .seconds(40))
            let slow = try await kubectl.succeed([
                "get", "job", "slow", "-o", #"jsonpath={.status.conditions[?(@.type=="Failed")].reason}/{.status.active}"#,
            ])
            #expect(slow == "DeadlineExceeded/0", "\(slow)")
            _ = try await kubectl.waitForOutput(["get", "pods", "-l", "job-name=slow", "-o", "name"]) { $0.isEmpty }
            let events = try await kubectl.succeed([
                "get", "events", "--field-selector", "involvedObject.name=slow", "-o", "jsonpath={.items[*].reason}",
            ])
            // Its one Pod was made, and ended by the deadline.
            #expect(events.contains("SuccessfulCreate") && events.contains("DeadlineExceeded"), "\(events)")

            // The TTL-after-finished controller: the failed Job and its Pods go 2 s after it failed.
            try await kubectl.succeed(["patch", "job", "slow", "--type=merge", "-p", #"{"spec":{"ttlSecondsAfterFinished":2}}"#])
            try await kubectl.succeed(["wait", "--for=delete", "job/slow", "--timeout=30s"], within: .seconds(40))

            try await kubectl.succeed(["wait", "--for=condition=Suspended", "job/later", "--timeout=30s"], within: .seconds(40))
            let idle = try await kubectl.succeed(["get", "pods", "-l", "job-name=later", "-o", "name"])
            #expect(idle.isEmpty, "a suspended Job makes no Pod: \(idle)")
            #expect(try await kubectl.succeed(["get", "job", "later", "-o", "jsonpath={.status.startTime}"]).isEmpty)
            try await kubectl.succeed(["patch", "job", "later", "--type=merge", "-p", #"{"spec":{"suspend":false}}"#])
            try await kubectl.succeed(["wait", "--for=condition=Complete", "job/later", "--timeout=60s"], within: .seconds(70))
            let later = try await kubectl.succeed([
                "get", "job", "later", "-o", #"jsonpath={.status.succeeded}/{.status.conditions[?(@.type=="Suspended")].reason}"#,
            ])
            #expect(later == "2/JobResumed", "\(later)")
            let reasons = try await kubectl.succeed([
                "get", "events", "--field-selector", "involvedObject.name=later", "-o", "jsonpath={.items[*].reason}",
            ])
            #expect(reasons.contains("Suspended") && reasons.contains("Resumed") && reasons.contains("Completed"), "\(reasons)")
        }
    }

    @Test(
        "an Indexed Job's Pods carry their completion index in name, hostname, label and JOB_COMPLETION_INDEX, and it completes when every index has")
    func indexedJob() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 2, readyAfter: "1s")
            let manifest = """
                apiVersion: batch/v1
                kind: Job
                metadata: {name: shards}
                spec:
                  completionMode: Indexed
                  completions: 3
                  parallelism: 2
                  template:
                    spec: {restartPolicy: Never, containers: [{name: a, image: busybox}]}
                """
            try await kubectl.succeed(["apply", "-f", "-"], stdin: manifest)
            try await kubectl.succeed(["wait", "--for=condition=Complete", "job/shards", "--timeout=60s"], within: .seconds(70))
            let status = try await kubectl.succeed(["get", "job", "shards", "-o", "jsonpath={.status.succeeded}/{.status.completedIndexes}"])
            #expect(status == "3/0-2", "\(status)")
            let pods = try await kubectl.succeed([
                "get", "pods", "-l", "job-name=shards", "--sort-by=.metadata.labels.batch\\.kubernetes\\.io/job-completion-index", "-o",
                #"jsonpath={range .items[*]}{.metadata.name}|{.spec.hostname}|{.metadata.labels.batch\.kubernetes\.io/job-completion-index}|{.spec.containers[0].env[?(@.name=="JOB_COMPLETION_INDEX")].valueFrom.fieldRef.fieldPath}{"\n"}{end}"#,
            ]).split(separator: "\n").map { $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init) }
            #expect(pods.count == 3, "\(pods)")
            for (index, fields) in pods.enumerated() {
                try #require(fields.count == 4, "\(fields)")
                #expect(fields[0].hasPrefix("shards-\(index)-") && fields[1] == "shards-\(index)" && fields[2] == "\(index)", "\(fields)")
                #expect(fields[3] == "metadata.annotations['batch.kubernetes.io/job-completion-index']", "\(fields)")
            }

            // As kube-apiserver: an Indexed Job must say how many completions it has.
            let refused = try await kubectl.run(
                ["apply", "-f", "-"],
                stdin: """
                    apiVersion: batch/v1
                    kind: Job
                    metadata: {name: vague}
                    spec: {completionMode: Indexed, parallelism: 2, template: {spec: {restartPolicy: Never, containers: [{name: a, image: busybox}]}}}
                    """)
            #expect(refused.status != 0 && refused.stderr.contains("spec.completions: required when completion mode is Indexed"), "\(refused.stderr)")
        }
    }

    @Test(
        "a Job whose podFailurePolicy fails it on exit code 1 fails with PodFailurePolicy after its first Pod, without the back-off; one whose policy is invalid is refused"
    )
    func podFailurePolicy() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 2, readyAfter: "1s")
            // Its Pods fail with exit code 1 (the simulated failure).
            let manifest = """
                apiVersion: batch/v1
                kind: Job
                metadata: {name: strict, annotations: {sim.tether.io/fail: "true"}}
                spec:
                  backoffLimit: 6
                  podFailurePolicy:
                    rules:
                    - {action: FailJob, onExitCodes: {containerName: a, operator: In, values: [1]}}
                  template:
                    spec: {restartPolicy: Never, containers: [{name: a, image: busybox}]}
                """
            try await kubectl.succeed(["apply", "-f", "-"], stdin: manifest)
            try await kubectl.succeed(["wait", "--for=condition=Failed", "job/strict", "--timeout=30s"], within: .seconds(40))
            let failed = try await kubectl.succeed([
                "get", "job", "strict", "-o",
                #"jsonpath={.status.failed}|{.status.conditions[?(@.type=="Failed")].reason}|{.status.conditions[?(@.type=="Failed")].message}"#,
            ]).split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            try #require(failed.count == 3, "\(failed)")
            #expect(failed[0] == "1" && failed[1] == "PodFailurePolicy", "\(failed)")
            #expect(
                failed[2].hasPrefix("Container a for pod default/strict-")
                    && failed[2].hasSuffix("failed with exit code 1 matching FailJob rule at index 0"))
            let pods = try await kubectl.succeed(["get", "pods", "-l", "job-name=strict", "-o", "name"])
            #expect(pods.split(separator: "\n").count == 1, "no retry: \(pods)")

            let refused = try await kubectl.run(
                ["apply", "-f", "-"],
                stdin: """
                    apiVersion: batch/v1
                    kind: Job
                    metadata: {name: loose}
                    spec:
                      podFailurePolicy: {rules: [{action: FailJob, onExitCodes: {operator: In, values: [0]}}]}
                      template: {spec: {restartPolicy: OnFailure, containers: [{name: a, image: busybox}]}}
                    """)
            #expect(refused.status != 0, "\(refused.stdout)")
            #expect(refused.stderr.contains("only \"Never\" is supported when podFailurePolicy is specified"), "\(refused.stderr)")
            #expect(refused.stderr.contains("must not be 0 for the In operator"), "\(refused.stderr)")
        }
    }

    @Test(
        "a CronJob runs a Job at its next scheduled minute, named and annotated for it, and records lastScheduleTime and lastSuccessfulTime; a bad schedule or time zone is refused"
    )
    func cronJob() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 2, readyAfter: "1s")
            let manifest = """
                apiVersion: batch/v1
                kind: CronJob
                metadata: {name: tick}
                spec:
                  schedule: "* * * * *"
                  jobTemplate:
                    metadata: {labels: {team: ops}}
                    spec:
                      template:
                        spec: {restartPolicy: Never, containers: [{name: a, image: busybox}]}
                """
            try await kubectl.succeed(["apply", "-f", "-"], stdin: manifest)
            // The next whole minute, at most 60 s away.
            let ran = try await kubectl.waitForOutput(
                ["get", "cronjob", "tick", "-o", "jsonpath={.status.lastScheduleTime}|{.status.lastSuccessfulTime}"], within: .seconds(90)
            ) { $0.split(separator: "|").count == 2 }
            let times = ran.split(separator: "|").map(String.init)
            // `get` shows the last schedule as an age, as kube-apiserver's table does ("12s"), not as a time.
            let row = try await kubectl.succeed(["get", "cronjob", "tick", "--no-headers"]).split(separator: " ").map(String.init)
            #expect(row.count >= 2 && row[row.count - 2].wholeMatch(of: /[0-9]+[sm]/) != nil, "\(row)")
            let scheduled = try #require(kubernetesTimeParts(times[0])).seconds
            #expect(scheduled % 60 == 0, "on a whole minute: \(ran)")
            let job =
                try await kubectl.succeed([
                    "get", "jobs", "-l", "team=ops", "-o",
                    #"jsonpath={range .items[*]}{.metadata.name}|{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}|{.metadata.annotations.batch\.kubernetes\.io/cronjob-scheduled-timestamp}|{.status.conditions[?(@.type=="Complete")].status}{"\n"}{end}"#,
                ]).split(separator: "\n").first.map { $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init) } ?? []
            try #require(job.count == 4, "\(job)")
            #expect(job[0] == "tick-\(scheduled / 60)" && job[1] == "CronJob/tick" && job[2] == times[0] && job[3] == "True", "\(job)")
            let events = try await kubectl.succeed([
                "get", "events", "--field-selector", "involvedObject.name=tick", "-o", "jsonpath={.items[*].message}",
            ])
            #expect(events.contains("Created job \(job[0])") && events.contains("Saw completed job: \(job[0]), status: Complete"), "\(events)")

            // As kube-apiserver refuses them.
            let refused = try await kubectl.run(
                ["apply", "-f", "-"],
                stdin: """
                    apiVersion: batch/v1
                    kind: CronJob
                    metadata: {name: bad}
                    spec:
                      schedule: "61 * * * *"
                      timeZone: Mars/Olympus
                      jobTemplate: {spec: {template: {spec: {restartPolicy: Never, containers: [{name: a, image: busybox}]}}}}
                    """)
            #expect(
                refused.status != 0 && refused.stderr.contains("spec.schedule") && refused.stderr.contains("unknown time zone Mars/Olympus"),
                "\(refused.stderr)")

            // Deleted, its Jobs go with it.
            try await kubectl.succeed(["delete", "cronjob", "tick"])
            _ = try await kubectl.waitForOutput(["get", "jobs", "-l", "team=ops", "-o", "name"]) { $0.isEmpty }
        }
    }
}
