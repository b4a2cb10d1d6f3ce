import Foundation
import Logging
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore

/// The revisions of each workload's pod template, kept as Kubernetes' controllers keep them, so
/// `kubectl rollout history` and `kubectl rollout undo` work where no controller manager runs
/// (the hub, the simulated members):
///
/// - a Deployment's as ReplicaSets, named `NAME-HASH`, labelled `pod-template-hash`, annotated
///   `deployment.kubernetes.io/revision` (what kubectl reads for a Deployment);
/// - a DaemonSet's and a StatefulSet's as ControllerRevisions, named `NAME-HASH`, labelled
///   `controller.kubernetes.io/hash`, whose `revision` is the number and whose `data` is the
///   strategic merge patch that restores the template (`{"spec": {"template": {..., "$patch":
///   "replace"}}}`), which `rollout undo` sends back.
///
/// Each is controlled by its workload and carries the workload's annotations of the time
/// (`kubernetes.io/change-cause`). A revision ReplicaSet makes no Pods: at the hub the members
/// run them (its counts show theirs, ``showCounts(of:store:)``), and an object a controller owns
/// is never federated (the engine skips it).
///
/// Recorded by the API when a write changes a workload's template, before it answers, so a
/// `rollout history` right after `set image` shows the new revision; an undo renumbers the
/// revision it restores; revisions beyond `revisionHistoryLimit` (10 by default) are deleted.
/// A workload's history goes with it: its revisions are owned, and the ``GarbageCollector`` deletes them. Every hub replica may record
/// at once: a revision written twice is the same write.
enum RolloutHistory {
    /// How one workload kind keeps its revisions.
    enum Keeper: Sendable, CaseIterable {
        case replicaSets
        case daemonSetRevisions
        case statefulSetRevisions

        init?(kind: String) {
            switch kind {
            case "Deployment": self = .replicaSets
            case "DaemonSet": self = .daemonSetRevisions
            case "StatefulSet": self = .statefulSetRevisions
            default: return nil
            }
        }

        var ownerKind: String {
            switch self {
            case .replicaSets: "Deployment"
            case .daemonSetRevisions: "DaemonSet"
            case .statefulSetRevisions: "StatefulSet"
            }
        }

        var owners: ResourceType {
            switch self {
            case .replicaSets: ResourceType(group: "apps", resource: "deployments", namespaced: true)
            case .daemonSetRevisions: ResourceType(group: "apps", resource: "daemonsets", namespaced: true)
            case .statefulSetRevisions: ResourceType(group: "apps", resource: "statefulsets", namespaced: true)
            }
        }

        var type: ResourceType { self == .replicaSets ? RolloutHistory.replicaSets : RolloutHistory.controllerRevisions }
        var hashLabel: String { self == .replicaSets ? "pod-template-hash" : "controller.kubernetes.io/hash" }

        func number(of revision: JSONValue) -> Int64 {
            switch self {
            case .replicaSets: revision.annotations[revisionAnnotation].flatMap { Int64($0) } ?? 0
            case .daemonSetRevisions, .statefulSetRevisions: revision["revision"]?.integerValue ?? 0
            }
        }

        /// The pod template a revision holds, as the workload held it.
        func template(of revision: JSONValue) -> JSONValue? {
            switch self {
            case .replicaSets:
                guard var template = revision.value(at: "spec", "template") else { return nil }
                template[member: "metadata"]?[member: "labels"]?[member: hashLabel] = nil
                if template["metadata"]?["labels"] == [:] { template[member: "metadata"]?[member: "labels"] = nil }
                return template.withoutNulls
            case .daemonSetRevisions, .statefulSetRevisions:
                guard var template = revision.value(at: "data", "spec", "template") else { return nil }
                template[member: "$patch"] = nil
                return template.withoutNulls
            }
        }

