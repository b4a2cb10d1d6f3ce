import Testing
import TetherJSON
import TetherStore

@testable import TetherSim

/// The simulated scheduler's filters, on their own.
@Suite("Simulated node availability")
struct NodeAvailabilityTests {
    static let pods = ResourceType(group: "", resource: "pods", namespaced: true)

    func pod(_ name: String, cpu: [String], node: String? = nil) -> JSONValue {
        var pod: JSONValue = [
            "apiVersion": "v1", "kind": "Pod", "metadata": ["name": .string(name), "namespace": "default"],
            "spec": ["containers": .array(cpu.map { ["name": "c", "image": "i", "resources": ["requests": ["cpu": .string($0)]]] })],
        ]
        if let node { pod.set(.string(node), at: ["spec", "nodeName"]) }
        return pod
    }

    @Test("requests add up per node; huge or negative ones neither overflow nor free room; a freed Pod makes room again")
    func requests() throws {
        let nodes = NodeAvailability(settings: SimulationSettings(clusterName: "s", nodes: 2, maxPodsPerNode: 3))
        // Two containers of 9e15 CPUs each: more than Int64 millicores together, so saturated, and fitting nowhere.
        let huge = PodRequests(of: pod("huge", cpu: ["9e15", "9e15"]))
        #expect(huge.milliCPU == .max)
        guard case .failure(let reason) = nodes.fitting(huge) else {
            Issue.record("a pod of 1.8e16 CPUs fitted")
            return
        }
        #expect(reason.message.hasPrefix("0/2 nodes are available: 2 Insufficient cpu."), "\(reason.message)")
        #expect(PodRequests(of: pod("negative", cpu: ["-4"])).milliCPU == 0)

        let key = TetherSim.ObjectKey(type: Self.pods, namespace: "default", name: "a")
        nodes.track(pod("a", cpu: ["3500m"], node: "s-node-1"), key: key, gone: false)
        let second = PodRequests(of: pod("b", cpu: ["1"]))
        #expect(try nodes.fitting(second).get() == ["s-node-2"])
        #expect(nodes.track(pod("a", cpu: ["3500m"], node: "s-node-1"), key: key, gone: true), "the Pod's going frees room")
        #expect(try nodes.fitting(second).get() == ["s-node-1", "s-node-2"])
    }

    static func node(_ name: String, labels: [String: String] = [:], taints: [(String, String, String)] = [], cordoned: Bool = false) -> JSONValue {
        var all = ["kubernetes.io/hostname": name, "kubernetes.io/os": "linux"]
        for (key, value) in labels { all[key] = value }
        var node: JSONValue = [
            "apiVersion": "v1", "kind": "Node", "metadata": ["name": .string(name), "labels": .object(all.mapValues(JSONValue.string))],
        ]
        node.set(.array(taints.map { ["key": .string($0.0), "value": .string($0.1), "effect": .string($0.2)] }), at: ["spec", "taints"])
        if cordoned { node.set(true, at: ["spec", "unschedulable"]) }
        return node
    }

    static func placement(_ spec: JSONValue, labels: [String: String] = [:], namespace: String = "default") -> PodPlacement {
        var pod: JSONValue = [
            "metadata": ["name": "p", "namespace": .string(namespace), "labels": .object(labels.mapValues(JSONValue.string))], "spec": spec,
        ]
        pod.set([["name": "c", "image": "i"]], at: ["spec", "containers"])
        return PodPlacement(of: pod)
    }

    static func message(_ result: Result<[String], NodeAvailability.UnschedulableReason>) -> String {
        if case .failure(let reason) = result { return reason.message }
        return "fitted"
    }

