import Foundation
import Testing
import TetherLocal
import TetherTestSupport

/// The committed fuzz corpus, run through every harness by the plain (unsanitized) build of
/// `tether-fuzz`: every input a fuzzer ever kept still passes. (`make test` then runs each
/// harness under libFuzzer with the sanitizers for a few seconds; `make fuzz` for longer.)
@Suite("fuzz corpus replay")
struct FuzzCorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/Corpus")

    @Test("every committed input passes its harness", arguments: ["frame", "json", "protobuf", "patch", "selectors", "yaml", "pem", "cel", "tls"])
    func replay(target: String) async throws {
        let binaries = try TetherBinaries.locate()
        let directory = Self.corpus.appendingPathComponent(target).path
        let count = try FileManager.default.contentsOfDirectory(atPath: directory).count
        #expect(count > 0, "the \(target) corpus is empty")
        let process = ManagedProcess(name: "fuzz-\(target)", executable: binaries.url("tether-fuzz"), arguments: [target, directory])
        try process.start()
        let status = await process.waitForExit(within: .seconds(120))
        #expect(status == 0, "\(process.tail())")
        #expect(process.lines.contains { $0.raw.contains("\(count) inputs ran without a failure") }, "\(process.tail())")
    }
}
