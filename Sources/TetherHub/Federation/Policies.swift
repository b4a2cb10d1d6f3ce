import TetherJSON
import TetherModel

/// A Kubernetes `LabelSelector` object (`matchLabels`, `matchExpressions`) as policies write it.
struct LabelSelectorSpec: Decodable, Hashable, Sendable {
    struct Requirement: Decodable, Hashable, Sendable {
        var key: String
        var `operator`: String
        var values: [String]?
    }

    var matchLabels: [String: String]?
    var matchExpressions: [Requirement]?

    /// The selector; nil when an operator is unknown (such a selector selects nothing).
    var selector: LabelSelector? {
        var terms = (matchLabels ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        for requirement in matchExpressions ?? [] {
            guard let term = Self.term(requirement) else { return nil }
            terms.append(term)
        }
        return try? LabelSelector(parsing: terms.joined(separator: ","))
    }

    /// One requirement in the selector syntax `LabelSelector` parses.
    static func term(_ requirement: Requirement) -> String? {
        LabelSelector.term(key: requirement.key, operator: requirement.operator, values: requirement.values ?? [])
    }
}

/// Which objects a policy governs: any selector matching, in the policy's own namespace.
struct ResourceSelector: Decodable, Hashable, Sendable {
    var apiVersion: String?
    var kind: String?
    var name: String?
    var labelSelector: LabelSelectorSpec?

    func matches(_ object: JSONValue) -> Bool {
        if let apiVersion, apiVersion != object.apiVersion { return false }
        if let kind, kind != object.kind { return false }
        if let name, name != object.name { return false }
        if let labelSelector, labelSelector.selector?.matches(object.labels) != true { return false }
        return true
    }
}

/// A `PropagationPolicy` (`core.tether.io/v1alpha1`): where the objects it selects go, and how
/// their replicas are scheduled.
struct PropagationPolicy: Hashable, Sendable {
    struct Spec: Decodable, Hashable, Sendable {
        var resourceSelectors: [ResourceSelector]?
        var placement: ClusterPlacement?
        var replicaScheduling: ReplicaScheduling?
        /// Karmada's `propagateDeps`: what a selected object depends on (its plugin's
        /// `dependencies(of:)`) goes wherever the object goes, besides its own placement.
        var propagateDeps: Bool?
    }

    struct ClusterPlacement: Decodable, Hashable, Sendable {
        var clusterNames: [String]?
        var clusterSelector: LabelSelectorSpec?
        var excludeClusters: [String]?
    }

    struct ReplicaScheduling: Decodable, Hashable, Sendable {
        enum Kind: String, Decodable, Sendable {
            case divided = "Divided"
            case duplicated = "Duplicated"
        }

        var type: Kind?
        var weights: [String: Int64]?
        var minReplicas: [String: Int64]?
        var maxReplicas: [String: Int64]?
    }

    var name: String
    var namespace: String?
    var spec: Spec
}

/// An `OverridePolicy`: per-cluster changes to the copies of the objects it selects.
struct OverridePolicy: Hashable, Sendable {
    struct Spec: Decodable, Hashable, Sendable {
        var resourceSelectors: [ResourceSelector]?
        var overrides: [Rule]?
    }

    /// One override, for the clusters it names or selects (neither: every cluster).
    struct Rule: Decodable, Hashable, Sendable {
        var clusterNames: [String]?
        var clusterSelector: LabelSelectorSpec?
        /// Every container's image in the pod template.
        var image: String?
        var replicas: Int64?
        var labels: [String: String]?
        var annotations: [String: String]?
        var jsonPatch: JSONValue?
    }

    var name: String
    var namespace: String?
    var spec: Spec
}

/// What a policy object at the hub says, decoded; the store object stays as it is.
enum PolicyDecoding {
    struct Envelope<Spec: Decodable>: Decodable {
        var spec: Spec?
    }

    static func spec<Spec: Decodable>(_: Spec.Type, of object: JSONValue) throws -> Spec? {
        try JSONValueDecoder().decode(Envelope<Spec>.self, from: object).spec
    }

    /// Whether `selectors`, of a policy in `namespace`, pick `object`.
    static func selects(_ selectors: [ResourceSelector]?, namespace: String?, _ object: JSONValue) -> Bool {
        guard namespace == object.namespace || object.namespace == nil else { return false }
        return (selectors ?? []).contains { $0.matches(object) }
    }
}
