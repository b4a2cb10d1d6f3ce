import Foundation
import NIOHTTP1
import TetherLocal
import TetherSecurity

/// One kind of accident the fault suite stages; cycles take them in turn.
public enum Fault: String, CaseIterable, Codable, Sendable {
    /// SIGKILL of the hub in the middle of a burst of writes; the hub restarts on its data.
    case hubKilledDuringWrites = "hub SIGKILL during writes"
    /// SIGKILL of one agent during writes; it restarts on its persisted state.
    case agentKilled = "agent SIGKILL"
    /// SIGSTOP of one agent until the hub drops its session, then SIGCONT.
    case agentStopped = "agent SIGSTOP"
    /// One member cut off from the hub past the rebalance grace, then reconnected.
    case partitionPastGrace = "partition past rebalance grace"
    /// The hub killed and restarted from a backup older than what the agents applied.
    case hubRestoredFromBackup = "hub restored from an older backup"
    /// One member's API answering 503 to every request for a while.
    case memberAPIErrors = "member API errors"
}

/// What one cycle found.
public struct CycleResult: Codable, Sendable {
    public var cycle: Int
    public var fault: Fault
    public var member: String?
    public var writesAcknowledged = 0
    /// Writes whose answer never came (settled from the hub afterwards).
    public var writesInDoubt = 0
    /// Acknowledged writes the hub or a member does not show: must be 0.
    public var writesLost = 0
    /// Writes acknowledged after the backup that the restore rolled back (re-applied by the operator).
    public var writesRolledBackByRestore = 0
    /// Member objects deleted (or replaced) that no acknowledged write deleted: must be 0.
    public var wronglyDeleted = 0
    /// From the fault's end (hub back, agent resumed, link healed, holds confirmed) until
    /// every member shows exactly what the hub holds.
    public var convergenceSeconds = 0.0
    /// The whole cycle, fault and checks.
    public var cycleSeconds = 0.0
    public var problems: [String] = []

    /// Notes a problem, shortened: a failed wait's message carries a process's whole log.
    mutating func problem(_ text: String) {
        problems.append(text.count > 400 ? text.prefix(400) + "…" : text)
    }
}

public struct FaultSuiteSettings: Sendable {
    public var cycles: Int
    public var members = 3
    /// Objects the suite keeps in the federation.
    public var population = 30
    public var writesPerBurst = 24
    public var concurrency = 4
    public var convergenceDeadline: Duration = .seconds(90)
    public var heartbeatInterval = 1.0
    public var rebalanceAfter = 3.0

    public init(cycles: Int) {
        self.cycles = cycles
    }
}

