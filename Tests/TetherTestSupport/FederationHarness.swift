import Foundation
import TetherLocal
import TetherSecurity

/// Runs `body` with a fresh local federation in a scratch directory, and stops every process
/// it started afterwards, whether `body` succeeded or threw.
public func withFederation<T: Sendable>(
    _ body: (LocalFederation) async throws -> T
) async throws -> T {
    let scratch = try ScratchDirectory("tether-it")
    let federation = try LocalFederation(root: scratch.path, binaries: try TetherBinaries.locate(), trustDomain: "tether.test")
    do {
        let result = try await body(federation)
        await federation.stopAll()
        return result
    } catch {
        await federation.stopAll()
        // What the processes saw, next to the failure (the test's own error names only its side).
        FileHandle.standardError.write(Data("withFederation failed: \(error)\n\(federation.recentOutput())\n".utf8))
        throw error
    }
}

/// Runs a command found on PATH (`sqlite3 ...`) to completion within 60 s, or throws with its output.
public func runCommand(_ arguments: [String]) async throws {
    let process = ManagedProcess(
        name: (arguments[0] as NSString).lastPathComponent, executable: URL(fileURLWithPath: "/usr/bin/env"), arguments: arguments)
    try process.start()
    guard let status = await process.waitForExit(within: .seconds(60)) else {
        process.send(SIGKILL)
        throw FaultSuiteError("`\(arguments.joined(separator: " "))` did not finish in 60 s")
    }
    guard status == 0 else {
        throw FaultSuiteError("`\(arguments.joined(separator: " "))` failed (exit \(status)): \(process.tail(10))")
    }
}

extension LocalFederation {
    /// TLS material issued now from this federation's CA, for in-process test clients.
    public func material(
        for identity: TetherIdentity,
        notBefore: Date? = nil,
        notAfter: Date? = nil
    ) throws -> TLSMaterial {
        let keyed = try directory.loadAuthority().issue(for: identity, usage: .client, notBefore: notBefore, notAfter: notAfter)
        return try TLSMaterial(keyed, trustRoots: directory.loadTrustBundle())
    }

    public func identity(cluster: String) throws -> TetherIdentity {
        try .cluster(cluster, trustDomain: directory.loadConfig().trustDomain)
    }

    /// Backs the hub's store up while it runs (SQLite's online backup: a consistent copy) with
    /// its revisions file, into `backup`.
    public func backUpHubStore(to backup: String) async throws {
        let directory = directory.path as NSString
        try? FileManager.default.removeItem(atPath: backup)
        try FileManager.default.createDirectory(atPath: backup, withIntermediateDirectories: true)
        try await runCommand(["sqlite3", directory.appendingPathComponent("hub.db"), ".backup '\(backup)/hub.db'"])
        try? FileManager.default.copyItem(
            atPath: directory.appendingPathComponent("federation-revisions.json"), toPath: backup + "/federation-revisions.json")
    }

    /// Puts the store of `backUpHubStore(to:)` back in place of the hub's (the hub must be stopped).
    public func restoreHubStore(from backup: String) throws {
        let directory = directory.path as NSString
        for file in ["hub.db", "hub.db-wal", "hub.db-shm", "federation-revisions.json"] {
            try? FileManager.default.removeItem(atPath: directory.appendingPathComponent(file))
        }
        try FileManager.default.copyItem(atPath: backup + "/hub.db", toPath: directory.appendingPathComponent("hub.db"))
        try? FileManager.default.copyItem(
            atPath: backup + "/federation-revisions.json", toPath: directory.appendingPathComponent("federation-revisions.json"))
    }

    /// A simulated member with one node and its agent, joined to the hub `hub` runs on `hubPort`
    /// (auto-join: waits until the hub has made its Cluster).
    public func startMember(
        _ name: String, hub: ManagedProcess, hubPort: Int, agentArguments: [String] = []
    ) async throws -> (kubectl: Kubectl, directory: String, agent: ManagedProcess) {
        let (_, directory) = try await startSimcluster(name, nodes: 1, readyAfter: "1s")
        let kubectl = try Kubectl(.modern, kubeconfig: directory + "/kubeconfig", home: directory + "/home")
        let agent = try startAgent(
            bundle: try issueBundle(cluster: name, hubPort: hubPort), kubeconfig: directory + "/kubeconfig", extraArguments: agentArguments)
        try await hub.waitForEvent("federation.cluster_added", within: .seconds(30)) { $0["tether.cluster"] == name }
        return (kubectl, directory, agent)
    }
}
