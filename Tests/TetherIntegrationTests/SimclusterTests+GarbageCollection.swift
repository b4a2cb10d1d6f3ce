import Foundation
import Testing
import TetherTestSupport

extension SimclusterTests {
    /// A ConfigMap named `name` whose `ownerReferences` name each of `owners` (name and uid).
    private func dependent(_ name: String, of owners: [(name: String, uid: String)], blocking: Bool = false, finalizer: String? = nil) -> String {
        let references = owners.map {
            "{apiVersion: v1, kind: ConfigMap, name: \($0.name), uid: \"\($0.uid)\"\(blocking ? ", blockOwnerDeletion: true" : "")}"
        }
        return """
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: \(name)
              ownerReferences: [\(references.joined(separator: ", "))]
            \(finalizer.map { "  finalizers: [\($0)]" } ?? "")
            data: {k: v}
            """
    }

    @Test(
        "the garbage collector deletes an object whose owners are all gone, keeps one another owner holds (dropping the gone reference), orphans on --cascade=orphan, and holds a foreground deletion until its blocking dependents are gone (two that own each other included)"
    )
    func garbageCollection() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 2)
            func uid(_ name: String) async throws -> String {
                try await kubectl.succeed(["create", "configmap", name, "--from-literal=k=v"])
                return try await kubectl.succeed(["get", "configmap", name, "-o", "jsonpath={.metadata.uid}"])
            }
            let parent = try await uid("parent")
            let keeper = try await uid("keeper")
            try await kubectl.succeed(["apply", "-f", "-"], stdin: dependent("child", of: [("parent", parent)]))
            try await kubectl.succeed(["apply", "-f", "-"], stdin: dependent("shared", of: [("parent", parent), ("keeper", keeper)]))
            // An owner that never existed: collected as soon as it is seen.
            try await kubectl.succeed(["apply", "-f", "-"], stdin: dependent("stray", of: [("nobody", "00000000-0000-0000-0000-000000000000")]))
            try await kubectl.succeed(["wait", "--for=delete", "configmap/stray", "--timeout=30s"], within: .seconds(40))
            // A reference the collector could not follow is refused, as kube-apiserver refuses it.
            let unnamed = try await kubectl.run(["apply", "-f", "-"], stdin: dependent("unnamed", of: [("parent", "")]))
            #expect(
                unnamed.status != 0 && unnamed.stderr.contains("metadata.ownerReferences.uid: Invalid value: \"\": uid must not be empty"),
                "\(unnamed.stderr)")

            // Background (kubectl's default): the owner goes at once, its dependents after it.
            try await kubectl.succeed(["delete", "configmap", "parent"])
            try await kubectl.succeed(["wait", "--for=delete", "configmap/child", "--timeout=30s"], within: .seconds(40))
            try await kubectl.succeed(["wait", "--for=jsonpath={.metadata.ownerReferences[*].name}=keeper", "configmap/shared", "--timeout=30s"])

            // Orphan: the Deployment goes, its ReplicaSet and Pods stay, owned by nobody.
            try await kubectl.succeed(["create", "deployment", "web", "--image=nginx:1.27", "--replicas=2"])
            try await kubectl.succeed(["rollout", "status", "deployment/web", "--timeout=60s"], within: .seconds(70))
            let replicaSet = try await kubectl.succeed(["get", "rs", "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}"])
            try await kubectl.succeed(["delete", "deployment", "web", "--cascade=orphan"])
            try await kubectl.succeed(["wait", "--for=delete", "deployment/web", "--timeout=30s"], within: .seconds(40))
            #expect(try await kubectl.succeed(["get", "rs", replicaSet, "-o", "jsonpath={.metadata.ownerReferences}"]).isEmpty)
            #expect(try await kubectl.succeed(["get", "rs", replicaSet, "-o", "jsonpath={.status.readyReplicas}"]) == "2")
            // The orphaned ReplicaSet still owns its Pods, and deleting it takes them.
            let pods = try await kubectl.succeed(["get", "pods", "-l", "app=web", "-o", "name"]).split(separator: "\n").map(String.init)
            #expect(pods.count == 2, "\(pods)")
            try await kubectl.succeed(["delete", "rs", replicaSet])
            for pod in pods { try await kubectl.succeed(["wait", "--for=delete", pod, "--timeout=30s"], within: .seconds(40)) }

            // Foreground: the owner waits, marked, until its blocking dependent is gone.
            let held = try await uid("held")
            try await kubectl.succeed(
                ["apply", "-f", "-"], stdin: dependent("blocker", of: [("held", held)], blocking: true, finalizer: "example.com/hold"))
            try await kubectl.succeed(["delete", "configmap", "held", "--cascade=foreground", "--wait=false"])
            try await kubectl.succeed(["wait", "--for=jsonpath={.metadata.deletionTimestamp}", "configmap/blocker", "--timeout=30s"])
            #expect(try await kubectl.succeed(["get", "configmap", "held", "-o", "jsonpath={.metadata.finalizers}"]).contains("foregroundDeletion"))
            try await kubectl.succeed(["patch", "configmap", "blocker", "--type=merge", "-p", #"{"metadata":{"finalizers":null}}"#])
            try await kubectl.succeed(["wait", "--for=delete", "configmap/held", "--timeout=30s"], within: .seconds(40))
            #expect(try await kubectl.run(["get", "configmap", "blocker"]).status != 0)

            // Two that own each other, each blocking: a foreground deletion of one takes both.
            let first = try await uid("first")
            try await kubectl.succeed(["apply", "-f", "-"], stdin: dependent("second", of: [("first", first)], blocking: true))
            let second = try await kubectl.succeed(["get", "configmap", "second", "-o", "jsonpath={.metadata.uid}"])
            try await kubectl.succeed(["apply", "-f", "-"], stdin: dependent("first", of: [("second", second)], blocking: true))
            try await kubectl.succeed(["delete", "configmap", "first", "--cascade=foreground", "--timeout=30s"], within: .seconds(40))
            try await kubectl.succeed(["wait", "--for=delete", "configmap/second", "--timeout=30s"], within: .seconds(40))
        }
    }
}
