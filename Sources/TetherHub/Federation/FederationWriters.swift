import Foundation
import Logging
import Synchronization
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore

/// The engine's status writes, behind its decisions: sessions coming and going and reports
/// arriving never wait for these durable writes. Changes wait here coalesced: per cluster the
/// latest change of each aspect of its status, per federated object the latest reports. One
/// writer applies them in order, each cluster's pending changes in a single write, so a storm
/// of thousands of sessions costs at most one write per cluster in flight.
final class FederationWriters: Sendable {
    private struct Pending {
        var clusterChanges: [String: [ClusterStatusChange.Aspect: ClusterStatusChange]] = [:]
        var clusterOrder: [String] = []
        var clusterHead = 0
        var objects: [ObjectReference: ObjectWrite] = [:]
        var objectOrder: [ObjectReference] = []
        var objectHead = 0
    }

    /// What waits to be written for one federated object: the latest reports, or its end.
    private enum ObjectWrite {
        case status(FederatedStatusWrite)
        case gone
    }

    /// A session claim written into a Cluster's status, with the epoch it got.
    struct Claimed: Sendable {
        var cluster: String
        var session: String
        var epoch: UInt64
    }

    let store: any ResourceStore
    private let catalog: KindCatalog
    var registry: KindRegistry { catalog.registry }
    let logger: Logger
    let events: MemberEvents
    let dnsNames: PublishedDNSNames?
    private let pending = Mutex(Pending())
    private let wake: AsyncStream<Void>.Continuation
    private let wakes: AsyncStream<Void>
    /// Agents on every hub: this hub's name. Its writes of what an agent says go only into a
    /// Cluster whose status names it as the session's holder.
    private let hub: String?
    private let claimedContinuation: AsyncStream<Claimed>.Continuation
    /// Each session claim as it is written, for the engine (only with agents on every hub).
    let claimed: AsyncStream<Claimed>

