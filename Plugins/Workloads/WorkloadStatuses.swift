import TetherPlugin

/// The statuses of the workload kinds, with the field numbers of k8s.io/api apps/v1 and
/// batch/v1: what the hub's aggregates and the members' reports hold, checked and encoded in
/// protobuf like the rest of each kind.
extension WorkloadsPlugin {
    static let deploymentStatus = FieldSchema.numbered(
        .field(1, "observedGeneration", .integer), .field(2, "replicas", .integer), .field(3, "updatedReplicas", .integer),
        .field(7, "readyReplicas", .integer), .field(4, "availableReplicas", .integer), .field(5, "unavailableReplicas", .integer),
        .field(9, "terminatingReplicas", .integer, optional: true), .field(8, "collisionCount", .integer, optional: true),
        .field(
            6, "conditions",
            .array(
                .numbered(
                    .field(1, "type", .string), .field(2, "status", .string), .field(6, "lastUpdateTime", .time),
                    .field(7, "lastTransitionTime", .time), .field(4, "reason", .string), .field(5, "message", .string)
                )))
    )
    static let replicaSetStatus = FieldSchema.numbered(
        .field(1, "replicas", .integer), .field(2, "fullyLabeledReplicas", .integer), .field(4, "readyReplicas", .integer),
        .field(5, "availableReplicas", .integer), .field(7, "terminatingReplicas", .integer, optional: true),
        .field(3, "observedGeneration", .integer), .field(6, "conditions", .array(appsCondition))
    )
    static let statefulSetStatus = FieldSchema.numbered(
        .field(1, "observedGeneration", .integer), .field(2, "replicas", .integer), .field(3, "readyReplicas", .integer),
        .field(4, "currentReplicas", .integer), .field(5, "updatedReplicas", .integer), .field(6, "currentRevision", .string),
        .field(7, "updateRevision", .string), .field(9, "collisionCount", .integer, optional: true),
        .field(10, "conditions", .array(appsCondition)), .field(11, "availableReplicas", .integer)
    )
    static let daemonSetStatus = FieldSchema.numbered(
        .field(1, "currentNumberScheduled", .integer), .field(2, "numberMisscheduled", .integer), .field(3, "desiredNumberScheduled", .integer),
        .field(4, "numberReady", .integer), .field(5, "observedGeneration", .integer), .field(6, "updatedNumberScheduled", .integer),
        .field(7, "numberAvailable", .integer), .field(8, "numberUnavailable", .integer), .field(9, "collisionCount", .integer, optional: true),
        .field(10, "conditions", .array(appsCondition))
    )
    static let appsCondition = FieldSchema.transitionCondition(lastTransitionTime: 3, reason: 4, message: 5)
    static let jobStatus = FieldSchema.numbered(
        .field(1, "conditions", .array(.probedCondition())),
        .field(2, "startTime", .time), .field(3, "completionTime", .time), .field(4, "active", .integer), .field(5, "succeeded", .integer),
        .field(6, "failed", .integer), .field(11, "terminating", .integer, optional: true), .field(7, "completedIndexes", .string),
        .field(10, "failedIndexes", .string, optional: true),
        .field(8, "uncountedTerminatedPods", .numbered(.field(1, "succeeded", .stringList), .field(2, "failed", .stringList))),
        .field(9, "ready", .integer, optional: true)
    )
    static let cronJobStatus = FieldSchema.numbered(
        .field(1, "active", .array(.objectReference)), .field(4, "lastScheduleTime", .time), .field(5, "lastSuccessfulTime", .time)
    )
}
