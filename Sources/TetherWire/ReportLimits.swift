import TetherJSON
import TetherModel

/// Bounds on what an agent tells the hub: everything an agent's message puts on a `Cluster`
/// object or into a federated object's status passes through these first.
///
/// The hub refuses a message outside them (an `error` frame with code `invalid-report`, then a
/// close, counted as a security event); an agent keeps its own messages inside them
/// (``clipped(_:)``), so only a broken or hostile agent is ever refused.
public enum ReportLimits {
    /// A free-text message: an object's status message, an apply failure, the cluster health note.
    public static let maximumMessageBytes = 1024
    /// An object's summary fields, as compact JSON.
    public static let maximumSummaryBytes = 8 * 1024
    /// Nesting of an object's summary fields.
    public static let maximumSummaryDepth = 8
    /// Objects in one `status` message (the agent sends 500 at most).
    public static let maximumObjectsPerStatus = 1_000
    /// Failures in one `ack`.
    public static let maximumFailuresPerAck = 10_000
    /// Kinds a `hello` may announce, and the length of each (`group/version/Kind`).
    public static let maximumKinds = 256
    public static let maximumKindBytes = 128
    /// Versions an agent reports (its own, the member's Kubernetes version).
    public static let maximumVersionBytes = 64
    /// Protocol versions a `hello` may list.
    public static let maximumProtocolVersions = 16
    /// Entries of a heartbeat's allocatable resources, and the length of each name.
    public static let maximumAllocatableEntries = 32
    public static let maximumResourceNameBytes = 63

    /// `text` cut to ``maximumMessageBytes`` at a character boundary, marked when cut.
    public static func clipped(_ text: String) -> String {
        guard text.utf8.count > maximumMessageBytes else { return text }
        var result = ""
        var bytes = 0
        for character in text {
            let size = character.utf8.count
            guard bytes + size <= maximumMessageBytes - 3 else { break }
            result.append(character)
            bytes += size
        }
        return result + "..."
    }

    /// Why `hello` is out of bounds, or nil.
    /// A digest is 16 hexadecimal digits; a proxy's scheme, host and port fit well within 300 bytes.
    public static let maximumDigestBytes = 64
    public static let maximumProxyBytes = 300

    public static func problem(in hello: Hello) -> String? {
        if hello.protocolVersions.count > maximumProtocolVersions {
            return "hello lists \(hello.protocolVersions.count) protocol versions; at most \(maximumProtocolVersions)"
        }
        if hello.agentVersion.utf8.count > maximumVersionBytes {
            return "hello's agentVersion is \(hello.agentVersion.utf8.count) bytes; at most \(maximumVersionBytes)"
        }
        if hello.kinds.count > maximumKinds { return "hello announces \(hello.kinds.count) kinds; at most \(maximumKinds)" }
        if let long = hello.kinds.first(where: { $0.utf8.count > maximumKindBytes }) {
            return "hello announces a kind of \(long.utf8.count) bytes; at most \(maximumKindBytes)"
        }
        if let digest = hello.lastAppliedDigest, digest.utf8.count > maximumDigestBytes {
            return "hello's lastAppliedDigest is \(digest.utf8.count) bytes; at most \(maximumDigestBytes)"
        }
        if let proxy = hello.proxy, proxy.utf8.count > maximumProxyBytes {
            return "hello names a proxy of \(proxy.utf8.count) bytes; at most \(maximumProxyBytes)"
        }
        return nil
    }

    /// Why `heartbeat` is out of bounds, or nil.
    public static func problem(in heartbeat: Heartbeat) -> String? {
        guard let health = heartbeat.cluster else { return nil }
        if let version = health.kubernetesVersion, version.utf8.count > maximumVersionBytes {
            return "the heartbeat's kubernetesVersion is \(version.utf8.count) bytes; at most \(maximumVersionBytes)"
        }
        if let message = health.message, message.utf8.count > maximumMessageBytes {
            return "the heartbeat's message is \(message.utf8.count) bytes; at most \(maximumMessageBytes)"
        }
        if (health.nodeCount ?? 0) < 0 || (health.readyNodeCount ?? 0) < 0 { return "the heartbeat reports a negative node count" }
        if let allocatable = health.allocatable {
            if allocatable.count > maximumAllocatableEntries {
                return "the heartbeat reports \(allocatable.count) allocatable resources; at most \(maximumAllocatableEntries)"
            }
            if allocatable.keys.contains(where: { $0.utf8.count > maximumResourceNameBytes }) {
                return "the heartbeat names an allocatable resource longer than \(maximumResourceNameBytes) bytes"
            }
        }
        return nil
    }

    /// Why `report` is out of bounds, or nil. (Its states and health are a fixed vocabulary
    /// already: a value outside it does not decode.)
    public static func problem(in report: StatusReport) -> String? {
        if report.objects.count > maximumObjectsPerStatus {
            return "status reports \(report.objects.count) objects; at most \(maximumObjectsPerStatus) per message"
        }
        for status in report.objects {
            if let problem = problem(in: status.object) { return "status: \(problem)" }
            if let message = status.message, message.utf8.count > maximumMessageBytes {
                return "status of \(status.object): the message is \(message.utf8.count) bytes; at most \(maximumMessageBytes)"
            }
            let summary = JSONValue.object(status.summary)
            if summary.nestingDepth(stoppingAfter: maximumSummaryDepth) > maximumSummaryDepth {
                return "status of \(status.object): the summary nests deeper than \(maximumSummaryDepth) levels"
            }
            if summary.encodedSize(stoppingAfter: maximumSummaryBytes) > maximumSummaryBytes {
                return "status of \(status.object): the summary is more than \(maximumSummaryBytes) bytes"
            }
        }
        return nil
    }

    /// Why `ack` is out of bounds, or nil.
    public static func problem(in ack: Ack) -> String? {
        if let hold = ack.hold,
            hold.message.utf8.count > maximumMessageBytes || hold.token.utf8.count > 128 || hold.wouldRemove < 0 || hold.managed < 0
        {
            return "ack's hold is out of bounds (message of 1 KiB, token of 128 bytes)"
        }
        if ack.failures.count > maximumFailuresPerAck {
            return "ack lists \(ack.failures.count) failures; at most \(maximumFailuresPerAck)"
        }
        for failure in ack.failures {
            if let problem = problem(in: failure.object) { return "ack: \(problem)" }
            if failure.message.utf8.count > maximumMessageBytes {
                return "ack of \(failure.object): the message is \(failure.message.utf8.count) bytes; at most \(maximumMessageBytes)"
            }
        }
        return nil
    }

    /// A reference no Kubernetes object could have: names past their kinds' limits.
    private static func problem(in reference: ObjectReference) -> String? {
        if reference.apiVersion.utf8.count > 317 || reference.kind.utf8.count > 63 || (reference.namespace?.utf8.count ?? 0) > 63
            || reference.name.utf8.count > 253
        {
            return "an object reference longer than Kubernetes allows (\(reference.kind.prefix(63)) \(reference.name.prefix(63))...)"
        }
        return nil
    }
}
