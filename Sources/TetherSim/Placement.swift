import TetherJSON
import TetherModel

/// A node's taint, as `kubectl taint nodes NODE key=value:NoSchedule` writes it.
struct Taint: Hashable, Sendable {
    var key: String
    var value: String
    var effect: String

    static let unschedulable = Taint(key: "node.kubernetes.io/unschedulable", value: "", effect: "NoSchedule")

    static func of(node: JSONValue) -> [Taint] {
        (node.value(at: "spec", "taints")?.arrayElements ?? []).compactMap { taint in
            guard let key = taint["key"]?.stringValue, let effect = taint["effect"]?.stringValue else { return nil }
            return Taint(key: key, value: taint["value"]?.stringValue ?? "", effect: effect)
        }
    }

    /// Whether the scheduler keeps Pods that do not tolerate it off the node (`PreferNoSchedule` only scores).
    var filters: Bool { effect == "NoSchedule" || effect == "NoExecute" }
}

/// A Pod's toleration of taints, matched as the scheduler matches it: an empty key with
/// `Exists` tolerates every taint, an empty effect every effect.
struct Toleration: Hashable, Sendable {
    var key: String
    var exists: Bool
    var value: String
    var effect: String
    /// How long a `NoExecute` taint is tolerated before the Pod is evicted; nil is for ever.
    var seconds: Int64?

    init(key: String, exists: Bool, value: String = "", effect: String, seconds: Int64? = nil) {
        (self.key, self.exists, self.value, self.effect, self.seconds) = (key, exists, value, effect, seconds)
    }

    init(_ object: JSONValue) {
        self.init(
            key: object["key"]?.stringValue ?? "", exists: object["operator"]?.stringValue == "Exists", value: object["value"]?.stringValue ?? "",
            effect: object["effect"]?.stringValue ?? "", seconds: object["tolerationSeconds"]?.integerValue)
    }

    func tolerates(_ taint: Taint) -> Bool {
        guard effect.isEmpty || effect == taint.effect else { return false }
        guard !key.isEmpty || exists else { return false }
        guard key.isEmpty || key == taint.key else { return false }
        return exists || value == taint.value
    }

    /// What the DaemonSet controller adds to every Pod it makes, so a node's conditions and its
    /// cordon do not keep a DaemonSet off it.
    static let daemonSetDefaults: [Toleration] = [
        Toleration(key: "node.kubernetes.io/not-ready", exists: true, effect: "NoExecute"),
        Toleration(key: "node.kubernetes.io/unreachable", exists: true, effect: "NoExecute"),
        Toleration(key: "node.kubernetes.io/disk-pressure", exists: true, effect: "NoSchedule"),
        Toleration(key: "node.kubernetes.io/memory-pressure", exists: true, effect: "NoSchedule"),
        Toleration(key: "node.kubernetes.io/pid-pressure", exists: true, effect: "NoSchedule"),
        Toleration(key: "node.kubernetes.io/unschedulable", exists: true, effect: "NoSchedule"),
    ]

    var json: JSONValue {
        var object: JSONValue = ["key": .string(key), "operator": exists ? "Exists" : "Equal", "effect": .string(effect)]
        if !exists { object[member: "value"] = .string(value) }
        if let seconds { object[member: "tolerationSeconds"] = .integer(seconds) }
        return object
    }
}

/// One `nodeSelectorTerms` entry of a Pod's node affinity: every expression on the node's
/// labels and every field (`metadata.name`) must hold; a term with neither matches no node.
struct NodeSelectorTerm: Hashable, Sendable {
    struct Requirement: Hashable, Sendable {
        var key: String
        var `operator`: String
        var values: [String]

