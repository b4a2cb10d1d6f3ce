import TetherJSON
import TetherModel
import TetherWire

/// The hub state an agent trusts for its desired state: the federation, the hub store's epoch,
/// and the revision it last accepted from them. Persisted with the desired state.
public struct FencingBaseline: Codable, Sendable, Hashable {
    public var federation: String?
    public var epoch: String?
    public var revision: UInt64?
    /// The digest the hub named for `revision` (nil from an older hub).
    public var digest: String?
    /// The hub's run that sent `revision` (nil from an older hub).
    public var run: String?

    public init(federation: String? = nil, epoch: String? = nil, revision: UInt64? = nil, digest: String? = nil, run: String? = nil) {
        self.federation = federation
        self.epoch = epoch
        self.revision = revision
        self.digest = digest
        self.run = run
    }
}

/// What the agent does with a desired state, decided before anything is applied: the agent is
/// the one part of Tether with write access to every member, and a hub that lost its database,
/// was restored from an old backup, belongs to another federation, or just asks to remove most
/// of what the agent manages, must not make it destroy anything by mistake.
///
/// Pure: a value in, a verdict out. `Applier` performs the verdict.
struct Fencing: Sendable {
    struct Decision: Equatable {
        enum Action: Equatable {
            /// Apply the set; prune what left it only when `prune`.
            case apply(prune: Bool)
            /// Apply nothing of it.
            case refuse
        }

        var action: Action
        /// Reported in the `ack`, shown on the Cluster until lifted.
        var hold: Ack.Hold?
        /// The baseline once the set is applied (unchanged on a refusal).
        var baseline: FencingBaseline
    }

    /// The share of managed objects one desired set may remove without a confirmation.
    var maximumPruneFraction: Double = 0.5
    /// Below this many removals no set is held for its size (deleting the one object of a small
    /// federation is no accident to guard against).
    var pruneGuardMinimum: Int = 5

    /// - Parameters:
    ///   - baseline: what the agent trusts now.
    ///   - federation, epoch: what the hub's `welcome` named (nil from an older hub).
    ///   - run, historyThrough: the hub's run and where its store's history ends, from `welcome`.
    ///   - revision: the desired state's revision, and `digest` the hub's digest of it.
    ///   - terms: what the hub says besides objects (a confirmed hold, an unjoin).
    ///   - removals: objects the agent manages (its inventory) that the set would remove.
    ///   - managed: how many objects the agent manages.
    ///   - holding: the hold in force now (a rewind stays held until confirmed).
    func decide(
        baseline: FencingBaseline, federation: String?, epoch: String?, run: String? = nil, historyThrough: UInt64? = nil,
        revision: UInt64, digest: String? = nil, terms: DesiredStateTerms?, removals: Set<ObjectReference>, managed: Int, holding: Ack.Hold? = nil
    ) -> Decision {
        let confirmed = terms?.confirmedHold
        let unchanged = Decision(action: .refuse, hold: nil, baseline: baseline)
        if let trusted = baseline.federation, let named = federation, trusted != named {
            var refusal = unchanged
            refusal.hold = Ack.Hold(
                reason: .foreignFederation,
                message:
                    "the hub belongs to federation \(named), but this agent's desired state comes from federation \(trusted); nothing it sends is applied",
                token: "federation:\(named)", wouldRemove: 0, managed: managed
            )
            return refusal
        }
        // A rewind, once seen, holds until an operator confirms it: the restored store's own
        // writes soon carry its revisions past the one the agent held, and a set that merely
        // outnumbers it is no proof the hub has what was lost.
        if let holding, holding.reason == .revisionRegressed, confirmed != holding.token, epoch == nil || epoch == baseline.epoch {
            var refusal = unchanged
            refusal.hold = holding
            return refusal
        }
        let accepted = FencingBaseline(
            federation: federation ?? baseline.federation, epoch: epoch ?? baseline.epoch, revision: revision, digest: digest,
            run: run ?? baseline.run
        )
        if let trusted = baseline.epoch, let named = epoch, trusted != named {
            let token = "epoch:\(named)"
            if confirmed == token { return Decision(action: .apply(prune: true), hold: nil, baseline: accepted) }
            // Its objects are applied (the hub is of this federation), but it cannot vouch for
            // what it lacks: a rebuilt store lacks everything.
            return Decision(
                action: .apply(prune: false),
                hold: Ack.Hold(
                    reason: .newEpoch,
                    message:
                        "the hub's store is new (epoch \(named), this agent last followed \(trusted)): its objects are applied but the \(removals.count) of \(managed) managed objects it lacks are kept until an operator confirms",
                    token: token, wouldRemove: removals.count, managed: managed
                ),
                baseline: baseline
            )
        }
        // A restored store can also reach the held revision again with another set (its
        // revisions file lags its database by up to a second): the digest tells them apart.
        let reused = revision == baseline.revision && digest != nil && baseline.digest != nil && digest != baseline.digest
        // Or pass it with its own writes: what the hub's run says of where its history ends
        // tells a revision the store has lost from one it sent.
        let lost: UInt64? = {
            guard let held = baseline.revision, let heldRun = baseline.run, let run, heldRun != run, let historyThrough,
                held > historyThrough
            else { return nil }
            return historyThrough
        }()
        if let held = baseline.revision, revision < held || reused || lost != nil, epoch == nil || epoch == baseline.epoch {
            let token = "rewind:\(baseline.epoch ?? "-"):\(held)"
            if confirmed == token { return Decision(action: .apply(prune: true), hold: nil, baseline: accepted) }
            var refusal = unchanged
            let what: String
            if let lost {
                what =
                    "this agent applied revision \(held) from an earlier run of the hub, but the hub's store ends at revision \(lost)"
            } else {
                let sent = reused ? "revision \(revision) again with another set than" : "revision \(revision), older than"
                what = "the hub sent \(sent) revision \(held) this agent applied from the same store"
            }
            refusal.hold = Ack.Hold(
                reason: .revisionRegressed,
                message:
                    "\(what): the store was restored from an older state; nothing is applied until an operator confirms",
                token: token, wouldRemove: removals.count, managed: managed
            )
            return refusal
        }
        let tooMany =
            removals.count >= pruneGuardMinimum
            && (Double(removals.count) > maximumPruneFraction * Double(managed) || removals.count == managed)
        if tooMany, terms?.unjoining != true {
            let token = Self.pruneToken(removals)
            if confirmed != token {
                return Decision(
                    action: .apply(prune: false),
                    hold: Ack.Hold(
                        reason: .massDeletion,
                        message:
                            "the desired state would remove \(removals.count) of the \(managed) objects this agent manages (more than \(Int(maximumPruneFraction * 100)) % at once); they are kept until an operator confirms",
                        token: token, wouldRemove: removals.count, managed: managed
                    ),
                    baseline: accepted
                )
            }
        }
        return Decision(action: .apply(prune: true), hold: nil, baseline: accepted)
    }

