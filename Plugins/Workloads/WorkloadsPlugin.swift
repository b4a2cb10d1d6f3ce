import Foundation
import TetherJSON
import TetherModel
import TetherPlugin

/// Deployment, ReplicaSet, StatefulSet, DaemonSet, Job and CronJob, and the ReplicationController
/// that came before ReplicaSets (still in kubectl's default `apply --prune` list).
///
/// Health follows what `kubectl rollout status` waits for: the controller has observed the
/// current generation, then updated, ready and available counts have caught up with the
/// desired one. A `ReplicaFailure`, a `Progressing=False` (deadline exceeded) or a `Failed`
/// Job is Degraded with the condition's message.
public struct WorkloadsPlugin: ResourcePlugin {
    public let name = "workloads"
    public let kinds: [KindDescriptor] = [
        Self.deployment, Self.replicaSet, Self.statefulSet, Self.daemonSet, Self.job, Self.cronJob, Self.controllerRevision,
        Self.replicationController,
    ]

    public init() {}

    /// `batch/v1beta1` CronJobs (kubectl 1.20's `create cronjob`), stored at `batch/v1`: the same fields.
    public var otherVersions: [KindDescriptor] { [Self.cronJob.alsoServed(as: "v1beta1")] }

    public static let deployment = KindDescriptor(
        group: "apps", version: "v1", kind: "Deployment", plural: "deployments", namespaced: true, shortNames: ["deploy"],
        categories: ["all"],
        printerColumns: [
            .text("READY") { "\($0.integer(at: "status", "readyReplicas") ?? 0)/\(desiredReplicas($0))" },
            .count("UP-TO-DATE") { $0.integer(at: "status", "updatedReplicas") ?? 0 },
            .count("AVAILABLE") { $0.integer(at: "status", "availableReplicas") ?? 0 },
        ] + PrinterColumn.podTemplate(at: ["spec", "template"]) + [PrinterColumn.selector(at: ["spec", "selector"])],
        hasScale: true,
        fields: [
            "spec": .numbered(
                .field(1, "replicas", .integer, optional: true), .field(2, "selector", .labelSelector), .field(3, "template", .podTemplate),
                .field(
                    4, "strategy",
                    .numbered(
                        .field(1, "type", .string),
                        .field(2, "rollingUpdate", .numbered(.field(1, "maxUnavailable", .intOrString), .field(2, "maxSurge", .intOrString)))
                    )),
                .field(5, "minReadySeconds", .integer), .field(6, "revisionHistoryLimit", .integer, optional: true),
                .field(7, "paused", .boolean), .field(9, "progressDeadlineSeconds", .integer, optional: true)
            ),
            "status": deploymentStatus,
        ],
        summary: "Deployment enables declarative updates for Pods and ReplicaSets.",
        protobufNumbers: ["spec": 2, "status": 3]
    )
    public static let replicaSet = KindDescriptor(
        group: "apps", version: "v1", kind: "ReplicaSet", plural: "replicasets", namespaced: true, shortNames: ["rs"],
        categories: ["all"],
        printerColumns: [
            .count("DESIRED") { desiredReplicas($0) },
            .count("CURRENT") { $0.integer(at: "status", "replicas") ?? 0 },
            .count("READY") { $0.integer(at: "status", "readyReplicas") ?? 0 },
        ] + PrinterColumn.podTemplate(at: ["spec", "template"]) + [PrinterColumn.selector(at: ["spec", "selector"])],
        hasScale: true,
        fields: [
            "spec": .numbered(
                .field(1, "replicas", .integer, optional: true), .field(4, "minReadySeconds", .integer), .field(2, "selector", .labelSelector),
                .field(3, "template", .podTemplate)
            ),
            "status": replicaSetStatus,
        ],
        summary: "ReplicaSet ensures that a specified number of pod replicas are running at any given time.",
        protobufNumbers: ["spec": 2, "status": 3]
    )
    public static let statefulSet = KindDescriptor(
        group: "apps", version: "v1", kind: "StatefulSet", plural: "statefulsets", namespaced: true, shortNames: ["sts"],
        categories: ["all"],
        printerColumns: [.text("READY") { "\($0.integer(at: "status", "readyReplicas") ?? 0)/\(desiredReplicas($0))" }]
            + PrinterColumn.podTemplate(at: ["spec", "template"]),
        hasScale: true,
        fields: [
            "spec": .numbered(
                .field(1, "replicas", .integer, optional: true), .field(2, "selector", .labelSelector), .field(3, "template", .podTemplate),
                .field(4, "volumeClaimTemplates", .array(.persistentVolumeClaim)), .field(5, "serviceName", .string),
                .field(6, "podManagementPolicy", .string),
                .field(
                    7, "updateStrategy",
                    .numbered(
                        .field(1, "type", .string),
                        .field(
                            2, "rollingUpdate",
                            .numbered(.field(1, "partition", .integer, optional: true), .field(2, "maxUnavailable", .intOrString, optional: true)),
                            optional: true)
                    )), .field(8, "revisionHistoryLimit", .integer, optional: true),
                .field(9, "minReadySeconds", .integer),
                .field(
                    10, "persistentVolumeClaimRetentionPolicy", .numbered(.field(1, "whenDeleted", .string), .field(2, "whenScaled", .string)),
                    optional: true),
                .field(11, "ordinals", .numbered(.field(1, "start", .integer)), optional: true)
            ),
            "status": statefulSetStatus,
        ],
        summary: "StatefulSet represents a set of pods with consistent identities.",
        protobufNumbers: ["spec": 2, "status": 3]
    )
    public static let daemonSet = KindDescriptor(
        group: "apps", version: "v1", kind: "DaemonSet", plural: "daemonsets", namespaced: true, shortNames: ["ds"],
        categories: ["all"],
        printerColumns: [
            .count("DESIRED") { $0.integer(at: "status", "desiredNumberScheduled") ?? 0 },
            .count("CURRENT") { $0.integer(at: "status", "currentNumberScheduled") ?? 0 },
            .count("READY") { $0.integer(at: "status", "numberReady") ?? 0 },
            .count("UP-TO-DATE") { $0.integer(at: "status", "updatedNumberScheduled") ?? 0 },
            .count("AVAILABLE") { $0.integer(at: "status", "numberAvailable") ?? 0 },
            .text("NODE SELECTOR") { LabelSelectorText.labels($0.value(at: "spec", "template", "spec", "nodeSelector")) },
        ] + PrinterColumn.podTemplate(at: ["spec", "template"]) + [PrinterColumn.selector(at: ["spec", "selector"])],
        fields: [
            "spec": .numbered(
                .field(1, "selector", .labelSelector), .field(2, "template", .podTemplate),
                .field(
                    3, "updateStrategy",
                    .numbered(
                        .field(1, "type", .string),
                        .field(
                            2, "rollingUpdate",
                            .numbered(.field(1, "maxUnavailable", .intOrString, optional: true), .field(2, "maxSurge", .intOrString, optional: true)),
                            optional: true)
                    )),
                .field(4, "minReadySeconds", .integer), .field(6, "revisionHistoryLimit", .integer, optional: true)
            ),
            "status": daemonSetStatus,
        ],
        summary: "DaemonSet represents the configuration of a daemon set: a pod on every node.",
        protobufNumbers: ["spec": 2, "status": 3]
    )
    public static let job = KindDescriptor(
        group: "batch", version: "v1", kind: "Job", plural: "jobs", namespaced: true, categories: ["all"],
        printerColumns: [
            .text("STATUS") { jobStatus($0) },
            .text("COMPLETIONS") { jobCompletions($0) },
            .text("DURATION") { jobDuration($0, now: Date()) },
        ] + PrinterColumn.podTemplate(at: ["spec", "template"]) + [PrinterColumn.selector(at: ["spec", "selector"])],
        fields: [
            "spec": .jobSpec,
            "status": jobStatus,
        ],
        summary: "Job represents the configuration of a single job.",
        protobufNumbers: ["spec": 2, "status": 3]
    )

