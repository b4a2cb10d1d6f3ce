import TetherJSON

/// The short name Kubernetes gives a pod template: the suffix of a Deployment's ReplicaSet
/// (`pod-template-hash`), of a StatefulSet's or DaemonSet's ControllerRevision, and the
/// `controller-revision-hash` label of the Pods made from it. The API records revisions under it
/// and the simulated members label their Pods with it, so both must compute it alike.
public enum PodTemplateHash {
    /// Kubernetes' alphabet for generated name suffixes: no vowels, no look-alike digits.
    private static let alphabet = Array("bcdfghjklmnpqrstvwxz2456789")

    /// The same template (its `null`s aside) always gets the same ten characters.
    public static func of(_ template: JSONValue) -> String {
        var hash = StableHash()
        hash.combine(template.withoutNulls)
        var value = hash.value
        var text = ""
        for _ in 0..<10 {
            text.append(alphabet[Int(value % UInt64(alphabet.count))])
            value /= UInt64(alphabet.count)
        }
        return text
    }
}

extension JSONValue {
    /// The value without its `null` members, at every depth: what Kubernetes reads where a client
    /// sent `null` for absent (`kubectl rollout undo` sends back `creationTimestamp: null`), and
    /// what a merge patch leaves.
    public var withoutNulls: JSONValue {
        switch self {
        case .object(let members): .object(members.filter { $0.value != .null }.mapValues(\.withoutNulls))
        case .array(let items): .array(items.map(\.withoutNulls))
        default: self
        }
    }
}
