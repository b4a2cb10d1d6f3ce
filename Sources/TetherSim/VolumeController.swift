import Foundation
import Logging
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore

/// A cluster's volume controllers, simulated: kube-controller-manager's PersistentVolume binder
/// and claim protection, and a provisioner for every StorageClass. No disk is made: a volume is
/// its object, whose `hostPath` names where a local-path provisioner would put it.
///
/// - A claim binds the smallest Available volume of its class that has its access modes, volume
///   mode, size and selector (a volume pre-bound to it first); else its class's provisioner
///   makes one of its size. A class in `WaitForFirstConsumer` mode binds only once the scheduler
///   has picked a node for a Pod using the claim (`volume.kubernetes.io/selected-node`), and the
///   volume it makes is pinned to that node.
/// - A claim's volume goes with it when its reclaim policy is `Delete`, and is `Released` (kept,
///   bound to no claim) when `Retain`.
/// - A claim being deleted keeps its protection finalizer while a Pod that has not finished uses it.
struct VolumeController: Sendable {
    static let claims = ResourceType(group: "", resource: "persistentvolumeclaims", namespaced: true)
    static let volumes = ResourceType(group: "", resource: "persistentvolumes", namespaced: false)
    static let classes = ResourceType(group: "storage.k8s.io", resource: "storageclasses", namespaced: false)
    static let selectedNodeAnnotation = "volume.kubernetes.io/selected-node"
    /// The class a simulated cluster starts with, as kind's clusters do (`standard`, local paths,
    /// bound where the first Pod goes).
    static let defaultClassName = "standard"
    static let provisionerName = "sim.tether.io/local-path"
    /// The provisioner name Kubernetes gives classes of volumes only an administrator makes.
    static let noProvisioner = "kubernetes.io/no-provisioner"

    let store: any ResourceStore
    let events: EventRecorder
    let logger: Logger

    private var binder: EventRecorder.Source { EventRecorder.Source(component: "persistentvolume-controller") }

    /// The default StorageClass, made when the cluster has none (its first start).
    func ensureDefaultClass() async {
        guard let existing = try? await store.list(Self.classes, options: ListOptions()), existing.objects.isEmpty else { return }
        let standard: JSONValue = [
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": ["name": .string(Self.defaultClassName), "annotations": [ClaimAdmission.defaultClassAnnotation: "true"]],
            "provisioner": .string(Self.provisionerName), "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer",
        ]
        do throws(StoreError) {
            _ = try await store.create(standard, as: Self.classes, dryRun: false)
        } catch  where error.code == .alreadyExists {
            // Made meanwhile.
        } catch {
            logger.warning("default storage class not made", metadata: ["tether.error": "\(error)"])
        }
    }

    // MARK: Claims

