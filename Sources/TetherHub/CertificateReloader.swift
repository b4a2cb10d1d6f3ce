import Foundation
import Logging
import ServiceLifecycle
import TetherSecurity
import UnixSignals

/// Keeps the hub's listeners on the current files of the federation directory: `hub.crt`,
/// `hub.key` and `ca.crt` (the hub's certificate and the CAs it trusts) and `revoked.json`.
///
/// Reloads when a file changes (inotify on the directory, so an atomic rename is seen) and on
/// SIGHUP. A change is read after a quiet period of 250 ms, so a script that replaces the key
/// and then the certificate is read once, whole. A half-written or mismatched set (unparsable
/// PEM, a key that does not match, an expired certificate, a certificate that is not the hub's)
/// is refused with a log line naming the problem and the previous material stays in use.
/// Established sessions are never touched by a new certificate; new handshakes use it. A new
/// revocation list ends the sessions it covers at once.
public struct CertificateReloader: Service {
    /// One listener whose credentials follow the files.
    public struct Target: Sendable {
        public var name: String
        public var reload: @Sendable (TLSMaterial) throws(SecurityError) -> Void
        /// Applies a revocation list; returns the clusters whose sessions it ended.
        public var revoke: @Sendable (RevocationList) -> [String]

        public init(
            name: String,
            reload: @escaping @Sendable (TLSMaterial) throws(SecurityError) -> Void,
            revoke: @escaping @Sendable (RevocationList) -> [String]
        ) {
            self.name = name
            self.reload = reload
            self.revoke = revoke
        }
    }

    /// Another file of the directory that is reread on change and on SIGHUP (`access.json`):
    /// `reload` reads it, applies it or keeps what is in force, and logs which.
    public struct WatchedFile: Sendable {
        public var path: String
        public var reload: @Sendable () -> Void

        public init(path: String, reload: @escaping @Sendable () -> Void) {
            self.path = (path as NSString).standardizingPath
            self.reload = reload
        }
    }

    private let directory: FederationDirectory
    private let targets: [Target]
    private let files: [WatchedFile]
    private let logger: Logger
    static let quietPeriod: Duration = .milliseconds(250)

    public init(directory: FederationDirectory, targets: [Target], files: [WatchedFile] = [], logger: Logger) {
        self.directory = directory
        self.targets = targets
        self.files = files
        self.logger = logger
    }

    private enum Trigger: Sendable {
        case files(Set<String>)
        case signal

        var isSignal: Bool {
            if case .signal = self { return true }
            return false
        }
    }

    public func run() async throws {
        let watcher: FileWatcher?
        do {
            watcher = try FileWatcher(directories: [directory.path])
        } catch {
            watcher = nil
            logger.warning(
                "cannot watch the federation directory; certificates reload on SIGHUP only",
                metadata: ["tether.event": "certificates.watch_failed", "tether.reason": "\(error)"]
            )
        }
        let (triggers, continuation) = AsyncStream.makeStream(of: Trigger.self, bufferingPolicy: .bufferingNewest(64))
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await _ in signals { continuation.yield(.signal) }
            }
            if let watcher {
                group.addTask {
                    for await paths in watcher.changes { continuation.yield(.files(paths)) }
                }
            }
            await cancelWhenGracefulShutdown {
                await self.consume(triggers)
            }
            watcher?.stop()
            continuation.finish()
            group.cancelAll()
        }
    }

    private var materialFiles: Set<String> {
        [directory.hubCertificatePath, directory.hubKeyPath, directory.caCertificatePath]
    }

    private func consume(_ triggers: AsyncStream<Trigger>) async {
        // What the listeners started with, so restoring a file after a refused change is no change.
        var lastMaterial = (try? Self.load(directory))?.fingerprint
        var lastRevocations = try? RevocationList.load(from: directory.revocationListPath)
        for await trigger in triggers {
            var material = false
            var revocations = false
            var others: [WatchedFile] = []
            switch trigger {
            case .signal:
                (material, revocations) = (true, true)
                others = files
            case .files(let paths):
                material = !paths.isDisjoint(with: materialFiles)
                revocations = paths.contains(directory.revocationListPath)
                others = files.filter { paths.contains($0.path) }
            }
            guard material || revocations || !others.isEmpty else { continue }
            // Let a script finish replacing the set; events meanwhile are read next round (and skipped as unchanged).
            try? await Task.sleep(for: Self.quietPeriod)
            if material { reloadMaterial(unlessSameAs: &lastMaterial, forced: trigger.isSignal) }
            if revocations { reloadRevocations(unlessSameAs: &lastRevocations) }
            for file in others { file.reload() }
        }
    }

    private func reloadMaterial(unlessSameAs last: inout String?, forced: Bool) {
        do {
            let material = try Self.load(directory)
            let fingerprint = material.fingerprint
            if !forced, fingerprint == last { return }
            for target in targets { try target.reload(material) }
            last = fingerprint
            logger.notice(
                "hub certificates reloaded; new handshakes use them",
                metadata: [
                    "tether.event": "certificates.reloaded", "tether.serial": "\(CertificateSummary(material.leaf).serial)",
                    "tether.cas": "\(material.trustRoots.count)",
                ]
            )
        } catch {
            logger.error(
                "hub certificates not reloaded; the previous ones stay in use",
                metadata: ["tether.event": "certificates.reload_refused", "tether.reason": "\(error)"]
            )
        }
    }

    private static func load(_ directory: FederationDirectory) throws(SecurityError) -> TLSMaterial {
        try TLSMaterial.load(certificate: directory.hubCertificatePath, key: directory.hubKeyPath, trustBundle: directory.caCertificatePath)
    }

    private func reloadRevocations(unlessSameAs last: inout RevocationList?) {
        do {
            let list = try RevocationList.load(from: directory.revocationListPath)
            if list == last { return }
            last = list
            var ended: [String] = []
            for target in targets { ended += target.revoke(list) }
            logger.notice(
                "revocation list loaded",
                metadata: [
                    "tether.event": "certificates.revocations_loaded", "tether.entries": "\(list.entries.count)",
                    "tether.sessions_ended": "\(ended.sorted().joined(separator: ","))",
                ]
            )
        } catch {
            logger.error(
                "revocation list not loaded; the previous one stays in force",
                metadata: ["tether.event": "certificates.revocations_refused", "tether.reason": "\(error)"]
            )
        }
    }
}
