import TetherJSON
import TetherModel
import TetherPlugin

/// Each cluster's desired set, recomputed for the objects a change touches.
extension FederationState {
    mutating func recomputeAll(version: UInt64) {
        recompute(Array(federated.keys), version: version, everyCluster: true)
    }

    /// Every object again after one cluster joined, left, changed labels or was rebalanced
    /// away or back: only objects whose replicas are divided among clusters can change
    /// elsewhere, so the others are placed on `cluster` alone. A storm of joins then costs each
    /// join its own objects, not a pass over every cluster.
    mutating func recomputeAll(version: UInt64, after cluster: String) {
        recompute(Array(federated.keys), version: version, everyCluster: true, onlyOn: cluster)
    }

    /// Whether `reference`'s copies depend on which other clusters take part (divided replicas).
    private func dividesReplicas(_ reference: ObjectReference) -> Bool {
        guard let object = federated[reference] else { return false }
        return registry.plugin(for: object).replicas(of: object) != nil
    }

    /// Each cluster's copy of `references`; a cluster whose set changed gets revision `version` and a push.
    /// With `onlyOn`, objects that do not divide replicas are placed on that cluster alone.
    mutating func recompute(_ references: [ObjectReference], version: UInt64, everyCluster: Bool = false, onlyOn scope: String? = nil) {
        // Every cluster is listed only if some object needs them all: N joins must not cost N passes.
        var every: (names: [String], placeable: Set<String>)?
        let scopedName = scope.flatMap { members[$0] == nil ? nil : [$0] } ?? []
        let scopedPlaceable = Set(scopedName.filter { members[$0]?.excluded == false })
        let placement = Placement(
            clusters: clusterLabels,
            propagationPolicies: propagationPolicies.values.sorted { $0.name < $1.name },
            overridePolicies: overridePolicies.values.sorted { $0.name < $1.name }
        )
        var touched: Set<String> = []
        var reportsDropped: [ObjectReference] = []
        var placementMoved: Set<ObjectReference> = []
        /// The objects whose copy changed on each cluster: the cluster's next revision carries them.
        var carried: [String: [ObjectReference]] = [:]
        // A definition is placed after the objects of its kind, where they went (``definitionTargets``):
        // definitions last, and again whenever one of its objects arrives at or leaves a cluster.
        var queue = references.filter { !Self.isCompanion($0) } + references.filter(Self.isCompanion)
        var queued = Set(queue)
        /// Dependencies placed again because a dependent moved: each at most twice more, so a
        /// cycle of dependencies ends (placements only grow along it).
        var requeued: [ObjectReference: Int] = [:]
        func placeAgain(_ dependencies: some Sequence<ObjectReference>) {
            for dependency in dependencies where federated[dependency] != nil {
                if queued.insert(dependency).inserted {
                    queue.append(dependency)
                } else if requeued[dependency, default: 0] < 2, !queue[next...].contains(dependency) {
                    requeued[dependency, default: 0] += 1
                    queue.append(dependency)
                }
            }
        }
        var next = 0
        while next < queue.count {
            let reference = queue[next]
            next += 1
            let changedDependencies = followDependencies(of: reference, placement: placement)
            if !changedDependencies.isEmpty { placeAgain(changedDependencies) }
            let wide = scope == nil || dividesReplicas(reference)
            if wide, every == nil {
                let names = Array(members.keys)
                every = (names, Set(names.filter { members[$0]?.excluded == false }))
            }
            let names = wide ? every?.names ?? [] : scopedName
            let copies = copiesPerCluster(of: reference, clusters: wide ? every?.placeable ?? [] : scopedPlaceable, placement: placement)
            for name in names {
                let copy = copies[name]
                if copy == nil, reports[reference]?[name] != nil {
                    // No longer placed there: its last report must not count any more.
                    reports[reference]?[name] = nil
                    reportsDropped.append(reference)
                }
                let wasPlaced = members[name]?.desired[reference] != nil
                if members[name]?.place(reference, copy) == true {
                    touched.insert(name)
                    if copy != nil { carried[name, default: []].append(reference) } else { generationNotCarried(reference, to: name) }
                    // Joins and rebalances move many objects at once: their records follow the next report.
                    // Nor does a restart's listing: the reports it would write from are not back yet.
                    if settled, scope == nil, wasPlaced != (copy != nil) { placementMoved.insert(reference) }
                    if wasPlaced != (copy != nil) {
                        for companion in companions(of: reference) where queued.insert(companion).inserted { queue.append(companion) }
                        placeAgain(dependenciesFollowing[reference] ?? [])
                    }
                }
            }
        }
        if everyCluster {
            // A cluster that just joined holds nothing yet; give it a revision even with an empty set.
            for name in unrevisioned where members[name]?.revision == 0 { touched.insert(name) }
        }
        for name in touched.sorted() {
            // Before the state settles nothing was sent: each collection's list names the set at
            // its version, and the revision need not pass the store's.
            let current = members[name]?.revision ?? 0
            let next = max(version, settled ? current + 1 : current)
            members[name]?.revision = next
            // With agents on every hub, a generation is tracked by the hub holding the session (from when it comes).
            if settled, sharedHub == nil || members[name]?.session != nil {
                for reference in carried[name] ?? [] { trackGeneration(of: reference, to: name, at: next) }
            }
            unrevisioned.remove(name)
            emit(.metric(.revision(cluster: name, desired: next, acked: members[name]?.acked)))
            push(name)
        }
        if !touched.isEmpty { persistRevisions() }
        for reference in placementMoved.union(reportsDropped).sorted(by: { $0.description < $1.description }) { statusChanged(reference) }
    }