        func holds(for value: String?) -> Bool {
            switch `operator` {
            case "In": value.map(values.contains) ?? false
            case "NotIn": !(value.map(values.contains) ?? false)
            case "Exists": value != nil
            case "DoesNotExist": value == nil
            // Integers compared, as the API validates `values` to one integer.
            case "Gt": (value.flatMap { Int64($0) }).map { actual in values.first.flatMap { Int64($0) }.map { actual > $0 } ?? false } ?? false
            case "Lt": (value.flatMap { Int64($0) }).map { actual in values.first.flatMap { Int64($0) }.map { actual < $0 } ?? false } ?? false
            default: false
            }
        }
    }

    var expressions: [Requirement]
    var fields: [Requirement]

    init(_ object: JSONValue) {
        func requirements(_ name: String) -> [Requirement] {
            (object[name]?.arrayElements ?? []).map { expression in
                Requirement(
                    key: expression["key"]?.stringValue ?? "", operator: expression["operator"]?.stringValue ?? "",
                    values: (expression["values"]?.arrayElements ?? []).compactMap(\.stringValue))
            }
        }
        expressions = requirements("matchExpressions")
        fields = requirements("matchFields")
    }

    func matches(labels: [String: String], name: String) -> Bool {
        guard !expressions.isEmpty || !fields.isEmpty else { return false }
        return expressions.allSatisfy { $0.holds(for: labels[$0.key]) }
            && fields.allSatisfy { $0.key == "metadata.name" && $0.holds(for: name) }
    }
}

/// A required Pod (anti-)affinity term: the Pods its selector picks, in the namespaces it names
/// (its own Pod's when it names none; all of them with an empty `namespaceSelector`), on nodes
/// sharing the value of `topologyKey`.
struct PodAffinityTerm: Hashable, Sendable {
    var selector: LabelSelector
    var namespaces: Set<String>
    var allNamespaces: Bool
    var topologyKey: String

    init?(_ object: JSONValue, namespace: String) {
        guard let topologyKey = object["topologyKey"]?.stringValue, !topologyKey.isEmpty else { return nil }
        // A missing selector picks no Pod; an unreadable one is treated as picking none either.
        guard let selectorObject = object["labelSelector"], let selector = LabelSelector(object: selectorObject) else { return nil }
        self.selector = selector
        self.topologyKey = topologyKey
        let named = Set((object["namespaces"]?.arrayElements ?? []).compactMap(\.stringValue))
        // A namespace selector with terms would need the Namespaces' labels; the simulator reads
        // only an empty one (every namespace) and otherwise keeps to the names listed.
        allNamespaces = object["namespaceSelector"] == [:]
        namespaces = named.isEmpty ? [namespace] : named
    }

    func selects(_ pod: PodPlacement) -> Bool {
        (allNamespaces || namespaces.contains(pod.namespace)) && selector.matches(pod.labels)
    }
}

/// A `DoNotSchedule` topology spread constraint: the Pods its selector picks in the Pod's
/// namespace may differ by at most `maxSkew` between the values of `topologyKey` (zones,
/// hostnames) of the nodes the Pod could go to. `ScheduleAnyway` constraints only score, and the
/// simulator does not score them.
struct SpreadConstraint: Hashable, Sendable {
    var maxSkew: Int
    var topologyKey: String
    var selector: LabelSelector

    init?(_ object: JSONValue) {
        guard object["whenUnsatisfiable"]?.stringValue ?? "DoNotSchedule" == "DoNotSchedule",
            let topologyKey = object["topologyKey"]?.stringValue, !topologyKey.isEmpty,
            let selectorObject = object["labelSelector"], let selector = LabelSelector(object: selectorObject)
        else { return nil }
        self.maxSkew = Int(max(1, min(Int64(Int32.max), object["maxSkew"]?.integerValue ?? 1)))
        self.topologyKey = topologyKey
        self.selector = selector
    }
}

/// What a Pod asks of the node it goes to, as the scheduler's filters read it: resources, a
/// node selector and node affinity, tolerations of the node's taints, and Pod (anti-)affinity.
struct PodPlacement: Hashable, Sendable {
    struct Preference: Hashable, Sendable {
        var weight: Int64
        var term: NodeSelectorTerm
    }

