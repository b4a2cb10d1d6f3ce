import Foundation
import Testing
import TetherLocal
import TetherTestSupport

/// The Python `kubernetes` client (from PyPI, installed by `make test` into .build-tools/python)
/// against the hub with a member attached, and against a simulated member: the calls operators'
/// scripts make, each checked for its effect.
@Suite("the Python kubernetes client", .timeLimit(.minutes(3)))
struct PythonClientTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Scripts/client-scenario.py")

    static func python() throws -> String {
        guard let python = ProcessInfo.processInfo.environment["TETHER_PYTHON"], FileManager.default.isExecutableFile(atPath: python) else {
            throw KubectlError(description: "the Python client is not installed: run the tests with `make test` (it sets TETHER_PYTHON)")
        }
        return python
    }

    /// Runs the scenario in `namespace` against `kubeconfig`; its `name: value` lines.
    static func scenario(kubeconfig: String, namespace: String, home: String) async throws -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["KUBECONFIG"] = kubeconfig
        environment["HOME"] = home
        let process = ManagedProcess(
            name: "python-client", executable: URL(fileURLWithPath: try python()), arguments: [script.path, namespace], environment: environment)
        try process.start()
        let status = await process.waitForExit(within: .seconds(90))
        try #require(status == 0, "the Python client failed: \(process.tail(40))")
        var said: [String: String] = [:]
        for line in process.lines.map(\.raw) {
            guard let colon = line.range(of: ": ") else { continue }
            said[String(line[..<colon.lowerBound])] = String(line[colon.upperBound...])
        }
        return said
    }

    static func expectEveryday(_ said: [String: String]) {
        #expect(said["namespace"] == "Active", "\(said)")
        #expect(said["configmap"] == "green 9", "\(said)")
        #expect(said["selected"] == "settings", "\(said)")
        #expect(said["deployment"] == "3 RollingUpdate IfNotPresent", "\(said)")
        #expect(said["scaled"] == "5", "\(said)")
        #expect(said["image"] == "nginx:1.28 1 80", "\(said)")
        #expect(said["labelled"] == "a", "\(said)")
        #expect(said["pod"] == "Always ClusterFirst IfNotPresent", "\(said)")
        #expect(said["job"] == "selector from uid once", "\(said)")
        #expect(said["may delete"] == "True", "\(said)")
        #expect(said["by field"] == "settings", "\(said)")
        #expect(said["duplicate"] == "409 Conflict", "\(said)")
        #expect(said["missing"] == "404", "\(said)")
        #expect(said["watch"] == "ADDED settings, ADDED later", "\(said)")
        #expect(said["after delete"] == "settings", "\(said)")
    }

    @Test(
        "create, read, replace, patch (strategic and JSON), scale, Pods and Jobs, an access review, list by label and field, watch and delete: at the hub (reaching the member) and on a simulated member"
    )
    func everyday() async throws {
        try await withFederation { federation in
            let (hub, port) = try await federation.startHub(heartbeatInterval: 1)
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            let (member, simDirectory, _) = try await federation.startMember("m1", hub: hub, hubPort: port)
            try await hubctl.succeed(["wait", "--for=jsonpath={.status.phase}=Ready", "cluster/m1", "--timeout=30s"])

            let atHub = try await Self.scenario(kubeconfig: federation.kubeconfigPath, namespace: "py", home: federation.root)
            Self.expectEveryday(atHub)
            #expect(atHub["node metrics"] == "404", "\(atHub)")
            try await member.succeed(
                ["wait", "--for=jsonpath={.spec.replicas}=5", "deployment/web", "-n", "py", "--timeout=60s"], within: .seconds(70))
            try await member.succeed(["wait", "--for=delete", "configmap/later", "-n", "py", "--timeout=60s"], within: .seconds(70))

            let atMember = try await Self.scenario(kubeconfig: simDirectory + "/kubeconfig", namespace: "py-member", home: federation.root)
            Self.expectEveryday(atMember)
            // One node, in nanocores as metrics-server writes them: at least the system's 100m.
            let nodeCPU = atMember["node metrics"].flatMap { $0.hasSuffix("n") ? Int64($0.dropLast()) : nil }
            #expect(nodeCPU.map { $0 >= 100_000_000 } == true, "\(atMember)")
        }
    }
}
