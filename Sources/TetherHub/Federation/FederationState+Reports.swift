import Foundation
import Logging
import TetherJSON
import TetherModel
import TetherPlugin
import TetherSecurity
import TetherWire

/// What agents report: acknowledgements (with holds), per-object status, cluster health.
extension FederationState {
    mutating func take(_ message: WireMessage, from cluster: String, at now: Date) {
        switch message {
        case .ack(let ack):
            acknowledged(ack, from: cluster, at: now)
        case .status(let report):
            statusReported(report, from: cluster)
        case .heartbeat(let heartbeat):
            emit(.metric(.heartbeat(cluster: cluster, at: now)))
            if let health = heartbeat.cluster {
                if let certificate = certificates[cluster] { emit(.metric(.certificateExpiry(cluster: cluster, notAfter: certificate.notAfter))) }
                emit(.updateClusterStatus(cluster: cluster, .health(health, certificate: certificates[cluster], at: now)))
            }
        default:
            break
        }
    }

    private mutating func acknowledged(_ ack: Ack, from cluster: String, at now: Date) {
        guard let desired = members[cluster]?.revision, ack.revision <= desired else {
            emit(
                .securityEvent(
                    "ack.unknown_revision", cluster: cluster, message: "the agent acknowledged revision \(ack.revision), which the hub never sent it",
                    count: 1))
            return
        }
        members[cluster]?.acked = ack.revision
        if !generationsInFlight.isEmpty { generationsAcknowledged(by: cluster, revision: ack.revision) }
        if ack.hold != members[cluster]?.reportedHold {
            members[cluster]?.reportedHold = ack.hold
            if let hold = ack.hold {
                log(
                    .warning, "the cluster's agent holds back from its desired state until an operator confirms",
                    [
                        "tether.event": "federation.held", "tether.cluster": cluster, "tether.reason": hold.reason.rawValue,
                        "tether.message": hold.message, "tether.token": hold.token,
                    ]
                )
            }
            emit(.updateClusterStatus(cluster: cluster, .hold(ack.hold, cluster: cluster, at: now)))
        }
        emit(.metric(.acknowledged(cluster: cluster, revision: ack.revision)))
        emit(.metric(.revision(cluster: cluster, desired: desired, acked: ack.revision)))
        if !ack.failures.isEmpty {
            // Kinds the hub serves only: an agent's words must not mint metric series.
            let kinds = ack.failures.map { registry.kind(apiVersion: $0.object.apiVersion, kind: $0.object.kind) == nil ? "other" : $0.object.kind }
            emit(.metric(.applyFailures(cluster: cluster, kinds: kinds)))
        }
        if let awaited = unjoining[cluster], let revision = awaited, ack.revision >= revision {
            finishUnjoin(cluster)
        }
        // Per acknowledgement: debug, or a hub with thousands of agents logs thousands of lines per change.
        log(
            .debug, "agent applied a revision",
            [
                "tether.event": "federation.acked", "tether.cluster": cluster, "tether.revision": "\(ack.revision)",
                "tether.failures": "\(ack.failures.count)",
            ]
        )
    }

    private mutating func statusReported(_ report: StatusReport, from cluster: String) {
        guard settled else {
            keepUntilSettled(report, from: cluster)
            return
        }
        var touched: Set<ObjectReference> = []
        var refused: [ObjectReference] = []
        for status in report.objects {
            // The session is bound to its cluster's identity, so a report can only ever be that
            // cluster's; and it counts only for objects placed on that cluster. (An object that
            // is no longer federated was deleted meanwhile: its report is moot.)
            let reference = status.object
            guard federated[reference] != nil else { continue }
            switch status.state {
            case .pruned, .orphaned:
                // Gone from the member: this cluster's own entry goes, whatever it was.
                guard reports[reference]?[cluster] != nil else { continue }
                reports[reference]?[cluster] = nil
            case .applied, .failed, .pending:
                guard members[cluster]?.desired[reference] != nil else {
                    refused.append(reference)
                    continue
                }
                reports[reference, default: [:]][cluster] = status
            }
            touched.insert(reference)
        }
        if !refused.isEmpty {
            emit(
                .securityEvent(
                    "status.not_placed", cluster: cluster,
                    message: "the agent reported status of \(refused.count) object(s) not placed on its cluster, e.g. \(refused[0]); refused",
                    count: refused.count
                )
            )
        }
        for reference in touched.sorted(by: { $0.description < $1.description }) { statusChanged(reference) }
    }

