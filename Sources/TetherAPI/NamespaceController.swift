import Foundation
import Logging
import Synchronization
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore

/// Deletes a namespace's contents before the namespace, as kube-apiserver's namespace
/// controller does: `kubectl delete namespace demo` marks it `Terminating` (it holds
/// ``NamespaceController/contentFinalizer``), deletes every object of every namespaced kind
/// served in it, waits until none is left (objects with finalizers go when their owners let
/// them), then lets the namespace go. At the hub the deletions reach the members as any delete
/// does, objects before their namespace.
///
/// Every replica of a hub runs one over the shared store; a deletion repeated by two replicas
/// deletes nothing twice.
final class NamespaceController: Sendable {
    /// Held by every namespace while it lives. Kubernetes keeps `kubernetes` in `spec.finalizers`
    /// for this; Tether's store knows metadata finalizers only (docs/api.md).
    static let contentFinalizer = "tether.io/namespace-content"

    private let store: any ResourceStore
    private let catalog: KindCatalog
    private let logger: Logger
    /// The namespaces whose contents are being deleted now.
    private let cleaning = Mutex<Set<String>>([])

    init(store: any ResourceStore, catalog: KindCatalog, logger: Logger) {
        self.store = store
        self.catalog = catalog
        self.logger = logger
    }

    func run() async {
        await withDiscardingTaskGroup { group in
            let informer = Informer(
                StoreListWatch(store: store, type: ResourceHandler.namespaces), backoff: Backoff(initial: .milliseconds(200), maximum: .seconds(10)))
            await informer.run { event in
                let touched: [JSONValue]
                switch event {
                case .listed(let objects, _): touched = objects
                case .changed(.upserted(let object, _)): touched = [object]
                case .changed(.deleted), .changed(.bookmark): return
                case .failed(let error, _, let delay):
                    self.logger.warning(
                        "cannot follow namespaces; retrying",
                        metadata: ["tether.event": "namespaces.follow_failed", "tether.error": "\(error)", "tether.retry_in": "\(delay)"])
                    return
                }
                for namespace in touched {
                    guard let name = namespace.name else { continue }
                    if namespace.deletionTimestamp == nil {
                        await self.holdFinalizer(name, namespace)
                    } else if namespace.finalizers.contains(Self.contentFinalizer), self.cleaning.withLock({ $0.insert(name).inserted }) {
                        group.addTask { await self.deleteContents(of: name) }
                    }
                }
            }
        }
    }

    /// A namespace made before this controller, or replaced without its finalizers, gets it back.
    private func holdFinalizer(_ name: String, _ namespace: JSONValue) async {
        guard !namespace.finalizers.contains(Self.contentFinalizer) else { return }
        do {
            try await store.modify(ResourceHandler.namespaces, namespace: nil, name: name) { stored in
                Self.addingFinalizer(to: &stored)
            }
        } catch {
            guard !Task.isCancelled else { return }  // the hub is stopping
            logger.warning(
                "cannot mark a namespace so that its contents are deleted with it",
                metadata: ["tether.event": "namespaces.finalizer_failed", "tether.namespace": "\(name)", "tether.error": "\(error)"])
        }
    }

    /// Adds the finalizer to a live namespace that lacks it; false when there is nothing to do.
    static func addingFinalizer(to namespace: inout JSONValue) -> Bool {
        guard namespace.deletionTimestamp == nil, !namespace.finalizers.contains(contentFinalizer) else { return false }
        namespace.metadata["finalizers"] = .array((namespace.finalizers + [contentFinalizer]).map(JSONValue.string))
        return true
    }

    /// Marks the namespace `Terminating`, deletes what is in it until nothing is, then removes
    /// the finalizer so the store deletes the namespace.
    private func deleteContents(of name: String) async {
        defer { _ = cleaning.withLock { $0.remove(name) } }
        let types = { [catalog] in
            catalog.registry.kinds.filter(\.namespaced).map { ResourceType(group: $0.group, resource: $0.plural, namespaced: true) }
        }
        await FinalizingCleanup.run(
            store: store, namespace: name, logger: logger, failure: "cannot delete the contents of a deleted namespace; retrying",
            metadata: ["tether.event": "namespaces.cleanup_failed", "tether.namespace": "\(name)"]
        ) { () async throws(StoreError) -> FinalizingCleanup.Remaining? in
            try await markTerminating(name)
            if let remaining = try await FinalizingCleanup.deleteObjects(of: types(), namespace: name, in: store) { return remaining }
            try await store.modify(ResourceHandler.namespaces, namespace: nil, name: name) {
                FinalizingCleanup.removing(Self.contentFinalizer, from: &$0)
            }
            logger.info("namespace deleted with its contents", metadata: ["tether.event": "namespaces.deleted", "tether.namespace": "\(name)"])
            return nil
        }
    }

    private func markTerminating(_ name: String) async throws(StoreError) {
        try await store.modify(ResourceHandler.namespaces, namespace: nil, name: name, part: .status) { stored in
            guard stored.string(at: "status", "phase") != "Terminating" else { return false }
            stored.set("Terminating", at: ["status", "phase"])
            return true
        }
    }
}
