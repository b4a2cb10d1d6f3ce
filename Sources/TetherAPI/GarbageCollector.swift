import Foundation
import Logging
import Synchronization
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore

/// Kubernetes' garbage collector over one store: an object whose `ownerReferences` all name
/// owners that are gone is deleted, and the deletion policies kube-apiserver records as
/// finalizers are carried out.
///
/// - **Background** (the default): the owner goes at once; its dependents go after it.
/// - **Orphan**: the owner holds `orphan` until its reference is removed from every dependent,
///   which stay.
/// - **Foreground**: the owner holds `foregroundDeletion` while its dependents are deleted, and
///   goes once none that sets `blockOwnerDeletion` is left.
///
/// A dependent with another owner that still lives loses only the references to the gone ones.
/// An owner of a kind not served here counts as alive: nothing is deleted on a doubt.
///
/// It follows every kind the catalog serves (kinds that CustomResourceDefinitions add too, as
/// they appear), Events aside, and keeps in memory only which owners each object with
/// `ownerReferences` names. Every decision reads the objects again from the store, so a late
/// watch event cannot delete what was adopted or orphaned since. Several hubs over one store
/// may each run one: a deletion repeated by two deletes nothing twice (the uid is a precondition).
final class GarbageCollector: Sendable {
    static let orphanFinalizer = "orphan"
    static let foregroundFinalizer = "foregroundDeletion"

    /// Where an object is stored.
    struct Location: Hashable, Sendable {
        var type: ResourceType
        var namespace: String?
        var name: String
    }

    /// What the worker does next; each is decided from the store as it is then.
    enum Work: Hashable, Sendable {
        /// Delete the object when its owners are gone, or drop references to gone owners.
        case dependent(Location)
        /// Finish an owner's `orphan` or `foregroundDeletion`.
        case owner(Location, uid: String)
    }

    private struct Graph {
        /// Objects that have owners, by the uid of each owner they name.
        var dependents: [String: Set<Location>] = [:]
        /// The owners' uids each such object names.
        var owners: [Location: Set<String>] = [:]
        /// Owners being deleted with `orphan` or `foregroundDeletion`, waiting on their dependents.
        var finishing: [String: Location] = [:]
        var followed: Set<ResourceType> = []
        var listed: Set<ResourceType> = []
        /// Work queued and not yet started: the queue never holds one twice.
        var queued: Set<Work> = []
        /// Failures in a row of each piece of work retried, for its backoff.
        var failures: [Work: Int] = [:]
    }

    private let store: any ResourceStore
    private let catalog: KindCatalog
    private let logger: Logger
    /// Whether deleted Pods end gracefully here (a kubelet ends them), as the API deletes them.
    private let podsEndedByKubelet: Bool
    /// False at the hub, whose federation engine removes `orphan` once it has decided that
    /// members keep their copies (it does not wait for the dependents here).
    private let graph = Mutex(Graph())
    private let queue: AsyncStream<Work>
    private let enqueue: AsyncStream<Work>.Continuation

    init(store: any ResourceStore, catalog: KindCatalog, podsEndedByKubelet: Bool, logger: Logger) {
        self.store = store
        self.catalog = catalog
        self.podsEndedByKubelet = podsEndedByKubelet
        self.logger = logger
        // Unbounded in type, bounded in fact: `queued` keeps one entry per object or owner.
        (queue, enqueue) = AsyncStream.makeStream(of: Work.self)
    }