    /// One step of the binder for `claim`: its status to write, or nil when this step wrote an
    /// object instead (a volume, the claim's binding, its finalizer), whose event brings it back.
    func sync(_ claim: JSONValue) async -> JSONValue? {
        guard let namespace = claim.namespace, let name = claim.name, let uid = claim.uid else { return nil }
        if claim.deletionTimestamp != nil {
            await releaseProtection(of: claim, namespace: namespace, name: name)
            return nil
        }
        let firstLook = claim.string(at: "status", "phase") == nil
        let pending: JSONValue = ["phase": "Pending"]
        if let volumeName = claim.string(at: "spec", "volumeName"), !volumeName.isEmpty {
            let volume: JSONValue
            do throws(StoreError) {
                volume = try await store.get(Self.volumes, namespace: nil, name: volumeName)
            } catch  where error.code == .notFound {
                if claim.string(at: "status", "phase") == "Bound" {
                    await events.record(
                        .warning, "ClaimLost", "Bound claim has lost its PersistentVolume. Data on the volume is lost!", about: claim, source: binder)
                    return ["phase": "Lost"]
                }
                return claim.string(at: "status", "phase") == "Lost" ? ["phase": "Lost"] : pending
            } catch {
                return nil
            }
            let reference = Self.claimReference(of: volume)
            if reference.namespace == namespace, reference.name == name, reference.uid == uid {
                return Self.boundStatus(of: await expanded(volume, for: claim) ?? volume)
            }
            // The claim names a volume made for it (pre-bound to it, or to no claim): the binder completes it.
            let preBound = reference.namespace == namespace && reference.name == name && reference.uid == nil
            if preBound || reference.name == nil {
                await bind(volume, to: claim)
                return nil
            }
            if firstLook {
                await events.record(
                    .warning, "FailedBinding", "volume \"\(volumeName)\" already bound to a different claim.", about: claim, source: binder)
            }
            return pending
        }
        let className = claim.string(at: "spec", "storageClassName") ?? ""
        var storageClass: JSONValue?
        if !className.isEmpty {
            do throws(StoreError) {
                storageClass = try await store.get(Self.classes, namespace: nil, name: className)
            } catch  where error.code == .notFound {
                storageClass = nil
            } catch {
                return nil
            }
        }
        let waitsForConsumer = storageClass?["volumeBindingMode"]?.stringValue == "WaitForFirstConsumer"
        let selectedNode = claim.annotations[Self.selectedNodeAnnotation]
        if !waitsForConsumer || selectedNode != nil, let volume = await matchingVolume(for: claim, className: className) {
            await bind(volume, to: claim)
            return nil
        }
        guard let storageClass else {
            if firstLook {
                if className.isEmpty {
                    await events.record(
                        .normal, "FailedBinding", "no persistent volumes available for this claim and no storage class is set", about: claim,
                        source: binder)
                } else {
                    await events.record(
                        .warning, "ProvisioningFailed", "storageclass.storage.k8s.io \"\(className)\" not found", about: claim, source: binder)
                }
            }
            return pending
        }
        if waitsForConsumer, selectedNode == nil {
            if firstLook {
                await events.record(
                    .normal, "WaitForFirstConsumer", "waiting for first consumer to be created before binding", about: claim, source: binder)
            }
            return pending
        }
        let provisioner = storageClass["provisioner"]?.stringValue ?? ""
        if provisioner == Self.noProvisioner {
            if firstLook {
                await events.record(.warning, "ProvisioningFailed", "no volume plugin matched name: \(provisioner)", about: claim, source: binder)
            }
            return pending
        }
        await provision(for: claim, of: storageClass, provisioner: provisioner, node: waitsForConsumer ? selectedNode : nil)
        return nil
    }

    /// The resizer's part: a bound claim asking for more than its volume holds (the API let it
    /// only where its class allows expansion) grows the volume; nil when there is nothing to do
    /// or the volume could not be written.
    private func expanded(_ volume: JSONValue, for claim: JSONValue) async -> JSONValue? {
        guard let wanted = claim.value(at: "spec", "resources", "requests", "storage"), let volumeName = volume.name,
            let milli = ResourceQuantity.milli(wanted.stringValue), let capacity = Self.capacity(of: volume), milli > capacity
        else { return nil }
        var grown = volume
        grown.set(wanted, at: ["spec", "capacity", "storage"])
        guard let written = try? await store.update(grown, as: Self.volumes, dryRun: false) else { return nil }
        let from = volume.string(at: "spec", "capacity", "storage") ?? ""
        await events.record(
            .normal, "VolumeResizeSuccessful", "ExpandVolume succeeded for volume \(volumeName) (\(from) to \(wanted.stringValue ?? ""))",
            about: claim,
            source: EventRecorder.Source(component: "volume_expand"))
        return written
    }

    /// A bound claim's status: the access modes and capacity of its volume.
    static func boundStatus(of volume: JSONValue) -> JSONValue {
        [
            "phase": "Bound", "accessModes": volume.value(at: "spec", "accessModes") ?? [],
            "capacity": volume.value(at: "spec", "capacity") ?? [:],
        ]
    }

    /// The namespace, name and uid a volume's `claimRef` names (all nil without one).
    static func claimReference(of volume: JSONValue) -> (namespace: String?, name: String?, uid: String?) {
        guard let reference = volume.value(at: "spec", "claimRef") else { return (nil, nil, nil) }
        return (reference["namespace"]?.stringValue, reference["name"]?.stringValue, reference["uid"]?.stringValue)
    }

