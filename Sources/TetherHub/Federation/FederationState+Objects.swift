import Foundation
import Logging
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore
import TetherWire

/// The store's collections as they change: clusters joining and leaving, policies, federated objects.
extension FederationState {
    mutating func listed(_ objects: [JSONValue], in collection: FederationCollection, version: UInt64, at now: Date) {
        storeVersion = max(storeVersion, version)
        let present = Set(objects.compactMap(\.federatedReference))
        let known: [ObjectReference: JSONValue] =
            switch collection {
            case .clusters:
                Dictionary(uniqueKeysWithValues: clusterObjects.map { (Self.clusterReference($0.key), $0.value) })
            case .federated(let type): federated.filter { $0.key.resourceType(registry) == type }
            case .propagationPolicies: Dictionary(uniqueKeysWithValues: propagationPolicies.keys.map { ($0, Self.stub($0)) })
            case .overridePolicies: Dictionary(uniqueKeysWithValues: overridePolicies.keys.map { ($0, Self.stub($0)) })
            case .propagations: [:]
            }
        for (reference, object) in known where !present.contains(reference) {
            changed(object, in: collection, deleted: true, version: version, at: now)
        }
        for object in objects { changed(object, in: collection, deleted: false, version: version, at: now) }
    }

    mutating func changed(_ object: JSONValue, in collection: FederationCollection, deleted: Bool, version: UInt64, at now: Date) {
        storeVersion = max(storeVersion, version)
        guard let reference = object.federatedReference else { return }
        switch collection {
        case .clusters:
            clusterChanged(object, deleted: deleted, version: version, at: now)
        case .propagationPolicies:
            let policy =
                deleted || object.deletionTimestamp != nil
                ? nil : decodePolicy(object, reference) { PropagationPolicy(name: $0, namespace: $1, spec: $2) }
            guard propagationPolicies[reference] != policy else { return }
            propagationPolicies[reference] = policy
            policyChanged(reference, deleted: policy == nil, version: version)
        case .overridePolicies:
            let policy =
                deleted || object.deletionTimestamp != nil
                ? nil : decodePolicy(object, reference) { OverridePolicy(name: $0, namespace: $1, spec: $2) }
            guard overridePolicies[reference] != policy else { return }
            overridePolicies[reference] = policy
            policyChanged(reference, deleted: policy == nil, version: version)
        case .propagations:
            propagationChanged(object, deleted: deleted)
        case .federated:
            // An object a controller made (a Deployment's revisions, kept as ReplicaSets) is its
            // owner's: the owner is federated, and each member's controllers make their own.
            if !deleted, object.isControlled {
                if federated[reference] != nil { federatedChanged(object, reference, deleted: true, version: version) }
                return
            }
            federatedChanged(object, reference, deleted: deleted, version: version)
        }
    }

    /// A policy's spec decoded; a spec that does not decode governs nothing, and says so.
    private mutating func decodePolicy<Spec: Decodable, Policy>(
        _ object: JSONValue, _ reference: ObjectReference, _ make: (String, String?, Spec) -> Policy
    ) -> Policy? {
        do {
            guard let spec = try PolicyDecoding.spec(Spec.self, of: object) else { return nil }
            return make(reference.name, reference.namespace, spec)
        } catch {
            log(
                .warning, "policy ignored: its spec cannot be read",
                ["tether.event": "federation.policy_invalid", "tether.object": "\(reference)", "tether.error": "\(error)"])
            return nil
        }
    }

    private mutating func policyChanged(_ reference: ObjectReference, deleted: Bool, version: UInt64) {
        log(
            .info, "policy changed; placing again",
            ["tether.event": "federation.policy_changed", "tether.object": "\(reference)", "tether.deleted": "\(deleted)"])
        recompute(Array(federated.keys), version: version, everyCluster: true)
    }