    public static let cronJob = KindDescriptor(
        group: "batch", version: "v1", kind: "CronJob", plural: "cronjobs", namespaced: true, shortNames: ["cj"], categories: ["all"],
        printerColumns: [
            .text("SCHEDULE") { $0.string(at: "spec", "schedule") ?? "" },
            .text("TIMEZONE") { $0.string(at: "spec", "timeZone") ?? "<none>" },
            .text("SUSPEND") { $0.value(at: "spec", "suspend") == .bool(true) ? "True" : "False" },
            .count("ACTIVE") { Int64($0.value(at: "status", "active")?.arrayElements.count ?? 0) },
            .age("LAST SCHEDULE") { $0.string(at: "status", "lastScheduleTime") },
        ] + PrinterColumn.podTemplate(at: ["spec", "jobTemplate", "spec", "template"])
            + [PrinterColumn.selector(at: ["spec", "jobTemplate", "spec", "selector"])],
        fields: [
            "spec": .numbered(
                .field(1, "schedule", .string), .field(8, "timeZone", .string, optional: true),
                .field(2, "startingDeadlineSeconds", .integer, optional: true), .field(3, "concurrencyPolicy", .string),
                .field(4, "suspend", .boolean, optional: true),
                .field(5, "jobTemplate", .numbered(.field(1, "metadata", .objectMeta), .field(2, "spec", .jobSpec))),
                .field(6, "successfulJobsHistoryLimit", .integer, optional: true),
                .field(7, "failedJobsHistoryLimit", .integer, optional: true)
            ),
            "status": cronJobStatus,
        ],
        summary: "CronJob represents the configuration of a single cron job.",
        protobufNumbers: ["spec": 2, "status": 3]
    )