    @Test("taints keep off the Pods that do not tolerate them; the first filter that refuses a node names it, in the scheduler's words")
    func taintsAndTolerations() throws {
        let nodes = NodeAvailability(settings: SimulationSettings(clusterName: "s", nodes: 3))
        #expect(nodes.update("s-node-1", from: Self.node("s-node-1", taints: [("dedicated", "gpu", "NoSchedule")])))
        #expect(nodes.update("s-node-2", from: Self.node("s-node-2", taints: [("maintenance", "", "NoExecute")], cordoned: true)))
        #expect(!nodes.update("s-node-2", from: Self.node("s-node-2", taints: [("maintenance", "", "NoExecute")], cordoned: true)), "nothing changed")
        #expect(nodes.update("s-node-3", from: Self.node("s-node-3", taints: [("spot", "true", "PreferNoSchedule")])))
        // PreferNoSchedule only scores: the one node left is taken.
        #expect(try nodes.fitting(Self.placement([:])).get() == ["s-node-3"])
        let gpu = Self.placement(["tolerations": [["key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"]]])
        // Both fit; the node without an untolerated PreferNoSchedule taint scores better.
        #expect(try nodes.fitting(gpu).get() == ["s-node-1"])
        let wrongValue = Self.placement(["tolerations": [["key": "dedicated", "operator": "Equal", "value": "cpu"]], "nodeSelector": ["pool": "x"]])
        #expect(
            Self.message(nodes.fitting(wrongValue)).hasPrefix(
                "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable."
            ), "\(Self.message(nodes.fitting(wrongValue)))")
        // Tolerating everything (an empty key with Exists) tolerates a cordon's taint too, as in Kubernetes.
        let everything = Self.placement(["tolerations": [["operator": "Exists"]]])
        #expect(try nodes.fitting(everything).get() == ["s-node-1", "s-node-2", "s-node-3"])
        let noSchedule = Self.placement(["tolerations": [["operator": "Exists", "effect": "NoSchedule"]]])
        #expect(try nodes.fitting(noSchedule).get() == ["s-node-1"], "NoExecute untolerated on node 2; node 3's PreferNoSchedule scores lower")
        #expect(nodes.daemonNodes(for: Self.placement([:])) == ["s-node-3"], "a DaemonSet tolerates the cordon, not dedicated or maintenance")
        #expect(nodes.daemonNodes(for: everything) == ["s-node-1", "s-node-2", "s-node-3"])
    }

    @Test("a NoExecute taint evicts the Pods on its node that do not tolerate it, at once or after their tolerationSeconds")
    func noExecute() {
        let nodes = NodeAvailability(settings: SimulationSettings(clusterName: "s", nodes: 2))
        func pod(_ name: String, tolerations: JSONValue) -> JSONValue {
            [
                "metadata": ["name": .string(name), "namespace": "default"],
                "spec": ["nodeName": "s-node-1", "containers": [], "tolerations": tolerations],
            ]
        }
        let keys = ["a", "b", "c", "d"].map { TetherSim.ObjectKey(type: Self.pods, namespace: "default", name: $0) }
        nodes.track(pod("a", tolerations: []), key: keys[0], gone: false)
        nodes.track(
            pod("b", tolerations: [["key": "maintenance", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30]]), key: keys[1],
            gone: false)
        nodes.track(pod("c", tolerations: [["key": "maintenance", "operator": "Exists"]]), key: keys[2], gone: false)
        nodes.track(pod("d", tolerations: [["key": "maintenance", "operator": "Exists", "tolerationSeconds": -5]]), key: keys[3], gone: false)
        #expect(nodes.evicted(from: "s-node-1").isEmpty, "no taint yet")
        _ = nodes.update("s-node-1", from: Self.node("s-node-1", taints: [("maintenance", "", "NoExecute"), ("dedicated", "x", "NoSchedule")]))
        let evicted = nodes.evicted(from: "s-node-1")
        #expect(evicted.map(\.key.name) == ["a", "b", "d"], "c tolerates it for ever")
        #expect(evicted.map(\.after) == [nil, 30, 0])
        #expect(nodes.evicted(from: "s-node-2").isEmpty)
    }

    @Test("node selectors and node affinity, with every operator; preferred terms pick the best of the nodes that fit")
    func nodeAffinity() throws {
        let nodes = NodeAvailability(settings: SimulationSettings(clusterName: "s", nodes: 3))
        _ = nodes.update("s-node-1", from: Self.node("s-node-1", labels: ["disk": "ssd", "cores": "8"]))
        _ = nodes.update("s-node-2", from: Self.node("s-node-2", labels: ["disk": "hdd", "cores": "32"]))
        _ = nodes.update("s-node-3", from: Self.node("s-node-3", labels: ["cores": "16"]))
        func required(_ expressions: JSONValue, fields: JSONValue = []) -> PodPlacement {
            Self.placement([
                "affinity": [
                    "nodeAffinity": [
                        "requiredDuringSchedulingIgnoredDuringExecution": [
                            "nodeSelectorTerms": [["matchExpressions": expressions, "matchFields": fields]]
                        ]
                    ]
                ]
            ])
        }
        #expect(try nodes.fitting(Self.placement(["nodeSelector": ["disk": "ssd"]])).get() == ["s-node-1"])
        #expect(try nodes.fitting(required([["key": "disk", "operator": "In", "values": ["ssd", "hdd"]]])).get() == ["s-node-1", "s-node-2"])
        #expect(try nodes.fitting(required([["key": "disk", "operator": "NotIn", "values": ["ssd"]]])).get() == ["s-node-2", "s-node-3"])
        #expect(try nodes.fitting(required([["key": "disk", "operator": "DoesNotExist"]])).get() == ["s-node-3"])
        #expect(try nodes.fitting(required([["key": "cores", "operator": "Gt", "values": ["8"]]])).get() == ["s-node-2", "s-node-3"])
        #expect(try nodes.fitting(required([["key": "cores", "operator": "Lt", "values": ["16"]]])).get() == ["s-node-1"])
        #expect(try nodes.fitting(required([], fields: [["key": "metadata.name", "operator": "In", "values": ["s-node-3"]]])).get() == ["s-node-3"])
        #expect(
            Self.message(nodes.fitting(required([["key": "cores", "operator": "Gt", "values": ["64"]]])))
                .hasPrefix("0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."))
        // An empty term matches no node, as in Kubernetes.
        #expect(
            Self.message(nodes.fitting(required([])))
                .hasPrefix("0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."))
        let preferring = Self.placement([
            "affinity": [
                "nodeAffinity": [
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        ["weight": 10, "preference": ["matchExpressions": [["key": "disk", "operator": "Exists"]]]],
                        ["weight": 50, "preference": ["matchExpressions": [["key": "cores", "operator": "Gt", "values": ["10"]]]]],
                    ]
                ]
            ]
        ])
        #expect(try nodes.fitting(preferring).get() == ["s-node-2"], "60 against 10 and 50")
    }

    @Test("required Pod anti-affinity and affinity, by hostname and by zone, both ways")
    func podAffinity() throws {
        let nodes = NodeAvailability(settings: SimulationSettings(clusterName: "s", nodes: 4))
        func term(_ key: String, app: String) -> JSONValue {
            ["topologyKey": .string(key), "labelSelector": ["matchLabels": ["app": .string(app)]]]
        }
        func pod(_ name: String, app: String, on node: String, spec: JSONValue = [:]) -> JSONValue {
            var pod: JSONValue = ["metadata": ["name": .string(name), "namespace": "default", "labels": ["app": .string(app)]], "spec": spec]
            pod.set(.string(node), at: ["spec", "nodeName"])
            return pod
        }
        // Zones: nodes 1 and 4 are zone-a, 2 zone-b, 3 zone-c.
        let antiZone: JSONValue = [
            "affinity": ["podAntiAffinity": ["requiredDuringSchedulingIgnoredDuringExecution": [term("topology.kubernetes.io/zone", app: "db")]]]
        ]
        nodes.track(
            pod("db-0", app: "db", on: "s-node-1", spec: antiZone), key: .init(type: Self.pods, namespace: "default", name: "db-0"), gone: false)
        let db = Self.placement(antiZone, labels: ["app": "db"])
        #expect(try nodes.fitting(db).get() == ["s-node-2", "s-node-3"], "not zone-a, where db-0 runs")
        // The placed Pod's anti-affinity keeps another db Pod out even when the newcomer says nothing.
        #expect(try nodes.fitting(Self.placement([:], labels: ["app": "db"])).get() == ["s-node-2", "s-node-3"])
        #expect(try nodes.fitting(Self.placement([:], labels: ["app": "web"])).get().count == 4)
        // In another namespace the term (its Pod's namespace) does not apply.
        #expect(try nodes.fitting(Self.placement([:], labels: ["app": "db"], namespace: "other")).get().count == 4)
        nodes.track(
            pod("db-1", app: "db", on: "s-node-2", spec: antiZone), key: .init(type: Self.pods, namespace: "default", name: "db-1"), gone: false)
        nodes.track(
            pod("db-2", app: "db", on: "s-node-3", spec: antiZone), key: .init(type: Self.pods, namespace: "default", name: "db-2"), gone: false)
        // Its own terms are judged first, as the scheduler does; a Pod without terms meets the placed Pods'.
        #expect(
            Self.message(nodes.fitting(db)).hasPrefix("0/4 nodes are available: 4 node(s) didn't match pod anti-affinity rules."),
            "\(Self.message(nodes.fitting(db)))")
        let plainDB = Self.placement([:], labels: ["app": "db"])
        #expect(
            Self.message(nodes.fitting(plainDB)).hasPrefix("0/4 nodes are available: 4 node(s) didn't satisfy existing pods anti-affinity rules."),
            "\(Self.message(nodes.fitting(plainDB)))")
        // Affinity: a cache goes where a db runs, on the same node.
        let cache = Self.placement([
            "affinity": ["podAffinity": ["requiredDuringSchedulingIgnoredDuringExecution": [term("kubernetes.io/hostname", app: "db")]]]
        ])
        #expect(try nodes.fitting(cache).get() == ["s-node-1", "s-node-2", "s-node-3"])
        // The first Pod of a group that selects itself goes anywhere; a second follows it.
        let selfish = Self.placement(
            ["affinity": ["podAffinity": ["requiredDuringSchedulingIgnoredDuringExecution": [term("kubernetes.io/hostname", app: "solo")]]]],
            labels: ["app": "solo"])
        #expect(try nodes.fitting(selfish).get().count == 4)
        nodes.track(pod("solo-0", app: "solo", on: "s-node-4"), key: .init(type: Self.pods, namespace: "default", name: "solo-0"), gone: false)
        #expect(try nodes.fitting(selfish).get() == ["s-node-4"])
        // Own anti-affinity by hostname: not next to a solo Pod.
        let apart = Self.placement([
            "affinity": ["podAntiAffinity": ["requiredDuringSchedulingIgnoredDuringExecution": [term("kubernetes.io/hostname", app: "solo")]]]
        ])
        #expect(try nodes.fitting(apart).get() == ["s-node-1", "s-node-2", "s-node-3"])
        nodes.track(pod("solo-0", app: "solo", on: "s-node-4"), key: .init(type: Self.pods, namespace: "default", name: "solo-0"), gone: true)
        #expect(try nodes.fitting(apart).get().count == 4, "its going frees the node")
    }

    @Test(
        "DoNotSchedule topology spread: each zone within maxSkew of the emptiest; a node without the key is refused as the scheduler says; ScheduleAnyway only scores"
    )
    func topologySpread() throws {
        let nodes = NodeAvailability(settings: SimulationSettings(clusterName: "s", nodes: 4))
        func pod(_ name: String, on node: String) -> JSONValue {
            ["metadata": ["name": .string(name), "namespace": "default", "labels": ["app": "web"]], "spec": ["nodeName": .string(node)]]
        }
        func spread(_ whenUnsatisfiable: String = "DoNotSchedule", key: String = "topology.kubernetes.io/zone") -> PodPlacement {
            Self.placement(
                [
                    "topologySpreadConstraints": [
                        [
                            "maxSkew": 1, "topologyKey": .string(key), "whenUnsatisfiable": .string(whenUnsatisfiable),
                            "labelSelector": ["matchLabels": ["app": "web"]],
                        ]
                    ]
                ], labels: ["app": "web"])
        }
        // Zones: nodes 1 and 4 zone-a, 2 zone-b, 3 zone-c. An empty cluster takes the first anywhere.
        #expect(try nodes.fitting(spread()).get().count == 4)
        nodes.track(pod("web-0", on: "s-node-1"), key: .init(type: Self.pods, namespace: "default", name: "web-0"), gone: false)
        // zone-a has 1, the others 0: another in zone-a would make a skew of 2.
        #expect(try nodes.fitting(spread()).get() == ["s-node-2", "s-node-3"])
        nodes.track(pod("web-1", on: "s-node-2"), key: .init(type: Self.pods, namespace: "default", name: "web-1"), gone: false)
        #expect(try nodes.fitting(spread()).get() == ["s-node-3"])
        nodes.track(pod("web-2", on: "s-node-3"), key: .init(type: Self.pods, namespace: "default", name: "web-2"), gone: false)
        #expect(try nodes.fitting(spread()).get().count == 4, "one in each zone: any zone is within the skew again")
        #expect(try nodes.fitting(spread("ScheduleAnyway")).get().count == 4)
        // The node selector narrows the domains counted: only zone-a's nodes remain, so no skew.
        var pinned = spread()
        pinned.nodeSelector = ["topology.kubernetes.io/zone": "zone-a"]
        nodes.track(pod("web-3", on: "s-node-4"), key: .init(type: Self.pods, namespace: "default", name: "web-3"), gone: false)
        #expect(try nodes.fitting(pinned).get() == ["s-node-1", "s-node-4"])
        // zone-a now has 2: a spread Pod goes to zone-b or zone-c.
        #expect(try nodes.fitting(spread()).get() == ["s-node-2", "s-node-3"])
        #expect(
            Self.message(nodes.fitting(spread(key: "rack"))).hasPrefix(
                "0/4 nodes are available: 4 node(s) didn't match pod topology spread constraints (missing required label)."))
    }
}

