import Foundation
import TetherJSON
import TetherModel
import TetherPlugin

/// Namespace, ConfigMap and Secret: applied first (namespaces) and early (configuration), so
/// the workloads that live in or mount them find them in place.
public struct ConfigPlugin: ResourcePlugin {
    public let name = "config"
    public let kinds: [KindDescriptor] = [Self.namespace, Self.configMap, Self.secret]

    public init() {}

    public static let namespace = KindDescriptor(
        group: "", version: "v1", kind: "Namespace", plural: "namespaces", namespaced: false, shortNames: ["ns"],
        printerColumns: [.text("STATUS") { $0.string(at: "status", "phase") ?? "Active" }],
        fields: [
            "spec": .numbered(.field(1, "finalizers", .stringList)),
            "status": .numbered(
                .field(1, "phase", .string), .field(2, "conditions", .array(.transitionCondition(lastTransitionTime: 4, reason: 5, message: 6)))),
        ],
        summary: "Namespace provides a scope for names.",
        nameRule: .dns1123Label,
        protobufNumbers: ["spec": 2, "status": 3]
    )
    public static let configMap = KindDescriptor(
        group: "", version: "v1", kind: "ConfigMap", plural: "configmaps", namespaced: true, shortNames: ["cm"],
        printerColumns: [.count("DATA") { Int64($0["data"]?.objectMembers.count ?? 0) + Int64($0["binaryData"]?.objectMembers.count ?? 0) }],
        hasStatus: false,
        fields: ["data": .stringMap, "binaryData": .map(.bytes), "immutable": .boolean],
        summary: "ConfigMap holds configuration data for pods to consume.",
        protobufNumbers: ["data": 2, "binaryData": 3, "immutable": 4]
    )
    public static let secret = KindDescriptor(
        group: "", version: "v1", kind: "Secret", plural: "secrets", namespaced: true,
        printerColumns: [
            .text("TYPE") { $0["type"]?.stringValue ?? "Opaque" },
            .count("DATA") { Int64($0["data"]?.objectMembers.count ?? 0) + Int64($0["stringData"]?.objectMembers.count ?? 0) },
        ],
        hasStatus: false,
        fields: ["data": .map(.bytes), "stringData": .stringMap, "type": .string, "immutable": .boolean],
        summary: "Secret holds secret data of a certain type.",
        protobufNumbers: ["data": 2, "type": 3, "stringData": 4, "immutable": 5]
    )

    public func applyPhase(of kind: KindDescriptor) -> ApplyPhase {
        kind.kind == "Namespace" ? .namespaces : .configuration
    }

    public func validate(_ object: JSONValue) -> [ValidationProblem] {
        var problems: [ValidationProblem] = []
        switch object.kind {
        case "ConfigMap":
            for (key, value) in object["data"]?.objectMembers ?? [:] where value.stringValue == nil {
                problems.append(ValidationProblem(field: "data.\(key)", "must be a string"))
            }
        case "Secret":
            for (key, value) in object["data"]?.objectMembers ?? [:] {
                if value.stringValue.flatMap({ Data(base64Encoded: $0) }) == nil {
                    problems.append(ValidationProblem(field: "data.\(key)", "must be base64-encoded"))
                }
            }
            for (key, value) in object["stringData"]?.objectMembers ?? [:] where value.stringValue == nil {
                problems.append(ValidationProblem(field: "stringData.\(key)", "must be a string"))
            }
        default:
            break
        }
        return problems
    }

    /// As the Kubernetes API does on write: a Secret's `stringData` folds into `data`, and a
    /// Secret without a `type` is `Opaque`; a Namespace is made `Active` (an update keeps the
    /// stored status, so this counts on create only).
    public func normalizeOnWrite(_ object: JSONValue) -> JSONValue {
        if object.kind == "Namespace", object.string(at: "status", "phase") == nil {
            var namespace = object
            var status = object["status"]?.objectMembers ?? [:]
            status["phase"] = "Active"
            namespace[member: "status"] = .object(status)
            return namespace
        }
        guard object.kind == "Secret" else { return object }
        var secret = Self.foldingStringData(object)
        if (secret["type"]?.stringValue ?? "").isEmpty { secret[member: "type"] = "Opaque" }
        return secret
    }

    public func prepareForMember(_ object: JSONValue) -> JSONValue {
        var copy = MemberCopy.stripServerFields(object)
        switch object.kind {
        case "Namespace":
            // The `kubernetes` finalizer is the member's namespace controller's to add.
            copy.remove(at: "spec", "finalizers")
        case "Secret":
            copy = Self.foldingStringData(copy)
        default:
            break
        }
        return copy
    }

    /// `stringData` written into `data` (base64), as the Kubernetes API does on write, so a member
    /// receives one unambiguous form.
    public static func foldingStringData(_ secret: JSONValue) -> JSONValue {
        let stringData = secret["stringData"]?.objectMembers ?? [:]
        guard !stringData.isEmpty else { return secret }
        var copy = secret
        var data = secret["data"]?.objectMembers ?? [:]
        for (key, value) in stringData {
            data[key] = .string(Data((value.stringValue ?? "").utf8).base64EncodedString())
        }
        copy[member: "data"] = .object(data)
        copy[member: "stringData"] = nil
        return copy
    }

    public func health(of live: JSONValue) -> Health {
        guard live.kind == "Namespace" else { return .healthy }
        let phase = live.string(at: "status", "phase") ?? "Active"
        return phase == "Active" ? .healthy : Health(.progressing, "namespace is \(phase)")
    }
}