/// The fault suite: a hub on the host, members (simulated clusters) and their agents in network
/// namespaces behind egress-only firewalls, and cycles of faults with writes going on. After
/// each cycle it checks that every write the API acknowledged is at the hub and on every
/// member, that nothing was deleted from a member that no write deleted, and how long the
/// federation took to converge.
public actor FaultSuite {
    let settings: FaultSuiteSettings
    let federation: LocalFederation
    let lab: NetworkLab
    let log: @Sendable (String) -> Void
    var hub: ManagedProcess
    let agentPort: Int
    let apiPort: Int
    var api: HubAPIClient
    var agents: [String: ManagedProcess] = [:]
    var memberctl: [String: Kubectl] = [:]
    var ledger = WriteLedger(namespace: "chaos")
    let names: [String]
    /// Deletes the current cycle may still send (a tenth of the population).
    var deletesLeft = 0
    /// Resumed once the ledger counts this many acknowledged writes (or the burst ends).
    var acknowledgementWaiter: (target: Int, continuation: CheckedContinuation<Void, Never>)?

    /// Builds the lab and the federation, and fills it with `settings.population` objects.
    public static func start(
        in root: String,
        settings: FaultSuiteSettings,
        log: @escaping @Sendable (String) -> Void
    ) async throws -> FaultSuite {
        let names = (1...settings.members).map { "m\($0)" }
        let lab = try await NetworkLab.create(members: names)
        let federation: LocalFederation
        do {
            federation = try LocalFederation(
                root: root, binaries: try TetherBinaries.locate(), trustDomain: "tether.chaos",
                hubHosts: ["localhost", "127.0.0.1", lab.hubAddress]
            )
        } catch {
            await lab.destroy()
            throw error
        }
        var client: HubAPIClient?
        do {
            let (hub, agentPort) = try await federation.startHub(
                heartbeatInterval: settings.heartbeatInterval, agentListen: "\(lab.hubAddress):0",
                extraArguments: Self.hubArguments(settings)
            )
            guard let apiPort = try federation.directory.readPorts()?.api else { throw FaultSuiteError("the hub wrote no API port") }
            try await lab.allowOnlyOutbound(toPort: agentPort)
            let api = try HubAPIClient(federation: federation, port: apiPort)
            client = api
            let suite = FaultSuite(
                settings: settings, federation: federation, lab: lab, log: log, hub: hub, agentPort: agentPort, apiPort: apiPort,
                api: api, names: names
            )
            try await suite.startMembers()
            return suite
        } catch {
            await client?.shutdown()
            await federation.stopAll()
            await lab.destroy()
            throw error
        }
    }

    private init(
        settings: FaultSuiteSettings, federation: LocalFederation, lab: NetworkLab, log: @escaping @Sendable (String) -> Void,
        hub: ManagedProcess, agentPort: Int, apiPort: Int, api: HubAPIClient, names: [String]
    ) {
        self.settings = settings
        self.federation = federation
        self.lab = lab
        self.log = log
        self.hub = hub
        self.agentPort = agentPort
        self.apiPort = apiPort
        self.api = api
        self.names = names
    }

    static func hubArguments(_ settings: FaultSuiteSettings) -> [String] {
        ["--rebalance-after", "\(settings.rebalanceAfter)", "--offline-after", "3600"]
    }

    /// Stops every process and removes the lab.
    public func stop() async {
        await api.shutdown()
        await federation.stopAll()
        await lab.destroy()
    }

    // MARK: Setting up

    private func startMembers() async throws {
        let started = ContinuousClock.now
        for name in names {
            let member = lab.members[name]!
            let (_, directory) = try await federation.startSimcluster(name, nodes: 1, readyAfter: "1s", networkNamespace: member.namespace)
            memberctl[name] = try Kubectl(
                .modern, kubeconfig: directory + "/kubeconfig", home: directory + "/home", networkNamespace: member.namespace
            )
            _ = try federation.issueBundle(cluster: name, hubPort: agentPort, hubHost: lab.hubAddress)
            try startAgent(name)
        }
        for name in names {
            try await hub.waitForEvent("session.established", within: .seconds(60)) { $0["tether.cluster"] == name }
        }
        // The firewall is in force: the hub's agent port is reachable from a member, its API is not.
        let probe = names[0]
        guard try await lab.canConnect(from: probe, to: lab.hubAddress, port: agentPort) else {
            throw FaultSuiteError("member \(probe) cannot reach the hub's agent port through its firewall")
        }
        guard try await !lab.canConnect(from: probe, to: lab.hubAddress, port: apiPort) else {
            throw FaultSuiteError("member \(probe)'s firewall lets it reach the hub's API port; only the agent port may be open")
        }
        let (status, body) = try await api.send(
            .POST, "/api/v1/namespaces", json: #"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"chaos"}}"#)
        guard status == 201 else { throw FaultSuiteError("cannot create namespace chaos: \(status) \(String(decoding: body, as: UTF8.self))") }
        while ledger.population < settings.population {
            await write(count: settings.population - ledger.population)
        }
        _ = try await converge(since: .now)
        log(
            "fault suite ready in \(String(format: "%.1f", Self.seconds(ContinuousClock.now - started))) s: hub \(lab.hubAddress):\(agentPort), "
                + "\(names.count) members in network namespaces, \(ledger.population) objects"
        )
    }

    private func startAgent(_ name: String) throws {
        let member = lab.members[name]!
        let bundle = (federation.root as NSString).appendingPathComponent("bundles/\(name)")
        agents[name] = try federation.startAgent(
            bundle: .init(path: bundle),
            kubeconfig: (federation.root as NSString).appendingPathComponent("sim-\(name)/kubeconfig"),
            extraArguments: [
                "--state-dir", (federation.root as NSString).appendingPathComponent("state-\(name)"),
                "--backoff-initial", "0.2", "--backoff-max", "1",
            ],
            networkNamespace: member.namespace
        )
    }

    private func restartHub(apiPortOverride: Int? = nil) async throws {
        (hub, _) = try await federation.startHub(
            heartbeatInterval: settings.heartbeatInterval, agentListen: "\(lab.hubAddress):\(agentPort)",
            apiListen: "127.0.0.1:\(apiPort)", extraArguments: Self.hubArguments(settings)
        )
    }

    // MARK: Cycles

    /// Runs `settings.cycles` cycles, the faults in turn, and returns what each found.
    public func run() async -> [CycleResult] {
        var results: [CycleResult] = []
        for index in 0..<settings.cycles {
            let fault = Fault.allCases[index % Fault.allCases.count]
            let member = names[(index / Fault.allCases.count) % names.count]
            var result = CycleResult(cycle: index + 1, fault: fault, member: member)
            let started = ContinuousClock.now
            do {
                try await cycle(fault, member: member, into: &result)
            } catch {
                result.problem("\(error)")
            }
            result.cycleSeconds = Self.seconds(ContinuousClock.now - started)
            log(Self.line(result))
            results.append(result)
            if !result.problems.isEmpty {
                log(recentEvents())
                break
            }
        }
        return results
    }

    private func cycle(_ fault: Fault, member: String, into result: inout CycleResult) async throws {
        let before = try await memberObjects()
        let acknowledgedBefore = ledger.acknowledged
        deletesLeft = max(1, settings.population / 10)
        let faultEnded: ContinuousClock.Instant
        switch fault {
        case .hubKilledDuringWrites:
            let burst = Task { await self.write(count: self.settings.writesPerBurst, stopOnFailure: true) }
            await waitForAcknowledged(acknowledgedBefore + settings.writesPerBurst / 3)
            hub.send(SIGKILL)
            _ = await hub.waitForExit(within: .seconds(10))
            result.writesInDoubt = await burst.value
            try await expectUntouched(before, during: "the hub was down", into: &result)
            try await restartHub()
            faultEnded = .now
            try await settleDoubts(into: &result)
            await write(count: settings.writesPerBurst / 2)

        case .agentKilled:
            agents[member]?.send(SIGKILL)
            _ = await agents[member]?.waitForExit(within: .seconds(10))
            await write(count: settings.writesPerBurst)
            let mark = hub.mark
            try startAgent(member)
            faultEnded = .now
            try await hub.waitForEvent("session.established", after: mark, within: .seconds(30)) { $0["tether.cluster"] == member }

        case .agentStopped:
            let mark = hub.mark
            agents[member]?.send(SIGSTOP)
            await write(count: settings.writesPerBurst)
            // The hub closes the session after three missed heartbeats.
            try await hub.waitForEvent("session.heartbeat_missed", after: mark, within: .seconds(30)) { $0["tether.cluster"] == member }
            agents[member]?.send(SIGCONT)
            faultEnded = .now

        case .partitionPastGrace:
            let mark = hub.mark
            try await lab.partition(member)
            await write(count: settings.writesPerBurst)
            try await hub.waitForEvent("federation.rebalanced_away", after: mark, within: .seconds(60)) { $0["tether.cluster"] == member }
            try await expectUntouched(before, during: "member \(member) was cut off", into: &result)
            let healed = hub.mark
            try await lab.heal(member)
            faultEnded = .now
            try await hub.waitForEvent("session.established", after: healed, within: .seconds(60)) { $0["tether.cluster"] == member }

        case .hubRestoredFromBackup:
            faultEnded = try await restoreFromBackup(into: &result)

        case .memberAPIErrors:
            let seconds = 4.0
            try await memberctl[member]!.succeed(
                ["replace", "--raw", "/debug/faults", "-f", "-"], stdin: #"{"status": 503, "seconds": \#(seconds)}"#
            )
            let started = ContinuousClock.now
            await write(count: settings.writesPerBurst)
            faultEnded = max(.now, started + .seconds(seconds))
        }
        result.writesAcknowledged = ledger.acknowledged - acknowledgedBefore
        result.writesLost += try await lostAtHub()
        result.convergenceSeconds = try await converge(since: faultEnded)
        result.wronglyDeleted += try await wronglyDeleted(since: before)
    }

    /// Backs the hub's database up, writes more (the agents apply it), then kills the hub and
    /// restarts it on the backup. Every agent must refuse the older revision and keep its
    /// objects; the operator writes again what the restore lost and confirms each hold.
    private func restoreFromBackup(into result: inout CycleResult) async throws -> ContinuousClock.Instant {
        let backup = (federation.root as NSString).appendingPathComponent("backup")
        try await federation.backUpHubStore(to: backup)
        let atBackup = ledger.snapshot()
        await write(count: settings.writesPerBurst)
        _ = try await converge(since: .now)
        let applied = try await memberObjects()

        hub.send(SIGKILL)
        _ = await hub.waitForExit(within: .seconds(10))
        try federation.restoreHubStore(from: backup)
        let agentMarks = agents.mapValues(\.mark)
        try await restartHub()

        // Every agent refuses the older revision, and deletes nothing.
        for name in names {
            try await agents[name]!.waitForEvent("applier.held", after: agentMarks[name]!, within: .seconds(60)) {
                $0["tether.reason"] == "RevisionRegressed"
            }
        }
        try await expectUntouched(applied, during: "the restored hub ran", into: &result)
        // The restored hub holds what was acknowledged before the backup.
        let hubObjects = try await hubObjects()
        for (name, state) in atBackup where Self.state(of: name, in: hubObjects) != state {
            result.writesLost += 1
            result.problem("\(name): acknowledged before the backup as \(state), the restored hub has \(Self.state(of: name, in: hubObjects))")
        }
        // The operator writes again what the restore rolled back, then confirms each hold once the
        // Cluster shows it (the hub writes it behind the agent's ack). A hold may also lift by
        // itself, when the re-applied writes take the hub past the revision the agent holds.
        result.writesRolledBackByRestore = try await reapply(over: hubObjects)
        for name in names {
            let agent = agents[name]!
            if agent.lines.dropFirst(agentMarks[name]!).contains(where: { $0.event == "applier.hold_lifted" }) { continue }
            let shown = try await hubctl().run(
                ["wait", "--for=jsonpath={.status.hold.reason}=RevisionRegressed", "cluster/\(name)", "--timeout=30s"], within: .seconds(40))
            if shown.status == 0 {
                // Refused only if the hold lifted meanwhile; the agent's log says which.
                try? await tetherctl(["cluster", "confirm", name, "--dir", federation.directory.path])
            }
            do {
                try await agent.waitForEvent("applier.hold_lifted", after: agentMarks[name]!, within: .seconds(30))
            } catch {
                result.problem("\(name): its hold was never lifted (shown on the Cluster: \(shown.status == 0)): \(error)")
            }
        }
        return .now
    }

    // MARK: Writing

    /// Sends `count` writes, `settings.concurrency` at a time; with `stopOnFailure`, stops
    /// starting new ones at the first write that got no answer. Returns how many were in doubt.
    @discardableResult
    func write(count: Int, stopOnFailure: Bool = false) async -> Int {
        defer { resumeAcknowledgementWaiter(force: true) }
        var started = 0
        var inDoubt = 0
        var failed = false
        await withTaskGroup(of: (WriteLedger.Operation, Int?).self) { group in
            func launch() {
                let operation = ledger.nextOperation(target: settings.population, deletesLeft: &deletesLeft)
                let (method, path, contentType) = ledger.request(for: operation)
                let body = ledger.body(for: operation)
                let api = self.api
                started += 1
                group.addTask {
                    let status = try? await api.send(method, path, json: body, contentType: contentType, timeout: .seconds(30)).0
                    return (operation, status)
                }
            }
            for _ in 0..<min(settings.concurrency, count) { launch() }
            while let (operation, status) = await group.next() {
                if !ledger.record(operation, status: status), status == nil || status! >= 500 {
                    inDoubt += 1
                    failed = true
                }
                resumeAcknowledgementWaiter(force: false)
                if started < count, !(stopOnFailure && failed) { launch() }
            }
        }
        return inDoubt
    }

    /// Returns once the ledger counts `target` acknowledged writes, or the burst under way ended.
    private func waitForAcknowledged(_ target: Int) async {
        guard ledger.acknowledged < target else { return }
        await withCheckedContinuation { acknowledgementWaiter = (target, $0) }
    }

    private func resumeAcknowledgementWaiter(force: Bool) {
        guard let waiter = acknowledgementWaiter, force || ledger.acknowledged >= waiter.target else { return }
        acknowledgementWaiter = nil
        waiter.continuation.resume()
    }

    /// Reads every object in doubt at the hub and keeps what it holds.
    private func settleDoubts(into result: inout CycleResult) async throws {
        let objects = try await hubObjects()
        for name in ledger.uncertain.keys {
            let state = Self.state(of: name, in: objects)
            if !ledger.settle(name, atHub: state) {
                result.problem("\(name) is \(state) at the hub, which no write produced")
            }
        }
    }

    /// Makes the hub hold exactly what the ledger says (an operator re-applying a repository);
    /// returns how many objects it had to write.
    private func reapply(over hubObjects: [String: (generation: Int, uid: String)]) async throws -> Int {
        var written = 0
        let collection = "/api/v1/namespaces/\(ledger.namespace)/configmaps"
        for (name, state) in ledger.known where Self.state(of: name, in: hubObjects) != state {
            written += 1
            let (status, body): (Int, Data)
            switch state {
            case .absent:
                (status, body) = try await api.send(.DELETE, "\(collection)/\(name)")
            case .present(let generation):
                let object =
                    #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"\#(name)","namespace":"\#(ledger.namespace)"},"data":{"gen":"\#(generation)"}}"#
                if hubObjects[name] == nil {
                    (status, body) = try await api.send(.POST, collection, json: object)
                } else {
                    (status, body) = try await api.send(
                        .PATCH, "\(collection)/\(name)", json: #"{"data":{"gen":"\#(generation)"}}"#, contentType: "application/merge-patch+json")
                }
            }
            guard (200..<300).contains(status) else {
                throw FaultSuiteError("re-applying \(name) as \(state) failed: \(status) \(String(decoding: body.prefix(300), as: UTF8.self))")
            }
        }
        return written
    }
}
