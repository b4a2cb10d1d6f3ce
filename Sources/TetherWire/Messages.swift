import TetherJSON
import TetherModel

// The payloads of protocol version 1. Field names are the JSON keys; `docs/protocol.md` lists
// each with its meaning. Durations are whole milliseconds; revisions are per-cluster counters.

/// Agent -> hub, first message of a session.
public struct Hello: Codable, Sendable, Hashable {
    /// Every protocol version the agent speaks; the hub picks the highest it also speaks.
    public var protocolVersions: [Int]
    public var agentVersion: String
    /// Must equal the cluster named by the agent's certificate.
    public var cluster: String
    /// Kinds the agent's plugins handle, as `group/version/Kind` (`/v1/ConfigMap` for the core group).
    public var kinds: [String]
    /// The last revision the agent applied, so the hub can send a delta instead of a snapshot.
    public var lastAppliedRevision: UInt64?
    /// The digest the hub named for that revision: a hub restored from a backup can reuse a
    /// revision number for another set, and a revision is current only if its digest matches too.
    public var lastAppliedDigest: String?
    /// The HTTP proxy the agent reached the hub through (scheme, host and port only), shown on the Cluster.
    public var proxy: String?

    public init(
        protocolVersions: [Int],
        agentVersion: String,
        cluster: String,
        kinds: [String] = [],
        lastAppliedRevision: UInt64? = nil,
        lastAppliedDigest: String? = nil,
        proxy: String? = nil
    ) {
        self.proxy = proxy
        self.protocolVersions = protocolVersions
        self.agentVersion = agentVersion
        self.cluster = cluster
        self.kinds = kinds
        self.lastAppliedRevision = lastAppliedRevision
        self.lastAppliedDigest = lastAppliedDigest
    }
}

/// Hub -> agent: the session is accepted.
public struct Welcome: Codable, Sendable, Hashable {
    public var protocolVersion: Int
    public var sessionID: String
    /// How often the agent sends a heartbeat; each side closes after three intervals of silence.
    public var heartbeatIntervalMilliseconds: Int
    public var hubVersion: String
    /// The federation's UID: an agent refuses desired state from a hub of another federation.
    public var federation: String?
    /// The identity of the hub's store, new whenever the store is: desired state from a new
    /// epoch is applied without pruning until an operator confirms it.
    public var epoch: String?
    /// The hub process's run, new each time it starts: an agent records it with what it applies.
    public var run: String?
    /// The store's resource version when this run started. No earlier run sent a revision above
    /// it (a revision is never sent above a version the store has made durable), so an agent
    /// holding a higher revision from an earlier run applied what this store has lost: it was
    /// restored from an older backup, and the agent holds until an operator confirms.
    public var historyThrough: UInt64?

    public init(
        protocolVersion: Int, sessionID: String, heartbeatIntervalMilliseconds: Int, hubVersion: String,
        federation: String? = nil, epoch: String? = nil, run: String? = nil, historyThrough: UInt64? = nil
    ) {
        self.protocolVersion = protocolVersion
        self.sessionID = sessionID
        self.heartbeatIntervalMilliseconds = heartbeatIntervalMilliseconds
        self.hubVersion = hubVersion
        self.federation = federation
        self.epoch = epoch
        self.run = run
        self.historyThrough = historyThrough
    }
}

/// Hub -> agent: the session is refused; the hub closes after sending it.
public struct Reject: Codable, Sendable, Hashable {
    public var code: Code
    public var reason: String
    /// The earliest the agent should try again; nil leaves it to the agent's backoff.
    public var retryAfterMilliseconds: Int?

    public init(code: Code, reason: String, retryAfterMilliseconds: Int? = nil) {
        self.code = code
        self.reason = reason
        self.retryAfterMilliseconds = retryAfterMilliseconds
    }

    public struct Code: WireCode {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// `hello` names a cluster other than the certificate's identity.
        public static let identityMismatch = Code(rawValue: "identity-mismatch")
        /// The certificate's identity is not an agent's (`spiffe://<trust-domain>/cluster/<name>`).
        public static let notAnAgent = Code(rawValue: "not-an-agent")
        /// No protocol version in `hello` is one the hub speaks.
        public static let unsupportedVersion = Code(rawValue: "unsupported-version")
        /// The hub is shutting down and takes no new sessions.
        public static let draining = Code(rawValue: "draining")
        /// No `Cluster` object exists for the identity: it never joined, or it was unjoined.
        public static let notJoined = Code(rawValue: "not-joined")
        /// `hello` is outside the hub's bounds (too many or too long kinds, a long version).
        public static let invalidHello = Code(rawValue: "invalid-hello")
    }
}

