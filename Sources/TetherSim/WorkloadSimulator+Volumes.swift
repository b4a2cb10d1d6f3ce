import TetherJSON
import TetherModel
import TetherStore

/// What ties the volume controllers (``VolumeController``) to the rest of the simulation: which
/// claims, volumes and Pods look again when one of them changes.
extension WorkloadSimulator {
    /// A claim or a volume changed: its status (nil when the binder wrote something else). A
    /// volume Available lets waiting claims look again; a claim that settles lets the Pods
    /// waiting for it be scheduled again.
    func volumeObjectChanged(_ object: JSONValue, key: ObjectKey) async -> JSONValue? {
        if key.type == VolumeController.volumes {
            let status = await volumes.sync(volume: object)
            if status?["phase"] == "Available" { await queueClaims(waitingFor: nil) }
            return status
        }
        let status = await volumes.sync(object)
        if status != nil, let pods = try? await store.list(PodController.pods, options: ListOptions(namespace: key.namespace)).objects {
            for pod in pods where pod.string(at: "spec", "nodeName") == nil && VolumeController.claimNames(of: pod).contains(key.name) {
                queue.add(self.key(PodController.pods, pod))
            }
        }
        return status
    }

    /// The unbound claims of a class (any, for nil) look again: a class or a volume arrived.
    @discardableResult
    func queueClaims(waitingFor className: String?) async -> Duration? {
        for claim in (try? await store.list(VolumeController.claims, options: ListOptions()).objects) ?? [] {
            guard (claim.string(at: "spec", "volumeName") ?? "").isEmpty else { continue }
            if let className, (claim.string(at: "spec", "storageClassName") ?? "") != className { continue }
            queue.add(key(VolumeController.claims, claim))
        }
        return nil
    }

    /// A claim went: its volume is reclaimed. A volume went: its claim is Lost.
    func volumeObjectGone(_ key: ObjectKey) async {
        if key.type == VolumeController.claims {
            for volume in (try? await store.list(VolumeController.volumes, options: ListOptions()).objects) ?? [] {
                let reference = VolumeController.claimReference(of: volume)
                if reference.namespace == key.namespace, reference.name == key.name { queue.add(self.key(VolumeController.volumes, volume)) }
            }
        } else if key.type == VolumeController.volumes {
            for claim in (try? await store.list(VolumeController.claims, options: ListOptions()).objects) ?? [] {
                if claim.string(at: "spec", "volumeName") == key.name { queue.add(self.key(VolumeController.claims, claim)) }
            }
        }
    }

    /// A Pod that finished or went no longer holds its claims: one being deleted may now go.
    func claimsOfPodChanged(_ pod: JSONValue, deleted: Bool) async {
        guard deleted || pod.podFinished else { return }
        for name in VolumeController.claimNames(of: pod) {
            queue.add(ObjectKey(type: VolumeController.claims, namespace: pod.namespace, name: name))
        }
    }
}
