import TetherJSON
import TetherModel
import TetherWire

/// One cluster's copy of a federated object, with its share of the cluster's digest and its
/// size as compact JSON (what a push of it costs).
struct PlacedCopy: Sendable {
    var value: JSONValue
    var contribution: UInt64
    var size: Int
}

/// What the hub knows of one member cluster: its desired set and revision, its session, and
/// what its agent holds of the set.
struct ClusterMember: Sendable {
    var revision: UInt64 = 0
    var desired: [ObjectReference: PlacedCopy] = [:]
    /// The agent's session, by ID.
    var session: String?
    /// The revision the agent holds (last written to it, or announced and current); nil until
    /// a snapshot has been written in this session.
    var sent: UInt64?
    /// The objects whose copy changed since the last written push, each with whether the
    /// agent held it then. A delta is built from these alone: keeping a copy of the whole set
    /// as sent would copy it (copy-on-write) at the first change after every push.
    var unsent: [ObjectReference: Bool] = [:]
    var pushing = false
    /// Pushes that failed in a row; while a retry waits out its backoff, the timer that ends it.
    var pushFailures = 0
    var pushRetry: FederationTimer?
    var acked: UInt64?
    /// Rebalanced away after its agent stayed away past `rebalanceAfter`: placed nothing.
    var excluded = false
    /// Counts sessions coming and going, so a timer set for an outage that has since ended is ignored.
    var outage = 0
    /// The revision the agent's `hello` says it holds, until the first push decides what to send.
    var announced: UInt64?
    /// The digest the agent's `hello` names for that revision (nil from an older agent).
    var announcedDigest: String?
    /// What the pushes say besides objects: a hold the operator confirmed, an unjoin under way.
    var terms = DesiredStateTerms()
    /// The hold the agent last reported in an `ack`, as shown on the Cluster.
    var reportedHold: Ack.Hold?
    /// The digest of `desired`: the wrapping sum of each object's
    /// ``FederationState/contribution(_:_:)``, independent of order and kept as objects change.
    var digestSum: UInt64 = 0

    /// `digestSum` as it travels: in pushes, in a `hello`, in the revisions file.
    var digest: String { String(digestSum, radix: 16) }

    enum PushStep {
        case nothing
        /// The agent announced the current revision: nothing to send.
        case current(UInt64)
        /// Write `messages` in order (a delta, or a snapshot in chunks); `changes` are what they
        /// carry, to merge back if a write fails.
        case send([WireMessage], revision: UInt64, changes: [ObjectReference: Bool])
    }

    /// What to write to the agent next: a snapshot the first time in a session, then deltas of
    /// what changed since the last written push; a delta larger than one chunk goes as a
    /// snapshot instead, so no message outgrows a frame. Marks the member pushing when it sends.
    mutating func nextPush(orphaned: Set<ObjectReference>, chunkBytes: Int) -> PushStep {
        // A hub restored from a backup can reuse a revision number for another set: the
        // revision is current only when the digest matches as well.
        if sent == nil, let announced, announced == revision, announcedDigest == nil || announcedDigest == digest {
            sent = revision
            unsent = [:]
            self.announced = nil
            announcedDigest = nil
            return .current(revision)
        }
        // The agent holds this very set under an older number: the hub that sent it died before
        // its record of the revision was written (it is written a second after it moves). An
        // empty delta renumbers what the agent holds instead of sending the whole set again.
        // Not while the agent holds back or terms travel: a confirmed hold needs the whole set.
        if sent == nil, let announced, announced < revision, let announcedDigest, announcedDigest == digest, terms.isEmpty, reportedHold == nil {
            sent = announced
            unsent = [:]
        }
        announced = nil
        announcedDigest = nil
        guard sent != revision else { return .nothing }
        var messages: [WireMessage]?
        if let sent {
            var upserts: [JSONValue] = []
            var bytes = 0
            var deletes: [ObjectReference] = []
            var orphans: [ObjectReference] = []
            for (reference, held) in unsent {
                if let copy = desired[reference] {
                    upserts.append(copy.value)
                    bytes += copy.size
                } else if held {
                    if orphaned.contains(reference) { orphans.append(reference) } else { deletes.append(reference) }
                }
            }
            if bytes <= chunkBytes {
                messages = [
                    .delta(
                        Delta(
                            fromRevision: sent, toRevision: revision, upserts: upserts, deletes: deletes,
                            orphans: orphans.isEmpty ? nil : orphans, terms: terms.isEmpty ? nil : terms, digest: digest
                        )
                    )
                ]
            }
        }
        let outgoing =
            messages
            ?? snapshotChunks(
                orphans: unsent.filter { $0.value && desired[$0.key] == nil && orphaned.contains($0.key) }.map(\.key), chunkBytes: chunkBytes)
        let changes = unsent
        unsent = [:]
        pushing = true
        return .send(outgoing, revision: revision, changes: changes)
    }

    /// The whole desired set as a snapshot in chunks of about `chunkBytes` of objects each (an
    /// object larger than that goes alone); `orphans` ride on the last chunk.
    func snapshotChunks(orphans: [ObjectReference], chunkBytes: Int) -> [WireMessage] {
        var groups: [[JSONValue]] = [[]]
        var bytes = 0
        for copy in desired.values {
            if bytes > 0, bytes + copy.size > chunkBytes {
                groups.append([])
                bytes = 0
            }
            groups[groups.count - 1].append(copy.value)
            bytes += copy.size
        }
        return groups.enumerated().map { index, objects in
            let last = index == groups.count - 1
            return .snapshot(
                Snapshot(
                    revision: revision, objects: objects, chunkIndex: index, chunkCount: groups.count,
                    orphans: last && !orphans.isEmpty ? orphans : nil, terms: last && !terms.isEmpty ? terms : nil,
                    digest: last ? digest : nil
                )
            )
        }
    }

    /// Places `copy` (nil: nothing) of `reference` here; true when the desired set changed.
    mutating func place(_ reference: ObjectReference, _ copy: PlacedCopy?) -> Bool {
        let previous: PlacedCopy?
        if let copy {
            previous = desired.updateValue(copy, forKey: reference)
            if let previous, previous.value == copy.value { return false }
        } else {
            previous = desired.removeValue(forKey: reference)
            if previous == nil { return false }
        }
        if unsent[reference] == nil { unsent[reference] = previous != nil }
        if let previous { digestSum &-= previous.contribution }
        if let copy { digestSum &+= copy.contribution }
        return true
    }
}
