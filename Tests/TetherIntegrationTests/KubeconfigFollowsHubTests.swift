import Foundation
import Testing
import TetherLocal
import TetherSecurity
import TetherTestSupport

@Suite("the federation's kubeconfig follows the hub", .timeLimit(.minutes(2)))
struct KubeconfigFollowsHubTests {
    @Test("a hub that binds a free port rewrites only the port of D/kubeconfig's server, and kubectl with that file reaches it")
    func followsTheBoundPort() async throws {
        try await withFederation { federation in
            let path = federation.directory.kubeconfigPath
            let before = try String(contentsOfFile: path, encoding: .utf8)
            #expect(before.contains(":6443"), "tetherctl init names the default port")
            let (hub, _) = try await federation.startHub()
            let api = try #require(try federation.directory.readPorts()?.api)
            let after = try String(contentsOfFile: path, encoding: .utf8)
            let changed = zip(before.components(separatedBy: "\n"), after.components(separatedBy: "\n")).filter { $0.0 != $0.1 }
            #expect(changed.count == 1, "only the server line changes")
            #expect(changed.first?.1.hasSuffix(":\(api)") == true, "\(changed)")
            #expect(before.components(separatedBy: "\n").count == after.components(separatedBy: "\n").count)
            let event = try #require(hub.lines.first { $0.event == "hub.kubeconfig_updated" })
            #expect(event["tether.to"]?.hasSuffix(":\(api)") == true)

            let kubectl = try Kubectl(.modern, kubeconfig: path, home: federation.root + "/home-follow")
            let result = try await kubectl.run(["get", "namespace", "default", "-o", "name"])
            #expect(result.status == 0 && result.stdout.contains("namespace/default"), "\(result)")

            // A second hub on the same port changes nothing.
            await federation.stopAll()
            let (again, _) = try await federation.startHub(apiListen: "127.0.0.1:\(api)")
            #expect(try String(contentsOfFile: path, encoding: .utf8) == after)
            #expect(!again.lines.contains { $0.event == "hub.kubeconfig_updated" })
        }
    }
}