        /// The object that holds `template` as revision `number` of `owner`.
        func revision(of owner: JSONValue, template: JSONValue, number: Int64, annotations: [String: String]) -> JSONValue? {
            guard let name = owner.name, let namespace = owner.namespace, let uid = owner.uid else { return nil }
            let hash = PodTemplateHash.of(template)
            var labels = template["metadata"]?["labels"]?.objectMembers ?? [:]
            labels[hashLabel] = .string(hash)
            var carried = annotations
            if self == .replicaSets { carried[revisionAnnotation] = String(number) }
            let reference: JSONValue = [
                "apiVersion": "apps/v1", "kind": .string(ownerKind), "name": .string(name), "uid": .string(uid), "controller": true,
                "blockOwnerDeletion": true,
            ]
            var metadata: JSONValue = [
                "name": .string("\(name.prefix(242))-\(hash)"), "namespace": .string(namespace), "labels": .object(labels),
                "ownerReferences": [reference],
            ]
            if !carried.isEmpty { metadata[member: "annotations"] = .object(carried.mapValues(JSONValue.string)) }
            switch self {
            case .replicaSets:
                var labeled = template
                labeled.set(.string(hash), at: ["metadata", "labels", hashLabel])
                var selector = owner.value(at: "spec", "selector") ?? [:]
                selector.set(.string(hash), at: ["matchLabels", hashLabel])
                return [
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": metadata,
                    "spec": ["replicas": 0, "selector": selector, "template": labeled],
                ]
            case .daemonSetRevisions, .statefulSetRevisions:
                var patch = template
                patch[member: "$patch"] = "replace"
                return [
                    "apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": metadata, "data": ["spec": ["template": patch]],
                    "revision": .integer(number),
                ]
            }
        }

        /// `revision` as revision `number`, with the workload's annotations now.
        func renumbering(_ revision: inout JSONValue, to number: Int64, annotations: [String: String]) -> Bool {
            var wanted = annotations
            if self == .replicaSets { wanted[revisionAnnotation] = String(number) }
            let before = revision
            revision.annotations = wanted
            if self != .replicaSets { revision[member: "revision"] = .integer(number) }
            return revision != before
        }
    }

    static let revisionAnnotation = "deployment.kubernetes.io/revision"
    static let replicaSets = ResourceType(group: "apps", resource: "replicasets", namespaced: true)
    static let controllerRevisions = ResourceType(group: "apps", resource: "controllerrevisions", namespaced: true)
    /// Annotations of a workload a revision does not carry (kubectl's `rollout undo` skips them too).
    static let annotationsNotCarried: Set<String> = [
        "kubectl.kubernetes.io/last-applied-configuration", revisionAnnotation, "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas", "deployment.kubernetes.io/max-replicas", "deprecated.deployment.rollback.to",
    ]
    /// The UID of the object's controller (the ownerReference with `controller: true`).
    static func controller(of object: JSONValue) -> String? {
        object.metadata["ownerReferences"]?.arrayElements.first { $0["controller"] == .bool(true) }?["uid"]?.stringValue
    }

    /// The kind of the object's controller.
    static func controllerKind(of object: JSONValue) -> String? {
        object.metadata["ownerReferences"]?.arrayElements.first { $0["controller"] == .bool(true) }?["kind"]?.stringValue
    }

    /// The objects that hold `owner`'s revisions, oldest first.
    static func revisions(of owner: JSONValue, keeper: Keeper, store: any ResourceStore) async throws -> [JSONValue] {
        guard let uid = owner.uid, let namespace = owner.namespace else { return [] }
        let matchLabels = owner.value(at: "spec", "selector", "matchLabels")?.objectMembers ?? [:]
        let selector = matchLabels.sorted { $0.key < $1.key }.compactMap { key, value in value.stringValue.map { "\(key)=\($0)" } }
        let labels = (try? LabelSelector(parsing: selector.joined(separator: ","))) ?? .everything
        let page = try await store.list(keeper.type, options: ListOptions(namespace: namespace, labelSelector: labels))
        return page.objects.filter { controller(of: $0) == uid }.sorted { keeper.number(of: $0) < keeper.number(of: $1) }
    }