    private func copiesPerCluster(of reference: ObjectReference, clusters: Set<String>, placement: Placement) -> [String: PlacedCopy] {
        guard let object = federated[reference], object.deletionTimestamp == nil, !clusters.isEmpty else { return [:] }
        // Every member has its own system namespaces; the hub's are not sent.
        if reference.kind == "Namespace", Self.systemNamespaces.contains(reference.name) { return [:] }
        let plugin = registry.plugin(for: object)
        var placed =
            Self.isCompanion(reference)
            ? companionTargets(reference, object, plugin: plugin, among: clusters, placement: placement)
            : placement.copies(of: object, plugin: plugin, among: clusters)
        // A dependency also goes wherever an object that depends on it (under `propagateDeps`) is placed.
        if let dependents = dependents[reference], !dependents.isEmpty {
            for name in clusters where placed[name] == nil {
                if dependents.contains(where: { members[name]?.desired[$0] != nil }) { placed[name] = placement.overridden(object, for: name) }
            }
        }
        // Clusters given the same copy share one prepared value: one instance in memory for all
        // of them (a thousand clusters held a thousand copies of each object), hashed once. The
        // comparison is by identity first, so the common case costs no walk of the object.
        var prepared: [(placed: JSONValue, copy: PlacedCopy)] = []
        return placed.mapValues { placed in
            if let known = prepared.first(where: { $0.placed == placed }) { return known.copy }
            let value = plugin.prepareForMember(placed)
            let copy = PlacedCopy(value: value, contribution: Self.contribution(reference, value), size: value.encodedSize())
            if prepared.count == 8 { prepared.removeFirst() }
            prepared.append((placed, copy))
            return copy
        }
    }

    /// Records what `reference` depends on now (nothing unless its policy has `propagateDeps`);
    /// the dependencies it gained or lost, which must be placed again.
    private mutating func followDependencies(of reference: ObjectReference, placement: Placement) -> Set<ObjectReference> {
        var now: [ObjectReference] = []
        if let object = federated[reference], object.deletionTimestamp == nil, !Self.isCompanion(reference),
            placement.propagatesDependencies(of: object)
        {
            // Only objects of the same namespace, as in Karmada: a dependency elsewhere is not the dependent's to place.
            now = registry.plugin(for: object).dependencies(of: object).filter { $0.namespace == reference.namespace && $0 != reference }
        }
        let before = dependenciesFollowing[reference] ?? []
        guard now != before else { return [] }
        dependenciesFollowing[reference] = now.isEmpty ? nil : now
        for dependency in before where !now.contains(dependency) {
            dependents[dependency]?.remove(reference)
            if dependents[dependency]?.isEmpty == true { dependents[dependency] = nil }
        }
        for dependency in now { dependents[dependency, default: []].insert(reference) }
        return Set(before).symmetricDifference(now)
    }

    /// A CustomResourceDefinition or a ResourceInterpreterCustomization: objects that go where
    /// the objects of the kind they define or interpret go.
    static func isCompanion(_ reference: ObjectReference) -> Bool {
        (reference.kind == "CustomResourceDefinition" && reference.apiVersion.hasPrefix("\(CustomResourceDefinition.group)/"))
            || (reference.kind == InterpreterCustomization.kind && reference.apiVersion == InterpreterCustomization.apiVersion)
    }

    /// The federated definition and customization of an object's kind, where there are.
    private func companions(of reference: ObjectReference) -> [ObjectReference] {
        var found: [ObjectReference] = []
        if let name = registry.kind(apiVersion: reference.apiVersion, kind: reference.kind)?.definition {
            found.append(ObjectReference(apiVersion: "\(CustomResourceDefinition.group)/v1", kind: "CustomResourceDefinition", name: name))
        }
        if let interpreted = registry.plugin(apiVersion: reference.apiVersion, kind: reference.kind) as? InterpretedPlugin {
            found.append(
                ObjectReference(
                    apiVersion: InterpreterCustomization.apiVersion, kind: InterpreterCustomization.kind, name: interpreted.customization.name))
        }
        return found.filter { federated[$0] != nil }
    }

    /// Where a companion goes: every cluster that receives an object of the kind it defines or
    /// interprets, and those a PropagationPolicy naming the companion itself places it on. With
    /// neither, nowhere: it is sent only where it is needed or asked for.
    ///
    /// Once sent, it stays while the hub has it: removing a definition from a member deletes every
    /// object of its kind there, the member's own included, so the last federated object leaving
    /// must not take the definition with it. Deleting it at the hub removes it everywhere.
    private func companionTargets(
        _ reference: ObjectReference, _ object: JSONValue, plugin: any ResourcePlugin, among clusters: Set<String>, placement: Placement
    ) -> [String: JSONValue] {
        var copies = placement.selectsExplicitly(object) ? placement.copies(of: object, plugin: plugin, among: clusters) : [:]
        let matches: (ObjectReference) -> Bool
        if reference.kind == InterpreterCustomization.kind {
            guard let apiVersion = object.string(at: "spec", "target", "apiVersion"), let kind = object.string(at: "spec", "target", "kind") else {
                return copies
            }
            matches = { $0.kind == kind && $0.apiVersion == apiVersion }
        } else {
            guard let group = object.string(at: "spec", "group"), let kind = object.string(at: "spec", "names", "kind") else { return copies }
            let prefix = "\(group)/"
            matches = { $0.kind == kind && $0.apiVersion.hasPrefix(prefix) }
        }
        for name in clusters where copies[name] == nil {
            guard let member = members[name] else { continue }
            if member.desired[reference] != nil || member.desired.keys.contains(where: matches) { copies[name] = object }
        }
        return copies
    }
}
