import TetherJSON
import TetherModel
import TetherPlugin

/// The ReplicationController, which came before ReplicaSets and is still on kubectl's default
/// `apply --prune` list: divided and run like a ReplicaSet, with an equality-only selector.
extension WorkloadsPlugin {
    /// A ReplicaSet with an equality-only selector (a label map, defaulted from the template's labels).
    public static let replicationController = KindDescriptor(
        group: "", version: "v1", kind: "ReplicationController", plural: "replicationcontrollers", namespaced: true, shortNames: ["rc"],
        categories: ["all"],
        printerColumns: [
            .count("DESIRED") { desiredReplicas($0) },
            .count("CURRENT") { $0.integer(at: "status", "replicas") ?? 0 },
            .count("READY") { $0.integer(at: "status", "readyReplicas") ?? 0 },
        ] + PrinterColumn.podTemplate(at: ["spec", "template"]) + [
            .text("SELECTOR", priority: 1) { LabelSelectorText.labels($0.value(at: "spec", "selector")) }
        ],
        hasScale: true,
        fields: [
            "spec": .numbered(
                .field(1, "replicas", .integer, optional: true), .field(4, "minReadySeconds", .integer), .field(2, "selector", .stringMap),
                .field(3, "template", .podTemplate)
            ),
            "status": .numbered(
                .field(1, "replicas", .integer), .field(2, "fullyLabeledReplicas", .integer), .field(4, "readyReplicas", .integer),
                .field(5, "availableReplicas", .integer), .field(3, "observedGeneration", .integer),
                .field(6, "conditions", .array(.transitionCondition(lastTransitionTime: 3, reason: 4, message: 5)))
            ),
        ],
        summary: "ReplicationController keeps a number of pod replicas running; ReplicaSets replace it.",
        protobufNumbers: ["spec": 2, "status": 3]
    )

    /// kube-apiserver's checks of a ReplicationController's selector, a label map, which may be
    /// left out when the template has labels (and the other way round).
    static func replicationControllerSelectorProblems(_ object: JSONValue) -> [ValidationProblem] {
        var problems: [ValidationProblem] = []
        // The selector is a label map, and either it or the template's labels may be left out.
        let selector = (object.value(at: "spec", "selector")?.objectMembers ?? [:]).compactMapValues(\.stringValue)
        let labels = (object.value(at: "spec", "template", "metadata", "labels")?.objectMembers ?? [:]).compactMapValues(\.stringValue)
        if selector.isEmpty && labels.isEmpty {
            problems.append(ValidationProblem(field: "spec.selector", "Required value: or spec.template.metadata.labels"))
        } else if !selector.isEmpty, !labels.isEmpty, let missing = selector.first(where: { labels[$0.key] != $0.value }) {
            problems.append(
                ValidationProblem(
                    field: "spec.template.metadata.labels", "must match spec.selector: \(missing.key)=\(missing.value) is missing"))
        }
        return problems
    }
}