    var requests: PodRequests
    var namespace: String
    var labels: [String: String]
    var nodeSelector: [String: String]
    /// `requiredDuringSchedulingIgnoredDuringExecution`: any one term; nil when there is none.
    var requiredTerms: [NodeSelectorTerm]?
    var preferredTerms: [Preference]
    var tolerations: [Toleration]
    var affinity: [PodAffinityTerm]
    var antiAffinity: [PodAffinityTerm]
    var spread: [SpreadConstraint]
    /// `spec.priority`, as Priority admission set it (0 without).
    var priority: Int32 = 0
    /// Whether the scheduler may preempt lower-priority Pods for it (`preemptionPolicy` is not `Never`).
    var preemptsLowerPriority = true
    /// Deleted: still counted on its node until its kubelet has stopped it, and never preempted again.
    var terminating = false
    /// The node affinity of each bound volume the Pod uses (any one term of each): the Pod goes
    /// only where all of its volumes are.
    var volumeTerms: [[NodeSelectorTerm]] = []

    init(of pod: JSONValue) {
        requests = PodRequests(of: pod)
        priority = Int32(clamping: pod.value(at: "spec", "priority")?.integerValue ?? 0)
        preemptsLowerPriority = pod.string(at: "spec", "preemptionPolicy") != "Never"
        terminating = pod.deletionTimestamp != nil
        namespace = pod.namespace ?? "default"
        labels = pod.labels
        let spec = pod["spec"] ?? [:]
        nodeSelector = (spec["nodeSelector"]?.objectMembers ?? [:]).compactMapValues(\.stringValue)
        let nodeAffinity = spec.value(at: "affinity", "nodeAffinity")
        requiredTerms = nodeAffinity?.value(at: "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms")?.arrayElements.map(
            NodeSelectorTerm.init)
        preferredTerms = (nodeAffinity?["preferredDuringSchedulingIgnoredDuringExecution"]?.arrayElements ?? []).compactMap { preference in
            guard let weight = preference["weight"]?.integerValue, let term = preference["preference"] else { return nil }
            return Preference(weight: weight, term: NodeSelectorTerm(term))
        }
        tolerations = (spec["tolerations"]?.arrayElements ?? []).map(Toleration.init)
        let namespace = namespace
        func terms(_ kind: String) -> [PodAffinityTerm] {
            (spec.value(at: "affinity", kind, "requiredDuringSchedulingIgnoredDuringExecution")?.arrayElements ?? []).compactMap {
                PodAffinityTerm($0, namespace: namespace)
            }
        }
        affinity = terms("podAffinity")
        antiAffinity = terms("podAntiAffinity")
        spread = (spec["topologySpreadConstraints"]?.arrayElements ?? []).compactMap(SpreadConstraint.init)
    }

    /// A Pod made from `template` in `namespace`, as a controller would make it.
    init(template: JSONValue, namespace: String) {
        var pod: JSONValue = ["metadata": template["metadata"] ?? [:], "spec": template["spec"] ?? [:]]
        pod.set(.string(namespace), at: ["metadata", "namespace"])
        self.init(of: pod)
    }

    init(requests: PodRequests) {
        self.requests = requests
        (namespace, labels, nodeSelector, requiredTerms, preferredTerms, tolerations, affinity, antiAffinity, spread) = (
            "default", [:], [:], nil, [], [], [], [], []
        )
    }

    func tolerates(_ taint: Taint) -> Bool { tolerations.contains { $0.tolerates(taint) } }

    /// Whether the node's labels and name satisfy the node selector and required node affinity.
    func selects(nodeLabels: [String: String], name: String) -> Bool {
        nodeSelector.allSatisfy { nodeLabels[$0.key] == $0.value }
            && (requiredTerms.map { $0.contains { $0.matches(labels: nodeLabels, name: name) } } ?? true)
    }
}