    /// The revisions of a DaemonSet's or StatefulSet's template, which `kubectl rollout history`
    /// and `undo` read: kept by the API of the hub and of the simulated members, never federated.
    public static let controllerRevision = KindDescriptor(
        group: "apps", version: "v1", kind: "ControllerRevision", plural: "controllerrevisions", namespaced: true,
        printerColumns: [
            .text("CONTROLLER") { object in
                let owner = object.metadata["ownerReferences"]?.arrayElements.first { $0["controller"] == .bool(true) }
                return owner.map { "\($0["kind"]?.stringValue?.lowercased() ?? "").apps/\($0["name"]?.stringValue ?? "")" } ?? "<none>"
            },
            .count("REVISION") { $0["revision"]?.integerValue ?? 0 },
        ],
        hasStatus: false,
        fields: ["data": .rawJSON, "revision": .integer],
        summary: "ControllerRevision is an immutable snapshot of a workload's template, one per revision.",
        protobufNumbers: ["data": 2, "revision": 3]
    )

    /// The status counts each kind reports and the hub sums.
    static func summaryFields(_ kind: String?) -> [String] {
        switch kind {
        case "Deployment": ["replicas", "readyReplicas", "availableReplicas", "updatedReplicas", "unavailableReplicas"]
        case "ReplicaSet", "ReplicationController": ["replicas", "readyReplicas", "availableReplicas", "fullyLabeledReplicas"]
        case "StatefulSet": ["replicas", "readyReplicas", "availableReplicas", "currentReplicas", "updatedReplicas"]
        case "DaemonSet":
            [
                "desiredNumberScheduled", "currentNumberScheduled", "numberReady", "numberAvailable",
                "updatedNumberScheduled", "numberMisscheduled",
            ]
        case "Job": ["active", "succeeded", "failed"]
        default: []
        }
    }

    /// `spec.replicas`, which Kubernetes defaults to 1.
    static func desiredReplicas(_ object: JSONValue) -> Int64 { object.integer(at: "spec", "replicas") ?? 1 }

    /// A Job's STATUS as kubectl 1.32 prints it: its first finishing condition, else Running.
    static func jobStatus(_ job: JSONValue) -> String {
        let conditions = (job.value(at: "status", "conditions")?.arrayElements ?? []).filter { $0["status"] == "True" }.compactMap {
            $0["type"]?.stringValue
        }
        if conditions.contains("Complete") { return "Complete" }
        if conditions.contains("Failed") { return "Failed" }
        if job.deletionTimestamp != nil { return "Terminating" }
        for type in ["Suspended", "FailureTarget", "SuccessCriteriaMet"] where conditions.contains(type) { return type }
        return "Running"
    }