    /// An agent whose session came up while the hub still lists its collections (a restart)
    /// reports at once, and only once; dropped, its objects' status would lack that cluster.
    private mutating func keepUntilSettled(_ report: StatusReport, from cluster: String) {
        var kept = reportsBeforeSettled[cluster] ?? [:]
        var overflow = 0
        for status in report.objects {
            if kept[status.object] == nil, kept.count >= Self.maximumReportsBeforeSettled {
                overflow += 1
            } else {
                kept[status.object] = status
            }
        }
        reportsBeforeSettled[cluster] = kept
        if overflow > 0 {
            log(
                .warning, "the agent reported more objects than the hub keeps before it settles; their status waits for the agent's next report",
                ["tether.event": "federation.early_reports_dropped", "tether.cluster": cluster, "tether.count": "\(overflow)"]
            )
        }
    }

    /// Each cluster's last report as the stored `Propagation`s hold it: a restarted hub (or one
    /// that took over) counts a cluster whose agent has not returned yet with what it last
    /// reported, and with the generation it last held, as a hub that kept running would,
    /// rather than as pending and up to date. Only for objects still placed there, and never
    /// over a report its agent has sent since.
    mutating func adoptStoredReports() {
        let stored = storedReports
        storedReports = [:]
        var adopted = 0
        for record in stored.values {
            let reference = record.reference
            guard let object = federated[reference], record.uid == nil || object.uid == record.uid else { continue }
            for (cluster, status) in record.statuses where members[cluster]?.desired[reference] != nil {
                guard reports[reference]?[cluster] == nil else { continue }
                reports[reference, default: [:]][cluster] = status
                adopted += 1
            }
            // A cluster whose line holds an older generation has not acknowledged the object's
            // own yet: it stays in flight to that cluster, at the revision it will be sent in,
            // so the generation is not observed before that cluster's agent returns and applies it.
            guard let generation = object.generation else { continue }
            for (cluster, held) in record.generations where held < generation {
                guard let member = members[cluster], member.desired[reference] != nil else { continue }
                let revision = member.revision
                if generationsInFlight[reference] == nil {
                    generationsInFlight[reference] = (generation, [:])
                    observedGenerations[reference] = held
                }
                generationsInFlight[reference]?.revisions[cluster] = revision
                observedGenerations[reference] = min(observedGenerations[reference] ?? held, held)
            }
        }
        if adopted > 0 {
            log(
                .info, "clusters' last reports taken from the stored propagation records",
                ["tether.event": "federation.reports_restored", "tether.count": "\(adopted)"])
        }
    }

    mutating func takeReportsBeforeSettled() {
        let early = reportsBeforeSettled
        reportsBeforeSettled = [:]
        for (cluster, statuses) in early.sorted(by: { $0.key < $1.key }) where members[cluster] != nil {
            statusReported(StatusReport(objects: statuses.values.sorted { $0.object.description < $1.object.description }), from: cluster)
        }
    }

    /// The object's copy for `cluster` changed and goes out at `revision`: its generation is
    /// observed once that cluster (and every other it went to) acknowledges.
    mutating func trackGeneration(of reference: ObjectReference, to cluster: String, at revision: UInt64) {
        guard let generation = federated[reference]?.generation else { return }
        if let inFlight = generationsInFlight[reference], inFlight.generation == generation {
            generationsInFlight[reference]?.revisions[cluster] = revision
            return
        }
        if generationsInFlight[reference] == nil {
            observedGenerations[reference] = observedGeneration(of: reference).map { min($0, generation - 1) }
        }
        generationsInFlight[reference] = (generation, [cluster: revision])
    }

    /// The object left `cluster` (placement, rebalance, unjoin): that cluster no longer holds its generation back.
    mutating func generationNotCarried(_ reference: ObjectReference, to cluster: String) {
        guard generationsInFlight[reference]?.revisions[cluster] != nil else { return }
        generationsInFlight[reference]?.revisions[cluster] = nil
        if generationsInFlight[reference]?.revisions.isEmpty == true { generationObserved(reference) }
    }

