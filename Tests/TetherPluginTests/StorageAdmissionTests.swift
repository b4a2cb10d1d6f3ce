import PolicyPlugin
import Testing
import TetherJSON
import TetherModel
import TetherPlugin

/// Claims and StorageClasses as kube-apiserver admits and validates them, on their own.
@Suite("Storage admission")
struct StorageAdmissionTests {
    static func storageClass(_ name: String, isDefault: Bool, created: String) -> JSONValue {
        var object: JSONValue = [
            "kind": "StorageClass", "metadata": ["name": .string(name), "creationTimestamp": .string(created)], "provisioner": "example.com/disk",
        ]
        if isDefault { object.set("true", at: ["metadata", "annotations", ClaimAdmission.defaultClassAnnotation]) }
        return object
    }

    static let claim: JSONValue = [
        "kind": "PersistentVolumeClaim", "metadata": ["name": "data", "namespace": "default"],
        "spec": ["accessModes": ["ReadWriteOnce"], "resources": ["requests": ["storage": "1Gi"]]],
    ]

    @Test(
        "a claim naming no class gets the newest default one, its volume mode, and the protection finalizer once; a claim naming a class or \"\" keeps it"
    )
    func defaultClass() {
        let classes = [
            Self.storageClass("old", isDefault: true, created: "2026-01-01T00:00:00Z"),
            Self.storageClass("new", isDefault: true, created: "2026-06-01T00:00:00Z"),
            Self.storageClass("newest-plain", isDefault: false, created: "2026-09-01T00:00:00Z"),
        ]
        let admitted = ClaimAdmission.admit(Self.claim, classes: classes)
        #expect(admitted.string(at: "spec", "storageClassName") == "new")
        #expect(admitted.string(at: "spec", "volumeMode") == "Filesystem")
        #expect(admitted.metadata["finalizers"] == [.string(ClaimAdmission.protectionFinalizer)])
        #expect(ClaimAdmission.admit(admitted, classes: classes).metadata["finalizers"] == admitted.metadata["finalizers"])

        var noClass = Self.claim
        noClass.set("", at: ["spec", "storageClassName"])
        #expect(ClaimAdmission.admit(noClass, classes: classes).string(at: "spec", "storageClassName") == "")
        var named = Self.claim
        named.set("old", at: ["spec", "storageClassName"])
        #expect(ClaimAdmission.admit(named, classes: classes).string(at: "spec", "storageClassName") == "old")
        #expect(ClaimAdmission.admit(Self.claim, classes: [classes[2]]).value(at: "spec", "storageClassName") == nil)
    }

    @Test(
        "a StorageClass needs a provisioner and known policies, is defaulted to Delete and Immediate, and changes only in what kube-apiserver lets change"
    )
    func storageClassRules() {
        let plugin = PolicyPlugin()
        let defaulted = plugin.normalizeOnWrite(Self.storageClass("disk", isDefault: false, created: ""))
        #expect(defaulted["reclaimPolicy"] == "Delete" && defaulted["volumeBindingMode"] == "Immediate")
        var wrong = defaulted
        wrong[member: "provisioner"] = nil
        wrong[member: "reclaimPolicy"] = "Recycle"
        #expect(
            plugin.validate(wrong).map(\.description).sorted() == [
                "provisioner: Required value",
                #"reclaimPolicy: Unsupported value: "Recycle": supported values: "Delete", "Retain""#,
            ])
        var expanded = defaulted
        expanded[member: "allowVolumeExpansion"] = true
        #expect(plugin.validateUpdate(expanded, from: defaulted).isEmpty)
        var retained = defaulted
        retained[member: "reclaimPolicy"] = "Retain"
        #expect(
            plugin.validateUpdate(retained, from: defaulted).map(\.description) == [
                "reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden."
            ])
    }

    @Test("a claim needs an access mode kube knows and a storage request")
    func claimRules() {
        let plugin = PolicyPlugin()
        #expect(plugin.validate(Self.claim).isEmpty)
        var empty = Self.claim
        empty[member: "spec"] = ["accessModes": ["ReadWriteSometimes"]]
        #expect(
            plugin.validate(empty).map(\.description) == [
                #"spec.accessModes[0]: Unsupported value: "ReadWriteSometimes": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod""#,
                "spec.resources[storage]: Required value",
            ])
        empty[member: "spec"] = [:]
        #expect(plugin.validate(empty).first?.description == "spec.accessModes: Required value: at least 1 access mode is required")
    }

    @Test("a claim's spec is fixed once made, but for its requests (never below its capacity), and the volume and class it had none of")
    func claimUpdates() {
        let plugin = PolicyPlugin()
        var old = plugin.normalizeOnWrite(Self.claim)
        #expect(old.string(at: "spec", "volumeMode") == "Filesystem")
        var bound = old
        bound.set("pvc-1", at: ["spec", "volumeName"])
        bound.set("standard", at: ["spec", "storageClassName"])
        #expect(plugin.validateUpdate(bound, from: old).isEmpty)
        old = bound
        old.set("2Gi", at: ["status", "capacity", "storage"])
        var grown = old
        grown.set("5Gi", at: ["spec", "resources", "requests", "storage"])
        #expect(plugin.validateUpdate(grown, from: old).isEmpty)
        var shrunk = old
        shrunk.set("1Gi", at: ["spec", "resources", "requests", "storage"])
        #expect(
            plugin.validateUpdate(shrunk, from: old).map(\.description) == [
                "spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"
            ])
        var moved = old
        moved.set("other", at: ["spec", "storageClassName"])
        #expect(plugin.validateUpdate(moved, from: old).first?.field == "spec")
    }
}