/// Hub -> agent: the complete desired set for the cluster at `revision`, possibly in chunks.
public struct Snapshot: Codable, Sendable, Hashable {
    public var revision: UInt64
    public var objects: [JSONValue]
    /// Zero-based index of this chunk and the number of chunks; a snapshot is complete at the last one.
    public var chunkIndex: Int
    public var chunkCount: Int
    /// On the last chunk: objects that left the set but stay in the member, no longer managed
    /// (as a delta's `orphans`, for a change too large for one delta). Absent in older encodings.
    public var orphans: [ObjectReference]?
    /// What the operator confirmed of a hold the agent reported, and whether the cluster is being
    /// unjoined (see ``DesiredStateTerms``); on the last chunk.
    public var terms: DesiredStateTerms?
    /// The digest of the whole set at `revision` (see ``Hello/lastAppliedDigest``); on the last chunk.
    public var digest: String?

    public init(
        revision: UInt64, objects: [JSONValue], chunkIndex: Int = 0, chunkCount: Int = 1, orphans: [ObjectReference]? = nil,
        terms: DesiredStateTerms? = nil, digest: String? = nil
    ) {
        self.revision = revision
        self.objects = objects
        self.chunkIndex = chunkIndex
        self.chunkCount = chunkCount
        self.orphans = orphans
        self.terms = terms
        self.digest = digest
    }
}

/// What the hub says of a desired state besides its objects.
public struct DesiredStateTerms: Codable, Sendable, Hashable {
    /// The token of a hold the agent reported (`Ack.hold`) that an operator confirmed
    /// (`tetherctl cluster confirm`): the agent proceeds, pruning included.
    public var confirmedHold: String?
    /// The cluster is being unjoined: its agent removes everything, and no mass-deletion guard
    /// holds that.
    public var unjoining: Bool?

    public init(confirmedHold: String? = nil, unjoining: Bool? = nil) {
        self.confirmedHold = confirmedHold
        self.unjoining = unjoining
    }

    public var isEmpty: Bool { confirmedHold == nil && unjoining != true }
}

/// Hub -> agent: what changed between two revisions.
public struct Delta: Codable, Sendable, Hashable {
    public var fromRevision: UInt64
    public var toRevision: UInt64
    public var upserts: [JSONValue]
    /// Leave the set and are deleted in the member.
    public var deletes: [ObjectReference]
    /// Leave the set but stay in the member, no longer managed (the hub object was deleted with
    /// `tether.io/orphan: "true"`). Absent in older encodings.
    public var orphans: [ObjectReference]?
    public var terms: DesiredStateTerms?
    /// The digest of the whole set at `toRevision` (see ``Hello/lastAppliedDigest``).
    public var digest: String?

    public init(
        fromRevision: UInt64,
        toRevision: UInt64,
        upserts: [JSONValue],
        deletes: [ObjectReference],
        orphans: [ObjectReference]? = nil,
        terms: DesiredStateTerms? = nil,
        digest: String? = nil
    ) {
        self.digest = digest
        self.fromRevision = fromRevision
        self.toRevision = toRevision
        self.upserts = upserts
        self.deletes = deletes
        self.orphans = orphans
        self.terms = terms
    }
}

/// Agent -> hub: a revision was applied, wholly or with per-object failures.
public struct Ack: Codable, Sendable, Hashable {
    public var revision: UInt64
    public var failures: [ObjectFailure]
    /// Set while the agent holds back from what the hub sent (refuses it, or applies it without
    /// pruning) until an operator confirms; the hub shows it on the Cluster.
    public var hold: Hold?

    public init(revision: UInt64, failures: [ObjectFailure] = [], hold: Hold? = nil) {
        self.revision = revision
        self.failures = failures
        self.hold = hold
    }

    public struct Hold: Codable, Sendable, Hashable {
        public enum Reason: String, Codable, Sendable, Hashable, CaseIterable {
            /// The hub names another federation: nothing it sends is applied (no confirmation
            /// from that hub can lift this; give the agent its own federation's bundle).
            case foreignFederation = "ForeignFederation"
            /// The hub's store is new (rebuilt or restored): applied, but nothing is pruned.
            case newEpoch = "NewEpoch"
            /// The hub sent an older revision than the agent holds, in the same epoch, or its
            /// store's history ends below the revision the agent applied from an earlier run (a
            /// store restored from a backup): nothing is applied.
            case revisionRegressed = "RevisionRegressed"
            /// The new set would remove more of what the agent manages than it may at once:
            /// applied, but nothing is pruned.
            case massDeletion = "MassDeletion"
        }

        public var reason: Reason
        public var message: String
        /// What `tetherctl cluster confirm` sends back to lift this hold.
        public var token: String
        /// Objects the agent would remove, of those it manages.
        public var wouldRemove: Int
        public var managed: Int

        public init(reason: Reason, message: String, token: String, wouldRemove: Int, managed: Int) {
            self.reason = reason
            self.message = message
            self.token = token
            self.wouldRemove = wouldRemove
            self.managed = managed
        }
    }

    public struct ObjectFailure: Codable, Sendable, Hashable {
        public var object: ObjectReference
        public var message: String

        public init(object: ObjectReference, message: String) {
            self.object = object
            self.message = message
        }
    }
}

/// Agent -> hub: observed state of managed objects, batched.
public struct StatusReport: Codable, Sendable, Hashable {
    public var objects: [ObjectStatus]

    public init(objects: [ObjectStatus]) { self.objects = objects }

