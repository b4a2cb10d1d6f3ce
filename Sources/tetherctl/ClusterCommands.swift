import ArgumentParser
import Foundation
import NIOHTTP1
import TetherJSON
import TetherModel
import TetherSecurity

/// `tetherctl cluster confirm|status NAME`: what a member's agent holds back, and confirming it.
struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Inspect a member cluster's state at the hub and confirm what its agent holds back.",
        subcommands: [ConfirmHold.self, ClusterStatus.self]
    )
}

struct ConfirmHold: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "confirm",
        abstract: "Confirm the hold a cluster's agent reports (a new or restored hub store, or a set that removes most of what it manages).",
        discussion: """
            An agent holds back when the hub's store is new (it applies objects but prunes nothing), when the \
            hub sends a revision older than one it applied (it applies nothing), and when a desired set would \
            remove more than half of what it manages (it prunes nothing). The Cluster shows the hold \
            (`kubectl get cluster NAME -o jsonpath='{.status.hold}'`); this command confirms exactly that hold, \
            by its token, and the agent proceeds: pruning what the hub no longer wants. A hold that changed \
            meanwhile (another token) is not confirmed. Aliases: accept-epoch.
            """,
        aliases: ["accept-epoch"]
    )

    @Argument(help: "The cluster.")
    var name: String

    @Option(name: .long, help: "The federation directory (from `tetherctl init`).")
    var dir: String

    @Option(name: .long, help: "Confirm this token only (what `tetherctl cluster status` shows); default: the hold the Cluster shows now.")
    var token: String?

    @Option(name: .long, help: "The hub's API URL; default: from DIR/hub.ports.json.")
    var hub: String?

    @Option(name: .long, help: "Output format: text or json.")
    var output: OutputFormat = .text

    func run() async throws {
        let api = try HubAPI(directory: FederationDirectory(path: dir), hub: hub)
        defer { Task { await api.shutdown() } }
        let path = "/apis/core.tether.io/v1alpha1/clusters/\(name)"
        let (code, cluster) = try await api.send(.GET, path)
        guard code == 200 else { throw ValidationError(code == 404 ? "cluster \(name) is not joined" : "the hub answered \(code)") }
        guard let hold = cluster["status"]?["hold"], let shown = hold["token"]?.stringValue else {
            throw ValidationError("cluster \(name) reports no hold; nothing to confirm")
        }
        if let token, token != shown {
            throw ValidationError("cluster \(name) holds \(shown), not \(token); check `tetherctl cluster status \(name)` and confirm what it shows")
        }
        let reason = hold["reason"]?.stringValue ?? "?"
        guard reason != "ForeignFederation" else {
            throw ValidationError(
                "cluster \(name)'s agent follows another federation; no confirmation here can change that: give it a bundle of this federation or clear its state directory"
            )
        }
        let patch: JSONValue = ["spec": ["confirmedHold": .string(shown)]]
        let (patched, answer) = try await api.send(.PATCH, path, body: patch, contentType: "application/merge-patch+json")
        guard patched == 200 else { throw ValidationError("the hub refused: \(patched) \(answer["message"]?.stringValue ?? "")") }
        switch output {
        case .json: try printJSON(["cluster": name, "confirmed": shown, "reason": reason])
        case .text:
            print("confirmed \(reason) hold \(shown) of cluster \(name): \(hold["message"]?.stringValue ?? "")")
            print("its agent proceeds at its next desired state (removing up to \(hold["wouldRemove"]?.integerValue ?? 0) objects)")
        }
    }
}

struct ClusterStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show a cluster's phase, agent and hold.")

    @Argument(help: "The cluster.")
    var name: String

    @Option(name: .long, help: "The federation directory (from `tetherctl init`).")
    var dir: String

    @Option(name: .long, help: "The hub's API URL; default: from DIR/hub.ports.json.")
    var hub: String?

    @Option(name: .long, help: "Output format: text or json.")
    var output: OutputFormat = .text

    func run() async throws {
        let api = try HubAPI(directory: FederationDirectory(path: dir), hub: hub)
        defer { Task { await api.shutdown() } }
        let (code, cluster) = try await api.send(.GET, "/apis/core.tether.io/v1alpha1/clusters/\(name)")
        guard code == 200 else { throw ValidationError(code == 404 ? "cluster \(name) is not joined" : "the hub answered \(code)") }
        let status = cluster["status"] ?? [:]
        switch output {
        case .json: print(String(decoding: try status.serialized(), as: UTF8.self))
        case .text:
            print("cluster \(name): \(status["phase"]?.stringValue ?? "Unknown")")
            if let hold = status["hold"] {
                print("  holds back: \(hold["reason"]?.stringValue ?? "?") — \(hold["message"]?.stringValue ?? "")")
                print("  token: \(hold["token"]?.stringValue ?? "?")  (confirm with `tetherctl cluster confirm \(name) --dir \(dir)`)")
            } else {
                print("  applies its desired state in full")
            }
        }
    }
}
