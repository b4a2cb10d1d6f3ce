import Foundation
import Testing
import TetherLocal
import TetherSecurity
import TetherTestSupport

/// `kubectl auth` against the hub: the self reviews answered from the roles in access.json.
@Suite("kubectl auth can-i, can-i --list and whoami", .timeLimit(.minutes(3)))
struct KubectlAuthTests {
    @Test("an admin may do anything, a viewer only read; each is told so, and who it is", arguments: Kubectl.Flavor.allCases)
    func reviews(flavor: Kubectl.Flavor) async throws {
        try await withFederation { federation in
            let token = UUID().uuidString
            try """
            {"users": {"admin": "admin"}, "tokens": [{"token": "\(token)", "user": "ci", "role": "viewer"}]}
            """.write(toFile: federation.directory.accessPolicyPath, atomically: true, encoding: .utf8)
            let (admin, _) = try await kubectl(flavor, for: federation)
            let server = try await admin.succeed(["config", "view", "--raw", "-o", "jsonpath={.clusters[0].cluster.server}"])
            let viewerConfig = try tokenKubeconfig(server: server, token: token, for: federation)
            let viewer = try Kubectl(flavor, kubeconfig: viewerConfig, home: federation.root + "/home-viewer-\(flavor)")

            for command in [["create", "deployments"], ["delete", "configmaps", "-n", "default"], ["get", "pods"], ["list", "namespaces"]] {
                let answer = try await admin.run(["auth", "can-i"] + command)
                #expect(answer.status == 0 && answer.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "yes", "admin \(command): \(answer)")
            }
            for (command, allowed) in [
                (["get", "deployments"], true), (["watch", "configmaps"], true), (["create", "deployments"], false),
                (["delete", "namespaces"], false),
            ] {
                let answer = try await viewer.run(["auth", "can-i"] + command)
                // kubectl prints "no - REASON" when the review gives a reason.
                let word = answer.stdout.split(separator: " ").first.map(String.init)?.trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(word == (allowed ? "yes" : "no") && (answer.status == 0) == allowed, "viewer \(command): \(answer.stdout)")
            }

            let list = try await viewer.succeed(["auth", "can-i", "--list"])
            // The last column is the verbs: the viewer's rules never grant every verb, the admin's do.
            let verbs = { (table: String) in
                table.split(separator: "\n").dropFirst().map { line in
                    line.range(of: "[", options: .backwards).map { String(line[$0.lowerBound...]) } ?? ""
                }
            }
            #expect(verbs(list).contains("[get list watch]") && !verbs(list).contains("[*]"), "\(list)")
            #expect(verbs(try await admin.succeed(["auth", "can-i", "--list"])).contains("[*]"))

            if flavor.minor >= 27 {
                let whoami = try await viewer.succeed(["auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}"])
                #expect(whoami.hasPrefix("ci ") && whoami.contains("tether:viewer"), "\(whoami)")
                #expect(try await admin.succeed(["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]) == "admin")
            }

            // Acting as another user is refused, never run with the admin's own rights.
            try await admin.succeed(["create", "configmap", "kept"])
            let impersonated = try await admin.run(["--as=ci", "delete", "configmap", "kept"])
            #expect(impersonated.status != 0 && impersonated.stderr.contains("does not support impersonation"), "\(impersonated)")
            let asGroup = try await admin.run(["--as=ci", "--as-group=tether:viewer", "auth", "can-i", "delete", "configmaps"])
            #expect(asGroup.status != 0 && asGroup.stderr.contains("does not support impersonation"), "\(asGroup)")
            try await admin.succeed(["get", "configmap", "kept"])

            // No ServiceAccount tokens are issued here; kubectl is told how to get a bearer token instead.
            if flavor.minor >= 27 {
                try await admin.succeed(["create", "serviceaccount", "builder"])
                let token = try await admin.run(["create", "token", "builder"])
                #expect(token.status != 0 && token.stderr.contains("tetherctl token create"), "\(token)")
            }
        }
    }
}