    /// Names exactly this set of removals: a confirmation covers these objects and no others.
    static func pruneToken(_ removals: Set<ObjectReference>) -> String {
        var hash = StableHash()
        for reference in removals.map(\.description).sorted() { hash.combine(reference) }
        return "prune:\(removals.count):\(String(hash.value, radix: 16))"
    }
}

/// The kinds and namespaces an agent may write in its member (`--allow-kind`, `--allow-namespace`,
/// `--deny-namespace`, or `allowKinds`/`allowNamespaces`/`denyNamespaces` in agent.json). A
/// desired object outside it is refused and reported, never applied, and never pruned.
public struct AllowList: Sendable, Hashable {
    /// `group/Kind` (the core group is empty: `/ConfigMap`), or `group/*` for every kind of a
    /// group (the kinds a CustomResourceDefinition of that group defines).
    public var kinds: Set<String>
    /// Nil: every namespace not denied.
    public var namespaces: Set<String>?
    public var deniedNamespaces: Set<String>

    public static let defaultDeniedNamespaces: Set<String> = ["kube-system", "kube-public", "kube-node-lease"]

    public init(kinds: Set<String>, namespaces: Set<String>? = nil, deniedNamespaces: Set<String> = defaultDeniedNamespaces) {
        self.kinds = kinds
        self.namespaces = namespaces
        self.deniedNamespaces = deniedNamespaces
    }

    /// `group/Kind` of an apiVersion and kind.
    public static func key(apiVersion: String, kind: String) -> String {
        let group = apiVersion.contains("/") ? String(apiVersion.split(separator: "/")[0]) : ""
        return "\(group)/\(kind)"
    }

    /// Why the agent may not write `reference`, or nil.
    public func refusal(of reference: ObjectReference) -> String? {
        let key = Self.key(apiVersion: reference.apiVersion, kind: reference.kind)
        let everyKindOfGroup = "\(key.split(separator: "/", omittingEmptySubsequences: false)[0])/*"
        guard kinds.contains(key) || kinds.contains(everyKindOfGroup) else {
            return
                "refused by this agent's allow-list: kind \(key) is not allowed (allowed: \(kinds.sorted().joined(separator: ", ")); add it with --allow-kind)"
        }
        let namespace = reference.kind == "Namespace" && reference.apiVersion == "v1" ? reference.name : reference.namespace
        if let namespace {
            if deniedNamespaces.contains(namespace) {
                return "refused by this agent's allow-list: namespace \(namespace) is denied (--deny-namespace)"
            }
            if let namespaces, !namespaces.contains(namespace) {
                return "refused by this agent's allow-list: namespace \(namespace) is not allowed (--allow-namespace)"
            }
        }
        return nil
    }
}