/// kube-scheduler's default preemption, as the simulated scheduler applies it.
@Suite("Simulated preemption")
struct PreemptionTests {
    static let pods = ResourceType(group: "", resource: "pods", namespaced: true)

    static func pod(_ name: String, cpu: String, priority: Int64, node: String? = nil, never: Bool = false, nominated: String? = nil) -> JSONValue {
        var pod: JSONValue = [
            "apiVersion": "v1", "kind": "Pod", "metadata": ["name": .string(name), "namespace": "default", "labels": ["pod": .string(name)]],
            "spec": [
                "priority": .integer(priority), "containers": [["name": "c", "image": "i", "resources": ["requests": ["cpu": .string(cpu)]]]],
            ],
        ]
        if let node { pod.set(.string(node), at: ["spec", "nodeName"]) }
        if never { pod.set("Never", at: ["spec", "preemptionPolicy"]) }
        if let nominated { pod.set(.string(nominated), at: ["status", "nominatedNodeName"]) }
        return pod
    }

    static func key(_ name: String) -> TetherSim.ObjectKey { TetherSim.ObjectKey(type: pods, namespace: "default", name: name) }

    /// Two nodes of 4 CPUs: node 1 holds Pods of 2, 1 and 1 CPUs at priorities 5, 1 and 0; node 2 one of 4 at priority 1.
    static func filled() -> NodeAvailability {
        let nodes = NodeAvailability(settings: SimulationSettings(clusterName: "s", nodes: 2))
        for (name, cpu, priority, node) in [
            ("a", "2", 5, "s-node-1"), ("b", "1", 1, "s-node-1"), ("c", "1", 0, "s-node-1"), ("d", "4", 1, "s-node-2"),
        ] {
            nodes.track(pod(name, cpu: cpu, priority: Int64(priority), node: node), key: key(name), gone: false)
        }
        return nodes
    }

