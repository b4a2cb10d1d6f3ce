import Foundation
import TetherLocal
import TetherProcess

/// Member clusters behind firewalls, on this machine: one network namespace per member, joined
/// to the hub's address by a bridge, with iptables in each namespace letting out only
/// connections to the hub's agent port and letting in only their answers, as a platform
/// team's egress-only firewall would. A partition drops the member's traffic to and from the
/// hub, so established connections hang the way they do when a link fails, not close.
///
/// Needs root, iproute2 and iptables (`make test` installs them). Every name it makes carries a
/// random tag, and `destroy()` removes them all.
public final class NetworkLab: Sendable {
    public struct Member: Sendable {
        public let name: String
        /// The network namespace (`ip netns exec NAMESPACE ...`).
        public let namespace: String
        public let address: String
    }

    /// Where members reach the hub: the bridge's address in the host's namespace.
    public let hubAddress: String
    public let members: [String: Member]
    private let bridge: String
    private let tag: String

    /// Creates the bridge and one namespace per member; traffic is open until ``allowOnlyOutbound(toPort:)``.
    public static func create(members names: [String]) async throws -> NetworkLab {
        try await requirePrerequisites()
        await removeAbandonedLabs()
        let tag = String(UInt32.random(in: 0..<0xFFFF_FF), radix: 16)
        try FileManager.default.createDirectory(atPath: ownersDirectory, withIntermediateDirectories: true)
        try "\(getpid())".write(toFile: "\(ownersDirectory)/\(tag)", atomically: true, encoding: .utf8)
        // A /16 of 10.0.0.0/8 not already on this host.
        let used = try await Self.run(["ip", "-o", "-4", "addr", "show"])
        guard let octet = (100..<200).shuffled().first(where: { !used.contains(" 10.\($0).") }) else {
            throw NetworkLabError("no free 10.x.0.0/16 network for the lab")
        }
        let lab = NetworkLab(
            tag: tag, hubAddress: "10.\(octet).0.1",
            members: Dictionary(
                uniqueKeysWithValues: names.enumerated().map { index, name in
                    (name, Member(name: name, namespace: "tc\(tag)m\(index + 1)", address: "10.\(octet).\(index + 1).2"))
                })
        )
        do {
            try await lab.build(names: names)
        } catch {
            await lab.destroy()
            throw error
        }
        return lab
    }

    private init(tag: String, hubAddress: String, members: [String: Member]) {
        self.tag = tag
        self.hubAddress = hubAddress
        self.members = members
        self.bridge = "tc\(tag)br"
    }

    private func build(names: [String]) async throws {
        try await Self.run(["ip", "link", "add", bridge, "type", "bridge"])
        try await Self.run(["ip", "addr", "add", "\(hubAddress)/16", "dev", bridge])
        try await Self.run(["ip", "link", "set", bridge, "up"])
        for (index, name) in names.enumerated() {
            let member = members[name]!
            let (hostEnd, memberEnd) = ("tc\(tag)h\(index + 1)", "tc\(tag)n\(index + 1)")
            try await Self.run(["ip", "netns", "add", member.namespace])
            try await Self.run(["ip", "link", "add", hostEnd, "type", "veth", "peer", "name", memberEnd])
            try await Self.run(["ip", "link", "set", memberEnd, "netns", member.namespace])
            try await Self.run(["ip", "link", "set", hostEnd, "master", bridge])
            try await Self.run(["ip", "link", "set", hostEnd, "up"])
            try await inside(member, ["ip", "addr", "add", "\(member.address)/16", "dev", memberEnd])
            try await inside(member, ["ip", "link", "set", memberEnd, "up"])
            try await inside(member, ["ip", "link", "set", "lo", "up"])
        }
    }