    private mutating func federatedChanged(_ object: JSONValue, _ reference: ObjectReference, deleted: Bool, version: UInt64) {
        if deleted {
            if object.annotations[Self.orphanAnnotation] == "true" || federated[reference]?.annotations[Self.orphanAnnotation] == "true" {
                orphaned.insert(reference)
            }
            federated[reference] = nil
            reports[reference] = nil
            generationsInFlight[reference] = nil
            observedGenerations[reference] = nil
            if let uid = object.uid { emit(.forgetEvents(namespace: reference.namespace, uid: uid)) }
            emit(.deletePropagation(reference))
        } else if object.deletionTimestamp != nil, object.finalizers.contains(Self.orphanFinalizer) {
            // `kubectl delete --cascade=orphan`: the API added Kubernetes' `orphan` finalizer, which
            // the garbage collector removes once the hub's own dependents are orphaned. Members
            // keep their copies.
            federated[reference] = object
            orphaned.insert(reference)
            recompute([reference], version: version)
            return
        } else {
            let previous = federated[reference]
            federated[reference] = object
            if object.deletionTimestamp == nil { orphaned.remove(reference) }
            // The engine's own status writes come back here: nothing placement reads changed,
            // so nothing is placed again (hashing a large object per report was the cost).
            if let previous, Self.placementContent(of: previous) == Self.placementContent(of: object) { return }
        }
        recompute([reference], version: version)
    }

    private mutating func clusterChanged(_ object: JSONValue, deleted: Bool, version: UInt64, at now: Date) {
        guard let name = object.name else { return }
        if deleted {
            setClusterObject(nil, of: name)
            unjoining[name] = nil
            unrevisioned.remove(name)
            emit(.admit(cluster: name, false))
            guard members.removeValue(forKey: name) != nil else { return }
            // A cluster gone for good no longer holds any object's generation back.
            for reference in generationsInFlight.keys.sorted(by: { $0.description < $1.description }) { generationNotCarried(reference, to: name) }
            certificates[name] = nil
            log(.info, "cluster left the federation", ["tether.event": "federation.cluster_removed", "tether.cluster": name])
        } else if object.deletionTimestamp != nil {
            setClusterObject(object, of: name)
            beginUnjoin(name, orphan: object.annotations[Self.unjoinModeAnnotation] == "orphan")
            return
        } else if members[name] == nil {
            setClusterObject(object, of: name)
            var member = ClusterMember()
            member.terms.confirmedHold = object["spec"]?["confirmedHold"]?.stringValue
            // A hub that starts (or takes over) places as the last one did: a cluster it had
            // rebalanced away stays so until its agent returns, instead of taking its replicas
            // back from the clusters that run them until a new grace period ends.
            member.excluded = ClusterStatus.movedAway(object)
            members[name] = member
            unrevisioned.insert(name)
            emit(.admit(cluster: name, true))
            if !object.finalizers.contains(Self.unjoinFinalizer) {
                emit(.setFinalizer(Self.unjoinFinalizer, present: true, type: Self.clusterType, namespace: nil, name: name))
            }
            log(.info, "cluster joined the federation", ["tether.event": "federation.cluster_added", "tether.cluster": name])
            if let waiting = awaitingRegistration.removeValue(forKey: name) {
                recomputeAll(version: version, after: name)
                attach(name, session: waiting.session, hello: waiting.hello, at: now)
                return
            }
        } else {
            // Status writes change nothing here; a change of labels can change placement, and a
            // confirmed hold must reach the agent.
            let labelsChanged = clusterObjects[name]?.labels != object.labels
            setClusterObject(object, of: name)
            if sharedHub != nil { clusterRecordChanged(name, version: version, at: now) }
            let confirmed = object["spec"]?["confirmedHold"]?.stringValue
            if confirmed != members[name]?.terms.confirmedHold {
                members[name]?.terms.confirmedHold = confirmed
                log(
                    .notice, "an operator confirmed the cluster's hold",
                    ["tether.event": "federation.hold_confirmed", "tether.cluster": name, "tether.token": confirmed ?? "none"])
                touch(name, version: version)
            }
            guard labelsChanged else { return }
        }
        recomputeAll(version: version, after: name)
    }

    /// Gives the cluster a new revision with the same objects, and pushes it: how something
    /// besides objects (the terms of its desired state) reaches the agent.
    private mutating func touch(_ cluster: String, version: UInt64) {
        guard let current = members[cluster]?.revision else { return }
        members[cluster]?.revision = max(version, current + 1)
        persistRevisions()
        push(cluster)
    }

    // MARK: Unjoin

