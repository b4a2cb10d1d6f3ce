import Foundation
import Logging
import Metrics
import ServiceLifecycle
import TetherJSON
import TetherModel
import TetherPlugin
import TetherWire

/// What the applier reports, for tools and tests that watch it in-process.
public enum ApplierEvent: Sendable {
    case status(StatusReport.ObjectStatus)
    case ack(Ack)
}

/// How the applier works.
public struct ApplierSettings: Sendable {
    public var cluster: String
    /// Written as `tether.io/origin` on every object: the hub's identity URI.
    public var origin: String
    /// Where `desired.json` is kept.
    public var stateDirectory: String
    /// Objects reconciled at once.
    public var workers: Int = 4
    /// Every object is checked again this often, on top of what watches report.
    public var resyncInterval: Duration = .seconds(300)
    /// Waits before a failing object is tried again (1 s doubling to 60 s, full jitter); also
    /// between attempts to discover or watch the member's API.
    public var retryBackoff = Backoff(initial: .seconds(1), maximum: .seconds(60))
    /// Objects per `status` message.
    public var statusBatchSize: Int = 500
    /// Desired-state messages from the session not yet taken in; more close the session.
    public var inboundCapacity: Int = 64
    /// What the agent may write; nil allows the kinds its plugins propagate, outside the system namespaces.
    public var allowList: AllowList?
    /// A desired set that would remove more than this share of what the agent manages (and at
    /// least `pruneGuardMinimum` objects) is held until an operator confirms.
    public var maximumPruneFraction: Double = 0.5
    public var pruneGuardMinimum: Int = 5

    public init(cluster: String, origin: String, stateDirectory: String) {
        self.cluster = cluster
        self.origin = origin
        self.stateDirectory = stateDirectory
    }
}

