import Foundation
import Testing
import TetherLocal
import TetherSecurity
import TetherTestSupport

/// The hub's API tried as a hostile user would, against the real process: each attack from
/// issue #15 is refused or contained, the hub stays up, and nothing stored is lost.
@Suite("the hub's API under hostile requests", .timeLimit(.minutes(10)))
struct HubAPIHardeningTests {
    static let viewerToken = "viewer-" + UUID().uuidString

    /// A hub whose access.json has a viewer token, with kubectl for the admin.
    static func hub(_ federation: LocalFederation, extraArguments: [String] = []) async throws -> (ManagedProcess, Kubectl) {
        try #"{"users": {"admin": "admin"}, "tokens": [{"token": "\#(viewerToken)", "user": "ci", "role": "viewer"}]}"#
            .write(toFile: federation.directory.accessPolicyPath, atomically: true, encoding: .utf8)
        chmod(federation.directory.accessPolicyPath, 0o600)
        let (hub, _) = try await federation.startHub(extraArguments: extraArguments)
        return (hub, try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-admin"))
    }

    static func viewerCurl(_ path: String, in federation: LocalFederation, extra: [String] = []) async throws -> String {
        let port = try #require(try federation.directory.readPorts()?.api)
        return try await curl(
            ["--cacert", federation.directory.caCertificatePath, "-H", "Authorization: Bearer \(viewerToken)"] + extra + [
                "https://127.0.0.1:\(port)\(path)"
            ],
            in: federation
        )
    }

    @Test("a viewer's watch with timeoutSeconds=9223372036854775807 is served and cut to the maximum; the hub, its API and its agent port stay up")
    func hugeWatchTimeout() async throws {
        try await withFederation { federation in
            let (hub, admin) = try await Self.hub(federation)
            let port = try #require(try federation.directory.readPorts()?.agent)
            let agent = try federation.startAgent(bundle: try federation.issueBundle(cluster: "eu-1", hubPort: port))
            try await agent.waitForEvent("session.established", within: .seconds(20))
            // curl gives up after 3 s of an open stream (exit 28): the watch was served, not refused.
            let watched = try await Self.viewerCurl(
                "/api/v1/configmaps?watch=true&timeoutSeconds=9223372036854775807", in: federation,
                extra: ["--max-time", "3", "-o", "/dev/null", "-w", "%{http_code}"]
            )
            #expect(watched.contains("200"), "\(watched)")
            #expect(hub.exitStatus == nil, "the hub is still running")
            #expect(try await admin.succeed(["get", "namespaces", "-o", "name"]).contains("namespace/default"))
            #expect(!agent.lines.contains { $0.event == "session.ended" }, "the agent's session was never cut")
            // Nonsense is a 400, not a crash.
            for bad in ["-5", "soon", "99999999999999999999999"] {
                let answer = try await Self.viewerCurl("/api/v1/configmaps?watch=true&timeoutSeconds=\(bad)", in: federation)
                #expect(answer.contains(#""code":400"#), "\(bad): \(answer)")
            }
            #expect(hub.exitStatus == nil)
        }
    }

    @Test("invalid names are refused with 422 and nothing is stored: a/b, .., UPPER_case, 5,000 characters, a bad label")
    func invalidNames() async throws {
        try await withFederation { federation in
            _ = try await Self.hub(federation)
            let client = try APIClient(federation)
            let before = try await client.request("GET", "/api/v1/namespaces/default/configmaps")
            for name in ["a/b", "..", "UPPER_case", String(repeating: "n", count: 5_000)] {
                let body = #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"\#(name)"}}"#
                let answer = try await client.request("POST", "/api/v1/namespaces/default/configmaps", body: body)
                #expect(answer.code == 422 && answer.body.contains(#""reason":"Invalid""#), "\(name.prefix(20)): \(answer.body.prefix(300))")
                #expect(answer.body.count < 2_000, "the error does not repeat a huge name")
            }
            let badLabel = #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ok","labels":{"bad key":"v"}}}"#
            #expect(try await client.request("POST", "/api/v1/namespaces/default/configmaps", body: badLabel).code == 422)
            let badNamespace = #"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"Shop.Prod"}}"#
            #expect(try await client.request("POST", "/api/v1/namespaces", body: badNamespace).code == 422)
            #expect(try await client.request("GET", "/api/v1/namespaces/default/configmaps").body == before.body)
        }
    }

    @Test("an object nested past the limit and a copy-amplified JSON patch are refused; every read still works and nothing changed")
    func amplification() async throws {
        try await withFederation { federation in
            _ = try await Self.hub(federation)
            let client = try APIClient(federation)
            var nested = #""leaf""#
            for _ in 0..<60 { nested = #"{"a":\#(nested)}"# }
            let deep = #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"deep"},"data":{"x":"y"},"extra":\#(nested)}"#
            let refusedDeep = try await client.request("POST", "/api/v1/namespaces/default/configmaps", body: deep)
            #expect(refusedDeep.code == 400, "\(refusedDeep.body.prefix(300))")

            let seed = #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"seed"},"data":{"a":"\#(String(repeating: "x", count: 20_000))"}}"#
            #expect(try await client.request("POST", "/api/v1/namespaces/default/configmaps", body: seed).code == 201)
            let stored = try await client.request("GET", "/api/v1/namespaces/default/configmaps/seed")
            // 600 copies, each doubling a subtree: a 27 KB request that would build gigabytes.
            var operations = [#"{"op":"add","path":"/data/b","value":{}}"#]
            operations += [#"{"op":"copy","from":"/data/a","path":"/data/b/0"}"#]
            for index in 1..<600 { operations.append(#"{"op":"copy","from":"/data/b","path":"/data/b/\#(index)"}"#) }
            let patch = "[" + operations.joined(separator: ",") + "]"
            let refusedPatch = try await client.request(
                "PATCH", "/api/v1/namespaces/default/configmaps/seed", contentType: "application/json-patch+json", body: patch)
            #expect([413, 422].contains(refusedPatch.code), "\(refusedPatch.code): \(refusedPatch.body.prefix(300))")
            // A patch that only deepens the object is refused too.
            var deepen: [String] = []
            var path = "/data"
            for index in 0..<60 {
                deepen.append(#"{"op":"add","path":"\#(path)/n\#(index)","value":{}}"#)
                path += "/n\(index)"
            }
            let refusedDeepen = try await client.request(
                "PATCH", "/api/v1/namespaces/default/configmaps/seed", contentType: "application/json-patch+json",
                body: "[" + deepen.joined(separator: ",") + "]")
            #expect(refusedDeepen.code == 422, "\(refusedDeepen.body.prefix(300))")
            #expect(try await client.request("GET", "/api/v1/namespaces/default/configmaps/seed").body == stored.body)
            #expect(try await client.request("GET", "/api/v1/configmaps").code == 200)
        }
    }

    @Test("eight viewer watches replaying old history hold hub memory bounded, and an admin's write stays fast")
    func replayingWatches() async throws {
        try await withFederation { federation in
            let (hub, admin) = try await Self.hub(federation)
            let client = try APIClient(federation)
            // About 40 MB of history: 200 versions of a 200 KB ConfigMap.
            let payload = String(repeating: "h", count: 200_000)
            let start = try #require(ProcessProbe.residentBytes(of: hub.processIdentifier))
            #expect(
                try await client.request(
                    "POST", "/api/v1/namespaces/default/configmaps",
                    body: #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"history"},"data":{"v":"0","p":"\#(payload)"}}"#
                ).code == 201)
            for version in 1...200 {
                _ = try await client.request(
                    "PATCH", "/api/v1/namespaces/default/configmaps/history", contentType: "application/merge-patch+json",
                    body: #"{"data":{"v":"\#(version)"}}"#)
            }
            let baseline = try #require(ProcessProbe.residentBytes(of: hub.processIdentifier))
            // Answered requests are not kept: 200 answers of 200 KB each once stayed alive for the
            // request timeout (a timer held each one), 60 MB here.
            #expect(baseline - start < 40 * 1_048_576, "writing the history grew the hub by \((baseline - start) / 1_048_576) MiB")
            // Eight watchers that read at 20 KB/s: the hub must not hold their whole replays.
            let watchers = try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        _ = try await Self.viewerCurl(
                            "/api/v1/configmaps?watch=true&resourceVersion=1&timeoutSeconds=8", in: federation,
                            extra: ["--limit-rate", "20k", "-o", "/dev/null"])
                    }
                }
                // Meanwhile an admin writes: it must not wait behind the replays.
                var worst = Duration.zero
                var peak = baseline
                for index in 0..<10 {
                    let started = ContinuousClock.now
                    try await admin.succeed(["create", "configmap", "during-\(index)"])
                    worst = max(worst, ContinuousClock.now - started)
                    peak = max(peak, ProcessProbe.residentBytes(of: hub.processIdentifier) ?? 0)
                }
                try await group.waitForAll()
                return (worst, peak)
            }
            let (worst, peak) = watchers
            print("replaying watches: hub RSS \(baseline / 1_048_576) MiB -> peak \(peak / 1_048_576) MiB; slowest admin create \(worst)")
            #expect(peak - baseline < 200 * 1_048_576, "hub grew \((peak - baseline) / 1_048_576) MiB")
            #expect(worst < .seconds(5), "an admin create took \(worst)")
        }
    }

    @Test("access.json reloads on change and on SIGHUP: a removed token stops working; a bad file is refused and the old policy kept")
    func accessReload() async throws {
        try await withFederation { federation in
            let (hub, _) = try await Self.hub(federation)
            #expect(try await Self.viewerCurl("/api/v1/namespaces", in: federation).contains("NamespaceList"))
            let second = "second-" + UUID().uuidString
            let path = federation.directory.accessPolicyPath
            try #"{"users": {"admin": "admin"}, "tokens": [{"token": "\#(second)", "user": "ops", "role": "viewer"}]}"#
                .write(toFile: path, atomically: true, encoding: .utf8)
            try await hub.waitForEvent("access.reloaded", within: .seconds(10))
            #expect(try await Self.viewerCurl("/api/v1/namespaces", in: federation).contains(#""code":401"#), "the removed token is refused")
            let port = try #require(try federation.directory.readPorts()?.api)
            let withSecond = try await curl(
                [
                    "--cacert", federation.directory.caCertificatePath, "-H", "Authorization: Bearer \(second)",
                    "https://127.0.0.1:\(port)/api/v1/namespaces",
                ], in: federation
            )
            #expect(withSecond.contains("NamespaceList"))

            // A broken file is refused; the policy in force stays.
            try "{not json".write(toFile: path, atomically: true, encoding: .utf8)
            try await hub.waitForEvent("access.reload_refused", within: .seconds(10))
            let still = try await curl(
                [
                    "--cacert", federation.directory.caCertificatePath, "-H", "Authorization: Bearer \(second)",
                    "https://127.0.0.1:\(port)/api/v1/namespaces",
                ], in: federation
            )
            #expect(still.contains("NamespaceList"))

            // SIGHUP rereads it too (here: back to the first token).
            try #"{"users": {"admin": "admin"}, "tokens": [{"token": "\#(Self.viewerToken)", "user": "ci", "role": "viewer"}]}"#
                .write(toFile: path + ".new", atomically: true, encoding: .utf8)
            let reloads = hub.lines.filter { $0.event == "access.reloaded" }.count
            try FileManager.default.removeItem(atPath: path)
            try await hub.waitForEvent("access.reload_refused", occurrence: 2, within: .seconds(10))
            try FileManager.default.moveItem(atPath: path + ".new", toPath: path)
            hub.send(SIGHUP)
            try await hub.waitForEvent("access.reloaded", occurrence: reloads + 1, within: .seconds(10))
            #expect(try await Self.viewerCurl("/api/v1/namespaces", in: federation).contains("NamespaceList"))

            // The way operators manage tokens: tetherctl writes the file 0600; the hub follows.
            let tetherctl = federation.binaries.url("tetherctl")
            let create = try federation.launch(
                name: "token-create", executable: tetherctl,
                arguments: ["token", "create", "--dir", federation.directory.path, "--user", "ops", "--role", "viewer"])
            #expect(await create.waitForExit(within: .seconds(20)) == 0)
            let issued = try #require(create.lines.last?.raw)
            let mode = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue
            #expect(mode == 0o600)
            // The policy now has two tokens: the viewer's and the new one.
            try await hub.waitForEvent("access.reloaded", within: .seconds(10)) { $0["tether.tokens"] == "2" }
            let base = ["--cacert", federation.directory.caCertificatePath, "https://127.0.0.1:\(port)/api/v1/namespaces"]
            #expect(try await curl(["-H", "Authorization: Bearer \(issued)"] + base, in: federation).contains("NamespaceList"))
            let mark = hub.mark
            let revoke = try federation.launch(
                name: "token-revoke", executable: tetherctl, arguments: ["token", "revoke", "--dir", federation.directory.path, "--user", "ops"])
            #expect(await revoke.waitForExit(within: .seconds(20)) == 0)
            // The reload that reads the revoked file (one write can be noticed twice: any later
            // reload of the old file would not make the token stop working).
            try await hub.waitForEvent("access.reloaded", after: mark, within: .seconds(10)) { $0["tether.tokens"] == "1" }
            #expect(try await curl(["-H", "Authorization: Bearer \(issued)"] + base, in: federation).contains(#""code":401"#))
        }
    }

    @Test("past the in-flight limit a request gets 429 with Retry-After; health checks still answer")
    func inFlightLimit() async throws {
        try await withFederation { federation in
            let (_, admin) = try await Self.hub(federation, extraArguments: ["--max-requests-inflight", "1", "--max-watches-per-user", "2"])
            // Something to list, so each watch streams at once (curl shows the head with the first bytes of body).
            try await admin.succeed(["create", "configmap", "present"])
            // Two watches fill the viewer's watch budget; the third is 429.
            let port = try #require(try federation.directory.readPorts()?.api)
            let base = ["--silent", "--cacert", federation.directory.caCertificatePath, "-H", "Authorization: Bearer \(Self.viewerToken)"]
            for index in 0..<2 {
                let holder = try federation.launch(
                    name: "watch-\(index)", executable: URL(fileURLWithPath: "/usr/bin/curl"),
                    arguments: base + ["-N", "-i", "--max-time", "30", "https://127.0.0.1:\(port)/api/v1/configmaps?watch=true&timeoutSeconds=25"]
                )
                try await holder.waitForLine(within: .seconds(10), "the watch's 200") { $0.raw.hasPrefix("HTTP/1.1 200") }
            }
            let third = try await curl(
                base + ["-i", "--max-time", "5", "https://127.0.0.1:\(port)/api/v1/configmaps?watch=true&timeoutSeconds=1"], in: federation)
            #expect(
                third.contains(" 429") && third.lowercased().contains("retry-after: 1") && third.contains("TooManyRequests"), "\(third.prefix(600))")
            #expect(
                try await curl(["--cacert", federation.directory.caCertificatePath, "https://127.0.0.1:\(port)/healthz"], in: federation).contains(
                    "ok"))
        }
    }
}
