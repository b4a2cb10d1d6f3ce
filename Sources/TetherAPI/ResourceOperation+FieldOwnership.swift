import Foundation
import HTTPTypes
import HummingbirdCore
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore

/// Server-side apply's field ownership on every write of a main resource (``ManagedFields``).
extension ResourceOperation {
    /// The request's manager: `fieldManager`, else the client's user agent up to its first `/`,
    /// as kube-apiserver names it.
    var fieldManager: String {
        if let named = query["fieldManager"], !named.isEmpty { return String(named.prefix(128)) }
        let agent = request.headers[.userAgent] ?? ""
        let prefix = agent.split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
        return prefix.isEmpty ? "unknown" : String(prefix.prefix(128))
    }

    /// `object` (admitted) with `metadata.managedFields` recording this write: a server-side
    /// apply (`applied`, its body) owns what it applied, after a 409 if it would change fields
    /// other managers set (unless `force`); any other write owns the fields it changed, taken
    /// from whoever had them. A write through a subresource (`scale`, `status`) is recorded
    /// under it; through `status`, for the status fields it changed.
    func ownership(of object: JSONValue, current: JSONValue?, applied: JSONValue?, subresource: String = "") throws -> JSONValue {
        let schema = kind.schema
        var managed = ManagedFields(of: current ?? object)
        if current == nil { managed.entries = [] }
        let manager = fieldManager
        let time = kubernetesTimestamp()
        if let applied {
            let fields = ManagedFields.fields(of: applied, schema: schema)
            let conflicts = managed.conflicts(applying: applied, fields: fields, by: manager, current: current ?? object)
            guard conflicts.isEmpty || query.flag("force") else { throw Self.conflictError(conflicts) }
            managed.record(
                manager: manager, operation: "Apply", apiVersion: served.apiVersion, fields: fields, taking: Set(conflicts.map(\.path)), at: time)
        } else {
            let before = current ?? [:]
            let changed =
                subresource == "status"
                ? ManagedFields.changedStatus(from: before, to: object, schema: schema)
                : ManagedFields.changed(from: before, to: object, schema: schema)
            let held = managed.entries.first { $0.manager == manager && $0.operation == "Update" && $0.subresource == subresource }?.fields ?? []
            let owned = held.union(changed).filter { ManagedFields.value(at: $0, in: object) != nil }
            managed.record(
                manager: manager, operation: "Update", apiVersion: served.apiVersion, fields: owned, taking: changed, at: time,
                subresource: subresource
            )
        }
        var result = object
        // Not a ternary: with a JSONValue branch its nil would be JSON null (JSONValue is ExpressibleByNilLiteral).
        if managed.entries.isEmpty {
            result.metadata.removeValue(forKey: "managedFields")
        } else {
            result.metadata["managedFields"] = managed.json
        }
        return result
    }

    /// A server-side apply removes the fields its manager applied before and no longer applies,
    /// unless another manager set them too.
    func withoutAbandonedFields(_ patched: JSONValue, applied: JSONValue, current: JSONValue) throws -> JSONValue {
        let managed = ManagedFields(of: current)
        let fields = ManagedFields.fields(of: applied, schema: kind.schema)
        var result = patched
        for path in managed.abandoned(by: fieldManager, applying: fields).sorted(by: { $0.count > $1.count }) {
            result = ManagedFields.removing(path, from: result)
            // A map left empty by the removal (the last label) goes with it, as in Kubernetes.
            var parent = Array(path.dropLast())
            while parent.count > 1, parent.last?.hasPrefix("f:") == true, ManagedFields.value(at: parent, in: result) == [:] {
                result = ManagedFields.removing(parent, from: result)
                parent.removeLast()
            }
        }
        return result
    }

    /// 409 as kube-apiserver words it, with one cause per field, which kubectl prints.
    static func conflictError(_ conflicts: [ManagedFields.Conflict]) -> APIError {
        let lines = conflicts.map { "conflict with \($0.managerDescription) using \($0.apiVersion): \($0.field)" }
        let message =
            conflicts.count == 1
            ? "Apply failed with 1 conflict: \(lines[0])"
            : "Apply failed with \(conflicts.count) conflicts: \(lines.joined(separator: "\n"))"
        let causes: [JSONValue] = conflicts.map {
            [
                "reason": "FieldManagerConflict", "message": .string("conflict with \($0.managerDescription) using \($0.apiVersion)"),
                "field": .string($0.field),
            ]
        }
        return APIError(code: 409, reason: "Conflict", message: message, details: ["causes": .array(causes)])
    }

    /// A status write with its writer recorded, as kube-apiserver records it: an `Update` entry
    /// of the field manager under the `status` subresource, for the status fields it changed.
    func statusOwnership(of object: JSONValue) async throws -> JSONValue {
        let current = try await store.get(type, namespace: path.namespace, name: path.name ?? "")
        var merged = current
        merged[member: "status"] = object["status"]
        let owned = try ownership(of: merged, current: current, applied: nil, subresource: "status")
        var written = object
        if let fields = owned.metadata["managedFields"] {
            written.metadata["managedFields"] = fields
        } else {
            written.metadata.removeValue(forKey: "managedFields")
        }
        return written
    }
}
