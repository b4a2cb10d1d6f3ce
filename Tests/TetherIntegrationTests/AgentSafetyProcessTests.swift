import Foundation
import Testing
import TetherLocal
import TetherSecurity
import TetherTestSupport

/// The agent's safety as operators meet it: real hub, agent and simulated member processes.
@Suite("agent safety, end to end", .timeLimit(.minutes(4)))
struct AgentSafetyProcessTests {
    @Test(
        "a hub that lost its database makes no agent delete anything; the Cluster shows the held epoch; after confirmation only what the new hub lacks is pruned"
    )
    func databaseLoss() async throws {
        try await withFederation { federation in
            var (hub, port) = try await federation.startHub(heartbeatInterval: 1)
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            let (_, simDirectory) = try await federation.startSimcluster("m1", nodes: 1, readyAfter: "1s")
            let member = try Kubectl(.modern, kubeconfig: simDirectory + "/kubeconfig", home: simDirectory + "/home")
            let agent = try federation.startAgent(
                bundle: try federation.issueBundle(cluster: "m1", hubPort: port), kubeconfig: simDirectory + "/kubeconfig",
                extraArguments: ["--state-dir", federation.root + "/state-m1", "--backoff-initial", "0.2", "--backoff-max", "1"]
            )
            try await hubctl.succeed(["create", "namespace", "shop"])
            for index in 0..<10 { try await hubctl.succeed(["create", "configmap", "c\(index)", "-n", "shop", "--from-literal=i=\(index)"]) }
            try await member.succeed(["wait", "--for=create", "configmap/c9", "-n", "shop", "--timeout=60s"], within: .seconds(70))
            try await agent.waitForEvent("applier.revision_done", within: .seconds(30)) { $0["tether.failures"] == "0" }

            // The hub's data is gone: database, revisions, all of it.
            _ = await hub.stop()
            for file in ["hub.db", "hub.db-wal", "hub.db-shm", "federation-revisions.json"] {
                try? FileManager.default.removeItem(atPath: (federation.directory.path as NSString).appendingPathComponent(file))
            }
            (hub, port) = try await federation.startHub(heartbeatInterval: 1, agentListen: "127.0.0.1:\(port)")
            let held = try await agent.waitForEvent("applier.held", within: .seconds(60))
            #expect(held["tether.reason"] == "NewEpoch" && held["tether.would_remove"] == "11", "\(held)")
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.hold.reason}=NewEpoch", "cluster/m1", "--timeout=30s"])
            let condition = try await hubctl.succeed([
                "get", "cluster", "m1", "-o", "jsonpath={.status.conditions[?(@.type==\"DesiredStateHeld\")].status}",
            ])
            #expect(condition == "True")
            #expect(
                try await member.succeed(["get", "configmaps", "-n", "shop", "-o", "name"]).split(separator: "\n").count >= 10, "nothing was deleted")

