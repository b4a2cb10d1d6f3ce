import Foundation
import Logging
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore

/// The CronJob controller of a real cluster: at each time its `schedule` names (in its
/// `timeZone`, UTC by default) a CronJob makes a Job from its `jobTemplate`, named
/// `NAME-MINUTES` (the scheduled time in minutes since the epoch) and annotated with that time;
/// only the latest missed time runs, and none older than `startingDeadlineSeconds`.
/// `concurrencyPolicy` decides what a run does while an earlier Job is active (`Allow` runs
/// beside it, `Forbid` waits, `Replace` deletes it first); `suspend` stops new runs; finished
/// Jobs beyond `successfulJobsHistoryLimit` and `failedJobsHistoryLimit` are deleted, oldest
/// first. Its status lists the active Jobs, `lastScheduleTime` and `lastSuccessfulTime`, and it
/// is looked at again at its next time, not polled.
struct CronJobController: Sendable {
    static let cronJobs = ResourceType(group: "batch", resource: "cronjobs", namespaced: true)
    static let jobs = ResourceType(group: "batch", resource: "jobs", namespaced: true)
    static let scheduledAnnotation = "batch.kubernetes.io/cronjob-scheduled-timestamp"

    let store: any ResourceStore
    let registry: KindRegistry
    let events: EventRecorder
    let logger: Logger

    private var source: EventRecorder.Source { PodController.controllerSource("CronJob") }

    /// One step of the controller for `cronJob`: its Jobs made or deleted, its status, and when to look again.
    func sync(_ cronJob: JSONValue, now: Date = Date()) async -> (status: JSONValue, lookAgainAfter: Duration?)? {
        guard let name = cronJob.name, let namespace = cronJob.namespace, let uid = cronJob.uid, cronJob.deletionTimestamp == nil else { return nil }
        guard
            let owned = try? await store.list(Self.jobs, options: ListOptions(namespace: namespace)).objects.filter({
                WorkloadSimulator.controller(of: $0)?.uid == uid
            })
        else { return nil }
        var status = cronJob["status"] ?? [:]
        let wasActive = Set((status["active"]?.arrayElements ?? []).compactMap { $0["uid"]?.stringValue })
        var active = owned.filter { Self.finished($0) == nil && $0.deletionTimestamp == nil }
        for job in owned where wasActive.contains(job.uid ?? "") {
            guard let outcome = Self.finished(job) else { continue }
            await events.record(
                .normal, "SawCompletedJob", "Saw completed job: \(job.name ?? ""), status: \(outcome)", about: cronJob, source: source)
        }
        await collectHistory(of: cronJob, owned)
        if let succeeded = owned.filter({ Self.finished($0) == "Complete" }).compactMap({ $0.string(at: "status", "completionTime") }).max(),
            succeeded > (status["lastSuccessfulTime"]?.stringValue ?? "")
        {
            status[member: "lastSuccessfulTime"] = .string(succeeded)
        }

        var lookAgainAfter: Duration?
        let schedule: CronSchedule
        do throws(CronSchedule.Invalid) {
            schedule = try CronSchedule(cronJob.string(at: "spec", "schedule") ?? "")
        } catch {
            await events.record(.warning, "UnparseableSchedule", "unparseable schedule: \(error)", about: cronJob, source: source)
            return (Self.withActive(status, active), nil)
        }
        let zone = cronJob.string(at: "spec", "timeZone").flatMap(TimeZone.init(identifier:)) ?? TimeZone(identifier: "UTC")!
        let since =
            (status["lastScheduleTime"]?.stringValue ?? cronJob.metadata["creationTimestamp"]?.stringValue)
            .flatMap(kubernetesTimeParts).map { Date(timeIntervalSince1970: TimeInterval($0.seconds)) } ?? now
        let suspended = cronJob.value(at: "spec", "suspend") == .bool(true)
        if !suspended, let (due, _) = schedule.latest(after: since, upTo: now, in: zone) {
            let deadline = cronJob.integer(at: "spec", "startingDeadlineSeconds")
            let jobName = "\(name)-\(Int64(due.timeIntervalSince1970) / 60)"
            if let deadline, now.timeIntervalSince(due) > TimeInterval(deadline) {
                // Too late for this run: it is skipped, and the next one waited for.
                await events.record(
                    .warning, "MissSchedule", "Missed scheduled time to start a job: \(kubernetesTimestamp(due))", about: cronJob, source: source)
                status[member: "lastScheduleTime"] = .string(kubernetesTimestamp(due))
            } else if owned.contains(where: { $0.name == jobName }) {
                status[member: "lastScheduleTime"] = .string(kubernetesTimestamp(due))
            } else {
                switch cronJob.string(at: "spec", "concurrencyPolicy") ?? "Allow" {
                case "Forbid" where !active.isEmpty:
                    // Waits for the active Job; looked at again when it finishes.
                    await events.record(
                        .normal, "JobAlreadyActive", "Not starting job because prior execution is running and concurrency policy is Forbid",
                        about: cronJob, source: source)
                default:
                    if cronJob.string(at: "spec", "concurrencyPolicy") == "Replace" {
                        for job in active { await delete(job, of: cronJob) }
                        active = []
                    }
                    if let made = await create(jobName, at: due, in: zone, of: cronJob) { active.append(made) }
                    status[member: "lastScheduleTime"] = .string(kubernetesTimestamp(due))
                }
            }
        }
        if !suspended, let next = schedule.next(after: now, in: zone) {
            lookAgainAfter = .milliseconds(Int64(next.timeIntervalSince(now) * 1000) + 100)
        }
        return (Self.withActive(status, active), lookAgainAfter)
    }

