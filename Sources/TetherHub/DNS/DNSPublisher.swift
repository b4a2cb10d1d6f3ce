import Foundation
import Logging
import Metrics
import Synchronization
import TetherFiles
import TetherJSON
import TetherModel
import TetherSecurity
import TetherStore

/// The global DNS name each federated object answers at, as last published: the engine's
/// status writer lists it first in the object's `status.loadBalancer.ingress`, so
/// `kubectl get svc,ing` shows it beside the members' addresses.
final class PublishedDNSNames: Sendable {
    private let names = Mutex<[ObjectReference: String]>([:])

    func name(of reference: ObjectReference) -> String? { names.withLock { $0[reference] } }

    /// Replaces them all; returns the objects whose name came, went or changed.
    func replace(with new: [ObjectReference: String]) -> [ObjectReference] {
        names.withLock { names in
            let changed = Set(names.keys).union(new.keys).filter { names[$0] != new[$0] }
            names = new
            return changed.sorted { $0.description < $1.description }
        }
    }
}

/// Publishes the records ``DNSRecordPlanner`` computes from the engine's state, each time it
/// changed (the engine wakes it; wakes that arrive while it works coalesce into one more pass):
/// as `externaldns.k8s.io/v1alpha1` `DNSEndpoint` objects in the hub's API (one per federated
/// object, in its namespace, for an external-dns with the CRD source), as a zone file, and as
/// one Event per record name on the federated object (what `kubectl describe` lists).
///
/// It publishes nothing until every cluster an object is placed on has reported on it since
/// the hub started, or ``DNSSettings/startupGrace`` has passed: a restart must not empty the
/// answers for the seconds agents take to come back.
final class DNSPublisher: Sendable {
    static let endpointType = ResourceType(group: "externaldns.k8s.io", resource: "dnsendpoints", namespaced: true)
    static let eventType = ResourceType(group: "", resource: "events", namespaced: true)
    /// On every DNSEndpoint the hub writes: the kind it publishes (`service`, `ingress`).
    static let sourceKindLabel = "tether.io/dns-for-kind"
    static let sourceAnnotation = "tether.io/dns-for"

    let settings: DNSSettings
    let names = PublishedDNSNames()
    private let store: any ResourceStore
    private let logger: Logger
    private let wakeups: AsyncStream<Void>
    private let wakeup: AsyncStream<Void>.Continuation
    private let started = ContinuousClock.now

    /// What the last pass published, so the next writes only what changed.
    private struct Published: Sendable {
        var objects: [ObjectReference: DNSObjectRecords] = [:]
        /// What each object's records were planned from: an object whose members did not change is not planned again.
        var sources: [ObjectReference: DNSSource] = [:]
        /// Each DNSEndpoint the hub holds, as `namespace/name`.
        var endpoints: Set<String> = []
        var zoneFile: String?
        var serial: UInt32?
    }
    private let published = Mutex(Published())

    /// Events wait here, the latest per object and name, for a writer of their own: a pass of
    /// record changes never waits for a dozen Event writes.
    private struct PendingEvent: Sendable {
        var reference: ObjectReference
        var uid: String
        var name: String
        var message: String
    }
    private let pendingEvents = Mutex<(events: [String: PendingEvent], order: [String])>(([:], []))
    private let eventWakeups: AsyncStream<Void>
    private let eventWakeup: AsyncStream<Void>.Continuation
    static let pendingEventCapacity = 16_384