    init(store: any ResourceStore, catalog: KindCatalog, dnsNames: PublishedDNSNames? = nil, hub: String? = nil, logger: Logger) {
        self.hub = hub
        (claimed, claimedContinuation) = AsyncStream.makeStream(of: Claimed.self)
        self.store = store
        self.catalog = catalog
        self.dnsNames = dnsNames
        self.logger = logger
        self.events = MemberEvents(store: store, logger: logger)
        (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    func clusterStatus(_ cluster: String, _ change: ClusterStatusChange) {
        pending.withLock { pending in
            if pending.clusterChanges[cluster] == nil { pending.clusterOrder.append(cluster) }
            pending.clusterChanges[cluster, default: [:]][change.aspect] = change
        }
        wake.yield()
    }

    func federatedStatus(_ write: FederatedStatusWrite) {
        queue(write.reference, .status(write))
    }

    /// After any status write still waiting for it, so the record is not made again.
    func propagationEnded(_ reference: ObjectReference) {
        queue(reference, .gone)
    }

    private func queue(_ reference: ObjectReference, _ write: ObjectWrite) {
        pending.withLock { pending in
            if pending.objects.updateValue(write, forKey: reference) == nil { pending.objectOrder.append(reference) }
        }
        wake.yield()
    }

    func forgetEvents(namespace: String?, uid: String) async {
        await events.forget(namespace: namespace, uid: uid)
        wake.yield()
    }

    func finish() {
        wake.finish()
        claimedContinuation.finish()
    }

    /// Writes whatever waits, each time something arrives, until ``finish()``.
    func run() async {
        for await _ in wakes {
            while let (cluster, changes) = nextCluster() {
                await writeCluster(cluster, changes)
            }
            while let (reference, write) = nextObject() {
                switch write {
                case .status(let write):
                    if write.speaksFor != nil { await writeShared(write) } else { await writeObject(write) }
                case .gone: await deletePropagation(of: reference)
                }
            }
            await events.drain()
        }
    }

    private func nextCluster() -> (String, [ClusterStatusChange])? {
        pending.withLock { pending in
            while pending.clusterHead < pending.clusterOrder.count {
                let cluster = pending.clusterOrder[pending.clusterHead]
                pending.clusterHead += 1
                guard let changes = pending.clusterChanges.removeValue(forKey: cluster) else { continue }
                // Phase first: the other aspects do not depend on it, and it is what operators read.
                return (cluster, ClusterStatusChange.Aspect.allCases.compactMap { changes[$0] })
            }
            pending.clusterOrder.removeAll(keepingCapacity: pending.clusterOrder.count < 4096)
            pending.clusterHead = 0
            return nil
        }
    }

    private func nextObject() -> (ObjectReference, ObjectWrite)? {
        pending.withLock { pending in
            while pending.objectHead < pending.objectOrder.count {
                let reference = pending.objectOrder[pending.objectHead]
                pending.objectHead += 1
                guard let entry = pending.objects.removeValue(forKey: reference) else { continue }
                return (reference, entry)
            }
            pending.objectOrder.removeAll(keepingCapacity: pending.objectOrder.count < 4096)
            pending.objectHead = 0
            return nil
        }
    }

    private func writeCluster(_ cluster: String, _ changes: [ClusterStatusChange]) async {
        let hub = self.hub
        do {
            let written = try await store.modify(FederationState.clusterType, namespace: nil, name: cluster, part: .status, attempts: 3) { object in
                var status = object["status"]?.objectMembers ?? [:]
                let before = status
                // With one hub, no session record names anyone: one left by hubs that ran with
                // agents on every hub goes at the cluster's next write.
                if hub == nil { status["session"] = nil }
                for change in changes {
                    if let hub {
                        // What an agent says goes in only while its session is this hub's; a
                        // phase the leader writes (Offline, waiting for the agent) only while no
                        // hub holds one.
                        let holder = status["session"]?["hub"]?.stringValue
                        if ClusterStatus.isHolders(change.aspect), holder != hub { continue }
                        if change.aspect == .phase, holder != nil { continue }
                    }
                    ClusterStatus.apply(change, to: &status)
                }
                guard status != before else { return false }
                object[member: "status"] = .object(status)
                return true
            }
            for change in changes {
                guard case .claim(_, let session, _, _) = change, let record = ClusterStatus.session(of: written), record.id == session else {
                    continue
                }
                claimedContinuation.yield(Claimed(cluster: cluster, session: session, epoch: record.epoch))
            }
        } catch {
            logger.debug("cannot write a cluster's status", metadata: ["tether.cluster": "\(cluster)", "tether.error": "\(error)"])
        }
    }

    /// The aggregate into the object's own status, where its kind has one; every cluster's line
    /// into its `Propagation`; and an Event for each report that changed.
    private func writeObject(_ write: FederatedStatusWrite) async {
        let (reference, uid, reports, placedOn, generations, observedGeneration) = (
            write.reference, write.uid, write.reports, write.placedOn, write.generations, write.observedGeneration
        )
        guard let kind = registry.kind(apiVersion: reference.apiVersion, kind: reference.kind) else { return }
        let type = ResourceType(group: kind.group, resource: kind.plural, namespaced: kind.namespaced)
        let globalName = dnsNames?.name(of: reference)
        do {
            var current: JSONValue?
            let written = try await store.modify(type, namespace: reference.namespace, name: reference.name, part: .status) { object in
                current = object
                guard
                    let status = FederationState.aggregateStatus(
                        of: object, reports: reports, plugin: registry.plugin(for: object), kind: kind,
                        observedGeneration: observedGeneration, globalName: globalName),
                    object["status"] != status
                else { return false }
                object[member: "status"] = status
                return true
            }
            // What was written for an earlier object of the same name belongs to that one.
            guard let object = written ?? current, let uid, object.uid == uid else { return }
            let status = PropagationRecord.status(reports: reports, placedOn: placedOn, generations: generations, generation: observedGeneration)
            let name = PropagationRecord.name(for: reference)
            let fresh = {
                var record = PropagationRecord.object(for: reference, uid: uid)
                record[member: "status"] = status
                return record
            }
            var stale = false
            try await store.modify(PropagationRecord.type, namespace: nil, name: name, part: .status, createIfMissing: fresh) { record in
                stale = record["spec"]?["resource"]?["uid"]?.stringValue != uid
                guard !stale, record["status"] != status else { return false }
                record[member: "status"] = status
                return true
            }
            if stale {
                // The record of an earlier object of the same name: this object's replaces it.
                await deletePropagation(of: reference)
                try await store.modify(PropagationRecord.type, namespace: nil, name: name, createIfMissing: fresh) { _ in false }
            }
            for entry in reports {
                await events.observe(.init(object: reference, uid: uid, cluster: entry.cluster, report: entry.report))
            }
        } catch {
            logger.warning("cannot write federated status", metadata: ["tether.object": "\(reference)", "tether.error": "\(error)"])
        }
    }

    func deletePropagation(of reference: ObjectReference) async {
        do {
            _ = try await store.delete(
                PropagationRecord.type, namespace: nil, name: PropagationRecord.name(for: reference), preconditions: .init(), dryRun: false)
        } catch  where error.code == .notFound {
        } catch {
            logger.warning("cannot delete a propagation record", metadata: ["tether.object": "\(reference)", "tether.error": "\(error)"])
        }
    }
}