    /// `cluster` holds `revision` (acknowledged, or announced as current): each generation it
    /// completes is observed, and the object's status says so (what `kubectl rollout status` waits for).
    mutating func generationsAcknowledged(by cluster: String, revision: UInt64) {
        // Found first, changed after: a change made while iterating copied each object's map of
        // awaited clusters once per acknowledgement, which for a change reaching N clusters is
        // N²/2 entries copied (128 million at 16,000).
        var reached: [ObjectReference] = []
        for (reference, inFlight) in generationsInFlight {
            if let awaited = inFlight.revisions[cluster], awaited <= revision { reached.append(reference) }
        }
        var observed: [ObjectReference] = []
        for reference in reached {
            generationsInFlight[reference]?.revisions[cluster] = nil
            if generationsInFlight[reference]?.revisions.isEmpty == true { observed.append(reference) }
        }
        if sharedHub != nil {
            // The cluster's line now holds the generation; the observed one is the least of all lines.
            for reference in reached.sorted(by: { $0.description < $1.description }) where !observed.contains(reference) {
                statusChanged(reference)
            }
        }
        for reference in observed.sorted(by: { $0.description < $1.description }) { generationObserved(reference) }
    }

    private mutating func generationObserved(_ reference: ObjectReference) {
        observedGenerations[reference] = nil
        generationsInFlight[reference] = nil
        statusChanged(reference)
    }

    /// The generation every placed cluster holds: the object's own unless a newer one is in flight.
    func observedGeneration(of reference: ObjectReference) -> Int64? {
        generationsInFlight[reference] == nil ? federated[reference]?.generation : observedGenerations[reference]
    }

    /// The federated object's reports or placement changed: its `Propagation` (and the aggregate
    /// in its own status, for kinds that have one) is written again.
    mutating func statusChanged(_ reference: ObjectReference) {
        guard federated[reference] != nil else { return }
        let perCluster = (reports[reference] ?? [:]).sorted { $0.key < $1.key }.map { name, report in
            ClusterReport(cluster: name, report: report, ackedRevision: members[name]?.acked)
        }
        let placedOn = members.compactMap { name, member in member.desired[reference] == nil ? nil : name }.sorted()
        if sharedHub != nil {
            // This hub's lines are those of the clusters whose sessions it holds.
            // A cluster whose generation is in flight keeps what its line says until it acknowledges.
            let held = heldHere(placedOn)
            emit(
                .writeFederatedStatus(
                    FederatedStatusWrite(
                        reference: reference, uid: federated[reference]?.uid, reports: perCluster.filter { held.contains($0.cluster) },
                        placedOn: placedOn, generations: generationsHeld(of: reference, on: held.sorted(), whileInFlight: false),
                        observedGeneration: nil, speaksFor: held)))
            return
        }
        emit(
            .writeFederatedStatus(
                FederatedStatusWrite(
                    reference: reference, uid: federated[reference]?.uid, reports: perCluster, placedOn: placedOn,
                    generations: generationsHeld(of: reference, on: placedOn), observedGeneration: observedGeneration(of: reference))))
    }

    /// The generation each cluster holds: the object's own once the cluster acknowledged the
    /// revision carrying it; while that is in flight, the last one every cluster acknowledged
    /// (or none, `whileInFlight` false). None for a cluster that has held no generation yet.
    func generationsHeld(of reference: ObjectReference, on clusters: [String], whileInFlight: Bool = true) -> [String: Int64] {
        guard let current = federated[reference]?.generation else { return [:] }
        let inFlight = generationsInFlight[reference]
        let before = observedGenerations[reference]
        var held: [String: Int64] = [:]
        for cluster in clusters {
            if inFlight?.revisions[cluster] == nil {
                held[cluster] = current
            } else if whileInFlight, let before, before > 0 {
                held[cluster] = before
            }
        }
        return held
    }

    /// The kind's own status from its clusters' reports: the plugin's aggregate (summed
    /// replicas, load-balancer addresses), or nil for a kind without one, whose status (a
    /// Namespace's phase) the federation leaves alone. `observedGeneration` only where the
    /// kind's status schema has it. A published global DNS name goes first among the
    /// load-balancer addresses, as a `hostname`.
    static func aggregateStatus(
        of object: JSONValue, reports: [ClusterReport], plugin: any ResourcePlugin, kind: KindDescriptor?, observedGeneration: Int64?,
        globalName: String? = nil
    ) -> JSONValue? {
        guard kind?.hasStatus != false else { return nil }
        let members = reports.map {
            MemberObjectStatus(cluster: $0.cluster, health: Health($0.report.health, $0.report.message ?? ""), summary: $0.report.summary)
        }
        guard var status = plugin.aggregateStatus(of: object, members: members)?.objectMembers else { return nil }
        if let generation = observedGeneration, kind?.statusHas("observedGeneration") != false {
            status["observedGeneration"] = .integer(generation)
        }
        if let globalName, case .array(let ingress)? = status["loadBalancer"]?["ingress"] {
            status["loadBalancer"] = ["ingress": .array([["hostname": .string(globalName)]] + ingress)]
        }
        return .object(status)
    }
}
