import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import TetherJSON

@testable import TetherAPI

/// `pods/ephemeralcontainers` (kubectl debug) and the `details` of a 404, which kubectl reads.
@Suite("ephemeral containers and not-found details")
struct EphemeralContainersTests {
    typealias API = APIRoutingTests

    static let pod: JSONValue = [
        "apiVersion": "v1", "kind": "Pod", "metadata": ["name": "web", "namespace": "default"],
        "spec": [
            "containers": [["name": "web", "image": "nginx:1.27"]], "initContainers": [["name": "setup", "image": "busybox"]],
            "ephemeralContainers": [["name": "debugger-a", "image": "busybox", "targetContainerName": "web"]],
        ],
    ]

    @Test(
        "containers are only added: removing or changing one, reusing a name, or setting ports, probes or resources is refused in kube-apiserver's words"
    )
    func problems() {
        let kept: JSONValue = ["name": "debugger-a", "image": "busybox", "targetContainerName": "web"]
        #expect(
            ResourceOperation.ephemeralContainerProblems([kept, ["name": "debugger-b", "image": "busybox", "resources": [:]]], in: Self.pod).isEmpty)
        #expect(
            ResourceOperation.ephemeralContainerProblems([], in: Self.pod) == [
                "spec.ephemeralContainers: Forbidden: existing ephemeral containers \"debugger-a\" may not be removed"
            ])
        #expect(
            ResourceOperation.ephemeralContainerProblems([["name": "debugger-a", "image": "alpine"]], in: Self.pod) == [
                "spec.ephemeralContainers[\"debugger-a\"]: Forbidden: may not be changed once added"
            ])
        let added: [JSONValue] = [
            kept,
            ["name": "web", "image": "busybox"],
            ["name": "Bad_Name", "image": "busybox"],
            ["name": "noimage"],
            ["name": "ported", "image": "busybox", "ports": [["containerPort": 80]], "readinessProbe": ["tcpSocket": ["port": 80]]],
            ["name": "sized", "image": "busybox", "resources": ["limits": ["cpu": "1"]]],
            ["name": "aimed", "image": "busybox", "targetContainerName": "nosuch"],
        ]
        #expect(
            ResourceOperation.ephemeralContainerProblems(added, in: Self.pod) == [
                "spec.ephemeralContainers[1].name: Duplicate value: \"web\"",
                "spec.ephemeralContainers[2].name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')",
                "spec.ephemeralContainers[3].image: Required value",
                "spec.ephemeralContainers[4].ports: Forbidden: cannot be set for an Ephemeral Container",
                "spec.ephemeralContainers[4].readinessProbe: Forbidden: cannot be set for an Ephemeral Container",
                "spec.ephemeralContainers[5].resources: Forbidden: cannot be set for an Ephemeral Container",
                "spec.ephemeralContainers[6].targetContainerName: Not found: \"nosuch\"",
            ])
    }

    @Test(
        "a missing object's 404 names it in details; a missing route's or subresource's has empty details, so kubectl debug at the hub explains instead of crashing"
    )
    func notFoundDetails() async throws {
        try await API.withAPI { client in
            let missing = try await client.execute(uri: "/apis/apps/v1/namespaces/default/deployments/nosuch", method: .get, headers: API.headers())
            #expect(missing.status == .notFound)
            #expect(try API.body(missing)["details"] == ["name": "nosuch", "group": "apps", "kind": "deployments"])
            let core = try await client.execute(uri: "/api/v1/namespaces/default/configmaps/nosuch", method: .get, headers: API.headers())
            #expect(try API.body(core)["details"] == ["name": "nosuch", "kind": "configmaps"])

            let created = try await client.execute(
                uri: "/api/v1/namespaces/default/pods", method: .post, headers: API.headers(), body: API.json(Self.pod))
            #expect(created.status == .created)
            let debug = try await client.execute(
                uri: "/api/v1/namespaces/default/pods/web/ephemeralcontainers", method: .patch,
                headers: API.headers(contentType: "application/strategic-merge-patch+json"),
                body: API.json(["spec": ["ephemeralContainers": [["name": "debugger-b", "image": "busybox"]]]]))
            #expect(debug.status == .notFound)
            let status = try API.body(debug)
            #expect(status["details"] == [:], "kubectl 1.32 dereferences details here")
            #expect(status["message"]?.stringValue?.contains("runs no containers") == true, "\(status)")
            let route = try await client.execute(uri: "/api/v1/nosuchkind", method: .get, headers: API.headers())
            #expect(try API.body(route)["details"] == [:])
        }
    }
}
