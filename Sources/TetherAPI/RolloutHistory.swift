import Foundation
import Logging
import TetherJSON
import TetherModel
import TetherStore

/// The revisions of each Deployment's pod template, kept as Kubernetes' deployment controller
/// keeps them, so `kubectl rollout history` and `kubectl rollout undo` work where no controller
/// manager runs (the hub, the simulated members): one ReplicaSet per distinct template, named
/// `DEPLOYMENT-HASH`, controlled by the Deployment, labelled `pod-template-hash`, annotated
/// `deployment.kubernetes.io/revision` and carrying the Deployment's annotations of the time
/// (`kubernetes.io/change-cause`). It holds no replicas: at the hub the members run the pods,
/// and an object a controller owns is never federated itself (the engine skips it).
///
/// Recorded by the API when a write changes a Deployment's template, before it answers, so a
/// `rollout history` right after `set image` shows the new revision; older revisions beyond
/// `revisionHistoryLimit` (10 by default) are deleted then. A Deployment's history goes with it
/// (``RolloutHistoryCleanup``). Every hub replica may record at once: a revision written twice
/// is the same write.
enum RolloutHistory {
    static let revisionAnnotation = "deployment.kubernetes.io/revision"
    static let hashLabel = "pod-template-hash"
    static let deployments = ResourceType(group: "apps", resource: "deployments", namespaced: true)
    static let replicaSets = ResourceType(group: "apps", resource: "replicasets", namespaced: true)
    /// Annotations of the Deployment a revision does not carry (kubectl's `rollout undo` skips them too).
    static let annotationsNotCarried: Set<String> = [
        "kubectl.kubernetes.io/last-applied-configuration", revisionAnnotation, "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas", "deployment.kubernetes.io/max-replicas", "deprecated.deployment.rollback.to",
    ]
    /// Kubernetes' alphabet for generated name suffixes: no vowels, no look-alike digits.
    private static let alphabet = Array("bcdfghjklmnpqrstvwxz2456789")

    /// A short, stable name for a template: the same template always gets the same suffix.
    static func hash(of template: JSONValue) -> String {
        var hash = StableHash()
        hash.combine(template)
        var value = hash.value
        var text = ""
        for _ in 0..<10 {
            text.append(alphabet[Int(value % UInt64(alphabet.count))])
            value /= UInt64(alphabet.count)
        }
        return text
    }

    /// The ReplicaSets that hold `deployment`'s revisions, oldest first.
    static func revisions(of deployment: JSONValue, store: any ResourceStore) async throws -> [JSONValue] {
        guard let uid = deployment.uid, let namespace = deployment.namespace else { return [] }
        let matchLabels = deployment.value(at: "spec", "selector", "matchLabels")?.objectMembers ?? [:]
        let selector = matchLabels.sorted { $0.key < $1.key }.compactMap { key, value in value.stringValue.map { "\(key)=\($0)" } }
        let labels = (try? LabelSelector(parsing: selector.joined(separator: ","))) ?? .everything
        let page = try await store.list(replicaSets, options: ListOptions(namespace: namespace, labelSelector: labels))
        return page.objects.filter { controller(of: $0) == uid }.sorted { revision(of: $0) < revision(of: $1) }
    }

    /// The UID of the object's controller (the ownerReference with `controller: true`).
    static func controller(of object: JSONValue) -> String? {
        object.metadata["ownerReferences"]?.arrayElements.first { $0["controller"] == .bool(true) }?["uid"]?.stringValue
    }

    static func revision(of replicaSet: JSONValue) -> Int64 {
        replicaSet.annotations[revisionAnnotation].flatMap { Int64($0) } ?? 0
    }

    /// A revision's template as the Deployment held it: without the hash label.
    static func template(of replicaSet: JSONValue) -> JSONValue? {
        guard var template = replicaSet.value(at: "spec", "template") else { return nil }
        template[member: "metadata"]?[member: "labels"]?[member: hashLabel] = nil
        if template["metadata"]?["labels"] == [:] { template[member: "metadata"]?[member: "labels"] = nil }
        return withoutNulls(template)
    }

