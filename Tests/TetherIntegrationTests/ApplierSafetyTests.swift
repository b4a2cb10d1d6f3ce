import Foundation
import Testing
import TetherAgent
import TetherJSON
import TetherLocal
import TetherModel
import TetherTestSupport
import TetherWire

/// The agent never destroys a member by mistake: an applier in this process against a real
/// simulated member, told what a hub that lost its data, a rewound hub, another federation or a
/// careless set would tell it.
@Suite("agent safety against a simulated member", .timeLimit(.minutes(3)))
struct ApplierSafetyTests {
    static let welcome = Welcome(
        protocolVersion: 1, sessionID: "s", heartbeatIntervalMilliseconds: 1_000, hubVersion: "t", federation: "fed-a", epoch: "e1")

    static func configMaps(_ count: Int, prefix: String = "c") -> [JSONValue] {
        (0..<count).map { index in
            [
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": .string("\(prefix)\(index)"), "namespace": "shop"],
                "data": ["i": .string("\(index)")],
            ]
        }
    }

    static func names(_ kubectl: Kubectl) async throws -> Set<String> {
        Set(
            try await kubectl.succeed(["get", "configmaps", "-n", "shop", "-o", "jsonpath={.items[*].metadata.name}"]).split(separator: " ").map(
                String.init))
    }

    @Test("a set that removes 9 of 10 is held and reported, one that removes 1 of 10 is applied; the confirmed hold prunes exactly the nine")
    func massDeletion() async throws {
        try await withApplier { _, kubectl, member, _ in
            #expect(member.applier.offer(.snapshot(Snapshot(revision: 10, objects: [shopNamespace] + Self.configMaps(10))), from: Self.welcome))
            try await member.waitForAck(10)
            #expect(try await Self.names(kubectl).count == 10)
            // 1 of 10: applied.
            #expect(member.applier.offer(.snapshot(Snapshot(revision: 11, objects: [shopNamespace] + Self.configMaps(9))), from: Self.welcome))
            let one = try await member.waitForAck(11)
            #expect(one.hold == nil)
            try await kubectl.succeed(["wait", "--for=delete", "configmap/c9", "-n", "shop", "--timeout=30s"])
            // 8 of the 9 left: held, nothing pruned.
            #expect(member.applier.offer(.snapshot(Snapshot(revision: 12, objects: [shopNamespace] + Self.configMaps(1))), from: Self.welcome))
            let held = try await member.waitForAck(12)
            let hold = try #require(held.hold)
            #expect(hold.reason == .massDeletion && hold.wouldRemove == 8 && hold.managed == 10, "\(hold)")
            #expect(try await Self.names(kubectl).count == 9)
            // Confirmed: the eight go, the rest stays.
            let confirmed = Snapshot(revision: 13, objects: [shopNamespace] + Self.configMaps(1), terms: DesiredStateTerms(confirmedHold: hold.token))
            #expect(member.applier.offer(.snapshot(confirmed), from: Self.welcome))
            let lifted = try await member.waitForAck(13)
            #expect(lifted.hold == nil)
            // The eight are deleted in no set order: wait for each, not for the last one named.
            try await kubectl.succeed(["wait", "--for=delete"] + (1...8).map { "configmap/c\($0)" } + ["-n", "shop", "--timeout=30s"])
            #expect(try await Self.names(kubectl) == ["c0"])
        }
    }

