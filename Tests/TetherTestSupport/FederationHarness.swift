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
}
