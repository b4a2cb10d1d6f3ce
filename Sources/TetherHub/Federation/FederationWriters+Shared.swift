import Foundation
import Logging
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore
import TetherWire

/// Agents on every hub: each hub writes the lines of the clusters whose sessions it holds into
/// an object's `Propagation`, keeping every other hub's lines as they are stored, and takes the
/// counts, the object's aggregate and its observed generation from all of them. Two hubs
/// writing at once retry on the record's resourceVersion, each over the other's lines, so the
/// record ends with every hub's latest lines; the object's aggregate is written after, from
/// the record as stored, and again while the record moves under it.
extension FederationWriters {
    func writeShared(_ write: FederatedStatusWrite) async {
        let reference = write.reference
        guard let kind = registry.kind(apiVersion: reference.apiVersion, kind: reference.kind), let uid = write.uid else { return }
        let type = ResourceType(group: kind.group, resource: kind.plural, namespaced: kind.namespaced)
        let speaksFor = write.speaksFor ?? []
        do {
            let object = try await store.get(type, namespace: reference.namespace, name: reference.name)
            // What was written for an earlier object of the same name belongs to that one.
            guard object.uid == uid else { return }
            let name = PropagationRecord.name(for: reference)
            var merged = Merged(reports: [], generations: [:], observed: nil)
            let fresh = {
                var record = PropagationRecord.object(for: reference, uid: uid)
                merged = Self.merge(write, stored: nil, speaksFor: speaksFor, generation: object.generation)
                record[member: "status"] = merged.status(placedOn: write.placedOn)
                return record
            }
            var stale = false
            let written = try await store.modify(PropagationRecord.type, namespace: nil, name: name, part: .status, createIfMissing: fresh) {
                record in
                stale = record["spec"]?["resource"]?["uid"]?.stringValue != uid
                guard !stale else { return false }
                merged = Self.merge(write, stored: PropagationRecord.reports(in: record), speaksFor: speaksFor, generation: object.generation)
                let status = merged.status(placedOn: write.placedOn)
                guard record["status"] != status else { return false }
                record[member: "status"] = status
                return true
            }
            if stale {
                await deletePropagation(of: reference)
                return
            }
            // The aggregate from the record as stored, again if it moved meanwhile: another hub that
            // wrote its lines after these may have written the aggregate before this write lands,
            // and the aggregate the last write leaves must be the one of the latest record.
            let globalName = dnsNames?.name(of: reference)
            var basis: JSONValue
            if let written { basis = written } else { basis = try await store.get(PropagationRecord.type, namespace: nil, name: name) }
            for _ in 0..<Self.aggregateRounds {
                let lines = PropagationRecord.reports(in: basis)
                let reports = (lines?.statuses ?? [:]).sorted { $0.key < $1.key }.map {
                    ClusterReport(cluster: $0.key, report: $0.value, ackedRevision: lines?.revisions[$0.key])
                }
                let observed = basis["status"]?["observedGeneration"]?.integerValue
                try await store.modify(type, namespace: reference.namespace, name: reference.name, part: .status) { current in
                    guard current.uid == uid,
                        let status = FederationState.aggregateStatus(
                            of: current, reports: reports, plugin: registry.plugin(for: current), kind: kind, observedGeneration: observed,
                            globalName: globalName),
                        current["status"] != status
                    else { return false }
                    current[member: "status"] = status
                    return true
                }
                let latest = try await store.get(PropagationRecord.type, namespace: nil, name: name)
                guard latest.resourceVersion != basis.resourceVersion else { break }
                basis = latest
            }
            for entry in write.reports where speaksFor.contains(entry.cluster) {
                await events.observe(.init(object: reference, uid: uid, cluster: entry.cluster, report: entry.report))
            }
        } catch {
            logger.warning("cannot write federated status", metadata: ["tether.object": "\(reference)", "tether.error": "\(error)"])
        }
    }

    /// How many times an aggregate is written again after the record moved under it; past
    /// that, the hub that moved it last writes it.
    static let aggregateRounds = 4

    struct Merged {
        var reports: [ClusterReport]
        var generations: [String: Int64]
        var observed: Int64?

        func status(placedOn: [String]) -> JSONValue {
            PropagationRecord.status(reports: reports, placedOn: placedOn, generations: generations, generation: observed)
        }
    }

    /// This hub's lines for the clusters it speaks for, the stored lines for the others; the
    /// observed generation is the least any placed cluster holds (none known: 0).
    static func merge(_ write: FederatedStatusWrite, stored: StoredReports?, speaksFor: Set<String>, generation: Int64?) -> Merged {
        let own = Dictionary(write.reports.map { ($0.cluster, $0) }, uniquingKeysWith: { first, _ in first })
        var reports: [ClusterReport] = []
        var generations: [String: Int64] = [:]
        for cluster in write.placedOn {
            if speaksFor.contains(cluster) {
                if let report = own[cluster] { reports.append(report) }
                // A cluster whose generation is in flight keeps what its line said until it acknowledges.
                if let held = write.generations[cluster] ?? stored?.generations[cluster] { generations[cluster] = held }
            } else {
                if let status = stored?.statuses[cluster] {
                    reports.append(ClusterReport(cluster: cluster, report: status, ackedRevision: stored?.revisions[cluster]))
                }
                if let held = stored?.generations[cluster] { generations[cluster] = held }
            }
        }
        let observed = write.placedOn.isEmpty ? generation : write.placedOn.map { generations[$0] ?? 0 }.min()
        return Merged(reports: reports, generations: generations, observed: observed)
    }
}
