import BuiltinPlugins
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing
import TetherJSON
import TetherModel
import TetherPlugin
import TetherSecurity
import TetherStore

@testable import TetherAPI

/// The API's routes, middleware, patches and protobuf decoding, in process: Hummingbird's router
/// test client against the real handler over a real SQLite store, without TLS or sockets.
@Suite("API routing, in process")
struct APIRoutingTests {
    static let adminToken = "admin-token-0123456789"
    static let viewerToken = "viewer-token-0123456789"

    /// Runs `body` against a fresh API over a store in a temporary directory.
    static func withAPI(_ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tether-api-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteResourceStore(path: directory.appendingPathComponent("api.db").path)
        let policy = AccessPolicy(
            users: [:],
            tokens: [.init(token: adminToken, user: "root", role: .admin), .init(token: viewerToken, user: "watcher", role: .viewer)]
        )
        let configuration = APIServerConfiguration()
        let handler = ResourceHandler(
            store: store, catalog: KindCatalog(builtin: BuiltinPlugins.hub), access: AccessControl(policy),
            limiter: InFlightLimiter(limits: configuration.requests),
            trustDomain: "tether.test", configuration: configuration, faults: nil, metrics: nil, logger: Logger(label: "test.api"),
            openAPIDocuments: OpenAPICache()
        )
        try await handler.ensureDefaultNamespace()
        let app = Application(router: APIRoutes.router(handler))
        try await app.test(.router) { client in try await body(client) }
    }

    static func headers(_ token: String? = adminToken, contentType: String = "application/json") -> HTTPFields {
        var fields: HTTPFields = [.contentType: contentType]
        if let token { fields[.authorization] = "Bearer \(token)" }
        return fields
    }

    static func json(_ value: JSONValue) -> ByteBuffer { ByteBuffer(bytes: try! value.serialized()) }

    static func body(_ response: TestResponse) throws -> JSONValue {
        try JSONValue(parsing: Array(response.body.readableBytesView))
    }

    /// A Deployment of one replica whose pods are labelled `app: NAME`.
    static func deployment(_ name: String, containers: [JSONValue]) -> JSONValue {
        [
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": ["name": .string(name), "namespace": "default"],
            "spec": [
                "replicas": 1, "selector": ["matchLabels": ["app": .string(name)]],
                "template": ["metadata": ["labels": ["app": .string(name)]], "spec": ["containers": .array(containers)]],
            ],
        ]
    }

