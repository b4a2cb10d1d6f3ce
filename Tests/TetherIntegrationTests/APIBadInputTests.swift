import Foundation
import Testing
import TetherLocal
import TetherSecurity
import TetherTestSupport

/// The API's answers to bad requests, seen by curl: a `metav1.Status` with the right code and
/// reason, and nothing written to the store.
@Suite("API refuses bad input with a Status and changes nothing", .timeLimit(.minutes(3)))
struct APIBadInputTests {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var method: String
        var path: String
        var contentType: String
        var body: String
        var code: Int
        var reason: String
        var accept = "application/json"
        var description: String { name }
    }

    static let configMap = #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"good","namespace":"default"},"data":{"a":"b"}}"#

    static let cases: [Case] = [
        Case(
            name: "malformed JSON", method: "POST", path: "/api/v1/namespaces/default/configmaps", contentType: "application/json",
            body: #"{"apiVersion": "v1", "kind": "#, code: 400, reason: "BadRequest"),
        Case(
            name: "kind does not match the URL", method: "POST", path: "/apis/apps/v1/namespaces/default/replicasets",
            contentType: "application/json", body: configMap, code: 400, reason: "BadRequest"),
        Case(
            name: "unknown kind", method: "POST", path: "/apis/example.com/v1/namespaces/default/widgets",
            contentType: "application/json", body: configMap, code: 404, reason: "NotFound"),
        Case(
            name: "namespace that does not exist", method: "POST", path: "/api/v1/namespaces/nowhere/configmaps",
            contentType: "application/json", body: configMap.replacingOccurrences(of: "\"default\"", with: "\"nowhere\""), code: 404,
            reason: "NotFound"),
        Case(
            name: "object over 1.5 MiB", method: "POST", path: "/api/v1/namespaces/default/configmaps", contentType: "application/json",
            body: #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"x":""# + String(repeating: "x", count: 1_700_000)
                + #""}}"#,
            code: 413, reason: "RequestEntityTooLarge"),
        Case(
            name: "YAML body", method: "POST", path: "/api/v1/namespaces/default/configmaps", contentType: "application/yaml",
            body: "apiVersion: v1\nkind: ConfigMap\n", code: 415, reason: "UnsupportedMediaType"),
        Case(
            name: "stale resourceVersion", method: "PUT", path: "/api/v1/namespaces/default/configmaps/existing", contentType: "application/json",
            body:
                #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"existing","namespace":"default","resourceVersion":"1"},"data":{"changed":"yes"}}"#,
            code: 409, reason: "Conflict"),
        Case(
            name: "JSON patch that does not apply", method: "PATCH", path: "/api/v1/namespaces/default/configmaps/existing",
            contentType: "application/json-patch+json", body: #"[{"op":"remove","path":"/data/missing"}]"#, code: 422, reason: "Invalid"),
        Case(
            name: "unknown propagationPolicy", method: "DELETE", path: "/api/v1/namespaces/default/configmaps/existing",
            contentType: "application/json",
            body: #"{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Sometimes"}"#, code: 400, reason: "BadRequest"),
        Case(
            name: "DeleteOptions that are not an object", method: "DELETE", path: "/api/v1/namespaces/default/configmaps/existing",
            contentType: "application/json", body: "[1, 2]", code: 400, reason: "BadRequest"),
        Case(
            name: "unknown fieldValidation directive", method: "POST", path: "/api/v1/namespaces/default/configmaps?fieldValidation=Sometimes",
            contentType: "application/json", body: #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"good"},"dta":{}}"#,
            code: 400, reason: "BadRequest"),
        Case(
            name: "unknown field under fieldValidation=Strict", method: "POST",
            path: "/api/v1/namespaces/default/configmaps?fieldValidation=Strict", contentType: "application/json",
            body: #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"good"},"dta":{"a":"b"}}"#, code: 400, reason: "BadRequest"),
        Case(
            name: "value of the wrong type", method: "PUT", path: "/api/v1/namespaces/default/configmaps/existing", contentType: "application/json",
            body: #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"existing","namespace":"default"},"immutable":"yes"}"#,
            code: 400, reason: "BadRequest"),
        Case(
            name: "protobuf truncated inside a field", method: "POST", path: "/api/v1/namespaces/default/configmaps",
            contentType: "application/vnd.kubernetes.protobuf", body: "k8s\u{0}\u{0A}\u{7F}abc", code: 400, reason: "BadRequest"),
        Case(
            name: "protobuf without Kubernetes' envelope", method: "POST", path: "/api/v1/namespaces/default/configmaps",
            contentType: "application/vnd.kubernetes.protobuf", body: "hello", code: 400, reason: "BadRequest"),
        Case(
            name: "a table whose rows carry an unknown includeObject", method: "GET",
            path: "/api/v1/namespaces/default/configmaps?includeObject=Everything", contentType: "application/json", body: "", code: 400,
            reason: "BadRequest", accept: "application/json;as=Table;v=v1;g=meta.k8s.io"),
        Case(
            name: "nesting too deep", method: "POST", path: "/api/v1/namespaces/default/configmaps", contentType: "application/json",
            body: String(repeating: "[", count: 500) + String(repeating: "]", count: 500), code: 400, reason: "BadRequest"),
    ]

    @Test("each bad request gets its Status", arguments: cases)
    func refused(_ bad: Case) async throws {
        try await withFederation { federation in
            _ = try await federation.startHub()
            let client = try APIClient(federation)
            _ = try await client.request(
                "POST", "/api/v1/namespaces/default/configmaps",
                body: #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"existing"},"data":{"v":"1"}}"#)
            // Make the stored version newer than "1", so a write naming version 1 is stale.
            _ = try await client.request(
                "PATCH", "/api/v1/namespaces/default/configmaps/existing", contentType: "application/merge-patch+json", body: #"{"data":{"v":"2"}}"#)
            let before = try await client.request("GET", "/api/v1/namespaces/default/configmaps")

            let answer = try await client.request(bad.method, bad.path, contentType: bad.contentType, accept: bad.accept, body: bad.body)
            let status = try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any]
            #expect(answer.code == bad.code, "\(answer.body.prefix(300))")
            #expect(status?["kind"] as? String == "Status")
            #expect(status?["reason"] as? String == bad.reason)
            #expect(status?["code"] as? Int == bad.code)
            #expect((status?["message"] as? String)?.isEmpty == false)

            let after = try await client.request("GET", "/api/v1/namespaces/default/configmaps")
            #expect(after.body == before.body, "the store must be unchanged")
        }
    }

    @Test("a watch from a resourceVersion older than the history is 410 Expired; a recent one replays")
    func watchExpired() async throws {
        try await withFederation { federation in
            _ = try await federation.startHub(extraArguments: ["--watch-history", "5"])
            let client = try APIClient(federation)
            var versions: [String] = []
            for index in 0..<10 {
                let created = try await client.request(
                    "POST", "/api/v1/namespaces/default/configmaps",
                    body: #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm-\#(index)"}}"#
                )
                let object = try JSONSerialization.jsonObject(with: Data(created.body.utf8)) as? [String: Any]
                versions.append(((object?["metadata"] as? [String: Any])?["resourceVersion"] as? String) ?? "")
            }
            let expired = try await client.request("GET", "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=\(versions[0])")
            #expect(expired.code == 410, "\(expired.body)")
            #expect(expired.body.contains(#""reason":"Expired""#))

            let recent = try await client.request(
                "GET", "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=\(versions[7])&timeoutSeconds=1"
            )
            let events = recent.body.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            #expect(events.map { $0["type"] as? String } == ["ADDED", "ADDED"])
            let names = events.compactMap { (($0["object"] as? [String: Any])?["metadata"] as? [String: Any])?["name"] as? String }
            #expect(names == ["cm-8", "cm-9"])
        }
    }

    @Test("dryRun=All answers as a create would and stores nothing")
    func dryRun() async throws {
        try await withFederation { federation in
            _ = try await federation.startHub()
            let client = try APIClient(federation)
            let preview = try await client.request("POST", "/api/v1/namespaces/default/configmaps?dryRun=All", body: Self.configMap)
            #expect(preview.code == 201)
            #expect(preview.body.contains(#""uid""#))
            let lookup = try await client.request("GET", "/api/v1/namespaces/default/configmaps/good")
            #expect(lookup.code == 404)
        }
    }
}

/// A minimal HTTP client for the hub's API: curl with the admin's certificate.
struct APIClient {
    let federation: LocalFederation
    let server: String

    init(_ federation: LocalFederation) throws {
        self.federation = federation
        guard let port = try federation.directory.readPorts()?.api else { throw KubectlError(description: "no API port") }
        server = "https://127.0.0.1:\(port)"
    }

    func request(
        _ method: String, _ path: String, contentType: String = "application/json", accept: String = "application/json", body: String? = nil
    ) async throws -> (
        code: Int, body: String
    ) {
        let directory = federation.directory
        let output = federation.root + "/curl-\(UUID().uuidString.prefix(8))"
        var arguments = [
            "--cacert", directory.caCertificatePath, "--cert", directory.adminCertificatePath, "--key", directory.adminKeyPath,
            "-X", method, "-H", "Content-Type: \(contentType)", "-H", "Accept: \(accept)", "-o", output, "-w", "%{http_code}",
        ]
        if let body {
            let file = output + ".body"
            try body.write(toFile: file, atomically: true, encoding: .utf8)
            arguments += ["--data-binary", "@" + file]
        }
        let printed = try await curl(arguments + [server + path], in: federation)
        let code = Int(printed.trimmingCharacters(in: .whitespacesAndNewlines).suffix(3)) ?? 0
        return (code, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }
}
