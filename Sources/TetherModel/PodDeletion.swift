import TetherJSON

/// How kube-apiserver deletes a Pod where a kubelet runs it: a Pod that is scheduled and has not
/// finished gets a grace period (what the deletion asked, else its
/// `terminationGracePeriodSeconds`, 30 by default) for its kubelet to stop its containers;
/// any other Pod, or a deletion asking for zero, goes at once.
public enum PodDeletion {
    public static let defaultGracePeriodSeconds: Int64 = 30

    /// The grace period deleting `pod` gets, or nil to delete it at once.
    public static func gracePeriod(of pod: JSONValue, asked: Int64? = nil) -> Int64? {
        guard pod.string(at: "spec", "nodeName")?.isEmpty == false,
            !pod.podFinished
        else { return nil }
        let grace = asked ?? pod.integer(at: "spec", "terminationGracePeriodSeconds") ?? defaultGracePeriodSeconds
        return grace > 0 ? grace : nil
    }
}

extension JSONValue {
    /// Whether this Pod has finished (`Succeeded` or `Failed`, evicted included): its end is
    /// final, its containers hold nothing, and no controller counts it as running.
    public var podFinished: Bool {
        ["Succeeded", "Failed"].contains(string(at: "status", "phase") ?? "")
    }
}