    public struct ObjectStatus: Codable, Sendable, Hashable {
        public var object: ObjectReference
        public var state: ObjectState
        /// From the kind's plugin.
        public var health: HealthState
        public var message: String?
        /// Kind-specific fields aggregated at the hub, such as `readyReplicas` or load-balancer addresses.
        public var summary: [String: JSONValue]

        public init(
            object: ObjectReference,
            state: ObjectState,
            health: HealthState,
            message: String? = nil,
            summary: [String: JSONValue] = [:]
        ) {
            self.object = object
            self.state = state
            self.health = health
            self.message = message
            self.summary = summary
        }
    }
}

/// Where an object stands in a member, as its agent reports it. A value outside this set makes
/// the whole `status` message malformed: the hub takes reports only in this vocabulary.
public enum ObjectState: String, Codable, Sendable, Hashable, CaseIterable {
    /// The member holds the desired copy.
    case applied
    /// The last apply failed; `message` says why, and the agent retries.
    case failed
    /// Not applied yet.
    case pending
    /// Removed from the member: it left the cluster's desired set.
    case pruned
    /// Left in the member, no longer managed (deleted at the hub with orphaning).
    case orphaned
}

/// Both ways: liveness. The hub answers each agent heartbeat with one of its own.
public struct Heartbeat: Codable, Sendable, Hashable {
    /// Sender's wall clock, milliseconds since 1970, for round-trip and skew estimates.
    public var sentAtMilliseconds: Int64
    /// The member cluster's health; only agents send it.
    public var cluster: ClusterHealth?

    public init(sentAtMilliseconds: Int64, cluster: ClusterHealth? = nil) {
        self.sentAtMilliseconds = sentAtMilliseconds
        self.cluster = cluster
    }

    public struct ClusterHealth: Codable, Sendable, Hashable {
        public var apiReachable: Bool
        public var kubernetesVersion: String?
        public var nodeCount: Int?
        /// Ready nodes among them.
        public var readyNodeCount: Int?
        /// Allocatable resources summed over nodes: `cpu` in millicores, `memory` in bytes, `pods`.
        public var allocatable: [String: Int64]?
        /// Why the member API is unreachable, when it is.
        public var message: String?

        public init(
            apiReachable: Bool,
            kubernetesVersion: String? = nil,
            nodeCount: Int? = nil,
            readyNodeCount: Int? = nil,
            allocatable: [String: Int64]? = nil,
            message: String? = nil
        ) {
            self.apiReachable = apiReachable
            self.kubernetesVersion = kubernetesVersion
            self.nodeCount = nodeCount
            self.readyNodeCount = readyNodeCount
            self.allocatable = allocatable
            self.message = message
        }
    }
}

/// Hub -> agent: the hub ends this session; the agent reconnects after the hint.
public struct GoAway: Codable, Sendable, Hashable {
    public var code: Code
    public var reason: String
    public var reconnectAfterMilliseconds: Int

    public init(code: Code, reason: String, reconnectAfterMilliseconds: Int) {
        self.code = code
        self.reason = reason
        self.reconnectAfterMilliseconds = reconnectAfterMilliseconds
    }

    public struct Code: WireCode {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// A newer session for the same cluster took over.
        public static let replaced = Code(rawValue: "replaced")
        /// The hub is shutting down or restarting.
        public static let draining = Code(rawValue: "draining")
        /// The cluster was unjoined: the agent stops managing its objects.
        public static let unjoined = Code(rawValue: "unjoined")
        /// The certificate the session was opened with was revoked.
        public static let revoked = Code(rawValue: "revoked")
    }
}

/// Both ways: a protocol violation; the sender closes right after.
public struct ErrorMessage: Codable, Sendable, Hashable {
    public var code: WireError.Code
    public var message: String

    public init(code: WireError.Code, message: String) {
        self.code = code
        self.message = message
    }
}

/// Agent → hub on an established session: a certificate signing request (PEM, PKCS #10) for a
/// new key, naming the session's own identity. The hub answers with `certificate`.
public struct RenewRequest: Codable, Sendable, Hashable {
    public var csr: String

    public init(csr: String) {
        self.csr = csr
    }
}

/// Hub → agent, the answer to `renew`: the signed certificate (PEM) and the CA bundle it chains
/// to, or why the hub refused (`error`; the agent keeps its current pair and tries later).
public struct CertificateIssued: Codable, Sendable, Hashable {
    public var certificate: String?
    public var caBundle: String?
    public var error: String?

    public init(certificate: String? = nil, caBundle: String? = nil, error: String? = nil) {
        self.certificate = certificate
        self.caBundle = caBundle
        self.error = error
    }
}

/// Hub → agent, after `welcome` and whenever the hub's CA bundle changes (a CA rollover): every
/// CA the federation trusts (PEM), the one that signs new certificates first. The agent writes
/// it as its bundle's `ca.crt` and renews when its certificate is from another CA.
public struct TrustBundle: Codable, Sendable, Hashable {
    public var caBundle: String

    public init(caBundle: String) {
        self.caBundle = caBundle
    }
}