    /// `2/3`; without `completions`, `1/1`, or `0/1 of 4` when several run in parallel.
    static func jobCompletions(_ job: JSONValue) -> String {
        let succeeded = job.integer(at: "status", "succeeded") ?? 0
        if let completions = job.integer(at: "spec", "completions") { return "\(succeeded)/\(completions)" }
        if let parallelism = job.integer(at: "spec", "parallelism"), parallelism > 1 { return "\(succeeded)/1 of \(parallelism)" }
        return "\(succeeded)/1"
    }

    /// From `startTime` to `completionTime`, or to now while it runs; empty before it starts.
    static func jobDuration(_ job: JSONValue, now: Date) -> String {
        guard let start = job.string(at: "status", "startTime").flatMap(kubernetesTimeParts) else { return "" }
        let end =
            job.string(at: "status", "completionTime").flatMap(kubernetesTimeParts).map { TimeInterval($0.seconds) } ?? now.timeIntervalSince1970
        return ObjectAge.human(seconds: Int(end) - Int(start.seconds))
    }

    /// Deployments, ReplicaSets, ReplicationControllers and StatefulSets are divided by
    /// `spec.replicas`. DaemonSets run one per node and Jobs count completions, so neither is divided.
    static func hasReplicas(_ kind: String?) -> Bool {
        kind == "Deployment" || kind == "ReplicaSet" || kind == "ReplicationController" || kind == "StatefulSet"
    }

    /// A workload's revisions are the API's own record at each end, never sent to members.
    public func propagates(_ kind: KindDescriptor) -> Bool { kind.kind != "ControllerRevision" }

    public func replicas(of object: JSONValue) -> Int64? {
        Self.hasReplicas(object.kind) ? Self.desiredReplicas(object) : nil
    }

    /// What the Pod template names (``PodDependencies``), which a PropagationPolicy with
    /// `propagateDeps` sends wherever the workload goes.
    public func dependencies(of object: JSONValue) -> [ObjectReference] {
        let template: [String] = object.kind == "CronJob" ? ["spec", "jobTemplate", "spec", "template", "spec"] : ["spec", "template", "spec"]
        guard let spec = object.value(at: template) else { return [] }
        return PodDependencies.of(podSpec: spec, namespace: object.namespace)
    }

    public func setting(replicas count: Int64, on object: JSONValue) -> JSONValue {
        guard Self.hasReplicas(object.kind) else { return object }
        var copy = object
        copy.set(.integer(count), at: ["spec", "replicas"])
        return copy
    }