    /// Each member may open connections to the hub's `port` and nothing else; nothing may
    /// connect to it. Loopback inside the namespace (the member's API) stays open.
    public func allowOnlyOutbound(toPort port: Int) async throws {
        for member in members.values {
            for rule in [
                ["-A", "INPUT", "-i", "lo", "-j", "ACCEPT"],
                ["-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
                ["-P", "INPUT", "DROP"],
                ["-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT"],
                ["-A", "OUTPUT", "-d", hubAddress, "-p", "tcp", "--dport", "\(port)", "-j", "ACCEPT"],
                ["-P", "OUTPUT", "DROP"],
            ] {
                try await inside(member, ["iptables"] + rule)
            }
        }
    }

    /// After ``allowOnlyOutbound(toPort:)``: members may also open connections to the hub's address at `port`.
    public func allowOutbound(toPort port: Int) async throws {
        for member in members.values {
            try await inside(member, ["iptables", "-A", "OUTPUT", "-d", hubAddress, "-p", "tcp", "--dport", "\(port)", "-j", "ACCEPT"])
        }
    }

    /// Drops every packet between `member` and the hub, both ways, until ``heal(_:)``.
    public func partition(_ member: String) async throws {
        let member = try find(member)
        try await inside(member, ["iptables", "-I", "OUTPUT", "1", "-d", hubAddress, "-j", "DROP"])
        try await inside(member, ["iptables", "-I", "INPUT", "1", "-s", hubAddress, "-j", "DROP"])
    }

    public func heal(_ member: String) async throws {
        let member = try find(member)
        try await inside(member, ["iptables", "-D", "OUTPUT", "-d", hubAddress, "-j", "DROP"])
        try await inside(member, ["iptables", "-D", "INPUT", "-s", hubAddress, "-j", "DROP"])
    }

    /// Whether a TCP connection from inside `member` to `host:port` is accepted within 2 s.
    public func canConnect(from member: String, to host: String, port: Int) async throws -> Bool {
        let member = try find(member)
        // bash's /dev/tcp: no client program to install, and the exit status says it all. SIGKILL,
        // because a child of the test process may have inherited SIGTERM ignored.
        let status = try await Self.status([
            "ip", "netns", "exec", member.namespace, "timeout", "--signal=KILL", "2", "bash", "-c", "exec 3<>/dev/tcp/\(host)/\(port)",
        ])
        return status == 0
    }

    /// Removes every namespace, link and rule the lab made; safe to call twice.
    public func destroy() async {
        await Self.remove(tag: tag)
    }

    /// Where each lab notes the process that made it, so a lab whose test process died (a crash
    /// skips every cleanup) is found and removed by the next one.
    static let ownersDirectory = "/run/tether-netlab"

    private static func remove(tag: String) async {
        let namespaces = ((try? await run(["ip", "netns", "list"])) ?? "").split(separator: "\n")
            .compactMap { $0.split(separator: " ").first.map(String.init) }
            .filter { $0.hasPrefix("tc\(tag)m") }
        for namespace in namespaces {
            // What still runs inside (members and agents of a crashed run) goes with it.
            for pid in ((try? await run(["ip", "netns", "pids", namespace])) ?? "").split(separator: "\n").compactMap({ Int32($0) }) {
                kill(pid, SIGKILL)
            }
            _ = try? await status(["ip", "netns", "delete", namespace])
        }
        _ = try? await status(["ip", "link", "delete", "tc\(tag)br"])
        try? FileManager.default.removeItem(atPath: "\(ownersDirectory)/\(tag)")
    }

    private static func removeAbandonedLabs() async {
        for tag in (try? FileManager.default.contentsOfDirectory(atPath: ownersDirectory)) ?? [] {
            let owner = (try? String(contentsOfFile: "\(ownersDirectory)/\(tag)", encoding: .utf8)).flatMap { Int32($0) }
            if let owner, kill(owner, 0) == 0 || errno != ESRCH { continue }
            await remove(tag: tag)
        }
    }

    private func find(_ name: String) throws -> Member {
        guard let member = members[name] else { throw NetworkLabError("no member \(name) in the lab") }
        return member
    }

    private func inside(_ member: Member, _ command: [String]) async throws {
        try await Self.run(["ip", "netns", "exec", member.namespace] + command)
    }

    /// Root, `ip` and `iptables`: what the lab needs, with what to do when something is missing.
    public static func requirePrerequisites() async throws {
        guard getuid() == 0 else {
            throw NetworkLabError("network namespaces need root; run the fault suite as root (CI does)")
        }
        for program in ["ip", "iptables"] {
            guard (try? await status(["which", program])) != 0 else { continue }
            throw NetworkLabError("\(program) is not installed; `make test` installs iproute2 and iptables")
        }
    }

    /// Runs a command to completion; its output, or an error with its output if it failed.
    @discardableResult
    static func run(_ command: [String]) async throws -> String {
        let (status, output) = try await execute(command)
        guard status == 0 else {
            throw NetworkLabError("`\(command.joined(separator: " "))` failed (exit \(status)): \(output)")
        }
        return output
    }

    static func status(_ command: [String]) async throws -> Int32 {
        try await execute(command).status
    }

    private static func execute(_ command: [String]) async throws -> (status: Int32, output: String) {
        // A file, not a pipe: these commands print little, and nothing they start can hold it open.
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("netlab-\(UUID().uuidString)")
        guard FileManager.default.createFile(atPath: output.path, contents: nil) else {
            throw NetworkLabError("cannot create \(output.path)")
        }
        defer { try? FileManager.default.removeItem(at: output) }
        let handle = try FileHandle(forWritingTo: output)
        defer { try? handle.close() }
        let process = try ChildProcess(
            executable: "/usr/bin/env", arguments: command, standardOutput: handle.fileDescriptor, standardError: handle.fileDescriptor)
        let exited = Inbox<Int32>()
        process.onExit { exited.append($0) }
        let status = try await exited.waitFor("the exit of \(command.joined(separator: " "))", within: .seconds(60)) { _ in true }
        return (status, (try? String(contentsOf: output, encoding: .utf8)) ?? "")
    }
}

public struct NetworkLabError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension NetworkLab {
    /// Runs `body` with a lab of `members` and a federation whose hub certificate also names the
    /// lab's hub address; stops every process and removes the lab afterwards, and when `body`
    /// fails, prints what each process last logged.
    public static func withFederation(
        members: [String], label: String, _ body: (NetworkLab, LocalFederation, ScratchDirectory) async throws -> Void
    ) async throws {
        let lab = try await NetworkLab.create(members: members)
        let scratch = try ScratchDirectory(label)
        let federation = try LocalFederation(
            root: scratch.path, binaries: try TetherBinaries.locate(), trustDomain: "tether.test",
            hubHosts: ["localhost", "127.0.0.1", lab.hubAddress])
        do {
            try await body(lab, federation, scratch)
            await federation.stopAll()
            await lab.destroy()
        } catch {
            FileHandle.standardError.write(Data("\(label) failed: \(error)\n\(federation.recentOutput())\n".utf8))
            await federation.stopAll()
            await lab.destroy()
            throw error
        }
    }
}
