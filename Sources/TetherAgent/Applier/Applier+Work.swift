import Foundation
import Logging
import Metrics
import TetherJSON
import TetherModel
import TetherPlugin
import TetherWire

/// A child of the applier's task group started on the state's request.
enum ApplierChild: Sendable {
    case watch(ServedResource)
    case timer(ApplierTimer, after: Duration)
}

extension Applier {
    /// Performs what the state decided since the last call.
    func performActions() {
        for action in state.takeActions() {
            switch action {
            case .persistDesired(let desired):
                do {
                    try desired.save(to: settings.stateDirectory)
                } catch {
                    logger.error(
                        "cannot persist the desired state", metadata: ["tether.event": "applier.persist_failed", "tether.error": "\(error)"])
                }
            case .persistInventory(let inventory):
                do {
                    try Inventory.save(inventory, cluster: settings.cluster, to: settings.stateDirectory)
                } catch {
                    logger.error("cannot persist the inventory", metadata: ["tether.event": "applier.persist_failed", "tether.error": "\(error)"])
                }
            case .removeDesiredFile:
                try? FileManager.default.removeItem(atPath: PersistedDesiredState.path(in: settings.stateDirectory))
            case .schedule(let timer, let delay):
                if !stopped { spawn.yield(.timer(timer, after: delay)) }
            case .wakeWorkers:
                wakeWorkers()
            case .ringReporter:
                doorbell.yield()
            case .resync(let reason):
                link.close(reason: reason)
            case .watch(let kinds):
                watch(kinds)
            case .event(let event):
                eventSink.yield(event)
            case .log(let level, let message, let metadata):
                logger.log(level: level, "\(message)", metadata: metadata.mapValues { .string($0) })
            case .countApply(let drifted):
                appliedCounter.increment()
                if drifted { driftCounter.increment() }
            case .countFailure(let kind):
                Counter(label: "tether_agent_apply_failures_total", dimensions: [("kind", kind)]).increment()
            }
        }
    }

    nonisolated func run(_ child: ApplierChild) async {
        switch child {
        case .watch(let resource):
            await watchLoop(resource)
        case .timer(let timer, let delay):
            guard (try? await Task.sleep(for: delay)) != nil else { return }
            await fired(timer)
        }
    }

    private func fired(_ timer: ApplierTimer) {
        state.fired(timer)
        performActions()
    }

    // MARK: Workers

    private func wakeWorkers() {
        while !idleWorkers.isEmpty, let next = state.takeWork() {
            idleWorkers.removeFirst().resume(returning: next)
        }
    }

    private func nextWork() async -> ObjectReference? {
        if stopped { return nil }
        if let next = state.takeWork() { return next }
        return await withCheckedContinuation { idleWorkers.append($0) }
    }

    func work() async {
        while let reference = await nextWork() {
            var input = ReconcileInput.start
            while true {
                let step = state.step(reference, input)
                performActions()
                guard step != .done else { break }
                input = await perform(step)
            }
            state.finished(reference)
            performActions()
        }
    }

    /// The I/O of one step against the member; what it came to.
    private func perform(_ step: ReconcileStep) async -> ReconcileInput {
        do {
            switch step {
            case .read(let reference):
                let resource = try await resource(for: reference)
                return .read(try await client.get(resource, namespace: reference.namespace, name: reference.name))
            case .apply(let reference, let object, _):
                let resource = try await resource(for: reference)
                return .applied(try await client.apply(object, as: resource, fieldManager: ManagedMarks.fieldManager))
            case .delete(let reference, let uid):
                let resource = try await resource(for: reference)
                try await client.delete(resource, namespace: reference.namespace, name: reference.name, uid: uid)
                return .deleted
            case .release(let reference):
                let resource = try await resource(for: reference)
                let unmark: JSONValue = ["metadata": ["labels": [ManagedMarks.managedBy: .null], "annotations": [ManagedMarks.origin: .null]]]
                _ = try await client.mergePatch(resource, namespace: reference.namespace, name: reference.name, patch: unmark)
                return .released
            case .done:
                return .start
            }
        } catch {
            return .failed("\(error)")
        }
    }

