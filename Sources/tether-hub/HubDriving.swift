import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TetherHub
import TetherSecurity
import TetherStore
import TetherStorePostgres
import TetherWire

/// On PostgreSQL, takes the hub lock before this hub drives the federation (a standby waits
/// here, serving the API meanwhile); on SQLite, where the hub is alone, there is no lock.
struct HubLockTaker: Sendable {
    /// The `--store` URL; nil for SQLite.
    let store: String?
    let agentAddress: HostAndPort

    func take(logger: Logger) async throws -> PostgresHubLock? {
        guard let store else { return nil }
        let location = try PostgresLocation(url: store)
        let holder = "tether-hub \(ProcessInfo.processInfo.hostName) \(agentAddress) pid \(getpid())"
        let lock = try await PostgresHubLock.acquire(location, holder: holder, logger: logger) { current in
            logger.notice(
                "standing by: another hub drives this federation; this one serves the API and takes over when it goes",
                metadata: ["tether.event": "hub.standby", "tether.store": "\(location)", "tether.holder": "\(current)"])
        }
        logger.notice(
            "this hub drives the federation",
            metadata: ["tether.event": "hub.active", "tether.store": "\(location)", "tether.holder": "\(holder)"])
        return lock
    }
}

/// The agent listener once the hub drives the federation, for the certificate reloader.
final class AgentListenerSlot: Sendable {
    private let listener = Mutex<AgentListener?>(nil)

    var current: AgentListener? {
        get { listener.withLock { $0 } }
        set { listener.withLock { $0 = newValue } }
    }
}

/// Writes `hub.ports.json` once both listeners have bound, so a reader never sees half of it,
/// then runs `onReady` (only a hub that drives the federation binds its agent port).
actor PortsFile {
    private let directory: FederationDirectory
    private let logger: Logger
    private let onReady: @Sendable (HubPorts) async -> Void
    private var ports = HubPorts()

    init(directory: FederationDirectory, logger: Logger, onReady: @escaping @Sendable (HubPorts) async -> Void = { _ in }) {
        self.directory = directory
        self.logger = logger
        self.onReady = onReady
    }

    func record(agent: Int) {
        ports.agent = agent
        writeWhenComplete()
    }
    func record(api: Int) {
        ports.api = api
        writeWhenComplete()
    }

    private func writeWhenComplete() {
        guard ports.agent != nil, ports.api != nil else { return }
        do {
            try directory.writePorts(ports)
            if let api = ports.api, let moved = try directory.followAPIPort(api) {
                logger.notice(
                    "the federation's kubeconfig now names the API port the hub bound",
                    metadata: [
                        "tether.event": "hub.kubeconfig_updated", "tether.path": "\(directory.kubeconfigPath)", "tether.from": "\(moved.from)",
                        "tether.to": "\(moved.to)",
                    ]
                )
            }
            let (ready, onReady) = (ports, onReady)
            Task { await onReady(ready) }
            logger.info(
                "hub ready",
                metadata: ["tether.event": "hub.ready", "tether.api_port": "\(ports.api ?? 0)", "tether.agent_port": "\(ports.agent ?? 0)"])
        } catch {
            logger.error("cannot write the ports file", metadata: ["tether.error": "\(error)"])
        }
    }
}

/// Ends the hub at once when a hold it keeps on PostgreSQL is gone with its connection (the
/// database restarted, or the network to it cut): the hub lock, since another hub may drive or
/// lead already, and two must never do so at once; or this hub's presence, since the leader
/// releases the sessions of a hub it no longer sees. There is no graceful drain to wait for.
/// The exit status is 75 (EX_TEMPFAIL): a supervisor restarts the hub.
struct HeldConnectionWatch: Service {
    let lost: @Sendable () async -> Void
    let release: @Sendable () async -> Void
    let event: String
    let message: String
    let logger: Logger

    static let exitStatus: Int32 = 75

    static func lock(_ lock: PostgresHubLock, logger: Logger) -> HeldConnectionWatch {
        HeldConnectionWatch(
            lost: { await lock.lost() }, release: { await lock.release() }, event: "hub.lock_lost",
            message:
                "lost the hub lock (the connection to PostgreSQL ended); stopping at once so that two hubs never drive the federation together. Restart the hub: it waits for the lock as a standby",
            logger: logger)
    }

    static func presence(_ presence: PostgresHubPresence, logger: Logger) -> HeldConnectionWatch {
        HeldConnectionWatch(
            lost: { await presence.lost() }, release: { await presence.leave() }, event: "hub.presence_lost",
            message:
                "lost this hub's presence in the store (the connection to PostgreSQL ended); stopping at once, since its sessions are released to other hubs. Restart the hub",
            logger: logger)
    }

    func run() async throws {
        await cancelWhenGracefulShutdown { await lost() }
        guard !Task.isShuttingDownGracefully, !Task.isCancelled else {
            await release()
            return
        }
        logger.critical("\(message)", metadata: ["tether.event": "\(event)", "tether.exit_status": "\(Self.exitStatus)"])
        exit(Self.exitStatus)
    }
}

/// With agents on every hub: waits for the hub lock, then makes this hub's engine the leader
/// (outage timers, rebalancing, releasing the sessions of hubs that are gone) and starts what
/// only the leader runs: DNS publishing, and the watch that stops the hub if the lock is lost.
struct SharedLeadership: Service {
    let taker: HubLockTaker
    let engine: FederationEngine
    let group: ServiceGroup
    let logger: Logger

    func run() async throws {
        guard let lock = try await cancelWhenGracefulShutdown({ try await taker.take(logger: logger) }) ?? nil else { return }
        await engine.lead()
        var leading: [any Service] = [HeldConnectionWatch.lock(lock, logger: logger)]
        if let dns = engine.dnsPublishing { leading.append(dns) }
        for service in leading { await group.addServiceUnlessShutdown(service) }
        // A service of the group that returns ends the group: this one lasts as long as the hub.
        try? await gracefulShutdown()
    }
}
