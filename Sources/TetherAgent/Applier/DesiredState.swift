import Foundation
import TetherFiles
import TetherJSON
import TetherModel
import TetherSecurity
import TetherWire

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
    /// The federation, store epoch and revision the agent trusts (absent in older files).
    public var baseline: FencingBaseline?
    /// What the agent was holding back from when it saved this (a restart keeps holding).
    public var hold: Ack.Hold?
    /// Objects the agent may have made that no written inventory records yet (the inventory is
    /// written up to a second after a create): a restart checks each in the member.
    public var unrecorded: [ObjectReference]?

    public init(
        cluster: String, revision: UInt64, objects: [JSONValue], baseline: FencingBaseline? = nil, hold: Ack.Hold? = nil,
        unrecorded: [ObjectReference]? = nil
    ) {
        self.cluster = cluster
        self.revision = revision
        self.objects = objects
        self.baseline = baseline
        self.hold = hold
        self.unrecorded = unrecorded
    }

    public static func path(in directory: String) -> String {
        (directory as NSString).appendingPathComponent("desired.json")
    }

    /// The saved state, or nil when there is none yet. A file for another cluster is an error:
    /// two agents must not share a state directory.
    public static func load(from directory: String, cluster: String) throws(SecurityError) -> PersistedDesiredState? {
        let path = path(in: directory)
        guard FileManager.default.fileExists(atPath: path) || (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) != nil else {
            return nil
        }
        let bytes: [UInt8]
        do {
            bytes = try AtomicFile.read(path)
        } catch {
            throw SecurityError(.unreadableFile, error.description)
        }
        let state: PersistedDesiredState
        do {
            state = try JSONValueDecoder().decode(PersistedDesiredState.self, from: bytes)
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

/// The objects an agent made or adopted in its member, by UID: `STATE/inventory.json`. The agent
/// prunes only these, and only while the UID is the one it recorded, never an object merely
/// because it carries the `tether.io/managed-by` label.
enum Inventory {
    struct Entry: Codable {
        var apiVersion: String
        var kind: String
        var namespace: String?
        var name: String
        var uid: String
    }

    struct File: Codable {
        var cluster: String
        var objects: [Entry]
    }

    static func path(in directory: String) -> String {
        (directory as NSString).appendingPathComponent("inventory.json")
    }

    static func load(from directory: String, cluster: String) throws(SecurityError) -> [ObjectReference: String] {
        let path = path(in: directory)
        guard FileManager.default.fileExists(atPath: path) || (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) != nil else {
            return [:]
        }
        let file: File
        do {
            file = try JSONValueDecoder().decode(File.self, from: try AtomicFile.read(path))
        } catch let error as FileError {
            throw SecurityError(.unreadableFile, error.description)
        } catch {
            throw SecurityError(.unreadableFile, "\(path) is not a valid inventory: \(error)")
        }
        guard file.cluster == cluster else {
            throw SecurityError(
                .unreadableFile, "\(path) is the inventory of cluster \(file.cluster), not \(cluster); give each agent its own --state-dir")
        }
        var inventory: [ObjectReference: String] = [:]
        for entry in file.objects {
            inventory[ObjectReference(apiVersion: entry.apiVersion, kind: entry.kind, namespace: entry.namespace, name: entry.name)] = entry.uid
        }
        return inventory
    }

    static func save(_ inventory: [ObjectReference: String], cluster: String, to directory: String) throws(SecurityError) {
        try PEMFiles.makeDirectory(directory)
        let entries = inventory.sorted { $0.key.description < $1.key.description }.map { reference, uid in
            Entry(apiVersion: reference.apiVersion, kind: reference.kind, namespace: reference.namespace, name: reference.name, uid: uid)
        }
        let data: [UInt8]
        do {
            data = try JSONValueEncoder().encode(File(cluster: cluster, objects: entries))
        } catch {
            throw SecurityError(.unwritableFile, "cannot encode the inventory: \(error)")
        }
        try PEMFiles.writeAtomically(String(decoding: data, as: UTF8.self), to: path(in: directory), mode: PEMFiles.privateKeyMode)
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
