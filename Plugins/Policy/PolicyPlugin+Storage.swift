import TetherJSON
import TetherModel
import TetherPlugin

/// StorageClasses, and the rules kube-apiserver holds claims and classes to.
extension PolicyPlugin {
    /// `storage.k8s.io/v1.StorageClass`: fields at the top level, no spec and no status. The
    /// NAME column marks the default class, as kube-apiserver's table does (`standard (default)`).
    public static let storageClass: KindDescriptor = {
        var storageClass = KindDescriptor(
            group: "storage.k8s.io", version: "v1", kind: "StorageClass", plural: "storageclasses", namespaced: false, shortNames: ["sc"],
            printerColumns: [
                .text("PROVISIONER") { $0["provisioner"]?.stringValue ?? "" },
                .text("RECLAIMPOLICY") { $0["reclaimPolicy"]?.stringValue ?? "Delete" },
                .text("VOLUMEBINDINGMODE") { $0["volumeBindingMode"]?.stringValue ?? "Immediate" },
                .text("ALLOWVOLUMEEXPANSION") { $0["allowVolumeExpansion"] == .bool(true) ? "true" : "false" },
            ],
            hasStatus: false,
            fields: [
                "provisioner": .string, "parameters": .stringMap, "reclaimPolicy": .string, "mountOptions": .stringList,
                "allowVolumeExpansion": .boolean, "volumeBindingMode": .string,
                "allowedTopologies": .array(
                    .numbered(
                        .field(
                            1, "matchLabelExpressions", .array(.numbered(.field(1, "key", .string), .field(2, "values", .stringList)))))),
            ],
            summary: "StorageClass describes a class of storage a claim names, and the provisioner that makes its volumes.",
            protobufNumbers: [
                "provisioner": 2, "parameters": 3, "reclaimPolicy": 4, "mountOptions": 5, "allowVolumeExpansion": 6, "volumeBindingMode": 7,
                "allowedTopologies": 8,
            ]
        )
        storageClass = storageClass.describing([
            "provisioner":
                "The provisioner that makes volumes for claims of this class (a CSI driver's name, or kubernetes.io/no-provisioner when an administrator makes them). Cannot be changed.",
            "parameters": "Settings handed to the provisioner for each volume it makes (disk type, replication, ...). Cannot be changed.",
            "reclaimPolicy": "What happens to a volume this class made when its claim is deleted: Delete (the default) or Retain. Cannot be changed.",
            "mountOptions": "Mount options given to every volume this class makes; a volume plugin that takes none refuses them.",
            "allowVolumeExpansion": "Whether a claim of this class may ask for more storage after it is bound.",
            "volumeBindingMode":
                "When a claim is bound: Immediate (the default) or WaitForFirstConsumer, once a Pod using it is scheduled, so the volume is made where the Pod runs. Cannot be changed.",
            "allowedTopologies": "Where volumes of this class may be made, as node label requirements; empty means anywhere.",
        ])
        storageClass.displayedName = { object in
            let name = object.name ?? ""
            return ClaimAdmission.isDefault(object) ? "\(name) (default)" : name
        }
        return storageClass
    }()

    /// kube-apiserver's defaults of a StorageClass (`Delete`, `Immediate`) and of a claim (`Filesystem`).
    static func storageDefaults(_ object: JSONValue) -> JSONValue? {
        var defaulted = object
        switch object.kind {
        case "StorageClass":
            KubernetesDefaults.fill(&defaulted, ["reclaimPolicy"], "Delete")
            KubernetesDefaults.fill(&defaulted, ["volumeBindingMode"], "Immediate")
        case "PersistentVolumeClaim":
            KubernetesDefaults.fill(&defaulted, ["spec", "volumeMode"], "Filesystem")
        default: return nil
        }
        return defaulted
    }

    /// kube-apiserver's checks of a StorageClass: a provisioner, and policies it knows.
    static func storageClassProblems(_ storageClass: JSONValue) -> [ValidationProblem] {
        var problems: [ValidationProblem] = []
        if (storageClass["provisioner"]?.stringValue ?? "").isEmpty {
            problems.append(ValidationProblem(field: "provisioner", "Required value"))
        }
        let known: [(field: String, values: [String])] = [
            ("reclaimPolicy", ["Delete", "Retain"]), ("volumeBindingMode", ["Immediate", "WaitForFirstConsumer"]),
        ]
        for (field, values) in known {
            if let value = storageClass[field]?.stringValue, !values.contains(value) {
                let supported = values.map { "\"\($0)\"" }.joined(separator: ", ")
                problems.append(ValidationProblem(field: field, "Unsupported value: \"\(value)\": supported values: \(supported)"))
            }
        }
        return problems
    }

    static let accessModeNames = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]

    /// kube-apiserver's checks of a claim: at least one access mode it knows, and a storage request.
    static func claimProblems(_ claim: JSONValue) -> [ValidationProblem] {
        var problems: [ValidationProblem] = []
        let modes = claim.value(at: "spec", "accessModes")?.arrayElements ?? []
        if modes.isEmpty { problems.append(ValidationProblem(field: "spec.accessModes", "Required value: at least 1 access mode is required")) }
        for (index, mode) in modes.enumerated() where !accessModeNames.contains(mode.stringValue ?? "") {
            let supported = accessModeNames.map { "\"\($0)\"" }.joined(separator: ", ")
            problems.append(
                ValidationProblem(
                    field: "spec.accessModes[\(index)]",
                    "Unsupported value: \(mode.stringValue.map { "\"\($0)\"" } ?? "?"): supported values: \(supported)"))
        }
        if claim.value(at: "spec", "resources", "requests", "storage") == nil {
            problems.append(ValidationProblem(field: "spec.resources[storage]", "Required value"))
        }
        return problems
    }

    /// What kube-apiserver lets change in a StorageClass (only its metadata and expansion) and in
    /// a claim: its requests (never smaller than its capacity), its volume and class when it had
    /// none (binding, a default class arriving), and its attributes class.
    static func storageUpdateProblems(_ object: JSONValue, from old: JSONValue) -> [ValidationProblem] {
        switch object.kind {
        case "StorageClass":
            var problems = storageClassProblems(object)
            for field in ["provisioner", "parameters", "reclaimPolicy", "volumeBindingMode"] where object[field] != old[field] {
                problems.append(ValidationProblem(field: field, "Forbidden: updates to \(field) are forbidden."))
            }
            return problems
        case "PersistentVolumeClaim":
            var spec = object["spec"] ?? [:]
            var oldSpec = old["spec"] ?? [:]
            for field in ["resources", "volumeAttributesClassName"] {
                spec[member: field] = nil
                oldSpec[member: field] = nil
            }
            for field in ["volumeName", "storageClassName"] where oldSpec[field] == nil || oldSpec[field] == "" {
                oldSpec[member: field] = spec[field]
            }
            guard spec != oldSpec else { return claimShrinkProblems(object, from: old) }
            return [
                ValidationProblem(
                    field: "spec",
                    "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims")
            ]
        default: return []
        }
    }

    /// A bound claim's request may grow, never fall below what its volume holds.
    static func claimShrinkProblems(_ claim: JSONValue, from old: JSONValue) -> [ValidationProblem] {
        guard let requested = ResourceQuantity.milli(claim.string(at: "spec", "resources", "requests", "storage")),
            let capacity = ResourceQuantity.milli(old.string(at: "status", "capacity", "storage")), requested < capacity
        else { return [] }
        return [ValidationProblem(field: "spec.resources.requests.storage", "Forbidden: field can not be less than status.capacity")]
    }
}
