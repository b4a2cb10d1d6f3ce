import Foundation
import Logging
import TetherFiles
import TetherJSON
import TetherModel
import TetherStore
import TetherWire

/// I/O an action asks for, run as a child of the engine's task group.
enum FederationWork: Sendable {
    case push(AgentLink, cluster: String, session: String, messages: [WireMessage], revision: UInt64, changes: [ObjectReference: Bool])
    case endSession(AgentLink, GoAway)
    case register(String)
    case setFinalizer(String, present: Bool, type: ResourceType, namespace: String?, name: String)
    case timer(FederationTimer, after: Duration)
    case writeRevisions([String: RevisionRecord])
    case raiseStoreVersion(UInt64)
    case forgetEvents(namespace: String?, uid: String)
    case collectPropagations(keep: Set<String>, before: Date)
    /// Lists then watches the objects of a kind a CustomResourceDefinition added.
    case follow(ResourceType)
    case findLiveHubs(among: Set<String>)
}

extension FederationEngine {
    /// Performs one action: at once when it needs no I/O, else as work for the task group.
    func perform(_ action: FederationAction) {
        switch action {
        case .push(let cluster, let session, let messages, let revision, let changes):
            guard let link = links[session] else {
                handle(
                    .pushed(cluster: cluster, session: session, revision: revision, changes: changes, failure: "the session has ended", at: Date()))
                return
            }
            enqueue(.push(link, cluster: cluster, session: session, messages: messages, revision: revision, changes: changes))
        case .endSession(_, let session, let goaway):
            if let link = links[session] { enqueue(.endSession(link, goaway)) }
        case .registerCluster(let name):
            enqueue(.register(name))
        case .setFinalizer(let finalizer, let present, let type, let namespace, let name):
            enqueue(.setFinalizer(finalizer, present: present, type: type, namespace: namespace, name: name))
        case .writeFederatedStatus(let write):
            writers.federatedStatus(write)
        case .deletePropagation(let reference):
            writers.propagationEnded(reference)
        case .collectPropagations(let keep, let before):
            enqueue(.collectPropagations(keep: keep, before: before))
        case .updateClusterStatus(let cluster, .claim(let hub, let session, nil, let at)):
            // The API's address is known once its listener is bound, which the state does not wait for.
            writers.clusterStatus(cluster, .claim(hub: hub, session: session, api: settings.shared?.api(), at: at))
        case .updateClusterStatus(let cluster, let change):
            writers.clusterStatus(cluster, change)
        case .schedule(let timer, let delay):
            enqueue(.timer(timer, after: delay))
        case .writeRevisions(let records):
            enqueue(.writeRevisions(records))
        case .raiseStoreVersion(let minimum):
            enqueue(.raiseStoreVersion(minimum))
        case .admit(let cluster, let admitted):
            admit(cluster, admitted)
        case .findLiveHubs(let hubs):
            enqueue(.findLiveHubs(among: hubs))
        case .forgetEvents(let namespace, let uid):
            enqueue(.forgetEvents(namespace: namespace, uid: uid))
        case .log(let level, let message, let metadata):
            logger.log(level: level, "\(message)", metadata: metadata.mapValues { .string($0) })
        case .securityEvent(let event, let cluster, let message, let count):
            measures.securityEvent(event, cluster: cluster, message: message, count: count, logger: logger)
        case .metric(let metric):
            measures.record(metric)
        }
    }

    /// Runs one piece of work; what comes of it is handed back to the state as an event.
    nonisolated func perform(_ work: FederationWork) async {
        switch work {
        case .push(let link, let cluster, let session, let messages, let revision, let changes):
            let failure = await link.send(messages)
            await handle(.pushed(cluster: cluster, session: session, revision: revision, changes: changes, failure: failure, at: Date()))
        case .endSession(let link, let goaway):
            await link.end(goaway)
        case .register(let name):
            await register(name)
        case .setFinalizer(let finalizer, let present, let type, let namespace, let name):
            do {
                try await store.modify(type, namespace: namespace, name: name) { object in
                    var finalizers = object.finalizers.filter { $0 != finalizer }
                    if present { finalizers.append(finalizer) }
                    guard finalizers != object.finalizers else { return false }
                    object.finalizers = finalizers
                    return true
                }
            } catch {
                logger.warning(
                    "cannot change a finalizer",
                    metadata: ["tether.object": "\(type)/\(name)", "tether.finalizer": "\(finalizer)", "tether.error": "\(error)"])
            }
        case .timer(let timer, let delay):
            // Fires even when its reason has passed meanwhile: the state recognises and ignores it.
            guard (try? await Task.sleep(for: delay)) != nil else { return }
            await handle(.timerFired(timer, at: Date()))
        case .writeRevisions(let records):
            await writeRevisions(records)
        case .raiseStoreVersion(let minimum):
            await raiseStoreVersion(to: minimum)
        case .forgetEvents(let namespace, let uid):
            await writers.forgetEvents(namespace: namespace, uid: uid)
        case .collectPropagations(let keep, let before):
            await collectPropagations(keep: keep, before: before)
        case .follow(let type):
            await follow(.federated(type), type)
        case .findLiveHubs(let hubs):
            await findLiveHubs(among: hubs)
        }
    }

    /// What an earlier run (or another hub on the same store) kept; nil when nothing was.
    func readRevisions() async -> [String: RevisionRecord]? {
        if settings.revisionsInStore {
            do {
                return try await store.clusterRevisions()
            } catch {
                logger.error(
                    "cannot read cluster revisions; each agent is matched by its desired set's digest instead",
                    metadata: ["tether.event": "federation.revisions_unreadable", "tether.error": "\(error)"])
                return nil
            }
        }
        return settings.revisionsPath.flatMap { path in
            try? JSONValueDecoder().decode([String: RevisionRecord].self, from: AtomicFile.read(path))
        }
    }

