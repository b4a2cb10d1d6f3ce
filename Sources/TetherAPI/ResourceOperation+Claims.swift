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
}