    /// The claims of `pod`'s volumes, by name.
    static func claimNames(of pod: JSONValue) -> [String] {
        (pod.value(at: "spec", "volumes")?.arrayElements ?? []).compactMap { $0.string(at: "persistentVolumeClaim", "claimName") }
    }

    /// The volume a claim binds without provisioning, if any: one pre-bound to it, else the
    /// smallest Available one that fits it.
    private func matchingVolume(for claim: JSONValue, className: String) async -> JSONValue? {
        guard let volumes = try? await store.list(Self.volumes, options: ListOptions()).objects else { return nil }
        let candidates = volumes.filter { Self.fits($0, claim, className: className) }
        if let preBound = candidates.first(where: { Self.claimReference(of: $0).name != nil }) { return preBound }
        return candidates.min { (Self.capacity(of: $0) ?? 0, $0.name ?? "") < (Self.capacity(of: $1) ?? 0, $1.name ?? "") }
    }

    /// Whether `volume` can be bound to `claim`, by the binder's rules.
    static func fits(_ volume: JSONValue, _ claim: JSONValue, className: String) -> Bool {
        guard volume.deletionTimestamp == nil, (volume.string(at: "spec", "storageClassName") ?? "") == className else { return false }
        let reference = claimReference(of: volume)
        if reference.name == nil {
            guard (volume.string(at: "status", "phase") ?? "Available") == "Available" else { return false }
        } else {
            guard reference.namespace == claim.namespace, reference.name == claim.name, reference.uid == nil || reference.uid == claim.uid
            else { return false }
        }
        let modes = Set((volume.value(at: "spec", "accessModes")?.arrayElements ?? []).compactMap(\.stringValue))
        let wanted = Set((claim.value(at: "spec", "accessModes")?.arrayElements ?? []).compactMap(\.stringValue))
        guard wanted.isSubset(of: modes),
            (volume.string(at: "spec", "volumeMode") ?? "Filesystem") == (claim.string(at: "spec", "volumeMode") ?? "Filesystem"),
            (capacity(of: volume) ?? 0) >= (ResourceQuantity.milli(claim.string(at: "spec", "resources", "requests", "storage")) ?? 0)
        else { return false }
        guard let selector = claim.value(at: "spec", "selector") else { return true }
        return LabelSelector(object: selector)?.matches(volume.labels) ?? false
    }

    static func capacity(of volume: JSONValue) -> Int64? {
        ResourceQuantity.milli(volume.string(at: "spec", "capacity", "storage"))
    }

    /// Binds `volume` and `claim` to each other: the volume's `claimRef` first, then the claim's
    /// `volumeName`, as the binder writes them.
    private func bind(_ volume: JSONValue, to claim: JSONValue) async {
        guard let volumeName = volume.name else { return }
        if Self.claimReference(of: volume).uid != claim.uid {
            var claimed = volume
            claimed.set(Self.reference(to: claim), at: ["spec", "claimRef"])
            do throws(StoreError) {
                _ = try await store.update(claimed, as: Self.volumes, dryRun: false)
            } catch {
                // Bound elsewhere meanwhile: the claim's next look finds another.
                logger.debug("volume not bound", metadata: ["tether.object": "\(volumeName)", "tether.error": "\(error)"])
                return
            }
        }
        var bound = claim
        bound.set(.string(volumeName), at: ["spec", "volumeName"])
        bound.set("yes", at: ["metadata", "annotations", "pv.kubernetes.io/bind-completed"])
        bound.set("yes", at: ["metadata", "annotations", "pv.kubernetes.io/bound-by-controller"])
        do throws(StoreError) {
            _ = try await store.update(bound, as: Self.claims, dryRun: false)
        } catch {
            logger.debug("claim not bound", metadata: ["tether.object": "\(claim.namespace ?? "")/\(claim.name ?? "")", "tether.error": "\(error)"])
        }
    }

    static func reference(to claim: JSONValue) -> JSONValue {
        [
            "kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": .string(claim.namespace ?? ""), "name": .string(claim.name ?? ""),
            "uid": .string(claim.uid ?? ""), "resourceVersion": .string(claim.resourceVersion.map { String($0) } ?? ""),
        ]
    }

