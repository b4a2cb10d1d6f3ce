import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore

/// The StatefulSet controller's claims: one per `volumeClaimTemplates` entry and ordinal
/// (`TEMPLATE-NAME-ORDINAL`), made before the Pod that uses them, kept or deleted as its
/// `persistentVolumeClaimRetentionPolicy` says.
extension PodController {
    /// Makes the claims of the Pod `podName` that do not exist yet and points the Pod's volumes at
    /// them; false when one could not be made (recorded on the StatefulSet, as `FailedCreate`).
    func claimsFromTemplates(of owner: JSONValue, podName: String, pod: inout JSONValue) async -> Bool {
        let templates = owner.value(at: "spec", "volumeClaimTemplates")?.arrayElements ?? []
        guard !templates.isEmpty, let namespace = owner.namespace, let ownerName = owner.name, let ownerUID = owner.uid else { return true }
        var volumes = pod.value(at: "spec", "volumes")?.arrayElements ?? []
        let source = Self.controllerSource("StatefulSet")
        for template in templates {
            guard let templateName = template.string(at: "metadata", "name") else { continue }
            let claimName = "\(templateName)-\(podName)"
            volumes.removeAll { $0["name"]?.stringValue == templateName }
            volumes.append(["name": .string(templateName), "persistentVolumeClaim": ["claimName": .string(claimName)]])
            do throws(StoreError) {
                _ = try await store.get(VolumeController.claims, namespace: namespace, name: claimName)
                continue
            } catch  where error.code == .notFound {
                // Made below.
            } catch {
                return false
            }
            var labels = template.value(at: "metadata", "labels")?.objectMembers ?? [:]
            for (key, value) in owner.value(at: "spec", "selector", "matchLabels")?.objectMembers ?? [:] { labels[key] = value }
            var metadata: JSONValue = ["name": .string(claimName), "namespace": .string(namespace), "labels": .object(labels)]
            if let annotations = template.value(at: "metadata", "annotations") { metadata[member: "annotations"] = annotations }
            if owner.string(at: "spec", "persistentVolumeClaimRetentionPolicy", "whenDeleted") == "Delete" {
                metadata[member: "ownerReferences"] = [
                    [
                        "apiVersion": .string(owner.apiVersion ?? "apps/v1"), "kind": "StatefulSet", "name": .string(ownerName),
                        "uid": .string(ownerUID), "controller": true, "blockOwnerDeletion": true,
                    ]
                ]
            }
            let claim: JSONValue = ["apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata, "spec": template["spec"] ?? [:]]
            do throws(StoreError) {
                let classes = try await store.list(VolumeController.classes, options: ListOptions()).objects
                _ = try await store.create(ClaimAdmission.admit(claim, classes: classes), as: VolumeController.claims, dryRun: false)
                await events.record(
                    .normal, "SuccessfulCreate", "create Claim \(claimName) Pod \(podName) in StatefulSet \(ownerName) success", about: owner,
                    source: source)
            } catch  where error.code == .alreadyExists {
                // Made meanwhile.
            } catch {
                await events.record(
                    .warning, "FailedCreate",
                    "create Claim \(claimName) for Pod \(podName) in StatefulSet \(ownerName) failed error: \(error.message)",
                    about: owner, source: source)
                return false
            }
        }
        pod.set(.array(volumes), at: ["spec", "volumes"])
        return true
    }

    /// `whenScaled: Delete`: the claims of the Pods a scale-down removed (ordinals at or above
    /// the count) go with them.
    func deleteClaimsOfScaledDown(_ owner: JSONValue, pods: [JSONValue]) async {
        guard owner.string(at: "spec", "persistentVolumeClaimRetentionPolicy", "whenScaled") == "Delete", let ownerName = owner.name else { return }
        let replicas = owner.integer(at: "spec", "replicas") ?? 1
        for pod in pods {
            guard let podName = pod.name, let ordinal = Int64(podName.dropFirst(ownerName.count + 1)), ordinal >= replicas else { continue }
            for template in owner.value(at: "spec", "volumeClaimTemplates")?.arrayElements ?? [] {
                guard let templateName = template.string(at: "metadata", "name") else { continue }
                _ = try? await store.delete(
                    VolumeController.claims, namespace: owner.namespace, name: "\(templateName)-\(podName)", preconditions: .init(), dryRun: false)
            }
        }
    }
}