    /// Makes `owner`'s template its newest revision: a new one, or the one that already holds
    /// the template (a rollback) renumbered; then drops revisions over the limit. Nothing for a
    /// kind that keeps no revisions.
    static func record(_ owner: JSONValue, store: any ResourceStore) async throws {
        guard let keeper = owner.kind.flatMap(Keeper.init(kind:)), let held = owner.value(at: "spec", "template"), held.isObject else { return }
        let wanted = held.withoutNulls
        let existing = try await revisions(of: owner, keeper: keeper, store: store)
        var newest: Int64 = 0
        var current: JSONValue?
        var older: [JSONValue] = []
        for revision in existing {
            newest = max(newest, keeper.number(of: revision))
            if keeper.template(of: revision) == wanted { current = revision } else { older.append(revision) }
        }
        let carried = owner.annotations.filter { !annotationsNotCarried.contains($0.key) }
        let number: Int64
        if let current, let name = current.name {
            number = keeper.number(of: current) == newest ? newest : newest + 1
            try await store.modify(keeper.type, namespace: current.namespace, name: name) { stored in
                keeper.renumbering(&stored, to: number, annotations: carried)
            }
        } else {
            number = newest + 1
            if let revision = keeper.revision(of: owner, template: wanted, number: number, annotations: carried) {
                try await create(revision, as: keeper.type, store: store)
            }
        }
        if keeper == .replicaSets { try await annotateRevision(of: owner, number, store: store) }
        let limit = Int(max(0, owner.value(at: "spec", "revisionHistoryLimit")?.integerValue ?? 10))
        for revision in older.dropLast(limit) {
            try await forget(revision, as: keeper.type, store: store)
        }
    }

    /// The Deployment controller's mark: the Deployment's own `deployment.kubernetes.io/revision`.
    /// `kubectl rollout undo` replaces `/metadata/annotations` with a JSON patch, which needs
    /// the member to exist (a Deployment made by `create deployment` had no annotations at all).
    private static func annotateRevision(of owner: JSONValue, _ number: Int64, store: any ResourceStore) async throws {
        guard let name = owner.name, owner.annotations[revisionAnnotation] != String(number) else { return }
        let type = ResourceType(group: "apps", resource: "deployments", namespaced: true)
        try await store.modify(type, namespace: owner.namespace, name: name) { stored in
            guard stored.uid == owner.uid, stored.annotations[revisionAnnotation] != String(number) else { return false }
            stored.annotations[revisionAnnotation] = String(number)
            return true
        }
    }

    /// Where no deployment controller runs (the hub), a Deployment's revisions show what its
    /// members run, as a controller's ReplicaSets would (`kubectl get rs`, `describe`'s
    /// "NewReplicaSet: web-… (4/4 replicas created)"): the newest revision the updated replicas,
    /// the one before it the rest, older ones none. Ready and available replicas are counted to
    /// the new revision only as far as the old ones cannot hold them (the members report sums).
    static func showCounts(of deployment: JSONValue, store: any ResourceStore) async throws {
        guard deployment.deletionTimestamp == nil, let template = deployment.value(at: "spec", "template")?.withoutNulls else { return }
        let revisions = try await revisions(of: deployment, keeper: .replicaSets, store: store)
        guard let current = revisions.last(where: { Keeper.replicaSets.template(of: $0) == template }) else { return }
        let previous = revisions.last { $0.name != current.name }
        let total = max(0, deployment.integer(at: "status", "replicas") ?? 0)
        let updated = min(max(0, deployment.integer(at: "status", "updatedReplicas") ?? 0), total)
        let ready = max(0, deployment.integer(at: "status", "readyReplicas") ?? 0)
        let available = max(0, deployment.integer(at: "status", "availableReplicas") ?? 0)
        let old = total - updated
        let newReady = max(0, min(updated, ready - old))
        let newAvailable = max(0, min(updated, available - old))
        for revision in revisions {
            let counts: (replicas: Int64, ready: Int64, available: Int64) =
                revision.name == current.name
                ? (updated, newReady, newAvailable)
                : revision.name == previous?.name ? (old, max(0, ready - newReady), max(0, available - newAvailable)) : (0, 0, 0)
            try await show(counts, on: revision, store: store)
        }
    }