/// The agent's reconcile loop: keeps a member cluster holding the desired set the hub sent.
///
/// The shell of ``ApplierState``, which decides everything: this actor takes desired state from
/// the session, the member's objects from one watch per kind (objects labelled
/// `tether.io/managed-by=<cluster>`), and runs `workers` workers that perform each object's
/// ``ReconcileStep``s against the member; it writes the state's files, keeps its timers, and
/// sends its statuses and acks whenever a session is up.
public actor Applier: Service {
    public let settings: ApplierSettings
    let client: KubernetesClient
    let registry: KindRegistry
    let link: HubLink
    let logger: Logger
    var state: ApplierState
    /// The member's resources by `apiVersion/kind`, from discovery.
    var served: [String: ServedResource] = [:]
    var watched: Set<String> = []
    var idleWorkers: [CheckedContinuation<ObjectReference?, Never>] = []
    var stopped = false

    /// A desired-state message with the `welcome` of the session that brought it.
    struct Incoming: Sendable {
        var message: WireMessage
        var welcome: Welcome?
    }

    /// Desired-state messages from the session, in order; bounded by `inboundCapacity`.
    nonisolated let inbound: AsyncStream<Incoming>.Continuation
    private let inboundStream: AsyncStream<Incoming>
    let doorbell: AsyncStream<Void>.Continuation
    private let doorbellStream: AsyncStream<Void>
    /// Watches and timers the state asks for, started as children of the applier's task group.
    let spawn: AsyncStream<ApplierChild>.Continuation
    private let spawned: AsyncStream<ApplierChild>

    /// Every status change and ack, as they happen; the newest 4096 are kept for a slow reader.
    public nonisolated let events: AsyncStream<ApplierEvent>
    let eventSink: AsyncStream<ApplierEvent>.Continuation

    let appliedCounter = Counter(label: "tether_agent_applies_total")
    let driftCounter = Counter(label: "tether_agent_drift_repairs_total")

    public init(
        settings: ApplierSettings, client: KubernetesClient, registry: KindRegistry, external: [ExternalPluginProcess] = [], link: HubLink,
        logger: Logger
    ) {
        self.settings = settings
        self.client = client
        self.registry = registry
        self.link = link
        var logger = logger
        logger[metadataKey: "tether.cluster"] = "\(settings.cluster)"
        self.logger = logger
        let allowList =
            settings.allowList
            ?? AllowList(
                kinds: Set(registry.kindsAllowedByDefault.map { AllowList.key(apiVersion: $0.apiVersion, kind: $0.kind) })
            )
        state = ApplierState(
            settings: .init(
                cluster: settings.cluster, origin: settings.origin, retryBackoff: settings.retryBackoff, resyncInterval: settings.resyncInterval,
                fencing: Fencing(maximumPruneFraction: settings.maximumPruneFraction, pruneGuardMinimum: settings.pruneGuardMinimum),
                allowList: allowList
            ),
            registry: registry,
            external: external,
            interpreterFailures: InterpreterFailures { [logger] customization, operation, message in
                logger.warning(
                    "an interpreter script failed; its kind keeps the built-in behaviour for this call",
                    metadata: [
                        "tether.event": "interpreter.failed", "tether.customization": "\(customization)", "tether.operation": "\(operation)",
                        "tether.error": "\(message)",
                    ])
            }
        )
        (doorbellStream, doorbell) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        (inboundStream, inbound) = AsyncStream.makeStream(of: Incoming.self, bufferingPolicy: .bufferingOldest(settings.inboundCapacity))
        (spawned, spawn) = AsyncStream.makeStream(of: ApplierChild.self)
        (events, eventSink) = AsyncStream.makeStream(of: ApplierEvent.self, bufferingPolicy: .bufferingNewest(4096))
    }

    // MARK: Session side

    /// Hands a `snapshot` or `delta` to the applier; false when too many are waiting (the caller
    /// then ends the session, and the hub resends from the last revision on reconnect).
    public nonisolated func offer(_ message: WireMessage, from welcome: Welcome? = nil) -> Bool {
        if case .enqueued = inbound.yield(Incoming(message: message, welcome: welcome)) { return true }
        return false
    }

    /// What the agent holds back from now, if anything (reported in every `ack`).
    public var currentHold: Ack.Hold? { state.hold }

    /// The revision of the desired set held (persisted), which `hello` announces.
    public var lastRevision: UInt64? { state.revision }

    /// The hub's digest of that revision, announced with it.
    public var lastDigest: String? { state.baseline.revision == state.revision ? state.baseline.digest : nil }

    /// A new session: the hub may know nothing of what was reported before, so report it all again.
    public func sessionEstablished() {
        state.sessionEstablished()
        performActions()
    }

    /// The cluster left the federation: forget the desired state without pruning, so every
    /// object stays in the member as it is, no longer repaired or reported.
    public func forgetAll() {
        state.forgetAll()
        performActions()
    }

    /// Test and tooling view: the objects the agent made or adopted, by UID.
    public func managedInventory() -> [ObjectReference: String] { state.inventory }

    /// Test and tooling view: the last status of every object.
    public func currentStatuses() -> [ObjectReference: StatusReport.ObjectStatus] { state.statuses }

    // MARK: Running

    public func run() async throws {
        let inventory = try Inventory.load(from: settings.stateDirectory, cluster: settings.cluster)
        state.resume(try PersistedDesiredState.load(from: settings.stateDirectory, cluster: settings.cluster), inventory: inventory)
        performActions()
        await withDiscardingTaskGroup { group in
            group.addTask { await self.discover() }
            group.addTask { await self.takeInbound() }
            group.addTask { await self.report() }
            for _ in 0..<max(1, settings.workers) {
                group.addTask { await self.work() }
            }
            group.addTask {
                // Ends on graceful shutdown, and on cancellation (another service of the group failed).
                try? await gracefulShutdown()
                await self.stop()
            }
            for await child in spawned {
                group.addTask { await self.run(child) }
            }
            // Stopped: end the sleeps (timers, backoffs) and requests still in flight.
            group.cancelAll()
        }
        logger.info("applier stopped", metadata: ["tether.event": "applier.stopped"])
    }

    /// Ends every loop, writing what must outlive the process first; used at shutdown.
    public func stop() {
        guard !stopped else { return }
        stopped = true
        state.stopping()
        performActions()
        for waiter in idleWorkers { waiter.resume(returning: nil) }
        idleWorkers.removeAll()
        inbound.finish()
        doorbell.finish()
        eventSink.finish()
        spawn.finish()
    }

    private func takeInbound() async {
        for await incoming in inboundStream {
            state.received(incoming.message, from: incoming.welcome)
            performActions()
        }
    }

    /// Sends what is unsent whenever something changes and a session is up; what cannot be sent
    /// stays, coalesced per object, until the next session.
    private func report() async {
        for await _ in doorbellStream {
            guard link.isEstablished else { continue }
            while true {
                let batch = state.takeStatuses(limit: settings.statusBatchSize)
                if batch.isEmpty { break }
                guard await link.send(.status(StatusReport(objects: batch))) else {
                    state.returnStatuses(batch)
                    break
                }
            }
            if let ack = state.takeAck(), !(await link.send(.ack(ack))) {
                state.returnAck(ack)
            }
        }
    }
}