    @Test("the fewest, least important victims on the node whose most important victim matters least; the room is then kept from lower priorities")
    func victims() throws {
        let nodes = Self.filled()
        // 2 CPUs at priority 10: node 1 frees them with b and c (a, the most important, is put
        // back), node 2 with d; the most important victim is of priority 1 on both, and node 2's
        // sum of priorities is the lower (each counted from the lowest priority, as kube-scheduler does).
        guard case .failure(let reason) = nodes.fitting(PodPlacement(of: Self.pod("vip", cpu: "2", priority: 10)), key: Self.key("vip")) else {
            Issue.record("fitted")
            return
        }
        #expect(reason.message == "0/2 nodes are available: 2 Insufficient cpu.")
        #expect(reason.preemption?.node == "s-node-2" && reason.preemption?.victims.map(\.name) == ["d"], "\(reason)")
        // 1 CPU at priority 10: node 1 needs only c (highest 0), which beats d (highest 1).
        guard case .failure(let small) = nodes.fitting(PodPlacement(of: Self.pod("small", cpu: "1", priority: 10)), key: Self.key("small")) else {
            Issue.record("fitted")
            return
        }
        #expect(small.preemption?.node == "s-node-1" && small.preemption?.victims.map(\.name) == ["c"], "\(small)")
        // c gone: its 1 CPU is kept for `small` against a Pod of lower priority, not against a higher one.
        nodes.track(Self.pod("c", cpu: "1", priority: 0, node: "s-node-1"), key: Self.key("c"), gone: true)
        #expect(
            Self.message(nodes.fitting(PodPlacement(of: Self.pod("lower", cpu: "1", priority: 3)))).hasPrefix(
                "0/2 nodes are available: 2 Insufficient cpu."))
        #expect(try nodes.fitting(PodPlacement(of: Self.pod("higher", cpu: "1", priority: 20))).get() == ["s-node-1"])
        #expect(try nodes.fitting(PodPlacement(of: Self.pod("small", cpu: "1", priority: 10)), key: Self.key("small")).get() == ["s-node-1"])
        #expect(nodes.admissible([(Self.key("lower"), PodPlacement(of: Self.pod("lower", cpu: "1", priority: 3)))]).isEmpty)
        #expect(nodes.admissible([(Self.key("small"), PodPlacement(of: Self.pod("small", cpu: "1", priority: 10)))]) == [Self.key("small")])
    }

    @Test("a victim a PodDisruptionBudget protects is put back first: another Pod goes in its place")
    func budgets() throws {
        let nodes = Self.filled()
        let budget = try #require(
            NodeAvailability.DisruptionBudget(
                [
                    "metadata": ["name": "keep-c", "namespace": "default"], "spec": ["selector": ["matchLabels": ["pod": "c"]]],
                    "status": ["disruptionsAllowed": 0],
                ]))
        // Without the budget c goes (above); with it, c and a fit back beside the Pod, and b goes.
        guard
            case .failure(let reason) = nodes.fitting(
                PodPlacement(of: Self.pod("small", cpu: "1", priority: 10)), key: Self.key("small"), budgets: [budget])
        else {
            Issue.record("fitted")
            return
        }
        #expect(reason.preemption?.node == "s-node-1" && reason.preemption?.victims.map(\.name) == ["b"], "\(reason)")
    }

    @Test(
        "no preemption for a Pod whose policy is Never, for one still waiting on its victims, where no Pod is lower, or where a node refuses for a reason Pods do not cause"
    )
    func refusals() {
        let nodes = Self.filled()
        #expect(
            Self.message(nodes.fitting(PodPlacement(of: Self.pod("never", cpu: "1", priority: 10, never: true)), key: Self.key("never")))
                == "0/2 nodes are available: 2 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.")
        #expect(
            Self.message(nodes.fitting(PodPlacement(of: Self.pod("zero", cpu: "1", priority: 0)), key: Self.key("zero")))
                == "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
        )
        _ = nodes.update("s-node-2", from: NodeAvailabilityTests.node("s-node-2", cordoned: true))
        #expect(
            Self.message(nodes.fitting(PodPlacement(of: Self.pod("big", cpu: "5", priority: 10)), key: Self.key("big")))
                == "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) were unschedulable. preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling."
        )
        // Its victim is terminating on the node it was nominated to: it waits rather than preempting again.
        var terminating = Self.pod("c", cpu: "1", priority: 0, node: "s-node-1")
        terminating.set("2026-01-01T00:00:00Z", at: ["metadata", "deletionTimestamp"])
        nodes.track(terminating, key: Self.key("c"), gone: false)
        let waiting = Self.pod("small", cpu: "1", priority: 10, nominated: "s-node-1")
        nodes.track(waiting, key: Self.key("small"), gone: false)
        let reason = nodes.fitting(PodPlacement(of: waiting), key: Self.key("small"))
        #expect(
            Self.message(reason)
                == "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) were unschedulable. preemption: not eligible due to a terminating pod on the nominated node."
        )
        if case .failure(let why) = reason { #expect(why.nominatedNode == "s-node-1" && why.preemption == nil) }
    }

    static func message(_ result: Result<[String], NodeAvailability.UnschedulableReason>) -> String { NodeAvailabilityTests.message(result) }
}