    /// The Cluster is being deleted: refuse its identity from now on, have its agent prune
    /// (unless orphaning), then end its session and let the object go.
    private mutating func beginUnjoin(_ cluster: String, orphan: Bool) {
        guard unjoining[cluster] == nil else { return }
        emit(.admit(cluster: cluster, false))
        log(.notice, "unjoining cluster", ["tether.event": "federation.unjoining", "tether.cluster": cluster, "tether.orphan": "\(orphan)"])
        if sharedHub != nil, members[cluster]?.session == nil {
            // The hub holding its session has the agent prune; the leader lets go of one no hub holds.
            if leading, orphan || !heldAnywhere(cluster) {
                unjoining[cluster] = .some(nil)
                finishUnjoin(cluster)
            }
            return
        }
        guard !orphan, members[cluster]?.session != nil else {
            unjoining[cluster] = .some(nil)
            finishUnjoin(cluster)
            return
        }
        // An empty desired set makes the agent prune every object it manages there; the terms say
        // it is an unjoin, so the agent's guard against mass deletion lets it through.
        members[cluster]?.excluded = true
        members[cluster]?.terms.unjoining = true
        // No store change did this: the revision moves by one, not to the store's version (which the
        // hub's own status writes raise), so a restored hub stays below what its agents hold.
        recomputeAll(version: 0, after: cluster)
        unjoining[cluster] = members[cluster]?.revision
        emit(.schedule(.unjoinTimeout(cluster: cluster), after: settings.unjoinPruneTimeout))
    }

    /// The agent pruned (or the wait ran out): end its session, and let the Cluster object go.
    mutating func finishUnjoin(_ cluster: String) {
        guard unjoining.removeValue(forKey: cluster) != nil else { return }
        if let session = members[cluster]?.session {
            let goaway = GoAway(code: .unjoined, reason: "cluster \(cluster) was unjoined from the federation", reconnectAfterMilliseconds: 60_000)
            emit(.endSession(cluster: cluster, session: session, goaway: goaway))
        }
        emit(.setFinalizer(Self.unjoinFinalizer, present: false, type: Self.clusterType, namespace: nil, name: cluster))
        log(.notice, "cluster unjoined", ["tether.event": "federation.unjoined", "tether.cluster": cluster])
    }

    // MARK: Helpers

    /// What placement and the members' copies are made from: the object without its status and
    /// without the version every write changes.
    static func placementContent(of object: JSONValue) -> JSONValue {
        var content = object
        content[member: "status"] = nil
        content.metadata["resourceVersion"] = nil
        return content
    }

    static func clusterReference(_ name: String) -> ObjectReference {
        ObjectReference(apiVersion: "core.tether.io/v1alpha1", kind: "Cluster", name: name)
    }

    /// Enough of an object to report its deletion by reference.
    static func stub(_ reference: ObjectReference) -> JSONValue {
        var metadata: [String: JSONValue] = ["name": .string(reference.name)]
        if let namespace = reference.namespace { metadata["namespace"] = .string(namespace) }
        return ["apiVersion": .string(reference.apiVersion), "kind": .string(reference.kind), "metadata": .object(metadata)]
    }
}

extension JSONValue {
    var federatedReference: ObjectReference? {
        guard let apiVersion, let kind, let name else { return nil }
        return ObjectReference(apiVersion: apiVersion, kind: kind, namespace: namespace, name: name)
    }
}

extension ObjectReference {
    func resourceType(_ registry: KindRegistry) -> ResourceType? {
        registry.kind(apiVersion: apiVersion, kind: kind).map { ResourceType(group: $0.group, resource: $0.plural, namespaced: $0.namespaced) }
    }
}

extension JSONValue {
    /// Whether a controller that runs in every member owns the object (an ownerReference with
    /// `controller: true`): each member's controller makes its own, so the hub's is not sent.
    /// A Job a CronJob controls is the exception: no CronJob controller runs at the hub, so
    /// such a Job was made by hand (`kubectl create job --from=cronjob/NAME`) and is federated
    /// like any Job, its owner left behind as every copy's is.
    var isControlled: Bool {
        guard let controller = metadata["ownerReferences"]?.arrayElements.first(where: { $0["controller"] == .bool(true) }) else {
            return false
        }
        return !(kind == "Job" && controller["kind"]?.stringValue == "CronJob")
    }
}
