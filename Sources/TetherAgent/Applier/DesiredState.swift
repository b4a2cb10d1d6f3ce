import Foundation
import TetherModel
import TetherSecurity

/// Labels and annotations the agent writes on what it applies.
public enum ManagedMarks {
    /// `tether.io/managed-by=<cluster>`: the agent prunes and repairs only objects carrying it.
    public static let managedBy = "tether.io/managed-by"
    /// Which federation's hub the object comes from (`spiffe://<trust-domain>/hub`).
    public static let origin = "tether.io/origin"
    /// The field manager of every server-side apply.
    public static let fieldManager = "tether-agent"
}

/// The last desired set the agent accepted, kept in `STATE/desired.json` so a restarted agent
/// reconciles with no hub.
public struct PersistedDesiredState: Codable, Sendable {
    public var cluster: String
    public var revision: UInt64
    public var objects: [JSONValue]

    public init(cluster: String, revision: UInt64, objects: [JSONValue]) {
        self.cluster = cluster
        self.revision = revision
        self.objects = objects
    }

    public static func path(in directory: String) -> String {
        (directory as NSString).appendingPathComponent("desired.json")
    }

    /// The saved state, or nil when there is none yet. A file for another cluster is an error:
    /// two agents must not share a state directory.
    public static func load(from directory: String, cluster: String) throws(SecurityError) -> PersistedDesiredState? {
        let path = path(in: directory)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let text = try PEMFiles.readText(at: path)
        let state: PersistedDesiredState
        do {
            state = try JSONValueDecoder().decode(PersistedDesiredState.self, from: text.utf8)
        } catch {
            throw SecurityError(.unreadableFile, "\(path) is not a valid \(PersistedDesiredState.self): \(error)")
        }
        guard state.cluster == cluster else {
            throw SecurityError(
                .unreadableFile,
                "\(path) holds the desired state of cluster \(state.cluster), not \(cluster); give each agent its own --state-dir"
            )
        }
        return state
    }

    /// Written to a temporary file, synced and renamed over the old one (mode 0600: it may hold Secrets).
    public func save(to directory: String) throws(SecurityError) {
        try PEMFiles.makeDirectory(directory)
        let data: [UInt8]
        do {
            data = try JSONValueEncoder().encode(self)
        } catch {
            throw SecurityError(.unwritableFile, "cannot encode the desired state: \(error)")
        }
        try PEMFiles.writeAtomically(String(decoding: data, as: UTF8.self), to: Self.path(in: directory), mode: PEMFiles.privateKeyMode)
    }
}

/// Whether a live object still holds what the agent applied.
enum AppliedFields {
    /// True when every field of `desired` outside `metadata` and `status` (and every label and
    /// annotation it sets) has the same value in `live`. Fields the member adds (defaults,
    /// allocated addresses, other managers' fields) do not count as drift.
    static func contained(_ desired: JSONValue, in live: JSONValue) -> Bool {
        let labels = live.labels
        let annotations = live.annotations
        guard desired.labels.allSatisfy({ labels[$0.key] == $0.value }),
            desired.annotations.allSatisfy({ annotations[$0.key] == $0.value })
        else { return false }
        for (key, value) in desired.objectMembers where key != "metadata" && key != "status" {
            guard let liveValue = live[key], subset(value, of: liveValue) else { return false }
        }
        return true
    }

    private static func subset(_ desired: JSONValue, of live: JSONValue) -> Bool {
        switch (desired, live) {
        case (.object(let wanted), .object(let have)):
            return wanted.allSatisfy { key, value in
                guard let other = have[key] else { return value == .null }
                return subset(value, of: other)
            }
        case (.array(let wanted), .array(let have)):
            return wanted.count == have.count && zip(wanted, have).allSatisfy { subset($0, of: $1) }
        case (.integer, .double), (.double, .integer), (.double, .double):
            return desired.numberValue == live.numberValue
        default:
            return desired == live
        }
    }
}

extension JSONValue {
    fileprivate var numberValue: Double? {
        switch self {
        case .integer(let value): Double(value)
        case .double(let value): value
        default: nil
        }
    }

    /// apiVersion, kind, namespace and name, when all that are required are present.
    var reference: ObjectReference? {
        guard let apiVersion, let kind, let name, !name.isEmpty else { return nil }
        return ObjectReference(apiVersion: apiVersion, kind: kind, namespace: namespace, name: name)
    }
}
