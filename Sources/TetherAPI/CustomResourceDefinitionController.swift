import Foundation
import Logging
import Synchronization
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore

/// Serves what the stored CustomResourceDefinitions define, as kube-apiserver's apiextensions
/// controllers do: follows the definitions in the store, keeps the ``KindCatalog`` equal to them,
/// gives each accepted definition its `Established` status, and when a definition is deleted,
/// deletes every object of its kind before letting the definition go (its cleanup finalizer).
///
/// It also follows ResourceInterpreterCustomizations where the server serves them (the hub):
/// each is compiled once per resource version and put in front of its target kind's plugin.
///
/// Every replica of a hub runs one over the shared store; they agree because each only derives
/// from what is stored, and a cleanup repeated by two replicas deletes nothing twice.
final class CustomResourceDefinitionController: Sendable {
    static let type = ResourceType(group: CustomResourceDefinition.group, resource: "customresourcedefinitions", namespaced: false)
    static let customizationType = ResourceType(group: "config.karmada.io", resource: "resourceinterpretercustomizations", namespaced: false)

    private let store: any ResourceStore
    private let catalog: KindCatalog
    private let logger: Logger
    /// The definitions whose objects are being deleted now, by name.
    private let cleaning = Mutex<Set<String>>([])
    private let cleanups: (stream: AsyncStream<CustomResourceDefinition>, continuation: AsyncStream<CustomResourceDefinition>.Continuation)

    init(store: any ResourceStore, catalog: KindCatalog, logger: Logger) {
        self.store = store
        self.catalog = catalog
        self.logger = logger
        self.cleanups = AsyncStream.makeStream(of: CustomResourceDefinition.self)
    }

    /// Serves the stored definitions before the API opens (and before the federation engine
    /// lists its collections, so objects of custom kinds are never missing from a first list).
    func load() async throws {
        let (objects, version) = try await StoreListWatch(store: store, type: Self.type).list()
        catalog.update(definitions: definitions(in: objects), through: UInt64(version) ?? 0)
        if catalog.servesCustomizations {
            catalog.update(customizations: customizations(in: try await StoreListWatch(store: store, type: Self.customizationType).list().objects))
        }
    }

    private func customizations(in objects: [JSONValue]) -> [InterpreterCustomization] {
        objects.compactMap { object -> InterpreterCustomization? in
            if let known = catalog.customization(named: object.name ?? ""), known.resourceVersion == object.resourceVersion { return known }
            return parsed(object, what: "ResourceInterpreterCustomization", event: "interpreters.invalid") { object throws(DefinitionProblems) in
                try InterpreterCustomization(parsing: object)
            }
        }
    }

    private func definitions(in objects: [JSONValue]) -> [CustomResourceDefinition] {
        objects.compactMap { object in
            if let known = catalog.definition(named: object.name ?? ""), known.resourceVersion == object.resourceVersion { return known }
            return parsed(object, what: "CustomResourceDefinition", event: "definitions.invalid") { object throws(DefinitionProblems) in
                try CustomResourceDefinition(parsing: object)
            }
        }
    }

    /// `parse(object)`, or nil after saying why a stored object cannot be used.
    private func parsed<T>(_ object: JSONValue, what: String, event: String, _ parse: (JSONValue) throws(DefinitionProblems) -> T) -> T? {
        do throws(DefinitionProblems) {
            return try parse(object)
        } catch {
            logger.warning(
                "a stored \(what) cannot be used; fix it with kubectl edit",
                metadata: [
                    "tether.event": "\(event)", "tether.object": "\(object.name ?? "")",
                    "tether.problems": "\(error.problems.map(\.description).joined(separator: "; "))",
                ])
            return nil
        }
    }

