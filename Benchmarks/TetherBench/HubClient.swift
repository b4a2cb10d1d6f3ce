import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import TetherLocal
import TetherSecurity

/// The hub's Kubernetes API as the admin, over HTTPS with the admin's certificate.
struct HubClient: Sendable {
    let client: HTTPClient
    let base: String

    init(federation: LocalFederation, connections: Int = 8) throws {
        guard let port = try federation.directory.readPorts()?.api else { throw BenchError("the hub wrote no API port") }
        var configuration = HTTPClient.Configuration(tlsConfiguration: try federation.directory.adminClientTLS())
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: connections)
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        base = "https://127.0.0.1:\(port)"
    }

    /// Sends a request; returns the status code and the body.
    @discardableResult
    func send(_ method: HTTPMethod, _ path: String, json: String? = nil, contentType: String = "application/json") async throws -> (Int, Data) {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let json {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(string: json))
        }
        let response = try await client.execute(request, timeout: .seconds(120))
        let body = try await response.body.collect(upTo: 256 * 1024 * 1024)
        return (Int(response.status.code), Data(body.readableBytesView))
    }

    /// The `metadata.resourceVersion` of an object in a response body.
    static func resourceVersion(_ body: Data) -> UInt64? {
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
            let metadata = object["metadata"] as? [String: Any], let version = metadata["resourceVersion"] as? String
        else { return nil }
        return UInt64(version)
    }

    func shutdown() async {
        try? await client.shutdown()
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A ConfigMap whose `data` holds about `bytes` bytes.
func configMap(_ name: String, bytes: Int, generation: Int = 0) -> String {
    let filler = String(repeating: "x", count: max(0, bytes - 64))
    return #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"\#(name)","namespace":"default"},"data":{"generation":"\#(generation)","payload":"\#(filler)"}}"#
}

/// Creates `count` ConfigMaps at the hub, 8 at a time; returns the highest resourceVersion.
@discardableResult
func createConfigMaps(_ count: Int, prefix: String, bytes: Int, api: HubClient) async throws -> UInt64 {
    try await withThrowingTaskGroup(of: UInt64.self) { group in
        var next = 0, highest: UInt64 = 0
        func launch() {
            let index = next
            next += 1
            group.addTask {
                let (code, answer) = try await api.send(.POST, "/api/v1/namespaces/default/configmaps", json: configMap("\(prefix)-\(index)", bytes: bytes))
                guard code == 201, let version = HubClient.resourceVersion(answer) else { throw BenchError("create \(prefix)-\(index): \(code)") }
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