    /// Each object's per-cluster lines as the last run wrote them; none when they cannot be read
    /// (each cluster's line then waits for its agent's next report, as before any was kept).
    func readStoredReports() async -> [StoredReports] {
        do {
            return try await store.list(PropagationRecord.type, options: ListOptions()).objects.compactMap(PropagationRecord.reports(in:))
        } catch {
            logger.warning(
                "cannot read the stored propagation records; each cluster's line waits for its agent's next report",
                metadata: ["tether.event": "federation.reports_unreadable", "tether.error": "\(error)"])
            return []
        }
    }

    /// In the store, only the clusters whose record changed since the last write; in a file,
    /// compact with sorted keys: one line per write for thousands of clusters.
    func writeRevisions(_ records: [String: RevisionRecord]) async {
        do {
            if settings.revisionsInStore {
                let before = state.persisted
                let changed = records.filter { before[$0.key] != $0.value }
                let removed = Set(before.keys).subtracting(records.keys)
                try await store.updateClusterRevisions(changed, removing: removed)
            } else if let path = settings.revisionsPath {
                try AtomicFile.write(Array(try JSONValueEncoder().encode(records)) + [UInt8(ascii: "\n")], to: path, mode: 0o644)
            } else {
                return
            }
            handle(.revisionsWritten(records))
        } catch {
            logger.error("cannot persist cluster revisions", metadata: ["tether.event": "federation.persist_failed", "tether.error": "\(error)"])
        }
    }

    /// Asks the store which hubs are alive, until it answers.
    private nonisolated func findLiveHubs(among hubs: Set<String>) async {
        guard let shared = settings.shared else { return }
        await untilItSucceeds(
            { try await shared.liveHubs(hubs) }, wait: { _ in FederationState.sweepInterval },
            failed: { error, attempt in
                self.logger.warning(
                    "cannot tell which hubs are alive; sessions of a hub that is gone are released when the store answers",
                    metadata: ["tether.event": "federation.sweep_failed", "tether.error": "\(error)", "tether.attempt": "\(attempt)"])
            },
            then: { alive in await self.handle(.liveHubs(alive, among: hubs, at: Date())) })
    }

    /// Runs `attempt` until it succeeds (then `then`) or the engine stops, waiting between tries.
    private nonisolated func untilItSucceeds<Value: Sendable>(
        _ attempt: @Sendable () async throws -> Value, wait: (Int) -> Duration, failed: (any Error, Int) -> Void,
        then: @Sendable (Value) async -> Void
    ) async {
        var attempts = 0
        while !Task.isCancelled {
            do {
                let value = try await attempt()
                await then(value)
                return
            } catch {
                attempts += 1
                failed(error, attempts)
                guard (try? await Task.sleep(for: wait(attempts))) != nil else { return }
            }
        }
    }

    /// Records of objects deleted while the hub was down; one made since the restart is left to
    /// the writer, which may be making it for a new object this moment.
    private nonisolated func collectPropagations(keep: Set<String>, before: Date) async {
        do {
            let cutoff = kubernetesTimestamp(before)
            var collected = 0
            for record in try await store.list(PropagationRecord.type, options: ListOptions()).objects {
                guard let name = record.name, !keep.contains(name), (record.metadata["creationTimestamp"]?.stringValue ?? "") < cutoff else {
                    continue
                }
                _ = try? await store.delete(PropagationRecord.type, namespace: nil, name: name, preconditions: .init(uid: record.uid), dryRun: false)
                collected += 1
            }
            if collected > 0 {
                logger.info(
                    "propagation records of objects deleted while the hub was down removed",
                    metadata: ["tether.event": "federation.propagations_collected", "tether.count": "\(collected)"])
            }
        } catch {
            logger.warning("cannot list propagation records", metadata: ["tether.error": "\(error)"])
        }
    }

    /// Tried until it succeeds or the engine stops: the pushes it holds back wait for it.
    private nonisolated func raiseStoreVersion(to minimum: UInt64) async {
        await untilItSucceeds(
            { try await self.store.raiseResourceVersion(to: minimum) }, wait: { .seconds(min($0, 10)) },
            failed: { error, attempt in
                self.logger.error(
                    "cannot raise the store's version; desired state above it waits",
                    metadata: ["tether.event": "federation.persist_failed", "tether.error": "\(error)", "tether.attempt": "\(attempt)"])
            },
            then: { version in await self.handle(.storeVersionRaised(version)) })
    }

    /// A cluster seen for the first time (its agent holds a certificate from the federation CA) gets a `Cluster` object.
    private nonisolated func register(_ cluster: String) async {
        let object: JSONValue = [
            "apiVersion": "core.tether.io/v1alpha1", "kind": "Cluster", "metadata": ["name": .string(cluster)], "spec": [:],
        ]
        let type = FederationState.clusterType
        do {
            var created = try await store.modify(type, namespace: nil, name: cluster, createIfMissing: { object }, change: { _ in false })
            if created == nil { created = try await store.get(type, namespace: nil, name: cluster) }
            guard let created else { return }
            await handle(.changed(.clusters, object: created, deleted: false, version: created.resourceVersion ?? 0, at: Date()))
        } catch {
            logger.error("cannot register cluster", metadata: ["tether.cluster": "\(cluster)", "tether.error": "\(error)"])
        }
    }
}