    /// Lists then watches `type` for as long as the server runs, calling `changed` with every
    /// object held now (by name), the version reached and the objects the event touched.
    private func follow(_ type: ResourceType, _ changed: @escaping ([String: JSONValue], UInt64, [JSONValue]) async -> Void) async {
        var current: [String: JSONValue] = [:]
        await Informer(StoreListWatch(store: store, type: type), backoff: Backoff(initial: .milliseconds(200), maximum: .seconds(10))).run { event in
            var touched: [JSONValue] = []
            var version: UInt64?
            switch event {
            case .listed(let objects, let listed):
                current = Dictionary(objects.compactMap { object in object.name.map { ($0, object) } }, uniquingKeysWith: { $1 })
                touched = objects
                version = UInt64(listed)
            case .changed(.upserted(let object, let seen)):
                if let name = object.name { current[name] = object }
                touched = [object]
                version = seen.flatMap(UInt64.init)
            case .changed(.deleted(let object, let seen)):
                if let name = object.name { current[name] = nil }
                version = seen.flatMap(UInt64.init)
            case .changed(.bookmark):
                return
            case .failed(let error, _, let delay):
                self.logger.warning(
                    "cannot follow \(type); retrying",
                    metadata: ["tether.event": "definitions.follow_failed", "tether.error": "\(error)", "tether.retry_in": "\(delay)"])
                return
            }
            await changed(current, version ?? 0, touched)
        }
    }

    func run() async {
        await withDiscardingTaskGroup { group in
            if catalog.servesCustomizations {
                group.addTask {
                    await self.follow(Self.customizationType) { current, _, _ in
                        self.catalog.update(customizations: self.customizations(in: Array(current.values)))
                    }
                }
            }
            group.addTask {
                await self.follow(Self.type) { current, version, touched in
                    self.catalog.update(definitions: self.definitions(in: Array(current.values)), through: version)
                    for object in touched { await self.reconcile(object) }
                }
                self.cleanups.continuation.finish()
            }
            for await definition in cleanups.stream {
                group.addTask { await self.deleteObjects(of: definition) }
            }
        }
    }

    /// Gives an accepted definition its status, and starts deleting the objects of one being deleted.
    private func reconcile(_ object: JSONValue) async {
        guard let definition = try? CustomResourceDefinition(parsing: object), let name = object.name else { return }
        let wanted = definition.acceptedStatus(now: Date())
        if !Self.sameStatus(object["status"], wanted) {
            do {
                try await store.modify(Self.type, namespace: nil, name: name, part: .status) { stored in
                    guard !Self.sameStatus(stored["status"], wanted) else { return false }
                    stored[member: "status"] = wanted
                    return true
                }
            } catch {
                logger.warning(
                    "cannot write a definition's status",
                    metadata: ["tether.event": "definitions.status_failed", "tether.definition": "\(name)", "tether.error": "\(error)"])
            }
        }
        if definition.terminating, object.finalizers.contains(CustomResourceDefinition.cleanupFinalizer),
            cleaning.withLock({ $0.insert(name).inserted })
        {
            cleanups.continuation.yield(definition)
        }
    }

    /// Whether a stored status says what `wanted` says, times aside.
    private static func sameStatus(_ stored: JSONValue?, _ wanted: JSONValue) -> Bool {
        func comparable(_ status: JSONValue?) -> JSONValue? {
            guard var status else { return nil }
            let conditions = status["conditions"]?.arrayElements.map { condition -> JSONValue in
                var condition = condition
                condition[member: "lastTransitionTime"] = nil
                return condition
            }
            status[member: "conditions"] = conditions.map(JSONValue.array)
            return status
        }
        return comparable(stored) == comparable(wanted)
    }

    /// Deletes every object of the definition's kind, waits until none is left (objects with
    /// finalizers go when their owners let them), then removes the definition's finalizer.
    private func deleteObjects(of definition: CustomResourceDefinition) async {
        defer { _ = cleaning.withLock { $0.remove(definition.name) } }
        let type = ResourceType(group: definition.group, resource: definition.plural, namespaced: definition.namespaced)
        await FinalizingCleanup.run(
            store: store, namespace: nil, logger: logger, failure: "cannot delete the objects of a deleted CustomResourceDefinition; retrying",
            metadata: ["tether.event": "definitions.cleanup_failed", "tether.definition": "\(definition.name)"]
        ) { () async throws(StoreError) -> FinalizingCleanup.Remaining? in
            if let remaining = try await FinalizingCleanup.deleteObjects(of: [type], namespace: nil, in: store) { return remaining }
            try await store.modify(Self.type, namespace: nil, name: definition.name) {
                FinalizingCleanup.removing(CustomResourceDefinition.cleanupFinalizer, from: &$0)
            }
            logger.info(
                "CustomResourceDefinition deleted with its objects",
                metadata: ["tether.event": "definitions.deleted", "tether.definition": "\(definition.name)"])
            return nil
        }
    }
}
