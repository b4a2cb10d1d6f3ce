import Foundation
import Glibc
import Testing
import TetherProcess

/// Every program the hub, the agent, tetherctl and the tests start goes through `ChildProcess`.
@Suite("child processes")
struct ChildProcessTests {
    /// What Foundation's `Process` did before it crashed a test run: a parent's descriptors (a
    /// hub holds one per agent session) stay out of its children. 200, not thousands: the test
    /// runs beside others that need descriptors of their own.
    @Test("a child of a process with 200 open descriptors gets only its standard three")
    func descriptorsStayInTheParent() async throws {
        let marker = try temporaryFile()
        close(marker.descriptor)
        defer { unlink(marker.path) }
        var held: [Int32] = []
        defer { for descriptor in held { close(descriptor) } }
        for _ in 0..<200 {
            let descriptor = open(marker.path, O_RDONLY)
            try #require(descriptor >= 0, "cannot open \(marker.path): errno \(errno)")
            held.append(descriptor)
        }
        let output = try temporaryFile()
        defer { unlink(output.path) }
        // What each of the shell's descriptors is open on (the glob's own directory is gone by then).
        let child = try ChildProcess(
            executable: "/bin/sh", arguments: ["-c", "for fd in /proc/$$/fd/*; do readlink \"$fd\" || true; done"],
            standardOutput: output.descriptor)
        close(output.descriptor)
        #expect(await child.waitUntilExit() == 0)
        let targets = try String(contentsOfFile: output.path, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(targets.count >= 3, "the child listed \(targets)")
        let inherited = targets.filter { $0 == marker.path }.count
        #expect(inherited == 0, "the child inherited \(inherited) of the parent's descriptors")
    }

    @Test("exit codes, signals, the working directory and the environment are the child's own")
    func statusDirectoryAndEnvironment() async throws {
        let exits = try ChildProcess(executable: "/bin/sh", arguments: ["-c", "exit 7"])
        #expect(await exits.waitUntilExit() == 7)
        #expect(!exits.isRunning)

        let sleeper = try ChildProcess(executable: "/bin/sleep", arguments: ["30"])
        #expect(sleeper.isRunning)
        sleeper.send(SIGTERM)
        #expect(await sleeper.waitUntilExit() == SIGTERM)
        sleeper.send(SIGKILL)  // after the exit: nothing to signal, and no other process hit

        let output = try temporaryFile()
        defer { unlink(output.path) }
        let directory = FileManager.default.temporaryDirectory.path
        let printer = try ChildProcess(
            executable: "/bin/sh", arguments: ["-c", "pwd; echo \"$GREETING\""], environment: ["GREETING": "hello"], directory: directory,
            standardOutput: output.descriptor)
        close(output.descriptor)
        #expect(await printer.waitUntilExit() == 0)
        let lines = try String(contentsOfFile: output.path, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines == [URL(fileURLWithPath: directory).resolvingSymlinksInPath().path, "hello"])
    }

    @Test("a program that cannot be started is an error that names it, not a child that exits")
    func missingProgram() throws {
        let error = #expect(throws: SpawnError.self) {
            try ChildProcess(executable: "/nonexistent/tether-missing", arguments: [])
        }
        #expect(error?.description.contains("cannot start /nonexistent/tether-missing: No such file or directory") == true)
    }

    private func temporaryFile() throws -> (path: String, descriptor: Int32) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("child-\(UUID().uuidString)").path
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        try #require(descriptor >= 0, "cannot create \(path): errno \(errno)")
        return (path, descriptor)
    }
}