    func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.work() }
            let changes = catalog.changes()
            follow(catalog.registry, in: &group)
            for await registry in changes { follow(registry, in: &group) }
        }
        enqueue.finish()
    }

    private func follow(_ registry: KindRegistry, in group: inout DiscardingTaskGroup) {
        let types = registry.kinds.filter { $0.kind != "Event" }.map { ResourceType(group: $0.group, resource: $0.plural, namespaced: $0.namespaced) }
        let new = graph.withLock { graph in types.filter { graph.followed.insert($0).inserted } }
        for type in new { group.addTask { await self.follow(type) } }
    }

    private func follow(_ type: ResourceType) async {
        let informer = Informer(StoreListWatch(store: store, type: type), backoff: Self.backoff)
        await informer.run { event in
            switch event {
            case .listed(let objects, _): self.listed(objects, as: type)
            case .changed(.upserted(let object, _)): self.upserted(object, as: type)
            case .changed(.deleted(let object, _)): self.deleted(object, as: type)
            case .changed(.bookmark): return
            case .failed(let error, _, let delay):
                guard !Task.isCancelled else { return }
                self.logger.warning(
                    "cannot follow a kind for garbage collection; retrying",
                    metadata: [
                        "tether.event": "gc.follow_failed", "tether.kind": "\(type)", "tether.error": "\(error)", "tether.retry_in": "\(delay)",
                    ])
            }
        }
    }

    // MARK: Following the store

    private func listed(_ objects: [JSONValue], as type: ResourceType) {
        var work: [Work] = []
        graph.withLock { graph in
            for (location, _) in graph.owners where location.type == type { Self.forget(location, in: &graph) }
            for object in objects {
                guard let location = Self.location(of: object, as: type) else { continue }
                if Self.record(object, at: location, in: &graph), object.deletionTimestamp == nil { work.append(.dependent(location)) }
                if let finishing = Self.finishing(object, at: location, in: &graph) { work.append(finishing) }
            }
            graph.listed.insert(type)
            // An orphaning or a foreground deletion waits until every kind was listed once.
            work += graph.finishing.map { .owner($0.value, uid: $0.key) }
        }
        submit(work)
    }

    private func upserted(_ object: JSONValue, as type: ResourceType) {
        guard let location = Self.location(of: object, as: type) else { return }
        var work: [Work] = []
        graph.withLock { graph in
            if Self.record(object, at: location, in: &graph), object.deletionTimestamp == nil { work.append(.dependent(location)) }
            if let finishing = Self.finishing(object, at: location, in: &graph) { work.append(finishing) }
        }
        submit(work)
    }

    private func deleted(_ object: JSONValue, as type: ResourceType) {
        guard let location = Self.location(of: object, as: type) else { return }
        var work: [Work] = []
        graph.withLock { graph in
            let owners = graph.owners[location] ?? []
            Self.forget(location, in: &graph)
            // A foreground deletion waiting on this object may finish.
            for owner in owners { if let waiting = graph.finishing[owner] { work.append(.owner(waiting, uid: owner)) } }
            guard let uid = object.uid else { return }
            graph.finishing[uid] = nil
            work += (graph.dependents[uid] ?? []).map(Work.dependent)
        }
        submit(work)
    }

    private static func location(of object: JSONValue, as type: ResourceType) -> Location? {
        object.name.map { Location(type: type, namespace: type.namespaced ? object.namespace : nil, name: $0) }
    }

    /// Records the owners `object` names; true when they changed and there is at least one.
    private static func record(_ object: JSONValue, at location: Location, in graph: inout Graph) -> Bool {
        let owners = Set(ownerReferences(of: object).compactMap { $0["uid"]?.stringValue })
        let before = graph.owners[location] ?? []
        guard owners != before else { return false }
        forget(location, in: &graph)
        guard !owners.isEmpty else { return false }
        graph.owners[location] = owners
        for owner in owners { graph.dependents[owner, default: []].insert(location) }
        return true
    }

    private static func forget(_ location: Location, in graph: inout Graph) {
        for owner in graph.owners.removeValue(forKey: location) ?? [] {
            graph.dependents[owner]?.remove(location)
            if graph.dependents[owner]?.isEmpty == true { graph.dependents[owner] = nil }
        }
    }

    /// An owner being deleted under `orphan` or `foregroundDeletion`: the work that finishes it.
    private static func finishing(_ object: JSONValue, at location: Location, in graph: inout Graph) -> Work? {
        guard object.deletionTimestamp != nil, let uid = object.uid,
            object.finalizers.contains(orphanFinalizer) || object.finalizers.contains(foregroundFinalizer)
        else { return nil }
        graph.finishing[uid] = location
        return .owner(location, uid: uid)
    }

    static func ownerReferences(of object: JSONValue) -> [JSONValue] { object.metadata["ownerReferences"]?.arrayElements ?? [] }

    // MARK: The worker

    private func submit(_ work: [Work]) {
        let new = graph.withLock { graph in work.filter { graph.queued.insert($0).inserted } }
        for item in new { enqueue.yield(item) }
    }

    /// One item at a time, in the order the store's events asked for them: an owner's orphaning
    /// is done before the work its deletion queues reads its dependents.
    private func work() async {
        for await item in queue {
            _ = graph.withLock { $0.queued.remove(item) }
            do throws(StoreError) {
                switch item {
                case .dependent(let location): try await collect(location)
                case .owner(let location, let uid): try await finish(location, uid: uid)
                }
                _ = graph.withLock { $0.failures.removeValue(forKey: item) }
            } catch {
                guard !Task.isCancelled else { return }
                logger.warning(
                    "garbage collection failed; retrying",
                    metadata: ["tether.event": "gc.failed", "tether.work": "\(item)", "tether.error": "\(error)"])
                retry(item)
            }
        }
    }

    /// Queues `item` again after a backoff that grows with its failures in a row (the store is
    /// away, or the object keeps changing under the write).
    private func retry(_ item: Work) {
        let attempt = graph.withLock { graph in
            graph.failures[item, default: 0] += 1
            return graph.failures[item] ?? 1
        }
        Task {
            guard (try? await Task.sleep(for: Self.backoff.delay(attempt: attempt))) != nil else { return }
            submit([item])
        }
    }

    static let backoff = Backoff(initial: .milliseconds(200), maximum: .seconds(10))

    private enum OwnerState {
        case alive
        case gone
        /// Being deleted in the foreground: its dependents go first.
        case waitingForDependents
    }

    /// Deletes the object when every owner it names is gone or waiting for its dependents;
    /// removes the references to those when another owner lives.
    private func collect(_ location: Location) async throws(StoreError) {
        guard let object = try await current(location), object.deletionTimestamp == nil, let uid = object.uid else { return }
        var alive = false
        var released: Set<String> = []
        var waiting = false
        for reference in Self.ownerReferences(of: object) {
            switch try await state(of: reference, namespace: location.namespace) {
            case .alive: alive = true
            case .gone: released.insert(reference["uid"]?.stringValue ?? "")
            case .waitingForDependents:
                waiting = true
                released.insert(reference["uid"]?.stringValue ?? "")
            }
        }
        if alive {
            guard !released.isEmpty else { return }
            try await removeReferences(to: released, from: location, uid: uid)
            logger.info(
                "references to deleted owners removed; another owner keeps the object",
                metadata: ["tether.event": "gc.released", "tether.object": "\(location.type) \(location.namespace ?? "")/\(location.name)"])
            return
        }
        // Foreground reaches down: a dependent with dependents of its own waits for them too.
        let hasDependents = graph.withLock { $0.dependents[uid]?.isEmpty == false }
        // The version read is a precondition too: an owner given to it since (a Lease taken over) keeps it.
        var preconditions = DeletePreconditions(
            uid: uid, resourceVersion: object.resourceVersion, addingFinalizers: waiting && hasDependents ? [Self.foregroundFinalizer] : [])
        if podsEndedByKubelet, location.type.group.isEmpty, location.type.resource == "pods" {
            preconditions.gracePeriodSeconds = PodDeletion.gracePeriod(of: object)
        }
        do throws(StoreError) {
            _ = try await store.delete(location.type, namespace: location.namespace, name: location.name, preconditions: preconditions, dryRun: false)
            logger.info(
                "deleted: every owner is gone",
                metadata: ["tether.event": "gc.deleted", "tether.object": "\(location.type) \(location.namespace ?? "")/\(location.name)"])
        } catch  where error.code == .notFound || error.code == .conflict {
            // Gone already, or made again under the same name.
        }
    }

    private func state(of reference: JSONValue, namespace: String?) async throws(StoreError) -> OwnerState {
        guard let apiVersion = reference["apiVersion"]?.stringValue, let kind = reference["kind"]?.stringValue,
            let name = reference["name"]?.stringValue, let uid = reference["uid"]?.stringValue,
            let descriptor = catalog.registry.kind(apiVersion: apiVersion, kind: kind),
            // A cluster-scoped object cannot be owned by a namespaced one; such a reference is left alone.
            !descriptor.namespaced || namespace != nil
        else { return .alive }
        let type = ResourceType(group: descriptor.group, resource: descriptor.plural, namespaced: descriptor.namespaced)
        guard let owner = try await current(Location(type: type, namespace: descriptor.namespaced ? namespace : nil, name: name)),
            owner.uid == uid
        else { return .gone }
        if owner.deletionTimestamp != nil, owner.finalizers.contains(Self.foregroundFinalizer) { return .waitingForDependents }
        return .alive
    }

    /// An owner being deleted under `orphan` or `foregroundDeletion`: once every kind was listed,
    /// orphaning removes its references from its dependents and the finalizer; a foreground
    /// deletion deletes its dependents and removes the finalizer once none that blocks is left.
    private func finish(_ location: Location, uid: String) async throws(StoreError) {
        guard let owner = try await current(location), owner.uid == uid, owner.deletionTimestamp != nil else { return }
        let (ready, dependents) = graph.withLock { ($0.listed.isSuperset(of: $0.followed), $0.dependents[uid] ?? []) }
        if owner.finalizers.contains(Self.orphanFinalizer) {
            // The dependents known so far are orphaned at once; the finalizer stays until every
            // kind was listed, so no dependent of a kind not yet listed is collected with the owner.
            for dependent in dependents { try await removeReferences(to: [uid], from: dependent, uid: nil) }
            guard ready else { return }
            try await removeFinalizer(Self.orphanFinalizer, from: location, uid: uid)
            logger.info(
                "dependents orphaned",
                metadata: ["tether.event": "gc.orphaned", "tether.object": "\(location.type) \(location.namespace ?? "")/\(location.name)"])
        } else if ready, owner.finalizers.contains(Self.foregroundFinalizer) {
            var blocking = 0
            for dependent in dependents {
                if let object = try await current(dependent), object.deletionTimestamp == nil { try await collect(dependent) }
                guard let object = try await current(dependent) else { continue }
                let blocks = Self.ownerReferences(of: object).contains { $0["uid"]?.stringValue == uid && $0["blockOwnerDeletion"] == .bool(true) }
                // A dependent waiting in the foreground for this owner, which it owns in turn (a
                // cycle), would wait forever: it does not block, and goes once this owner has.
                let waitsForThis =
                    object.deletionTimestamp != nil && object.finalizers.contains(Self.foregroundFinalizer)
                    && graph.withLock { graph in object.uid.map { graph.dependents[$0]?.contains(location) == true } ?? false }
                if blocks && !waitsForThis { blocking += 1 }
            }
            // Deletions of the blocking dependents queue this again.
            guard blocking == 0 else { return }
            try await removeFinalizer(Self.foregroundFinalizer, from: location, uid: uid)
        }
    }

    private func current(_ location: Location) async throws(StoreError) -> JSONValue? {
        do {
            return try await store.get(location.type, namespace: location.namespace, name: location.name)
        } catch  where error.code == .notFound {
            return nil
        }
    }

    private func removeReferences(to owners: Set<String>, from location: Location, uid: String?) async throws(StoreError) {
        do {
            try await store.modify(location.type, namespace: location.namespace, name: location.name) { object in
                guard uid == nil || object.uid == uid else { return false }
                let references = Self.ownerReferences(of: object)
                let kept = references.filter { !owners.contains($0["uid"]?.stringValue ?? "") }
                guard kept.count != references.count else { return false }
                object.metadata["ownerReferences"] = kept.isEmpty ? nil : .array(kept)
                return true
            }
        } catch  where error.code == .notFound {
            // Deleted since.
        }
    }

    private func removeFinalizer(_ finalizer: String, from location: Location, uid: String) async throws(StoreError) {
        do {
            try await store.modify(location.type, namespace: location.namespace, name: location.name) { object in
                object.uid == uid && FinalizingCleanup.removing(finalizer, from: &object)
            }
        } catch  where error.code == .notFound {
            // Deleted since.
        }
    }
}
