import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import TetherLocal
import TetherSecurity

/// The hub's Kubernetes API as the federation's admin, over HTTPS with the admin's certificate:
/// for tests and benchmarks that send more requests than a kubectl per request allows.
public struct HubAPIClient: Sendable {
    public let client: HTTPClient
    public let base: String

    /// - Parameter port: the API port; default: what the running hub wrote to hub.ports.json.
    public init(federation: LocalFederation, port: Int? = nil, connections: Int = 8) throws {
        guard let port = try port ?? federation.directory.readPorts()?.api else {
            throw HubAPIError("the hub wrote no API port to \(federation.directory.portsPath)")
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: try federation.directory.adminClientTLS())
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: connections)
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        base = "https://127.0.0.1:\(port)"
    }

    /// Sends a request; returns the status code and the body.
    @discardableResult
    public func send(
        _ method: HTTPMethod,
        _ path: String,
        json: String? = nil,
        contentType: String = "application/json",
        timeout: Duration = .seconds(120)
    ) async throws -> (Int, Data) {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let json {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(string: json))
        }
        let response = try await client.execute(request, timeout: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000))
        let body = try await response.body.collect(upTo: 256 * 1024 * 1024)
        return (Int(response.status.code), Data(body.readableBytesView))
    }

    /// The `metadata.resourceVersion` of an object in a response body.
    public static func resourceVersion(_ body: Data) -> UInt64? {
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
            let metadata = object["metadata"] as? [String: Any], let version = metadata["resourceVersion"] as? String
        else { return nil }
        return UInt64(version)
    }

    public func shutdown() async {
        try? await client.shutdown()
    }
}

public struct HubAPIError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