    init(settings: DNSSettings, store: any ResourceStore, logger: Logger) {
        self.settings = settings
        self.store = store
        self.logger = logger
        (wakeups, wakeup) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        (eventWakeups, eventWakeup) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Something DNS depends on changed; cheap, callable from anywhere.
    func wake() { wakeup.yield() }

    func finish() {
        wakeup.finish()
        eventWakeup.finish()
    }

    /// Publishes on every wake until ``finish()``. `view` reads the engine's state; `renamed`
    /// is told which objects' global names changed, so their status is written again.
    func run(view: @escaping @Sendable () async -> DNSView, renamed: @escaping @Sendable ([ObjectReference]) async -> Void) async {
        await loadExisting()
        let grace = Task { [settings, wakeup] in
            try? await Task.sleep(for: settings.startupGrace)
            wakeup.yield()
        }
        let events = Task { await writeEvents() }
        defer {
            grace.cancel()
            eventWakeup.finish()
        }
        await publishOnWake(view: view, renamed: renamed)
        await events.value
    }

    private func publishOnWake(view: @Sendable () async -> DNSView, renamed: @Sendable ([ObjectReference]) async -> Void) async {
        var saidWaiting = false
        var publishedOnce = false
        for await _ in wakeups {
            let current = await view()
            // Only until the first pass: after it, a member that leaves must leave the answers at once.
            if !publishedOnce, !current.complete, ContinuousClock.now - started < settings.startupGrace {
                if !saidWaiting {
                    saidWaiting = true
                    logger.info(
                        "DNS records wait for the agents to report again before they are published",
                        metadata: ["tether.event": "dns.waiting", "tether.grace_seconds": "\(settings.startupGrace.components.seconds)"])
                }
                continue
            }
            publishedOnce = true
            await publish(current)
            await renamed(names.replace(with: globalNames()))
        }
    }

    /// The DNSEndpoints an earlier run wrote, and the zone file's serial.
    private func loadExisting() async {
        var endpoints: Set<String> = []
        if let selector = try? LabelSelector(parsing: Self.sourceKindLabel),
            let page = try? await store.list(Self.endpointType, options: ListOptions(labelSelector: selector))
        {
            for endpoint in page.objects {
                guard let namespace = endpoint.namespace, let name = endpoint.name else { continue }
                endpoints.insert("\(namespace)/\(name)")
            }
        }
        let text = try? String(decoding: AtomicFile.read(settings.zoneFilePath), as: UTF8.self)
        published.withLock {
            $0.endpoints = endpoints
            $0.zoneFile = text
            $0.serial = text.flatMap(ZoneFile.serial(of:))
        }
    }

    private func globalNames() -> [ObjectReference: String] {
        let dns = settings.dns
        return published.withLock { published in
            var names: [ObjectReference: String] = [:]
            for (reference, records) in published.objects {
                let type = reference.kind == "Ingress" ? "ing" : "svc"
                let global = [reference.name, reference.namespace ?? "default", dns.federation, type, dns.zone].joined(separator: ".")
                if records.records.contains(where: { $0.name == global }) { names[reference] = global }
            }
            return names
        }
    }

    private func publish(_ view: DNSView) async {
        let (previous, endpoints, previousSources) = published.withLock { ($0.objects, $0.endpoints, $0.sources) }
        let planned = view.sources.map { source in
            if previousSources[source.reference] == source, let records = previous[source.reference] { return records }
            return DNSRecordPlanner.records(for: source, dns: settings.dns)
        }
        var next: [ObjectReference: DNSObjectRecords] = [:]
        for records in planned { next[records.reference] = records }
        let changed = planned.filter { previous[$0.reference] != $0 }.count + previous.keys.filter { next[$0] == nil }.count

        // The zone file first: one local write, what DNS servers answer from.
        let all = planned.flatMap(\.records)
        writeZoneFile(all)

        // The DNSEndpoints: written where records changed, deleted where none are left.
        var keptEndpoints: Set<String> = []
        for records in planned where !records.records.isEmpty {
            let key = Self.endpointKey(records.reference)
            keptEndpoints.insert(key)
            if previous[records.reference]?.records != records.records || !endpoints.contains(key) {
                await writeEndpoint(records)
            }
        }
        for key in endpoints.subtracting(keptEndpoints) {
            let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
            await deleteEndpoint(namespace: parts[0], name: parts[1])
        }
        published.withLock {
            $0.objects = next
            $0.endpoints = keptEndpoints
            $0.sources = Dictionary(view.sources.map { ($0.reference, $0) }, uniquingKeysWith: { first, _ in first })
        }
        if changed > 0 {
            logger.info(
                "DNS records published",
                metadata: [
                    "tether.event": "dns.published", "tether.objects": "\(planned.count)", "tether.records": "\(all.count)",
                    "tether.changed_objects": "\(changed)", "tether.serial": "\(published.withLock { $0.serial ?? 0 })",
                    "tether.placed_copies": "\(view.sources.reduce(0) { $0 + $1.members.count })",
                    "tether.counted_copies": "\(view.sources.reduce(0) { $0 + $1.members.filter(\.healthy).count })",
                    "tether.complete": "\(view.complete)",
                ])
        }

        // One Event per name whose answer changed, on the object (what `kubectl describe` lists).
        for records in planned {
            let before = previous[records.reference]?.uid == records.uid ? previous[records.reference]?.explanations ?? [:] : [:]
            for (name, line) in records.explanations.sorted(by: { $0.key < $1.key }) where before[name] != line {
                queueEvent(records, name: name, message: line)
            }
            for name in before.keys.sorted() where records.explanations[name] == nil {
                queueEvent(records, name: name, message: "\(name): no record (no healthy cluster has an address for it)")
            }
            for problem in Set(records.skipped).subtracting(previous[records.reference]?.skipped ?? []).sorted() {
                logger.warning(
                    "a DNS record is left out",
                    metadata: ["tether.event": "dns.skipped", "tether.object": "\(records.reference)", "tether.reason": "\(problem)"])
            }
        }
    }

    /// `D/dns.zone`, rewritten only when a record changed, with the next serial.
    private func writeZoneFile(_ records: [DNSRecord]) {
        let (previous, serial) = published.withLock { ($0.zoneFile, $0.serial) }
        let draft = ZoneFile.render(records, dns: settings.dns, serial: 0)
        if let previous, ZoneFile.withoutSerial(previous) == ZoneFile.withoutSerial(draft) { return }
        let next = ZoneFile.nextSerial(after: serial, now: Date())
        let text = ZoneFile.render(records, dns: settings.dns, serial: next)
        do {
            try AtomicFile.write(text, to: settings.zoneFilePath, mode: 0o644)
            published.withLock {
                $0.zoneFile = text
                $0.serial = next
            }
        } catch {
            logger.error(
                "cannot write the DNS zone file; it keeps its last records until the next change",
                metadata: ["tether.event": "dns.zone_file_failed", "tether.path": "\(settings.zoneFilePath)", "tether.error": "\(error)"])
        }
    }

    /// `service-<name>` or `ingress-<name>` in the object's namespace; past 253 characters, cut and hashed.
    static func endpointName(_ reference: ObjectReference) -> String {
        KubernetesNames.derived("\(reference.kind.lowercased())-\(reference.name)")
    }

    private static func endpointKey(_ reference: ObjectReference) -> String {
        "\(reference.namespace ?? "default")/\(endpointName(reference))"
    }

    static func endpointObject(_ records: DNSObjectRecords) -> JSONValue {
        let reference = records.reference
        let endpoints: [JSONValue] = records.records.map { record in
            [
                "dnsName": .string(record.name), "recordType": .string(record.type.rawValue),
                "recordTTL": .integer(Int64(record.ttl)), "targets": .array(record.targets.map(JSONValue.string)),
            ]
        }
        return [
            "apiVersion": "externaldns.k8s.io/v1alpha1", "kind": "DNSEndpoint",
            "metadata": [
                "name": .string(endpointName(reference)), "namespace": .string(reference.namespace ?? "default"),
                "labels": [.init(sourceKindLabel): .string(reference.kind.lowercased())],
                "annotations": [.init(sourceAnnotation): .string("\(reference.kind) \(reference.name)")],
                "ownerReferences": [
                    [
                        "apiVersion": .string(reference.apiVersion), "kind": .string(reference.kind), "name": .string(reference.name),
                        "uid": .string(records.uid), "controller": true,
                    ]
                ],
            ],
            "spec": ["endpoints": .array(endpoints)],
        ]
    }

    private func writeEndpoint(_ records: DNSObjectRecords) async {
        let desired = Self.endpointObject(records)
        do {
            try await store.modify(
                Self.endpointType, namespace: records.reference.namespace ?? "default", name: Self.endpointName(records.reference),
                createIfMissing: { desired },
                change: { existing in
                    var updated = existing
                    updated[member: "spec"] = desired["spec"]
                    for key in ["labels", "annotations", "ownerReferences"] {
                        updated.set(desired.value(at: "metadata", key) ?? .null, at: ["metadata", key])
                    }
                    guard updated != existing else { return false }
                    existing = updated
                    return true
                })
        } catch {
            logger.warning(
                "cannot write a DNSEndpoint",
                metadata: ["tether.event": "dns.endpoint_failed", "tether.object": "\(records.reference)", "tether.error": "\(error)"])
        }
    }

    private func deleteEndpoint(namespace: String, name: String) async {
        do {
            _ = try await store.delete(Self.endpointType, namespace: namespace, name: name, preconditions: .init(), dryRun: false)
        } catch  where error.code == .notFound {
        } catch {
            logger.warning(
                "cannot delete a DNSEndpoint",
                metadata: ["tether.event": "dns.endpoint_failed", "tether.endpoint": "\(namespace)/\(name)", "tether.error": "\(error)"])
        }
    }

    private func queueEvent(_ records: DNSObjectRecords, name: String, message: String) {
        let key = "\(records.uid)/\(name)"
        let queued = pendingEvents.withLock { queue in
            if queue.events[key] == nil {
                guard queue.events.count < Self.pendingEventCapacity else { return false }
                queue.order.append(key)
            }
            queue.events[key] = PendingEvent(reference: records.reference, uid: records.uid, name: name, message: message)
            return true
        }
        if queued { eventWakeup.yield() } else { Counter(label: "tether_hub_events_dropped_total").increment() }
    }

    private func writeEvents() async {
        for await _ in eventWakeups {
            while let event = nextEvent() {
                await recordEvent(event)
            }
        }
    }

    private func nextEvent() -> PendingEvent? {
        pendingEvents.withLock { queue in
            while !queue.order.isEmpty {
                let key = queue.order.removeFirst()
                if let event = queue.events.removeValue(forKey: key) { return event }
            }
            return nil
        }
    }

    /// One Event per object and record name, updated in place as its answer changes.
    private func recordEvent(_ pending: PendingEvent) async {
        let reference = pending.reference
        let dnsName = pending.name
        let message = pending.message
        let namespace = reference.namespace ?? "default"
        var hash = StableHash()
        hash.combine(dnsName)
        let eventName = "\(reference.name).\(reference.kind.lowercased()).dns-\(String(hash.value, radix: 16))"
        let now = kubernetesTimestamp()
        let involved: JSONValue = [
            "apiVersion": .string(reference.apiVersion), "kind": .string(reference.kind), "name": .string(reference.name),
            "namespace": .string(namespace), "uid": .string(pending.uid),
        ]
        let alias = message.contains(": CNAME ")
        let reason = message.contains(": no record") ? "DNSRecordRemoved" : alias ? "DNSRecordAliased" : "DNSRecordPublished"
        do {
            try await store.modify(
                Self.eventType, namespace: namespace, name: String(eventName.prefix(253)), attempts: 3,
                createIfMissing: {
                    [
                        "apiVersion": "v1", "kind": "Event",
                        "metadata": ["name": .string(String(eventName.prefix(253))), "namespace": .string(namespace)],
                        "involvedObject": involved, "reason": .string(reason), "type": .string(alias ? "Warning" : "Normal"),
                        "message": .string(message), "source": ["component": "tether-hub"], "reportingComponent": "tether.io/hub",
                        "firstTimestamp": .string(now), "lastTimestamp": .string(now), "count": 1,
                    ]
                },
                change: { event in
                    event.set(.integer((event.integer(at: "count") ?? 1) + 1), at: ["count"])
                    event.set(.string(now), at: ["lastTimestamp"])
                    event.set(.string(message), at: ["message"])
                    event.set(.string(reason), at: ["reason"])
                    event.set(.string(alias ? "Warning" : "Normal"), at: ["type"])
                    event.set(involved, at: ["involvedObject"])
                    return true
                })
        } catch {
            logger.debug("cannot record a DNS event", metadata: ["tether.object": "\(reference)", "tether.error": "\(error)"])
        }
    }
}