    static func configMap(_ name: String, namespace: String = "default") -> JSONValue {
        ["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": .string(name), "namespace": .string(namespace)], "data": ["k": "v"]]
    }

    @Test("probes and the version answer without credentials; everything else needs them, and errors are Kubernetes Statuses")
    func authenticationAndStatuses() async throws {
        try await Self.withAPI { client in
            for path in ["/version", "/healthz", "/healthz/ping", "/readyz", "/livez"] {
                let response = try await client.execute(uri: path, method: .get)
                #expect(response.status == .ok, "\(path)")
            }
            let anonymous = try await client.execute(uri: "/api/v1/configmaps", method: .get)
            #expect(anonymous.status == .unauthorized)
            #expect(try Self.body(anonymous)["reason"]?.stringValue == "Unauthorized")
            let forged = try await client.execute(uri: "/api/v1/configmaps", method: .get, headers: Self.headers("not-a-token"))
            #expect(forged.status == .unauthorized)
            let unknown = try await client.execute(uri: "/no/such/path", method: .get, headers: Self.headers())
            #expect(unknown.status == .notFound)
            #expect(try Self.body(unknown)["kind"]?.stringValue == "Status")
            let wrongMethod = try await client.execute(uri: "/api/v1", method: .post, headers: Self.headers(), body: Self.json([:]))
            #expect(wrongMethod.status == .methodNotAllowed)
            let viewerWrites = try await client.execute(
                uri: "/api/v1/namespaces/default/configmaps", method: .post, headers: Self.headers(Self.viewerToken),
                body: Self.json(Self.configMap("a"))
            )
            #expect(viewerWrites.status == .forbidden)
            #expect(try Self.body(viewerWrites)["message"]?.stringValue?.contains("cannot create resource \"configmaps\"") == true)
        }
    }

    @Test("discovery, resource lists and objects each reach their handler")
    func discoveryRoutes() async throws {
        try await Self.withAPI { client in
            let groups = try Self.body(try await client.execute(uri: "/apis", method: .get, headers: Self.headers()))
            #expect(groups["kind"]?.stringValue == "APIGroupList")
            let apps = try Self.body(try await client.execute(uri: "/apis/apps", method: .get, headers: Self.headers()))
            #expect(apps["kind"]?.stringValue == "APIGroup")
            let core = try Self.body(try await client.execute(uri: "/api/v1", method: .get, headers: Self.headers()))
            #expect(core["kind"]?.stringValue == "APIResourceList")
            let namespace = try Self.body(try await client.execute(uri: "/api/v1/namespaces/default", method: .get, headers: Self.headers()))
            #expect(namespace["kind"]?.stringValue == "Namespace")
            let list = try Self.body(
                try await client.execute(uri: "/api/v1/namespaces/default/configmaps?limit=5", method: .get, headers: Self.headers()))
            #expect(list["kind"]?.stringValue == "ConfigMapList")
            let badLimit = try await client.execute(uri: "/api/v1/configmaps?limit=-1", method: .get, headers: Self.headers())
            #expect(badLimit.status == .badRequest)
        }
    }

    @Test("every create checks the same: POST, and server-side apply of a new object, whose body must match the URL")
    func oneCreatePath() async throws {
        try await Self.withAPI { client in
            let apply = "application/apply-patch+yaml"
            let renamed = try await client.execute(
                uri: "/api/v1/namespaces/default/configmaps/a?fieldManager=t", method: .patch, headers: Self.headers(contentType: apply),
                body: Self.json(Self.configMap("b"))
            )
            #expect(renamed.status == .badRequest)
            #expect(try Self.body(renamed)["message"]?.stringValue?.contains("does not match the name on the URL") == true)
            let elsewhere = try await client.execute(
                uri: "/api/v1/namespaces/default/configmaps/a?fieldManager=t", method: .patch, headers: Self.headers(contentType: apply),
                body: Self.json(Self.configMap("a", namespace: "kube-system"))
            )
            #expect(elsewhere.status == .badRequest)
            let missingNamespace = try await client.execute(
                uri: "/api/v1/namespaces/nowhere/configmaps/a?fieldManager=t", method: .patch, headers: Self.headers(contentType: apply),
                body: Self.json(Self.configMap("a", namespace: "nowhere"))
            )
            #expect(missingNamespace.status == .notFound)
            let created = try await client.execute(
                uri: "/api/v1/namespaces/default/configmaps/a?fieldManager=t", method: .patch, headers: Self.headers(contentType: apply),
                body: Self.json(Self.configMap("a"))
            )
            #expect(created.status == .created)
            let posted = try await client.execute(
                uri: "/api/v1/namespaces/default/configmaps", method: .post, headers: Self.headers(), body: Self.json(Self.configMap("a"))
            )
            #expect(posted.status == .conflict, "POST of an existing name is AlreadyExists, through the same path")
            let dryRun = try await client.execute(
                uri: "/api/v1/namespaces/default/configmaps?dryRun=All", method: .post, headers: Self.headers(),
                body: Self.json(Self.configMap("dry"))
            )
            #expect(dryRun.status == .created)
            let absent = try await client.execute(uri: "/api/v1/namespaces/default/configmaps/dry", method: .get, headers: Self.headers())
            #expect(absent.status == .notFound)
        }
    }

    @Test("a body without apiVersion and kind gets them from the URL, as kube-apiserver does; another kind is still refused")
    func kindFromURL() async throws {
        try await Self.withAPI { client in
            let bare = try await client.execute(
                uri: "/api/v1/namespaces", method: .post, headers: Self.headers(), body: Self.json(["metadata": ["name": "typed"]]))
            #expect(bare.status == .created)
            let created = try Self.body(bare)
            #expect(created["apiVersion"]?.stringValue == "v1" && created["kind"]?.stringValue == "Namespace")
            let other = try await client.execute(
                uri: "/api/v1/namespaces", method: .post, headers: Self.headers(),
                body: Self.json(["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": "x"]])
            )
            #expect(other.status == .badRequest)
        }
    }

    @Test("patches: merge, strategic merge by container name, JSON patch; a JSON patch that copies past the object limit is refused")
    func patches() async throws {
        try await Self.withAPI { client in
            let deployment = Self.deployment("web", containers: [["name": "a", "image": "x:1"], ["name": "b", "image": "y:1"]])
            let uri = "/apis/apps/v1/namespaces/default/deployments"
            #expect(try await client.execute(uri: uri, method: .post, headers: Self.headers(), body: Self.json(deployment)).status == .created)
            let strategic: JSONValue = ["spec": ["template": ["spec": ["containers": [["name": "b", "image": "y:2"]]]]]]
            let patched = try await client.execute(
                uri: "\(uri)/web", method: .patch, headers: Self.headers(contentType: "application/strategic-merge-patch+json"),
                body: Self.json(strategic)
            )
            #expect(patched.status == .ok)
            let containers = try Self.body(patched).value(at: "spec", "template", "spec", "containers")?.arrayElements ?? []
            #expect(containers.compactMap { $0["image"]?.stringValue } == ["x:1", "y:2"], "merged by name, not replaced")
            let merge = try await client.execute(
                uri: "\(uri)/web", method: .patch, headers: Self.headers(contentType: "application/merge-patch+json"),
                body: Self.json(["spec": ["replicas": 3]])
            )
            #expect(try Self.body(merge)["spec"]?["replicas"]?.integerValue == 3)

            var copies: [JSONValue] = [["op": "add", "path": "/data", "value": ["k": .string(String(repeating: "x", count: 4_096))]]]
            for index in 0..<600 { copies.append(["op": "copy", "from": "/data/k", "path": .string("/data/k\(index)")]) }
            #expect(
                try await client.execute(
                    uri: "/api/v1/namespaces/default/configmaps", method: .post, headers: Self.headers(), body: Self.json(Self.configMap("c"))
                ).status == .created)
            let amplified = try await client.execute(
                uri: "/api/v1/namespaces/default/configmaps/c", method: .patch, headers: Self.headers(contentType: "application/json-patch+json"),
                body: Self.json(.array(copies))
            )
            #expect(amplified.status == .contentTooLarge, "600 copies of 4 KiB pass the 1.5 MiB object limit while the patch applies")
        }
    }

    @Test("patches that name no resourceVersion all land when they race each other; one that names a stale one is a 409")
    func racingPatches() async throws {
        try await Self.withAPI { client in
            let uri = "/api/v1/namespaces/default/configmaps"
            #expect(
                try await client.execute(uri: uri, method: .post, headers: Self.headers(), body: Self.json(Self.configMap("raced"))).status
                    == .created)
            let writers = 4
            let patchesEach = 15
            let statuses = try await withThrowingTaskGroup(of: [HTTPResponse.Status].self) { group in
                for writer in 0..<writers {
                    group.addTask {
                        var seen: [HTTPResponse.Status] = []
                        for index in 0..<patchesEach {
                            let label: JSONValue = ["metadata": ["labels": .object(["w\(writer)-\(index)": "set"])]]
                            seen.append(
                                try await client.execute(
                                    uri: "\(uri)/raced", method: .patch, headers: Self.headers(contentType: "application/merge-patch+json"),
                                    body: Self.json(label)
                                ).status)
                        }
                        return seen
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            #expect(statuses.allSatisfy { $0 == .ok }, "\(statuses.filter { $0 != .ok })")
            let final = try Self.body(try await client.execute(uri: "\(uri)/raced", method: .get, headers: Self.headers()))
            #expect((final.metadata["labels"]?.objectMembers.count ?? 0) == writers * patchesEach)

            let stale: JSONValue = ["metadata": ["resourceVersion": "1", "labels": ["late": "yes"]]]
            let refused = try await client.execute(
                uri: "\(uri)/raced", method: .patch, headers: Self.headers(contentType: "application/merge-patch+json"), body: Self.json(stale))
            #expect(refused.status == .conflict, "a resourceVersion in the patch is a precondition, never retried")
        }
    }

    @Test("scale patches racing label patches of one Deployment all land; a Scale naming an old resourceVersion is 409")
    func racingScales() async throws {
        try await Self.withAPI { client in
            let deployment = Self.deployment("scaled", containers: [["name": "a", "image": "x:1"]])
            let uri = "/apis/apps/v1/namespaces/default/deployments"
            #expect(try await client.execute(uri: uri, method: .post, headers: Self.headers(), body: Self.json(deployment)).status == .created)
            let merge = Self.headers(contentType: "application/merge-patch+json")
            let statuses = try await withThrowingTaskGroup(of: [HTTPResponse.Status].self) { group in
                for writer in 0..<4 {
                    group.addTask {
                        var seen: [HTTPResponse.Status] = []
                        for index in 0..<10 {
                            let (path, body): (String, JSONValue) =
                                writer.isMultiple(of: 2)
                                ? ("\(uri)/scaled/scale", ["spec": ["replicas": .integer(Int64(index))]])
                                : ("\(uri)/scaled", ["metadata": ["labels": .object(["w\(writer)-\(index)": "set"])]])
                            seen.append(try await client.execute(uri: path, method: .patch, headers: merge, body: Self.json(body)).status)
                        }
                        return seen
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            #expect(statuses.allSatisfy { $0 == .ok }, "\(statuses.filter { $0 != .ok })")
            let stale: JSONValue = ["metadata": ["resourceVersion": "1"], "spec": ["replicas": 7]]
            let refused = try await client.execute(uri: "\(uri)/scaled/scale", method: .patch, headers: merge, body: Self.json(stale))
            #expect(refused.status == .conflict, "a resourceVersion in the Scale is a precondition")
        }
    }

    @Test("a protobuf create (kubectl's generator commands) is decoded from Kubernetes' envelope and goes through the same create")
    func protobufCreate() async throws {
        try await Self.withAPI { client in
            func field(_ number: UInt8, _ bytes: [UInt8]) -> [UInt8] {
                precondition(bytes.count < 128)
                return [number << 3 | 2, UInt8(bytes.count)] + bytes
            }
            let typeMeta = field(1, Array("v1".utf8)) + field(2, Array("ConfigMap".utf8))
            // Kubernetes' encoder writes unset strings as empty: generateName here.
            let metadata = field(1, Array("from-proto".utf8)) + field(2, []) + field(3, Array("default".utf8))
            let configMap = field(1, metadata) + field(2, field(1, Array("k".utf8)) + field(2, Array("v".utf8)))
            let envelope: [UInt8] = [0x6B, 0x38, 0x73, 0x00] + field(1, typeMeta) + field(2, configMap)
            let created = try await client.execute(
                uri: "/api/v1/namespaces/default/configmaps", method: .post, headers: Self.headers(contentType: KubernetesProtobuf.contentType),
                body: ByteBuffer(bytes: envelope)
            )
            #expect(created.status == .created)
            #expect(try Self.body(created)["data"]?["k"]?.stringValue == "v")
            #expect(try Self.body(created)["metadata"]?["generateName"] == nil, "an empty generateName is no generateName")
            let truncated = try await client.execute(
                uri: "/api/v1/namespaces/default/configmaps", method: .post, headers: Self.headers(contentType: KubernetesProtobuf.contentType),
                body: ByteBuffer(bytes: envelope.dropLast(3))
            )
            #expect(truncated.status == .badRequest)
        }
    }
}