    /// A template without its `null`s, which Kubernetes reads as absent: `kubectl rollout undo`
    /// sends back `creationTimestamp: null` where the template had nothing.
    static func withoutNulls(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let members): .object(members.filter { $0.value != .null }.mapValues(withoutNulls))
        case .array(let items): .array(items.map(withoutNulls))
        default: value
        }
    }

    /// Makes `deployment`'s template its newest revision: a new ReplicaSet, or the one that
    /// already holds the template (a rollback) renumbered; then drops revisions over the limit.
    static func record(_ deployment: JSONValue, store: any ResourceStore) async throws {
        guard let held = deployment.value(at: "spec", "template"), held.isObject else { return }
        let wanted = withoutNulls(held)
        let existing = try await revisions(of: deployment, store: store)
        var newest: Int64 = 0
        var current: JSONValue?
        var older: [JSONValue] = []
        for replicaSet in existing {
            newest = max(newest, revision(of: replicaSet))
            if template(of: replicaSet) == wanted { current = replicaSet } else { older.append(replicaSet) }
        }
        let carried = deployment.annotations.filter { !annotationsNotCarried.contains($0.key) }
        if let current {
            let number = revision(of: current) == newest ? newest : newest + 1
            try await renumber(current, to: number, annotations: carried, store: store)
        } else if let replicaSet = newRevision(of: deployment, template: wanted, number: newest + 1, annotations: carried) {
            try await create(replicaSet, store: store)
        }
        let limit = Int(max(0, deployment.value(at: "spec", "revisionHistoryLimit")?.integerValue ?? 10))
        for replicaSet in older.dropLast(limit) {
            try await forget(replicaSet, store: store)
        }
    }

    private static func create(_ replicaSet: JSONValue, store: any ResourceStore) async throws(StoreError) {
        do {
            _ = try await store.create(replicaSet, as: replicaSets, dryRun: false)
        } catch  where error.code == .alreadyExists {
            // Another hub recorded the same template at the same moment.
        }
    }

    /// Gives the revision that holds the current template `number` and the Deployment's annotations.
    private static func renumber(_ replicaSet: JSONValue, to number: Int64, annotations: [String: String], store: any ResourceStore)
        async throws
    {
        guard let name = replicaSet.name else { return }
        var wanted = annotations
        wanted[revisionAnnotation] = String(number)
        let values = JSONValue.object(wanted.mapValues(JSONValue.string))
        try await store.modify(replicaSets, namespace: replicaSet.namespace, name: name) { stored in
            guard stored.metadata["annotations"] != values else { return false }
            stored.metadata["annotations"] = values
            return true
        }
    }

    /// The ReplicaSet that holds `template` as revision `number` of `deployment`.
    private static func newRevision(of deployment: JSONValue, template: JSONValue, number: Int64, annotations: [String: String]) -> JSONValue? {
        guard let name = deployment.name, let namespace = deployment.namespace, let uid = deployment.uid else { return nil }
        var carried = annotations
        carried[revisionAnnotation] = String(number)
        let hash = hash(of: template)
        var labeled = template
        labeled.set(.string(hash), at: ["metadata", "labels", hashLabel])
        var selector = deployment.value(at: "spec", "selector") ?? [:]
        selector.set(.string(hash), at: ["matchLabels", hashLabel])
        var labels = template["metadata"]?["labels"]?.objectMembers ?? [:]
        labels[hashLabel] = .string(hash)
        let owner: JSONValue = [
            "apiVersion": "apps/v1", "kind": "Deployment", "name": .string(name), "uid": .string(uid), "controller": true, "blockOwnerDeletion": true,
        ]
        return [
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": [
                "name": .string("\(name.prefix(242))-\(hash)"), "namespace": .string(namespace), "labels": .object(labels),
                "annotations": .object(carried.mapValues(JSONValue.string)), "ownerReferences": [owner],
            ],
            "spec": ["replicas": 0, "selector": selector, "template": labeled],
        ]
    }

    static func forget(_ replicaSet: JSONValue, store: any ResourceStore) async throws(StoreError) {
        guard let name = replicaSet.name else { return }
        do {
            _ = try await store.delete(
                replicaSets, namespace: replicaSet.namespace, name: name, preconditions: DeletePreconditions(uid: replicaSet.uid), dryRun: false)
        } catch  where error.code == .notFound || error.code == .conflict {
            // Gone already, or made again under the same name.
        }
    }
}

/// Deletes the revisions of Deployments that are gone: when one is deleted, and at start for
/// any deleted while no hub ran.
struct RolloutHistoryCleanup: Sendable {
    let store: any ResourceStore
    let logger: Logger

    func run() async {
        let informer = Informer(
            StoreListWatch(store: store, type: RolloutHistory.deployments), backoff: Backoff(initial: .milliseconds(200), maximum: .seconds(10)))
        await informer.run { event in
            do {
                switch event {
                case .listed(let deployments, _):
                    let living = Set(deployments.compactMap(\.uid))
                    let page = try await store.list(RolloutHistory.replicaSets, options: ListOptions())
                    for replicaSet in page.objects {
                        guard let owner = RolloutHistory.controller(of: replicaSet), Self.ownedByDeployment(replicaSet), !living.contains(owner)
                        else { continue }
                        try await RolloutHistory.forget(replicaSet, store: store)
                    }
                case .changed(.deleted(let deployment, _)):
                    guard let uid = deployment.uid else { return }
                    let page = try await store.list(RolloutHistory.replicaSets, options: ListOptions(namespace: deployment.namespace))
                    for replicaSet in page.objects where RolloutHistory.controller(of: replicaSet) == uid {
                        try await RolloutHistory.forget(replicaSet, store: store)
                    }
                case .changed, .failed:
                    return
                }
            } catch {
                logger.warning(
                    "cannot delete the revisions of a deleted Deployment; they go at the next start",
                    metadata: ["tether.event": "rollout_history.cleanup_failed", "tether.error": "\(error)"])
            }
        }
    }

    private static func ownedByDeployment(_ replicaSet: JSONValue) -> Bool {
        replicaSet.metadata["ownerReferences"]?.arrayElements.contains { $0["controller"] == .bool(true) && $0["kind"] == "Deployment" } == true
    }
}

extension JSONValue {
    fileprivate var isObject: Bool {
        if case .object = self { return true }
        return false
    }
}
