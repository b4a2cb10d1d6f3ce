import TetherJSON
import TetherModel

/// How a live object in a member cluster is doing, as its kind understands it.
public struct Health: Sendable, Hashable, CustomStringConvertible {
    public typealias State = HealthState

    public var state: State
    /// One line for an operator; empty when healthy needs no words.
    public var reason: String

    public init(_ state: State, _ reason: String = "") {
        self.state = state
        self.reason = reason
    }

    public static let healthy = Health(.healthy)

    public var description: String { reason.isEmpty ? state.rawValue : "\(state.rawValue): \(reason)" }
}

/// Something wrong with an object a user submitted (or a definition an operator wrote), tied to
/// the field at fault; thrown where one problem ends the reading.
public struct ValidationProblem: Error, Sendable, Hashable, CustomStringConvertible {
    /// A JSON path such as `spec.replicas` or `spec.ports[0].port`.
    public var field: String
    public var message: String

    public init(field: String, _ message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { "\(field): \(message)" }
}

/// When an object is applied relative to others: a namespace before what lives in it,
/// configuration before the workloads that mount it. Pruning runs in the reverse order.
public enum ApplyPhase: Int, Sendable, Comparable, CaseIterable {
    case namespaces = 0
    /// CustomResourceDefinitions and other kinds that define kinds.
    case definitions = 1
    case configuration = 2
    case networking = 3
    case workloads = 4

    public static func < (lhs: ApplyPhase, rhs: ApplyPhase) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// One member cluster's report on its copy of a federated object, as the hub aggregates it.
public struct MemberObjectStatus: Sendable, Hashable {
    public var cluster: String
    public var health: Health
    /// The fields the kind's ``ResourcePlugin/summary(of:)`` picked from the live object.
    public var summary: [String: JSONValue]

    public init(cluster: String, health: Health, summary: [String: JSONValue]) {
        self.cluster = cluster
        self.health = health
        self.summary = summary
    }
}

/// Everything Tether knows about one or more resource kinds beyond their names.
///
/// The hub uses a plugin to validate what users submit, divide replicas and prepare each
/// member's copy, and to aggregate what members report; the agent uses it to order applies,
/// judge the health of live objects and pick the fields it reports. Every requirement except
/// ``kinds`` has a default (the generic behaviour), so a plugin implements only what its kinds
/// need. `docs/plugins.md` walks through adding one.
public protocol ResourcePlugin: Sendable {
    /// A short name for logs and `hello`, such as `workloads`.
    var name: String { get }
    /// The kinds this plugin handles; each is served by the API and announced by agents.
    var kinds: [KindDescriptor] { get }
    /// Other versions of those kinds the API serves and converts (``KindDescriptor/alsoServed(as:fields:protobufNumbers:summary:conversion:)``).
    var otherVersions: [KindDescriptor] { get }

    /// Problems with an object a user submits, beyond what every object is checked for.
    func validate(_ object: JSONValue) -> [ValidationProblem]

    /// Problems with changing `old` into `object` (a definition's transition rules, which read
    /// `oldSelf`), beyond those ``validate(_:)`` finds in `object` alone.
    func validateUpdate(_ object: JSONValue, from old: JSONValue) -> [ValidationProblem]

    /// What a client should be told about an object that is accepted all the same (a
    /// definition's validation rule that is not enforced); sent as `Warning` headers.
    func warnings(on object: JSONValue) -> [String]

    /// What the API server makes of an object it stores, such as a Secret's `stringData`
    /// folded into `data`; called after ``validate(_:)`` passes.
    func normalizeOnWrite(_ object: JSONValue) -> JSONValue

    /// The replica count the hub divides across clusters, or nil when the kind has none.
    func replicas(of object: JSONValue) -> Int64?

    /// `object` with its replica count set to `count`; only called when ``replicas(of:)`` is non-nil.
    func setting(replicas count: Int64, on object: JSONValue) -> JSONValue

    /// A member's copy of a federated object: without what the member's own controllers own
    /// (status, server-set metadata, allocated addresses and ports, node bindings).
    func prepareForMember(_ object: JSONValue) -> JSONValue

    /// The health of a live object in a member cluster.
    func health(of live: JSONValue) -> Health

    /// The fields reported back to the hub, such as `readyReplicas` or load-balancer addresses.
    func summary(of live: JSONValue) -> [String: JSONValue]

    /// The federated object's `status` from its members' reports (the hub adds `clusters[]`
    /// itself), or nil to leave the status without an aggregate.
    func aggregateStatus(of object: JSONValue, members: [MemberObjectStatus]) -> JSONValue?

    /// What the agent writes over a live object: `desired`, keeping what the member owns (an
    /// autoscaler's replicas) from `observed`.
    func retain(desired: JSONValue, observed: JSONValue) -> JSONValue

    /// The objects this one needs in a member (the ConfigMaps its pods mount).
    func dependencies(of object: JSONValue) -> [ObjectReference]

    /// Where in an apply the kind goes.
    func applyPhase(of kind: KindDescriptor) -> ApplyPhase

    /// Whether objects of the kind are sent to members at all; false for the federation's own
    /// kinds (Cluster, policies) and for what only a member has (Node).
    func propagates(_ kind: KindDescriptor) -> Bool

    /// Whether an agent writes the kind when its allow-list does not name kinds; false for what
    /// grants access (RBAC). Defaults to `propagates`.
    func allowedByDefault(_ kind: KindDescriptor) -> Bool
}

extension ResourcePlugin {
    public var otherVersions: [KindDescriptor] { [] }

    public func validate(_ object: JSONValue) -> [ValidationProblem] { [] }
    public func warnings(on object: JSONValue) -> [String] { [] }
    public func validateUpdate(_ object: JSONValue, from old: JSONValue) -> [ValidationProblem] { [] }

    public func normalizeOnWrite(_ object: JSONValue) -> JSONValue { object }

    public func replicas(of object: JSONValue) -> Int64? { nil }

    public func setting(replicas count: Int64, on object: JSONValue) -> JSONValue { object }

    public func prepareForMember(_ object: JSONValue) -> JSONValue { MemberCopy.stripServerFields(object) }

    public func health(of live: JSONValue) -> Health { Conditions(live).genericHealth }

    public func summary(of live: JSONValue) -> [String: JSONValue] { [:] }

    public func aggregateStatus(of object: JSONValue, members: [MemberObjectStatus]) -> JSONValue? { nil }

    /// Server-side apply already keeps every field the desired object does not name.
    public func retain(desired: JSONValue, observed: JSONValue) -> JSONValue { desired }

    public func dependencies(of object: JSONValue) -> [ObjectReference] { [] }

    public func applyPhase(of kind: KindDescriptor) -> ApplyPhase { .workloads }

    public func propagates(_ kind: KindDescriptor) -> Bool { true }
    public func allowedByDefault(_ kind: KindDescriptor) -> Bool { propagates(kind) }
}

/// What a kind without a plugin gets: propagated as is, health from its `Ready` or
/// `Available` condition, its whole `status` reported back (as Karmada reflects a kind it does
/// not know), no aggregate.
public struct GenericPlugin: ResourcePlugin {
    public let name = "generic"
    public let kinds: [KindDescriptor] = []

    public init() {}

    public func summary(of live: JSONValue) -> [String: JSONValue] {
        guard let status = live["status"], status != .null else { return [:] }
        return ["status": status]
    }
}