    /// The provisioner's part: a volume of the claim's size, access modes and volume mode, with
    /// its class's reclaim policy and mount options, bound to the claim from the start, and pinned
    /// to `node` when the class waited for the claim's first Pod.
    private func provision(for claim: JSONValue, of storageClass: JSONValue, provisioner: String, node: String?) async {
        guard let uid = claim.uid, let namespace = claim.namespace, let name = claim.name else { return }
        let volumeName = "pvc-\(uid)"
        var spec: JSONValue = [
            "capacity": ["storage": claim.value(at: "spec", "resources", "requests", "storage") ?? "1Gi"],
            "accessModes": claim.value(at: "spec", "accessModes") ?? ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": storageClass["reclaimPolicy"] ?? "Delete",
            "storageClassName": .string(storageClass.name ?? ""),
            "volumeMode": claim.value(at: "spec", "volumeMode") ?? "Filesystem",
            "claimRef": Self.reference(to: claim),
            "hostPath": ["path": .string("/var/local-path-provisioner/\(volumeName)_\(namespace)_\(name)"), "type": "DirectoryOrCreate"],
        ]
        if let options = storageClass["mountOptions"] { spec[member: "mountOptions"] = options }
        if let node {
            spec[member: "nodeAffinity"] = [
                "required": [
                    "nodeSelectorTerms": [["matchExpressions": [["key": "kubernetes.io/hostname", "operator": "In", "values": [.string(node)]]]]]
                ]
            ]
        }
        let volume: JSONValue = [
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": ["name": .string(volumeName), "annotations": ["pv.kubernetes.io/provisioned-by": .string(provisioner)]],
            "spec": spec,
        ]
        let source = EventRecorder.Source(component: provisioner)
        do throws(StoreError) {
            await events.record(
                .normal, "Provisioning", "External provisioner is provisioning volume for claim \"\(namespace)/\(name)\"", about: claim,
                source: source)
            let made = try await store.create(volume, as: Self.volumes, dryRun: false)
            await events.record(.normal, "ProvisioningSucceeded", "Successfully provisioned volume \(volumeName)", about: claim, source: source)
            var annotated = claim
            annotated.set(.string(provisioner), at: ["metadata", "annotations", "volume.kubernetes.io/storage-provisioner"])
            await bind(made, to: annotated)
        } catch  where error.code == .alreadyExists {
            // Made by an earlier step whose binding did not land: bind it now.
            if let made = try? await store.get(Self.volumes, namespace: nil, name: volumeName) { await bind(made, to: claim) }
        } catch {
            await events.record(.warning, "ProvisioningFailed", "failed to provision volume: \(error.message)", about: claim, source: source)
        }
    }

    /// The claim-protection controller: a claim being deleted loses its finalizer once no Pod
    /// that has not finished uses it.
    private func releaseProtection(of claim: JSONValue, namespace: String, name: String) async {
        let finalizers = claim.metadata["finalizers"]?.arrayElements ?? []
        guard finalizers.contains(.string(ClaimAdmission.protectionFinalizer)),
            let pods = try? await store.list(PodController.pods, options: ListOptions(namespace: namespace)).objects
        else { return }
        let inUse = pods.contains { pod in
            !pod.podFinished && Self.claimNames(of: pod).contains(name)
        }
        guard !inUse else { return }
        var released = claim
        released.metadata["finalizers"] = .array(finalizers.filter { $0 != .string(ClaimAdmission.protectionFinalizer) })
        do throws(StoreError) {
            _ = try await store.update(released, as: Self.claims, dryRun: false)
        } catch {
            logger.debug("claim protection not released", metadata: ["tether.object": "\(namespace)/\(name)", "tether.error": "\(error)"])
        }
    }

    // MARK: Volumes

