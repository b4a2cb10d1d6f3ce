import Foundation
import TetherTestSupport

/// Writes through several hubs of one federation, each reaching every member.
enum HubWrites {
    /// What reads back the ConfigMaps ``throughEach(_:members:)`` wrote, by uid: the same uids
    /// later mean nothing was replaced.
    static let written = ["get", "configmaps", "from-a", "from-b", "from-c", "-n", "shop", "-o", "jsonpath={.items[*].metadata.uid}"]

    /// Namespace `shop`, then a ConfigMap `from-NAME` through each hub named `a`, `b` and `c`;
    /// returns once every member holds all three.
    static func throughEach(_ controls: [String: Kubectl], members: [String: Kubectl]) async throws {
        try await controls["a"]!.succeed(["create", "namespace", "shop"])
        for name in ["a", "b", "c"] {
            try await controls[name]!.succeed(["create", "configmap", "from-\(name)", "-n", "shop", "--from-literal=hub=\(name)"])
        }
        for member in members.values {
            try await member.succeed(["wait", "--for=create", "configmap/from-c", "-n", "shop", "--timeout=60s"], within: .seconds(70))
            try await member.succeed(["get", "configmap", "from-a", "from-b", "-n", "shop"])
        }
    }

    /// A ConfigMap `last` through `control`; returns once every member holds it.
    static func last(through control: Kubectl, hub: String, members: [String: Kubectl]) async throws {
        try await control.succeed(["create", "configmap", "last", "-n", "shop", "--from-literal=hub=\(hub)"])
        for member in members.values {
            try await member.succeed(["wait", "--for=create", "configmap/last", "-n", "shop", "--timeout=60s"], within: .seconds(70))
        }
    }
}