    public func validate(_ object: JSONValue) -> [ValidationProblem] {
        var problems: [ValidationProblem] = []
        for field in ["replicas", "minReadySeconds", "progressDeadlineSeconds", "revisionHistoryLimit"] {
            if let problem = FieldChecks.nonNegativeInteger(object, "spec", field) { problems.append(problem) }
        }
        if object.kind == "Deployment", let deadline = object.integer(at: "spec", "progressDeadlineSeconds"),
            let minReady = object.integer(at: "spec", "minReadySeconds"), deadline <= minReady
        {
            problems.append(
                ValidationProblem(field: "spec.progressDeadlineSeconds", "must be greater than minReadySeconds (\(minReady)), not \(deadline)"))
        }
        if object.kind == "DaemonSet", let rolling = object.value(at: "spec", "updateStrategy", "rollingUpdate") {
            // kube-apiserver's rule: a rollout that may neither surge nor take a node down cannot move.
            func zero(_ value: JSONValue?) -> Bool { value == .integer(0) || value == .string("0%") || value == .string("0") }
            let surge = rolling["maxSurge"]
            if zero(rolling["maxUnavailable"]), surge == nil || zero(surge) {
                problems.append(ValidationProblem(field: "spec.updateStrategy.rollingUpdate.maxUnavailable", "may not be 0 when maxSurge is 0"))
            }
        }
        if object.kind == "CronJob" {
            for field in ["schedule", "jobTemplate"] {
                if let problem = FieldChecks.required(object, "spec", field) { problems.append(problem) }
            }
            if let schedule = object.string(at: "spec", "schedule") {
                do throws(CronSchedule.Invalid) {
                    _ = try CronSchedule(schedule)
                } catch {
                    problems.append(ValidationProblem(field: "spec.schedule", "invalid value \"\(schedule)\": \(error)"))
                }
            }
            if let zone = object.string(at: "spec", "timeZone"), TimeZone(identifier: zone) == nil {
                problems.append(ValidationProblem(field: "spec.timeZone", "unknown time zone \(zone)"))
            }
            return problems
        }
        if let problem = FieldChecks.required(object, "spec", "template") { problems.append(problem) }
        if object.kind == "Job" {
            for field in ["parallelism", "completions", "backoffLimit"] {
                if let problem = FieldChecks.nonNegativeInteger(object, "spec", field) { problems.append(problem) }
            }
            switch object.string(at: "spec", "completionMode") {
            case nil, "NonIndexed": break
            case "Indexed":
                // Checked before defaults, which set completions (to 1) only when parallelism is unset too.
                if object.integer(at: "spec", "completions") == nil, object.value(at: "spec", "parallelism") != nil {
                    problems.append(ValidationProblem(field: "spec.completions", "required when completion mode is Indexed"))
                }
            case let mode?:
                problems.append(ValidationProblem(field: "spec.completionMode", "must be NonIndexed or Indexed, not \(mode)"))
            }
            return problems + Self.podFailurePolicyProblems(object) + Self.perIndexProblems(object)
        }
        if object.kind == "ReplicationController" { return problems + Self.replicationControllerSelectorProblems(object) }
        guard let selector = object.value(at: "spec", "selector") else {
            problems.append(ValidationProblem(field: "spec.selector", "required"))
            return problems
        }
        // apps/v1 requires the template's labels to match the selector, or the controller would own nothing.
        let templateLabels = (object.value(at: "spec", "template", "metadata", "labels")?.objectMembers ?? [:])
            .compactMapValues(\.stringValue)
        for (key, value) in selector["matchLabels"]?.objectMembers ?? [:] where templateLabels[key] != value.stringValue {
            problems.append(
                ValidationProblem(
                    field: "spec.template.metadata.labels",
                    "must match spec.selector.matchLabels: \(key)=\(value.stringValue ?? "") is missing"
                )
            )
        }
        return problems
    }