    @Test("a look-alike labelled as the agent's is never pruned; an object made again behind its back is reported, not deleted")
    func inventoryOnly() async throws {
        try await withFederation { federation in
            let (_, simDirectory) = try await federation.startSimcluster("m1", nodes: 1, readyAfter: "1s")
            let kubeconfig = simDirectory + "/kubeconfig"
            let kubectl = try Kubectl(.modern, kubeconfig: kubeconfig, home: simDirectory + "/home")
            let state = federation.root + "/agent-state"
            let first = try ApplierUnderTest(cluster: "m1", kubeconfig: kubeconfig, stateDirectory: state)
            #expect(first.applier.offer(.snapshot(Snapshot(revision: 1, objects: [shopNamespace] + Self.configMaps(2))), from: Self.welcome))
            try await first.waitForAck(1)
            await first.stop()  // writes its inventory

            // While the agent is away: someone's own ConfigMap with the agent's label, and c1
            // deleted and made again by hand, label and all.
            try await kubectl.succeed(["create", "configmap", "mine", "-n", "shop", "--from-literal=k=v"])
            try await kubectl.succeed(["label", "configmap", "mine", "-n", "shop", "tether.io/managed-by=m1"])
            try await kubectl.succeed(["delete", "configmap", "c1", "-n", "shop"])
            try await kubectl.succeed(["create", "configmap", "c1", "-n", "shop", "--from-literal=hand=made"])
            try await kubectl.succeed(["label", "configmap", "c1", "-n", "shop", "tether.io/managed-by=m1"])

            let second = try ApplierUnderTest(cluster: "m1", kubeconfig: kubeconfig, stateDirectory: state)
            // The set keeps c0 only: c1 is not the object the agent made, "mine" never was.
            #expect(second.applier.offer(.snapshot(Snapshot(revision: 2, objects: [shopNamespace] + Self.configMaps(1))), from: Self.welcome))
            try await second.waitForAck(2)
            try await kubectl.succeed(["wait", "--for=jsonpath={.data.i}=0", "configmap/c0", "-n", "shop", "--timeout=30s"])
            let names = try await Self.names(kubectl)
            #expect(names == ["c0", "c1", "mine"], "\(names)")
            #expect(try await kubectl.succeed(["get", "configmap", "c1", "-n", "shop", "-o", "jsonpath={.data.hand}"]) == "made")
            #expect(try await kubectl.succeed(["get", "configmap", "mine", "-n", "shop", "-o", "jsonpath={.data.k}"]) == "v")
            let inventory = await second.applier.managedInventory()
            #expect(inventory[ObjectReference(apiVersion: "v1", kind: "ConfigMap", namespace: "shop", name: "c1")] == nil)
            #expect(inventory[ObjectReference(apiVersion: "v1", kind: "ConfigMap", namespace: "shop", name: "mine")] == nil)
            await second.stop()
        }
    }

    @Test("objects outside the allow-list are refused and reported, never applied")
    func allowList() async throws {
        try await withApplier { _, kubectl, member, _ in
            let node: JSONValue = ["apiVersion": "v1", "kind": "Node", "metadata": ["name": "intruder"]]
            let role: JSONValue = [
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": ["name": "everything"], "rules": [],
            ]
            let system: JSONValue = [
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": "sneaky", "namespace": "kube-system"], "data": [:],
            ]
            #expect(
                member.applier.offer(
                    .snapshot(Snapshot(revision: 1, objects: [shopNamespace, node, role, system] + Self.configMaps(1))), from: Self.welcome))
            let ack = try await member.waitForAck(1)
            let refused = Set(ack.failures.filter { $0.message.contains("allow-list") }.map(\.object.name))
            #expect(refused == ["intruder", "everything", "sneaky"], "\(ack.failures)")
            try await member.waitForStatus(of: "sneaky", kind: "ConfigMap") { $0.state == .failed && ($0.message ?? "").contains("kube-system") }
            #expect(try await kubectl.run(["get", "node", "intruder"]).status != 0)
            #expect(try await kubectl.run(["get", "configmap", "sneaky", "-n", "kube-system"]).status != 0)
            #expect(try await Self.names(kubectl) == ["c0"])
        }
    }

    @Test("a rewound revision and another federation are refused: nothing changes in the member")
    func refusals() async throws {
        try await withApplier { _, kubectl, member, _ in
            #expect(member.applier.offer(.snapshot(Snapshot(revision: 50, objects: [shopNamespace] + Self.configMaps(3))), from: Self.welcome))
            try await member.waitForAck(50)
            // The same store, rewound: revision 3 after 50.
            #expect(member.applier.offer(.snapshot(Snapshot(revision: 3, objects: [shopNamespace])), from: Self.welcome))
            let rewound = try await member.waitForAck(3)
            #expect(rewound.hold?.reason == .revisionRegressed, "\(rewound)")
            // Another federation's hub.
            var foreign = Self.welcome
            foreign.federation = "fed-b"
            foreign.epoch = "x"
            #expect(member.applier.offer(.snapshot(Snapshot(revision: 4, objects: [shopNamespace])), from: foreign))
            let other = try await member.waitForAck(4)
            #expect(other.hold?.reason == .foreignFederation, "\(other)")
            #expect(try await Self.names(kubectl) == ["c0", "c1", "c2"])
        }
    }
}
