import Foundation
import NIOCore
import NIOHTTP1
import TetherLocal
import TetherTestSupport

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A ConfigMap whose `data` holds about `bytes` bytes.
func configMap(_ name: String, bytes: Int, generation: Int = 0) -> String {
    let filler = String(repeating: "x", count: max(0, bytes - 64))
    return
        #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"\#(name)","namespace":"default"},"data":{"generation":"\#(generation)","payload":"\#(filler)"}}"#
}

/// Creates `count` ConfigMaps at the hub, 8 at a time; returns the highest resourceVersion.
@discardableResult
func createConfigMaps(_ count: Int, prefix: String, bytes: Int, api: HubAPIClient) async throws -> UInt64 {
    try await withThrowingTaskGroup(of: UInt64.self) { group in
        var next = 0
        var highest: UInt64 = 0
        func launch() {
            let index = next
            next += 1
            group.addTask {
                let (code, answer) = try await api.send(
                    .POST, "/api/v1/namespaces/default/configmaps", json: configMap("\(prefix)-\(index)", bytes: bytes))
                guard code == 201, let version = HubAPIClient.resourceVersion(answer) else { throw BenchError("create \(prefix)-\(index): \(code)") }
                return version
            }
        }
        for _ in 0..<min(8, count) { launch() }
        while let version = try await group.next() {
            highest = max(highest, version)
            if next < count { launch() }
        }
        return highest
    }
}