    /// kube-apiserver's defaults for each kind (`KubernetesDefaults`): what clients read back.
    public func normalizeOnWrite(_ object: JSONValue) -> JSONValue {
        var object = object
        let fill = { (path: [String], value: JSONValue) in KubernetesDefaults.fill(&object, ["spec"] + path, value) }
        switch object.kind {
        case "Deployment":
            fill(["replicas"], .integer(1))
            fill(["revisionHistoryLimit"], .integer(10))
            fill(["progressDeadlineSeconds"], .integer(600))
            fill(["strategy", "type"], "RollingUpdate")
            if object.string(at: "spec", "strategy", "type") == "RollingUpdate" {
                fill(["strategy", "rollingUpdate", "maxSurge"], "25%")
                fill(["strategy", "rollingUpdate", "maxUnavailable"], "25%")
            }
            KubernetesDefaults.podTemplate(at: ["spec", "template"], in: &object)
        case "ReplicaSet":
            fill(["replicas"], .integer(1))
            KubernetesDefaults.podTemplate(at: ["spec", "template"], in: &object)
        case "ReplicationController":
            // Each of the selector and the template's labels defaults to the other.
            fill(["replicas"], .integer(1))
            let labels = object.value(at: "spec", "template", "metadata", "labels")?.objectMembers ?? [:]
            let selector = object.value(at: "spec", "selector")?.objectMembers ?? [:]
            if selector.isEmpty, !labels.isEmpty {
                object.set(.object(labels), at: ["spec", "selector"])
            } else if labels.isEmpty, !selector.isEmpty, object.value(at: "spec", "template") != nil {
                object.set(.object(selector), at: ["spec", "template", "metadata", "labels"])
            }
            // And its own labels, when it has none, are its template's.
            if object.labels.isEmpty, let templateLabels = object.value(at: "spec", "template", "metadata", "labels"),
                !templateLabels.objectMembers.isEmpty
            {
                object.set(templateLabels, at: ["metadata", "labels"])
            }
            KubernetesDefaults.podTemplate(at: ["spec", "template"], in: &object)
        case "StatefulSet":
            fill(["replicas"], .integer(1))
            fill(["podManagementPolicy"], "OrderedReady")
            fill(["revisionHistoryLimit"], .integer(10))
            fill(["updateStrategy", "type"], "RollingUpdate")
            if object.string(at: "spec", "updateStrategy", "type") == "RollingUpdate" {
                fill(["updateStrategy", "rollingUpdate", "partition"], .integer(0))
            }
            fill(["persistentVolumeClaimRetentionPolicy"], ["whenDeleted": "Retain", "whenScaled": "Retain"])
            KubernetesDefaults.podTemplate(at: ["spec", "template"], in: &object)
        case "DaemonSet":
            fill(["revisionHistoryLimit"], .integer(10))
            fill(["updateStrategy", "type"], "RollingUpdate")
            if object.string(at: "spec", "updateStrategy", "type") == "RollingUpdate" {
                fill(["updateStrategy", "rollingUpdate", "maxUnavailable"], .integer(1))
                fill(["updateStrategy", "rollingUpdate", "maxSurge"], .integer(0))
            }
            KubernetesDefaults.podTemplate(at: ["spec", "template"], in: &object)
        case "Job":
            Self.jobDefaults(&object, at: ["spec"])
            Self.generateJobSelector(&object)
        case "CronJob":
            fill(["concurrencyPolicy"], "Allow")
            fill(["suspend"], .bool(false))
            fill(["successfulJobsHistoryLimit"], .integer(3))
            fill(["failedJobsHistoryLimit"], .integer(1))
            Self.jobDefaults(&object, at: ["spec", "jobTemplate", "spec"])
        default:
            break
        }
        return object
    }

    /// What kube-apiserver does for a new Job that does not choose its own selector
    /// (`manualSelector`): selects its Pods by its uid, and labels its template to match.
    static func generateJobSelector(_ object: inout JSONValue) {
        guard object.value(at: "spec", "manualSelector") != .bool(true), object.value(at: "spec", "selector") == nil,
            let uid = object.uid
        else { return }
        object.set(["matchLabels": ["batch.kubernetes.io/controller-uid": .string(uid)]], at: ["spec", "selector"])
        var labels = [("batch.kubernetes.io/controller-uid", uid), ("controller-uid", uid)]
        // A name still to be generated is not known here; the uid alone selects.
        if let name = object.name { labels += [("batch.kubernetes.io/job-name", name), ("job-name", name)] }
        for (label, value) in labels {
            KubernetesDefaults.fill(&object, ["spec", "template", "metadata", "labels", label], .string(value))
        }
    }

    public func prepareForMember(_ object: JSONValue) -> JSONValue {
        var copy = MemberCopy.stripNodeBinding(MemberCopy.stripServerFields(object))
        // The hub's revision count; each member's own API numbers the member's revisions.
        if object.kind == "Deployment", object.annotations["deployment.kubernetes.io/revision"] != nil {
            copy.annotations["deployment.kubernetes.io/revision"] = nil
        }
        if object.kind == "Job", object.value(at: "spec", "manualSelector") != .bool(true) {
            // A Job's selector and the matching template labels carry the hub-side uid; the member makes its own.
            copy.remove(at: "spec", "selector")
            for label in ["controller-uid", "batch.kubernetes.io/controller-uid", "job-name", "batch.kubernetes.io/job-name"] {
                copy.set(nil, at: ["spec", "template", "metadata", "labels", label])
            }
        }
        return copy
    }
}
