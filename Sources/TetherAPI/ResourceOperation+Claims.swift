import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore

extension ResourceOperation {
    static let storageClasses = ResourceType(group: "storage.k8s.io", resource: "storageclasses", namespaced: false)

    /// A claim being created where claims are bound (a simulated member): held to LimitRanger's
    /// `PersistentVolumeClaim` items (403 outside their bounds), then given its default class and
    /// the protection finalizer (``ClaimAdmission``).
    func admittedClaim(_ claim: JSONValue) async throws -> JSONValue {
        let ranges = try await store.list(ResourceHandler.limitRanges, options: ListOptions(namespace: claim.namespace ?? path.namespace)).objects
        if let refusal = LimitRangeAdmission.claimRefusal(claim, limitRanges: ranges) {
            throw APIError.forbidden(
                "persistentvolumeclaims \"\(claim.name ?? claim.metadata["generateName"]?.stringValue ?? "")\" is forbidden: \(refusal.reason)")
        }
        let classes = try await store.list(Self.storageClasses, options: ListOptions()).objects
        return ClaimAdmission.admit(claim, classes: classes)
    }

    /// kube-apiserver's PersistentVolumeClaimResize admission: a claim's request grows only when
    /// it is bound and its class allows expansion, else 403.
    func admitResize(of claim: JSONValue, from current: JSONValue) async throws {
        let storage = ["spec", "resources", "requests", "storage"]
        guard let wanted = ResourceQuantity.milli(claim.value(at: storage)?.stringValue),
            let had = ResourceQuantity.milli(current.value(at: storage)?.stringValue),
            wanted > had
        else { return }
        let className = current.string(at: "spec", "storageClassName") ?? ""
        let storageClass = className.isEmpty ? nil : try? await store.get(Self.storageClasses, namespace: nil, name: className)
        guard (current.string(at: "spec", "volumeName") ?? "").isEmpty || storageClass?["allowVolumeExpansion"] != .bool(true) else { return }
        throw APIError.forbidden(
            "persistentvolumeclaims \"\(current.name ?? "")\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"
        )
    }
}