    /// One step of the binder for `volume`: its status to write, or nil when it was deleted (its
    /// claim gone and its reclaim policy `Delete`).
    func sync(volume: JSONValue) async -> JSONValue? {
        guard let volumeName = volume.name else { return nil }
        let (namespace, name, uid) = Self.claimReference(of: volume)
        // Pre-bound by its author to a claim (no uid yet): Available until that claim binds it.
        guard let namespace, let name, let uid else { return ["phase": "Available"] }
        let claim: JSONValue?
        do throws(StoreError) {
            claim = try await store.get(Self.claims, namespace: namespace, name: name)
        } catch  where error.code == .notFound {
            claim = nil
        } catch {
            return nil
        }
        if let claim, claim.uid == uid { return ["phase": "Bound"] }
        guard volume.string(at: "spec", "persistentVolumeReclaimPolicy") == "Delete" else {
            return ["phase": "Released", "message": .string("the claim \(namespace)/\(name) is gone; the volume is kept (reclaim policy Retain)")]
        }
        do throws(StoreError) {
            _ = try await store.delete(Self.volumes, namespace: nil, name: volumeName, preconditions: .init(uid: volume.uid), dryRun: false)
        } catch  where error.code == .notFound || error.code == .conflict {
            // Gone already.
        } catch {
            await events.record(.warning, "VolumeFailedDelete", "failed to delete volume: \(error.message)", about: volume, source: binder)
            return ["phase": "Failed", "message": .string(error.message)]
        }
        return nil
    }

    // MARK: Scheduling

    /// What a Pod's claims say about scheduling it.
    enum Readiness: Equatable {
        /// It waits: the scheduler's reason (a claim missing, being deleted, unbound and not
        /// waiting for a consumer).
        case blocked(String)
        /// It may go: to a node every bound volume's node affinity admits, its claims that wait
        /// for a consumer (by name) bound once a node is picked.
        case schedulable(volumeTerms: [[JSONValue]], waitingClaims: [String])
    }

    /// Whether `pod` may be scheduled as its claims stand, as the scheduler's VolumeBinding filter
    /// decides.
    func readiness(of pod: JSONValue) async -> Readiness {
        var terms: [[JSONValue]] = []
        var waiting: [String] = []
        for name in Self.claimNames(of: pod) {
            let claim: JSONValue
            do throws(StoreError) {
                claim = try await store.get(Self.claims, namespace: pod.namespace, name: name)
            } catch  where error.code == .notFound {
                return .blocked("persistentvolumeclaim \"\(name)\" not found")
            } catch {
                return .blocked("persistentvolumeclaim \"\(name)\" could not be read: \(error.message)")
            }
            if claim.deletionTimestamp != nil { return .blocked("persistentvolumeclaim \"\(name)\" is being deleted") }
            if let volumeName = claim.string(at: "spec", "volumeName"), !volumeName.isEmpty {
                guard claim.string(at: "status", "phase") == "Bound" else { return .blocked("pod has unbound immediate PersistentVolumeClaims") }
                if let volume = try? await store.get(Self.volumes, namespace: nil, name: volumeName),
                    let required = volume.value(at: "spec", "nodeAffinity", "required", "nodeSelectorTerms")?.arrayElements
                {
                    terms.append(required)
                }
                continue
            }
            let className = claim.string(at: "spec", "storageClassName") ?? ""
            let storageClass = className.isEmpty ? nil : try? await store.get(Self.classes, namespace: nil, name: className)
            guard storageClass?["volumeBindingMode"]?.stringValue == "WaitForFirstConsumer" else {
                return .blocked("pod has unbound immediate PersistentVolumeClaims")
            }
            waiting.append(name)
        }
        return .schedulable(volumeTerms: terms, waitingClaims: waiting)
    }

    /// The scheduler's pick for claims waiting for their first Pod: each is told the node
    /// (`volume.kubernetes.io/selected-node`), and its provisioner makes the volume there.
    func select(_ node: String, forClaims names: [String], namespace: String?) async {
        for name in names {
            guard var claim = try? await store.get(Self.claims, namespace: namespace, name: name),
                claim.annotations[Self.selectedNodeAnnotation] == nil
            else { continue }
            claim.set(.string(node), at: ["metadata", "annotations", Self.selectedNodeAnnotation])
            _ = try? await store.update(claim, as: Self.claims, dryRun: false)
        }
    }
}