    /// "Complete" or "Failed" once a Job has finished; nil while it runs.
    static func finished(_ job: JSONValue) -> String? {
        (job.value(at: "status", "conditions")?.arrayElements ?? []).first {
            ($0["type"] == "Complete" || $0["type"] == "Failed") && $0["status"] == "True"
        }?["type"]?.stringValue
    }

    private static func withActive(_ status: JSONValue, _ active: [JSONValue]) -> JSONValue {
        var status = status
        let references: [JSONValue] = active.sorted { ($0.name ?? "") < ($1.name ?? "") }.map { job in
            [
                "apiVersion": "batch/v1", "kind": "Job", "name": .string(job.name ?? ""), "namespace": .string(job.namespace ?? ""),
                "uid": .string(job.uid ?? ""), "resourceVersion": job.metadata["resourceVersion"] ?? "",
            ]
        }
        status[member: "active"] = references.isEmpty ? nil : .array(references)
        return status
    }

    /// The Job for the run at `due`, as the controller makes it: the template's labels and
    /// annotations, the scheduled time, the CronJob as its controller, and the API's defaults.
    private func create(_ name: String, at due: Date, in zone: TimeZone, of cronJob: JSONValue) async -> JSONValue? {
        let template = cronJob.value(at: "spec", "jobTemplate") ?? [:]
        var annotations = template["metadata"]?["annotations"]?.objectMembers ?? [:]
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = zone
        annotations[Self.scheduledAnnotation] = .string(formatter.string(from: due))
        var job: JSONValue = [
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": [
                "name": .string(name), "namespace": .string(cronJob.namespace ?? "default"), "uid": .string(UUID().uuidString.lowercased()),
                "labels": template["metadata"]?["labels"] ?? [:], "annotations": .object(annotations),
                "ownerReferences": [
                    [
                        "apiVersion": "batch/v1", "kind": "CronJob", "name": .string(cronJob.name ?? ""), "uid": .string(cronJob.uid ?? ""),
                        "controller": true, "blockOwnerDeletion": true,
                    ]
                ],
            ],
            "spec": template["spec"] ?? [:],
        ]
        job = registry.plugin(apiVersion: "batch/v1", kind: "Job").normalizeOnWrite(job)
        do throws(StoreError) {
            let created = try await store.create(job, as: Self.jobs, dryRun: false)
            await events.record(.normal, "SuccessfulCreate", "Created job \(name)", about: cronJob, source: source)
            return created
        } catch  where error.code == .alreadyExists {
            return nil
        } catch {
            await events.record(.warning, "FailedCreate", "Error creating job: \(error.message)", about: cronJob, source: source)
            return nil
        }
    }

    /// Finished Jobs beyond the history limits go, oldest first.
    private func collectHistory(of cronJob: JSONValue, _ owned: [JSONValue]) async {
        for (outcome, field, standard) in [("Complete", "successfulJobsHistoryLimit", 3), ("Failed", "failedJobsHistoryLimit", 1)] {
            let limit = Int(max(0, cronJob.integer(at: "spec", field) ?? Int64(standard)))
            let finished = owned.filter { Self.finished($0) == outcome && $0.deletionTimestamp == nil }
                .sorted { ($0.metadata["creationTimestamp"]?.stringValue ?? "") < ($1.metadata["creationTimestamp"]?.stringValue ?? "") }
            for job in finished.dropLast(limit) { await delete(job, of: cronJob) }
        }
    }

    private func delete(_ job: JSONValue, of cronJob: JSONValue) async {
        guard let name = job.name else { return }
        do throws(StoreError) {
            _ = try await store.delete(Self.jobs, namespace: job.namespace, name: name, preconditions: .init(uid: job.uid), dryRun: false)
            await events.record(.normal, "SuccessfulDelete", "Deleted job \(name)", about: cronJob, source: source)
        } catch {
            logger.debug("cron job's job not deleted", metadata: ["tether.object": "\(job.namespace ?? "")/\(name)", "tether.error": "\(error)"])
        }
    }

}