            // The operator rebuilds part of the federation, then confirms the new store.
            try await hubctl.succeed(["create", "namespace", "shop"])
            for index in 0..<3 { try await hubctl.succeed(["create", "configmap", "c\(index)", "-n", "shop", "--from-literal=i=\(index)"]) }
            try await agent.waitForEvent("applier.desired", within: .seconds(30)) { $0["tether.objects"] == "4" }
            #expect(try await member.succeed(["get", "configmaps", "-n", "shop", "-o", "name"]).contains("configmap/c9"), "still held")
            let confirm = try federation.launch(
                name: "confirm", executable: federation.binaries.url("tetherctl"),
                arguments: ["cluster", "confirm", "m1", "--dir", federation.directory.path]
            )
            #expect(await confirm.waitForExit(within: .seconds(30)) == 0, "\(confirm.tail())")
            try await agent.waitForEvent("applier.hold_lifted", within: .seconds(30))
            try await member.succeed(["wait", "--for=delete", "configmap/c9", "configmap/c3", "-n", "shop", "--timeout=60s"], within: .seconds(70))
            let left = try await member.succeed(["get", "configmaps", "-n", "shop", "-o", "jsonpath={.items[*].metadata.name}"])
            #expect(Set(left.split(separator: " ").map(String.init)).isSuperset(of: ["c0", "c1", "c2"]), "\(left)")
            #expect(!left.contains("c3") && !left.contains("c9"), "\(left)")
            try await hubctl.succeed([
                "wait", "--for=jsonpath={.status.conditions[?(@.type==\"DesiredStateHeld\")].status}=False", "cluster/m1", "--timeout=30s",
            ])
        }
    }

    @Test(
        "a hub restored from a backup whose own writes then carry its store past the revision an agent applied: the agent deletes nothing until confirmed"
    )
    func restoreBehindAgent() async throws {
        try await withFederation { federation in
            var (hub, port) = try await federation.startHub(heartbeatInterval: 1)
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            let (_, simDirectory) = try await federation.startSimcluster("m1", nodes: 1, readyAfter: "1s")
            let member = try Kubectl(.modern, kubeconfig: simDirectory + "/kubeconfig", home: simDirectory + "/home")
            let bundle = try federation.issueBundle(cluster: "m1", hubPort: port)
            let state = federation.root + "/state-m1"
            let agentArguments = ["--state-dir", state, "--backoff-initial", "0.2", "--backoff-max", "1"]
            var agent = try federation.startAgent(bundle: bundle, kubeconfig: simDirectory + "/kubeconfig", extraArguments: agentArguments)
            try await hubctl.succeed(["create", "namespace", "shop"])
            for index in 0..<5 { try await hubctl.succeed(["create", "configmap", "c\(index)", "-n", "shop", "--from-literal=i=\(index)"]) }
            try await member.succeed(["wait", "--for=create", "configmap/c4", "-n", "shop", "--timeout=60s"], within: .seconds(70))

            // A consistent backup while the hub runs, then five more objects the agent applies.
            let backup = federation.root + "/backup"
            try await federation.backUpHubStore(to: backup)
            for index in 5..<10 { try await hubctl.succeed(["create", "configmap", "c\(index)", "-n", "shop", "--from-literal=i=\(index)"]) }
            try await member.succeed(["wait", "--for=create", "configmap/c9", "-n", "shop", "--timeout=60s"], within: .seconds(70))
            try await agent.waitForEvent("applier.revision_done", within: .seconds(30)) { $0["tether.failures"] == "0" }
            _ = await agent.stop()
            let desired = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: state + "/desired.json")))
            let applied = try #require((desired as? [String: Any])?["revision"] as? Int)

            // The hub dies and comes back on the backup; its own writes (an operator's, its
            // status) carry the restored store past the revision the agent applied.
            hub.send(SIGKILL)
            _ = await hub.waitForExit(within: .seconds(10))
            try federation.restoreHubStore(from: backup)
            (hub, port) = try await federation.startHub(heartbeatInterval: 1, agentListen: "127.0.0.1:\(port)")
            func storeVersion() async throws -> Int {
                let list = try await hubctl.succeed(["get", "--raw", "/api/v1/namespaces/shop/configmaps?limit=1"])
                let metadata = (try JSONSerialization.jsonObject(with: Data(list.utf8)) as? [String: Any])?["metadata"] as? [String: Any]
                return Int(metadata?["resourceVersion"] as? String ?? "") ?? 0
            }
            var batch = 0
            while try await storeVersion() <= applied + 5 {
                batch += 1
                #expect(batch <= 20, "the restored store did not pass revision \(applied)")
                guard batch <= 20 else { return }
                let items = (0..<10).map {
                    "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"pad-\(batch)-\($0)\",\"namespace\":\"shop\"}}"
                }
                let file = federation.root + "/pad-\(batch).json"
                try "{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[\(items.joined(separator: ","))]}".write(
                    toFile: file, atomically: true, encoding: .utf8)
                try await hubctl.succeed(["apply", "-f", file])
            }

            agent = try federation.startAgent(bundle: bundle, kubeconfig: simDirectory + "/kubeconfig", extraArguments: agentArguments)
            let held = try await agent.waitForEvent("applier.held", within: .seconds(60))
            #expect(held["tether.reason"] == "RevisionRegressed", "\(held)")
            #expect(held["tether.message"]?.contains("ends at revision") == true, "\(held)")
            let kept = try await member.succeed(["get", "configmaps", "-n", "shop", "-o", "jsonpath={.items[*].metadata.name}"])
            #expect(Set(kept.split(separator: " ").map(String.init)).isSuperset(of: (0..<10).map { "c\($0)" }), "\(kept)")
            #expect(!kept.contains("pad-"), "a held agent applies nothing: \(kept)")

            // The operator confirms: what the restore lost goes, what the restored hub has comes.
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.hold.reason}=RevisionRegressed", "cluster/m1", "--timeout=30s"])
            let confirm = try federation.launch(
                name: "confirm", executable: federation.binaries.url("tetherctl"),
                arguments: ["cluster", "confirm", "m1", "--dir", federation.directory.path]
            )
            #expect(await confirm.waitForExit(within: .seconds(30)) == 0, "\(confirm.tail())")
            try await agent.waitForEvent("applier.hold_lifted", within: .seconds(30))
            try await member.succeed(["wait", "--for=delete", "configmap/c9", "configmap/c5", "-n", "shop", "--timeout=60s"], within: .seconds(70))
            try await member.succeed(["wait", "--for=create", "configmap/pad-1-0", "-n", "shop", "--timeout=60s"], within: .seconds(70))
            #expect(try await member.succeed(["get", "configmap", "c4", "-n", "shop", "-o", "name"]).contains("configmap/c4"))
        }
    }

    @Test("a kubeconfig of YAML aliases that expands to billions of values: a clear error at once, bounded memory")
    func aliasBombKubeconfig() async throws {
        try await withFederation { federation in
            var lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
            for level in 1...9 {
                lines.append("a\(level): &a\(level) [\(Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", "))]")
            }
            lines.append("apiVersion: v1\nkind: Config\nusers: [{name: bomb, user: {token: *a9}}]")
            let kubeconfig = federation.root + "/bomb.kubeconfig"
            try lines.joined(separator: "\n").write(toFile: kubeconfig, atomically: true, encoding: .utf8)
            let bundle = try federation.issueBundle(cluster: "m1", hubPort: 1)
            let agent = try federation.startAgent(bundle: bundle, kubeconfig: kubeconfig)
            var peak = 0
            let exit = Task { await agent.waitForExit(within: .seconds(30)) }
            while agent.exitStatus == nil, peak < 2_000_000_000 {
                peak = max(peak, ProcessProbe.residentBytes(of: agent.processIdentifier) ?? 0)
                try await Task.sleep(for: .milliseconds(20))  // the interval between memory samples
            }
            let status = await exit.value
            #expect(status != nil && status != 0)
            #expect(peak < 300 * 1_048_576, "the agent reached \(peak / 1_048_576) MiB")
            #expect(agent.lines.contains { $0.raw.contains("aliases") }, "\(agent.tail())")
        }
    }

    @Test("a state file that is a symbolic link is refused, and a write never goes through a link")
    func symlinkedState() async throws {
        try await withFederation { federation in
            let state = federation.root + "/state"
            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
            let target = federation.root + "/precious.txt"
            try "do not overwrite".write(toFile: target, atomically: true, encoding: .utf8)
            try FileManager.default.createSymbolicLink(atPath: state + "/desired.json", withDestinationPath: target)
            let (_, simDirectory) = try await federation.startSimcluster("m1", nodes: 1, readyAfter: "1s")
            let agent = try federation.startAgent(
                bundle: try federation.issueBundle(cluster: "m1", hubPort: 1), kubeconfig: simDirectory + "/kubeconfig",
                extraArguments: ["--state-dir", state]
            )
            #expect(await agent.waitForExit(within: .seconds(30)) != 0)
            #expect(agent.lines.contains { $0.raw.contains("symbolic link") }, "\(agent.tail())")
            #expect(try String(contentsOfFile: target, encoding: .utf8) == "do not overwrite")
            // The one writer replaces a link at its path; it never writes through it.
            try PEMFiles.writeAtomically("new state", to: state + "/desired.json", mode: 0o600)
            #expect(try String(contentsOfFile: target, encoding: .utf8) == "do not overwrite")
            #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: state + "/desired.json")) == nil)
        }
    }
}
