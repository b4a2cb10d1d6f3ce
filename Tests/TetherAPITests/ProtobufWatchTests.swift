import BuiltinPlugins
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import TetherJSON
import TetherModel

@testable import TetherAPI

/// Watches in Kubernetes' protobuf stream, read here frame by frame with a reader written for
/// the test: a 4-byte length, then `WatchEvent{type = 1, object = 2 RawExtension{raw = 1}}`.
@Suite("watches in protobuf")
struct ProtobufWatchTests {
    static let protobufFirst = "application/vnd.kubernetes.protobuf, application/json"

    /// One event of the stream: its type and the enveloped object it carries.
    struct Frame {
        var type = ""
        var object: [UInt8] = []
    }

    /// The frames of a protobuf watch body; fails the test on any byte out of place.
    static func frames(_ body: [UInt8]) throws -> [Frame] {
        var frames: [Frame] = []
        var offset = 0
        while offset < body.count {
            try #require(body.count - offset >= 4, "a frame's length is cut short")
            let length = body[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
            offset += 4
            try #require(body.count - offset >= length, "a frame of \(length) bytes is cut short")
            var frame = Frame()
            for (number, value) in try fields(Array(body[offset..<offset + length])) {
                if number == 1 { frame.type = String(decoding: value, as: UTF8.self) }
                if number == 2 { frame.object = try #require(try fields(value).first { $0.0 == 1 }?.1, "a RawExtension without raw") }
            }
            frames.append(frame)
            offset += length
        }
        return frames
    }

    /// A message's length-delimited fields (all a WatchEvent and a RawExtension hold).
    static func fields(_ bytes: [UInt8]) throws -> [(Int, [UInt8])] {
        var result: [(Int, [UInt8])] = []
        var offset = 0
        func varint() throws -> Int {
            var value = 0
            var shift = 0
            while true {
                try #require(offset < bytes.count && shift < 63, "a varint is cut short")
                let byte = bytes[offset]
                offset += 1
                value |= Int(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
        }
        while offset < bytes.count {
            let key = try varint()
            try #require(key & 7 == 2, "field \(key >> 3) is not length-delimited")
            let length = try varint()
            try #require(offset + length <= bytes.count, "field \(key >> 3) is cut short")
            result.append((key >> 3, Array(bytes[offset..<offset + length])))
            offset += length
        }
        return result
    }

    static func watch(_ client: any TestClientProtocol, _ path: String, accept: String) async throws -> TestResponse {
        var headers = APIRoutingTests.headers()
        headers[.accept] = accept
        return try await client.execute(uri: path, method: .get, headers: headers, body: nil)
    }

    @Test(
        "a client that prefers protobuf gets each event as a WatchEvent frame; an object with a part that has no field number ends the stream with a Status error, and a JSON watch carries it"
    )
    func protobufStream() async throws {
        try await APIRoutingTests.withAPI { client in
            let before = try await client.execute(
                uri: "/api/v1/namespaces/default/configmaps", method: .get, headers: APIRoutingTests.headers(), body: nil)
            let from = try #require(try APIRoutingTests.body(before)["metadata"]?["resourceVersion"]?.stringValue)
            for (name, extra) in [("c1", JSONValue.null), ("c2", ["note": "no number for this"])] {
                var object: JSONValue = ["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": .string(name)], "data": ["k": "v"]]
                if extra != .null { object[member: "surprise"] = extra }
                let created = try await client.execute(
                    uri: "/api/v1/namespaces/default/configmaps?fieldValidation=Warn", method: .post, headers: APIRoutingTests.headers(),
                    body: APIRoutingTests.json(object))
                #expect(created.status == .created)
            }
            let path = "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=\(from)&timeoutSeconds=2"

            let protobuf = try await Self.watch(client, path, accept: Self.protobufFirst)
            #expect(protobuf.headers[.contentType] == "application/vnd.kubernetes.protobuf;stream=watch")
            let frames = try Self.frames(Array(protobuf.body.readableBytesView))
            try #require(frames.count == 2, "\(frames.map(\.type))")
            #expect(frames[0].type == "ADDED")
            let first = try KubernetesProtobuf.decode(frames[0].object, registry: BuiltinPlugins.hub)
            #expect(first.name == "c1" && first["data"]?["k"] == "v", "\(first)")
            // The second object holds a field with no number: the stream ends with the reason.
            #expect(frames[1].type == "ERROR")
            #expect(Array(frames[1].object.prefix(4)) == KubernetesProtobuf.magic)
            let status = String(decoding: frames[1].object, as: UTF8.self)
            #expect(status.contains("Status") && status.contains("ConfigMap default/c2") && status.contains("Accept: application/json"), "\(status)")

            // The same watch in JSON carries both, whole.
            let json = try await Self.watch(client, path, accept: "application/json")
            #expect(json.headers[.contentType] == "application/json")
            let lines = String(buffer: json.body).split(separator: "\n").map { try? JSONValue(parsing: String($0)) }
            #expect(lines.map { $0?["object"]?.name } == ["c1", "c2"])
            #expect(lines.last??["object"]?["surprise"]?["note"] == "no number for this")
        }
    }

    @Test("the replayed state of a watch from no version comes as frames too; a kind without field numbers, or a table, stays JSON")
    func replayAndFallbacks() async throws {
        try await APIRoutingTests.withAPI { client in
            let object: JSONValue = ["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": "c1"], "data": ["k": "v"]]
            _ = try await client.execute(
                uri: "/api/v1/namespaces/default/configmaps", method: .post, headers: APIRoutingTests.headers(), body: APIRoutingTests.json(object))
            let replayed = try await Self.watch(
                client, "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1", accept: Self.protobufFirst)
            let frames = try Self.frames(Array(replayed.body.readableBytesView))
            #expect(frames.map(\.type) == ["ADDED"])
            #expect(try KubernetesProtobuf.decode(try #require(frames.first).object, registry: BuiltinPlugins.hub).name == "c1")

            let unnumbered = try await Self.watch(
                client, "/apis/core.tether.io/v1alpha1/clusters?watch=true&timeoutSeconds=1", accept: Self.protobufFirst)
            #expect(unnumbered.status == .ok && unnumbered.headers[.contentType] == "application/json")
            let table = try await Self.watch(
                client, "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1",
                accept: "application/json;as=Table;v=v1;g=meta.k8s.io, application/vnd.kubernetes.protobuf")
            #expect(table.headers[.contentType] == "application/json")
            #expect(String(buffer: table.body).contains("\"kind\":\"Table\""), "\(String(buffer: table.body))")
        }
    }
}
