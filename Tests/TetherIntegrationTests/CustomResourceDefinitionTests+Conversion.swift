import Foundation
import Testing
import TetherLocal
import TetherTestSupport

extension CustomResourceDefinitionTests {
    static let conversionWebhook = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
        "Scripts/conversion-webhook.py")

    /// A CA and a server certificate for 127.0.0.1 it signed, made with the system's openssl in `folder`; returns the CA's PEM.
    static func webhookCertificates(in folder: String, name: String) async throws -> String {
        let (ca, key) = ("\(folder)/\(name)-ca.crt", "\(folder)/\(name)-ca.key")
        let curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try await runCommand(["openssl", "req", "-x509"] + curve + ["-keyout", key, "-out", ca, "-subj", "/CN=\(name) webhook CA", "-days", "1"])
        try await runCommand(
            ["openssl", "req"] + curve + ["-keyout", "\(folder)/\(name).key", "-out", "\(folder)/\(name).csr", "-subj", "/CN=127.0.0.1"])
        try "subjectAltName=IP:127.0.0.1\n".write(toFile: "\(folder)/\(name).ext", atomically: true, encoding: .utf8)
        try await runCommand([
            "openssl", "x509", "-req", "-in", "\(folder)/\(name).csr", "-CA", ca, "-CAkey", key, "-CAcreateserial", "-out", "\(folder)/\(name).crt",
            "-days", "1", "-extfile", "\(folder)/\(name).ext",
        ])
        return try String(contentsOfFile: ca, encoding: .utf8)
    }

    /// CronTabs stored at v1 (`spec.schedule`) and served at v1beta1 (`spec.cronSpec`), converted by the webhook at `url`.
    static func convertedDefinition(url: String, caBundle: String) -> String {
        """
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata: {name: crontabs.stable.example.com}
        spec:
          group: stable.example.com
          scope: Namespaced
          names: {plural: crontabs, singular: crontab, kind: CronTab}
          conversion:
            strategy: Webhook
            webhook:
              conversionReviewVersions: [v1]
              clientConfig: {url: "\(url)", caBundle: "\(Data(caBundle.utf8).base64EncodedString())"}
          versions:
          - name: v1
            served: true
            storage: true
            schema:
              openAPIV3Schema:
                type: object
                properties:
                  spec: {type: object, required: [schedule], properties: {schedule: {type: string}, image: {type: string}}}
          - name: v1beta1
            served: true
            storage: false
            schema:
              openAPIV3Schema:
                type: object
                properties:
                  spec: {type: object, required: [cronSpec], properties: {cronSpec: {type: string}, image: {type: string}}}
        """
    }

    @Test(
        "a definition whose versions a webhook converts: an object sent at v1beta1 is stored at v1 as the webhook made it, and reads, lists and watches at v1beta1 go through the webhook; a webhook that refuses, answers short, answers garbage or at the wrong version, presents another CA or is down fails the request with why, and the storage version still reads"
    )
    func conversionByWebhook() async throws {
        try await withFederation { federation in
            _ = try await federation.startHub(heartbeatInterval: 1)
            let hubctl = try Kubectl(.modern, kubeconfig: federation.kubeconfigPath, home: federation.root + "/home-hub")
            let ca = try await Self.webhookCertificates(in: federation.root, name: "webhook")
            let otherCA = try await Self.webhookCertificates(in: federation.root, name: "stranger")
            let server = try federation.launch(
                name: "conversion-webhook", executable: URL(fileURLWithPath: try PythonClientTests.python()),
                arguments: [Self.conversionWebhook.path, federation.root + "/webhook.crt", federation.root + "/webhook.key"])
            let listening = try await server.waitForLine(within: .seconds(20), "the webhook listening") { $0.raw.hasPrefix("listening ") }
            let base = "https://127.0.0.1:\(listening.raw.dropFirst("listening ".count))"

            try await hubctl.succeed(["apply", "-f", "-"], stdin: Self.convertedDefinition(url: base + "/convert", caBundle: ca))
            try await hubctl.succeed(["wait", "--for=condition=Established", "crd/crontabs.stable.example.com", "--timeout=10s"])
            let atBeta = """
                apiVersion: stable.example.com/v1beta1
                kind: CronTab
                metadata: {name: nightly}
                spec: {cronSpec: "0 3 * * *", image: backup:1.2}
                """
            try await hubctl.succeed(["apply", "-f", "-"], stdin: atBeta)
            let again = try await hubctl.succeed(["apply", "-f", "-"], stdin: atBeta)
            #expect(again.contains("unchanged"), "\(again)")
            let stored = try await hubctl.succeed(["get", "crontabs.v1.stable.example.com", "nightly", "-o", "jsonpath={.spec}"])
            #expect(stored.contains("\"schedule\":\"0 3 * * *\"") && !stored.contains("cronSpec"), "\(stored)")
            let beta = "crontabs.v1beta1.stable.example.com"
            #expect(
                try await hubctl.succeed(["get", beta, "nightly", "-o", "jsonpath={.apiVersion} {.spec.cronSpec}"])
                    == "stable.example.com/v1beta1 0 3 * * *")
            #expect(try await hubctl.succeed(["get", beta, "-o", "jsonpath={.items[*].spec.cronSpec}"]) == "0 3 * * *")
            try await hubctl.succeed(["patch", beta, "nightly", "--type=merge", "-p", #"{"spec":{"cronSpec":"0 4 * * *"}}"#])
            #expect(try await hubctl.succeed(["get", "crontabs.v1.stable.example.com", "nightly", "-o", "jsonpath={.spec.schedule}"]) == "0 4 * * *")
            // A watch at v1beta1 (its initial events, until the server's own timeout) comes through the webhook too.
            let watched = try await hubctl.succeed([
                "get", "--raw", "/apis/stable.example.com/v1beta1/namespaces/default/crontabs?watch=1&timeoutSeconds=2",
            ])
            #expect(watched.contains("\"type\":\"ADDED\"") && watched.contains("\"cronSpec\":\"0 4 * * *\""), "\(watched)")

            // Each failure fails the request at v1beta1 with the webhook's reason; v1 needs no conversion.
            func failsAtBeta(_ url: String, caBundle: String, _ reason: String) async throws {
                try await hubctl.succeed(["apply", "-f", "-"], stdin: Self.convertedDefinition(url: url, caBundle: caBundle))
                // kubectl apply of a definition returns once the hub serves it (as kube-apiserver's).
                let failed = try await hubctl.run(["get", beta, "nightly", "-o", "json"])
                #expect(
                    failed.status != 0 && failed.stderr.contains("conversion webhook for stable.example.com/v1beta1, Kind=CronTab failed")
                        && failed.stderr.contains(reason), "\(failed)")
                #expect(
                    try await hubctl.succeed(["get", "crontabs.v1.stable.example.com", "nightly", "-o", "jsonpath={.spec.schedule}"]) == "0 4 * * *")
            }
            try await failsAtBeta(base + "/refuse", caBundle: ca, "this webhook refuses every object")
            try await failsAtBeta(base + "/short", caBundle: ca, "expected 1 converted objects, got 0")
            try await failsAtBeta(base + "/garbage", caBundle: ca, "POST \(base)/garbage: the answer is not a ConversionReview in JSON")
            try await failsAtBeta(
                base + "/unconverted", caBundle: ca, "the object nightly came back at stable.example.com/v1, not stable.example.com/v1beta1")
            try await failsAtBeta(
                base + "/convert", caBundle: otherCA,
                "POST \(base)/convert: the webhook's certificate is not signed by a CA in the definition's clientConfig.caBundle")
            try await hubctl.succeed(["apply", "-f", "-"], stdin: Self.convertedDefinition(url: base + "/convert", caBundle: ca))
            _ = try await hubctl.waitForOutput(["get", beta, "nightly", "-o", "jsonpath={.spec.cronSpec}"]) { $0 == "0 4 * * *" }
            _ = await server.stop()
            let down = try await hubctl.run(["get", beta, "nightly", "-o", "json"])
            #expect(down.status != 0 && down.stderr.contains("conversion webhook for stable.example.com/v1beta1, Kind=CronTab failed"), "\(down)")

            // A Service reference cannot be called from the hub: refused, saying what to give.
            let service = Self.convertedDefinition(url: base, caBundle: ca).replacingOccurrences(
                of: "clientConfig: {url: \"\(base)\",", with: "clientConfig: {service: {namespace: default, name: converter},")
            let refused = try await hubctl.run(["apply", "-f", "-"], stdin: service)
            #expect(refused.status != 0 && refused.stderr.contains("the hub runs no Services to call; give clientConfig.url"), "\(refused)")
        }
    }
}