    private static func show(_ counts: (replicas: Int64, ready: Int64, available: Int64), on revision: JSONValue, store: any ResourceStore)
        async throws
    {
        guard let name = revision.name else { return }
        let stored = try await store.modify(replicaSets, namespace: revision.namespace, name: name) { object in
            guard object.uid == revision.uid, object.integer(at: "spec", "replicas") != counts.replicas else { return false }
            object.set(.integer(counts.replicas), at: ["spec", "replicas"])
            return true
        }
        try await store.modify(replicaSets, namespace: revision.namespace, name: name, part: .status) { object in
            guard object.uid == revision.uid else { return false }
            let status: JSONValue = [
                "replicas": .integer(counts.replicas), "fullyLabeledReplicas": .integer(counts.replicas), "readyReplicas": .integer(counts.ready),
                "availableReplicas": .integer(counts.available), "observedGeneration": .integer((stored ?? object).generation ?? 1),
            ]
            guard object["status"] != status else { return false }
            object[member: "status"] = status
            return true
        }
    }

    // The two below throw StoreError alone: written with untyped throws, their `catch where`
    // crashes Swift 6.3.1's SIL ownership verifier.
    private static func create(_ revision: JSONValue, as type: ResourceType, store: any ResourceStore) async throws(StoreError) {
        do {
            _ = try await store.create(revision, as: type, dryRun: false)
        } catch  where error.code == .alreadyExists {
            // Another hub recorded the same template at the same moment.
        }
    }

    static func forget(_ revision: JSONValue, as type: ResourceType, store: any ResourceStore) async throws(StoreError) {
        guard let name = revision.name else { return }
        do {
            _ = try await store.delete(
                type, namespace: revision.namespace, name: name, preconditions: DeletePreconditions(uid: revision.uid), dryRun: false)
        } catch  where error.code == .notFound || error.code == .conflict {
            // Gone already, or made again under the same name.
        }
    }
}

/// Where no deployment controller runs (the hub): each Deployment's revisions show the replicas
/// its members run (``RolloutHistory/showCounts(of:store:)``), written as its status changes.
/// The revisions of a deleted workload go with it by the ``GarbageCollector``: they are owned.
struct RevisionCountFollower: Sendable {
    let store: any ResourceStore
    let logger: Logger

    func run() async {
        let informer = Informer(StoreListWatch(store: store, type: RolloutHistory.Keeper.replicaSets.owners), backoff: GarbageCollector.backoff)
        await informer.run { event in
            guard case .changed(.upserted(let deployment, _)) = event else { return }
            do {
                try await RolloutHistory.showCounts(of: deployment, store: store)
            } catch {
                // A hub that is stopping cancels the follower mid-write: nothing went wrong.
                guard !Task.isCancelled else { return }
                logger.warning(
                    "cannot show a Deployment's replicas on its revisions; they show them at its next change",
                    metadata: [
                        "tether.event": "rollout_history.counts_failed", "tether.object": "\(deployment.namespace ?? "")/\(deployment.name ?? "")",
                        "tether.error": "\(error)",
                    ])
            }
        }
    }
}

extension ResourceOperation {
    /// A Deployment's, DaemonSet's or StatefulSet's template recorded as its newest revision
    /// (``RolloutHistory``) before the write is answered. Should that fail, the write stands and
    /// the revision is missing.
    func recordRevision(of written: JSONValue) async {
        guard kind.group == "apps", RolloutHistory.Keeper(kind: kind.kind) != nil, written.deletionTimestamp == nil else { return }
        do {
            try await RolloutHistory.record(written, store: store)
        } catch {
            handler.logger.warning(
                "cannot record a workload's revision; rollout history will miss it",
                metadata: [
                    "tether.event": "rollout_history.record_failed", "tether.object": "\(written.namespace ?? "")/\(written.name ?? "")",
                    "tether.error": "\(error)",
                ])
        }
    }
}

extension JSONValue {
    fileprivate var isObject: Bool {
        if case .object = self { return true }
        return false
    }
}