    private func resource(for reference: ObjectReference) async throws(KubernetesError) -> ServedResource {
        if let resource = served["\(reference.apiVersion)/\(reference.kind)"] { return resource }
        served = try await client.discover()
        guard let resource = served["\(reference.apiVersion)/\(reference.kind)"] else {
            throw KubernetesError(
                status: 404, reason: "NotFound", message: "the member cluster does not serve \(reference.apiVersion) \(reference.kind)")
        }
        // A kind the member did not serve when the desired set came (its definition was applied
        // just now) is watched from now on, so its objects' health is reported like any other's.
        watch(["\(reference.apiVersion)/\(reference.kind)"])
        return resource
    }

    // MARK: Watches

    /// Discovers what the member serves, then watches every propagated kind it serves, so
    /// managed objects left from an earlier desired set are found and pruned too.
    func discover() async {
        var attempt = 0
        while !stopped {
            do {
                served = try await client.discover()
                break
            } catch {
                attempt += 1
                logger.warning(
                    "cannot reach the member API for discovery; retrying",
                    metadata: ["tether.event": "applier.discovery_failed", "tether.error": "\(error)"])
                guard (try? await Task.sleep(for: settings.retryBackoff.delay(attempt: attempt))) != nil else { return }
            }
        }
        let kinds = registry.kinds.filter { registry.plugin(apiVersion: $0.apiVersion, kind: $0.kind).propagates($0) }
        watch(Set(kinds.map { "\($0.apiVersion)/\($0.kind)" }).union(state.desired.keys.map { "\($0.apiVersion)/\($0.kind)" }))
    }

    private func watch(_ kinds: Set<String>) {
        guard !served.isEmpty, !stopped else { return }
        for key in kinds.sorted() {
            guard let resource = served[key], watched.insert(key).inserted else { continue }
            spawn.yield(.watch(resource))
        }
    }

    private func watchLoop(_ resource: ServedResource) async {
        let key = "\(resource.apiVersion)/\(resource.kind)"
        let source = MemberListWatch(client: client, resource: resource, labelSelector: "\(ManagedMarks.managedBy)=\(settings.cluster)")
        await Informer(source, backoff: settings.retryBackoff).run { event in
            switch event {
            case .listed(let items, _):
                self.state.listed(kind: key, items: items)
            case .changed(.upserted(let object, _)):
                self.state.observed(object, deleted: false)
            case .changed(.deleted(let object, _)):
                self.state.observed(object, deleted: true)
            case .changed(.bookmark):
                break
            case .failed(let error, _, _):
                self.logger.debug(
                    "watch ended; listing again",
                    metadata: ["tether.event": "applier.watch_failed", "tether.kind": "\(resource.kind)", "tether.error": "\(error)"])
            }
            self.performActions()
        }
    }
}

/// One kind of a member's managed objects as an ``Informer`` reads it.
struct MemberListWatch: ListWatchSource {
    let client: KubernetesClient
    let resource: ServedResource
    let labelSelector: String

    nonisolated(nonsending) func list() async throws -> (objects: [JSONValue], version: String) {
        let page = try await client.list(resource, labelSelector: labelSelector)
        return (page.items, page.resourceVersion)
    }

    nonisolated(nonsending) func watch(from version: String, _ report: (WatchedChange<JSONValue>) async -> Void) async throws {
        var expired = false
        try await client.watch(resource, labelSelector: labelSelector, resourceVersion: version) { event in
            switch event {
            case .expired: expired = true
            case .bookmark(let version): await report(.bookmark(version: version))
            case .added(let object), .modified(let object): await report(.upserted(object, version: object.resourceVersion.map(String.init)))
            case .deleted(let object): await report(.deleted(object, version: object.resourceVersion.map(String.init)))
            }
        }
        if expired { throw ListWatchExpired() }
    }
}
