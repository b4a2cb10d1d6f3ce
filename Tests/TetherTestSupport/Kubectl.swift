import Foundation
import TetherLocal
import TetherProcess

/// Runs a real kubectl against a Tether API, with its own discovery cache.
///
/// Output goes to files, not pipes, so nothing a child inherits can hold a run open; each run
/// ends at a deadline.
public struct Kubectl: Sendable {
    public enum Flavor: String, Sendable, CaseIterable, CustomStringConvertible {
        /// The `kubectl` on PATH (1.32 on this image).
        case modern
        /// Debian's kubectl 1.20, unpacked by `make test` (path in TETHER_KUBECTL_LEGACY).
        case legacy
        /// `kubectl.1.27` and `kubectl.1.33`, installed next to the `kubectl` on PATH.
        case v127
        case v133

        /// The minor version: 32 for `modern`.
        public var minor: Int {
            switch self {
            case .modern: 32
            case .legacy: 20
            case .v127: 27
            case .v133: 33
            }
        }

        public var description: String { rawValue }
    }

    public struct Result: Sendable, CustomStringConvertible {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        public var description: String { "exit \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }
    }

    public let executable: URL
    public let prefix: [String]
    public let kubeconfig: String
    public let home: String

    /// - Parameter networkNamespace: runs kubectl in this network namespace (`ip netns exec`),
    ///   to reach a member cluster that listens on the namespace's loopback.
    public init(_ flavor: Flavor, kubeconfig: String, home: String, networkNamespace: String? = nil) throws {
        switch flavor {
        case .modern:
            executable = URL(fileURLWithPath: "/usr/bin/env")
            prefix = (networkNamespace.map { ["ip", "netns", "exec", $0] } ?? []) + ["kubectl"]
        case .v127, .v133:
            let path = try Self.installedNextToKubectl("kubectl.1.\(flavor.minor)")
            executable = URL(fileURLWithPath: "/usr/bin/env")
            prefix = (networkNamespace.map { ["ip", "netns", "exec", $0] } ?? []) + [path]
        case .legacy:
            guard let path = ProcessInfo.processInfo.environment["TETHER_KUBECTL_LEGACY"],
                FileManager.default.isExecutableFile(atPath: path)
            else {
                throw KubectlError(
                    description:
                        "kubectl 1.20 not found: run the tests with `make test` (it unpacks Debian's kubernetes-client and sets TETHER_KUBECTL_LEGACY)"
                )
            }
            if let networkNamespace {
                executable = URL(fileURLWithPath: "/usr/bin/env")
                prefix = ["ip", "netns", "exec", networkNamespace, path]
            } else {
                executable = URL(fileURLWithPath: path)
                prefix = []
            }
        }
        self.kubeconfig = kubeconfig
        self.home = home
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
    }

    /// `name` in the directory of the `kubectl` on PATH, its symbolic links followed.
    static func installedNextToKubectl(_ name: String) throws -> String {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        for directory in directories {
            let kubectl = URL(fileURLWithPath: directory).appendingPathComponent("kubectl")
            guard FileManager.default.isExecutableFile(atPath: kubectl.path) else { continue }
            let candidate = kubectl.resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw KubectlError(description: "\(name) not found next to the kubectl on PATH; the test image installs kubectl 1.27 to 1.33 there")
    }

    @discardableResult
    public func run(
        _ arguments: [String],
        stdin: String? = nil,
        environment: [String: String] = [:],
        within timeout: Duration = .seconds(60)
    ) async throws -> Result {
        let id = UUID().uuidString.prefix(8)
        let out = (home as NSString).appendingPathComponent("out-\(id)")
        let err = (home as NSString).appendingPathComponent("err-\(id)")
        guard FileManager.default.createFile(atPath: out, contents: nil), FileManager.default.createFile(atPath: err, contents: nil)
        else { throw KubectlError(description: "cannot create output files in \(home)") }
        var env = ProcessInfo.processInfo.environment
        env["KUBECONFIG"] = kubeconfig
        env["HOME"] = home
        for (key, value) in environment { env[key] = value }
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        let errors = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        defer {
            try? output.close()
            try? errors.close()
        }
        var input: FileHandle?
        if let stdin {
            let path = (home as NSString).appendingPathComponent("in-\(id)")
            try stdin.write(toFile: path, atomically: true, encoding: .utf8)
            input = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        }
        defer { try? input?.close() }
        let process = try ChildProcess(
            executable: executable.path, arguments: prefix + arguments, environment: env, standardInput: input?.fileDescriptor,
            standardOutput: output.fileDescriptor, standardError: errors.fileDescriptor)
        let exited = Inbox<Int32>()
        process.onExit { exited.append($0) }
        let status: Int32
        do {
            status = try await exited.waitFor("kubectl \(arguments.joined(separator: " ")) to finish", within: timeout) { _ in true }
        } catch {
            process.send(SIGTERM)
            throw error
        }
        return Result(
            status: status,
            stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        )
    }

    /// Runs and requires success, returning standard output.
    @discardableResult
    public func succeed(
        _ arguments: [String], stdin: String? = nil, environment: [String: String] = [:], within timeout: Duration = .seconds(60)
    ) async throws -> String {
        let result = try await run(arguments, stdin: stdin, environment: environment, within: timeout)
        guard result.status == 0 else {
            throw KubectlError(description: "kubectl \(arguments.joined(separator: " ")) failed: \(result)")
        }
        return result.stdout
    }

    /// Runs `arguments` every `interval` until `condition` holds of the output, for up to
    /// `timeout`; returns that output. For what no `kubectl wait` expresses: a count of objects,
    /// or a list that fills in parts (`kubectl wait` on `ingress[2]` fails at once while only one
    /// is there). Each run of kubectl costs about 0.05 s of its own CPU (and the server's work),
    /// so a tighter interval would load a machine running many tests at once.
    @discardableResult
    public func waitForOutput(
        _ arguments: [String], within timeout: Duration = .seconds(30), every interval: Duration = .milliseconds(500),
        until condition: (String) -> Bool
    ) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            let output = try await succeed(arguments)
            if condition(output) { return output }
            guard ContinuousClock.now < deadline else {
                throw KubectlError(
                    description: "kubectl \(arguments.joined(separator: " ")) did not show what was awaited within \(timeout); last: \(output)")
            }
            try await Task.sleep(for: interval)
        }
    }
}

/// A kubectl run that did not do what a test needed.
public struct KubectlError: Error, CustomStringConvertible {
    public var description: String

    public init(description: String) {
        self.description = description
    }
}
