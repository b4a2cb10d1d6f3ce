import Foundation
import NIOHTTP1
import TetherLocal
import TetherSecurity

/// What a cycle checks: the hub's and members' objects against the ledger, convergence, and the tools it runs.
extension FaultSuite {
    // MARK: Checking

    func hubObjects() async throws -> [String: (generation: Int, uid: String)] {
        let (status, body) = try await api.send(.GET, "/api/v1/namespaces/\(ledger.namespace)/configmaps")
        guard status == 200 else { throw FaultSuiteError("listing at the hub: \(status)") }
        return try WriteLedger.parseList(body)
    }

    /// Acknowledged writes the hub does not show.
    func lostAtHub() async throws -> Int {
        let objects = try await hubObjects()
        return ledger.known.filter { Self.state(of: $0.key, in: objects) != $0.value }.count
    }

    /// What each member holds of the suite's objects (those its agent manages).
    func memberObjects() async throws -> [String: [String: (generation: Int, uid: String)]] {
        var objects: [String: [String: (generation: Int, uid: String)]] = [:]
        for name in names {
            let listed = try await memberctl[name]!.succeed(
                ["get", "configmaps", "-n", ledger.namespace, "-l", "tether.io/managed-by=\(name)", "-o", "json"], within: .seconds(30)
            )
            objects[name] = try WriteLedger.parseList(Data(listed.utf8))
        }
        return objects
    }

    /// Fails the cycle's check if a member lost or replaced an object it held in `before`.
    func expectUntouched(
        _ before: [String: [String: (generation: Int, uid: String)]], during what: String, into result: inout CycleResult
    ) async throws {
        let now = try await memberObjects()
        // A delete the API acknowledged, or one in doubt, may rightly have reached the members.
        let mayBeDeleted = { (name: String) in self.ledger.known[name] == .absent || self.ledger.uncertain[name]?.contains(.absent) == true }
        for (member, objects) in before {
            for (name, object) in objects where now[member]?[name]?.uid != object.uid && !mayBeDeleted(name) {
                result.wronglyDeleted += 1
                result.problem("\(name) on \(member) was deleted or replaced while \(what)")
            }
        }
    }

    /// Objects a member held before the cycle that it no longer holds (or holds as another
    /// object), though no acknowledged write deleted them.
    func wronglyDeleted(since before: [String: [String: (generation: Int, uid: String)]]) async throws -> Int {
        let now = try await memberObjects()
        var count = 0
        for (member, objects) in before {
            for (name, object) in objects where ledger.known[name] != .absent && now[member]?[name]?.uid != object.uid {
                count += 1
            }
        }
        return count
    }

    /// Waits until every member shows exactly the ledger's objects; returns the seconds since `since`.
    func converge(since: ContinuousClock.Instant) async throws -> Double {
        let expected = ledger.expected
        let deadline = ContinuousClock.now + settings.convergenceDeadline
        var differences: [String] = []
        while ContinuousClock.now < deadline {
            differences = []
            let marks = agents.mapValues(\.mark)
            let members: [String: [String: (generation: Int, uid: String)]]
            do {
                members = try await memberObjects()
            } catch {
                // A member's API may still be failing (the injected errors): not converged yet.
                differences = ["\(error)"]
                await nextRevisionApplied(after: marks)
                continue
            }
            for (member, objects) in members {
                let shown = objects.mapValues(\.generation)
                if shown != expected {
                    let missing = expected.filter { shown[$0.key] != $0.value }.keys.sorted().prefix(5)
                    let extra = shown.keys.filter { expected[$0] == nil }.sorted().prefix(5)
                    differences.append("\(member): differs at \(Array(missing)) extra \(Array(extra))")
                }
            }
            if differences.isEmpty { return Self.seconds(ContinuousClock.now - since) }
            await nextRevisionApplied(after: marks)
        }
        throw FaultSuiteError("not converged within \(settings.convergenceDeadline): \(differences.joined(separator: "; "))")
    }

    /// Returns when any agent has applied a revision since `marks`, or after a second (a member
    /// catches up on its own too: an agent restarted, a member API recovered).
    func nextRevisionApplied(after marks: [String: Int]) async {
        await withTaskGroup(of: Void.self) { group in
            for (name, agent) in agents {
                let mark = marks[name] ?? agent.mark
                group.addTask { _ = try? await agent.waitForEvent("applier.revision_done", after: mark, within: .seconds(1)) }
            }
            await group.next()
            group.cancelAll()
        }
    }

    // MARK: Tools

    func hubctl() throws -> Kubectl {
        try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
    }

    func tetherctl(_ arguments: [String]) async throws {
        try await Self.command([federation.binaries.url("tetherctl").path] + arguments)
    }

    static func command(_ arguments: [String]) async throws {
        try await runCommand(arguments)
    }

    static func state(of name: String, in objects: [String: (generation: Int, uid: String)]) -> WriteLedger.State {
        objects[name].map { .present($0.generation) } ?? .absent
    }

    public static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func line(_ result: CycleResult) -> String {
        let problems = result.problems.isEmpty ? "" : "  PROBLEMS: \(result.problems.prefix(5).joined(separator: "; "))"
        return String(
            format:
                "cycle %3d  %-34@ %@  acknowledged %3d  in doubt %2d  lost %d  rolled back %2d  wrongly deleted %d  converged in %5.1f s  (cycle %5.1f s)%@",
            result.cycle, result.fault.rawValue as NSString, (result.member ?? "-") as NSString, result.writesAcknowledged,
            result.writesInDoubt, result.writesLost, result.writesRolledBackByRestore, result.wronglyDeleted, result.convergenceSeconds,
            result.cycleSeconds, problems as NSString
        )
    }

    /// The last events of the hub and of every agent, one line each: what a failed cycle prints.
    func recentEvents(count: Int = 40) -> String {
        let processes = [("hub", hub)] + names.compactMap { name in agents[name].map { ("agent-\(name)", $0) } }
        return processes.map { label, process in
            let lines = process.lines.filter { $0.event != nil }.suffix(count).map { line in
                let fields = line.fields.filter { $0.key.hasPrefix("tether.") && $0.key != "tether.event" }.sorted { $0.key < $1.key }
                return "  \(line.fields["time"] ?? "") \(line.event ?? "") "
                    + fields.map { "\($0.key.dropFirst(7))=\($0.value.prefix(120))" }.joined(separator: " ")
            }
            return (["--- \(label), last \(count) events:"] + lines).joined(separator: "\n")
        }.joined(separator: "\n")
    }
}
