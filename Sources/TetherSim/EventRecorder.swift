import Foundation
import Logging
import Metrics
import TetherJSON
import TetherModel
import TetherStore

/// The core v1 Events a real cluster's scheduler, kubelet and controllers record, so that
/// `kubectl describe` and `kubectl events` on a simulated member show what happened to an object.
///
/// Recorded the way client-go's recorder does it, so their number stays bounded:
/// - the same event again (source, object, type, reason, message) updates one Event in place
///   (`count`, `lastTimestamp`);
/// - once one source has said ``similarLimit`` different things of one object with the same
///   reason within ``similarWindow`` (a 1,000-replica ReplicaSet's `Created pod: ...`), the
///   rest go into one Event whose message starts `(combined from similar events): `.
///
/// Recording never holds up the controllers: events queue here, coalesced per Event, and one
/// task writes them; a full queue drops the newest and counts it. What is kept is bounded too,
/// as kube-apiserver bounds it with its event TTL: an Event not written for `timeToLive` (an hour) is
/// deleted, and beyond `keptLimit` Events (10,000 by default) the oldest go first.
actor EventRecorder {
    /// Who records: the component (`default-scheduler`, `kubelet`, `replicaset-controller`) and,
    /// for the kubelet, its node.
    struct Source: Sendable {
        var component: String
        var host: String?
    }

    enum Severity: String, Sendable {
        case normal = "Normal"
        case warning = "Warning"
    }

    static let events = ResourceType(group: "", resource: "events", namespaced: true)
    static let similarLimit = 10
    static let similarWindow: Duration = .seconds(600)
    static let correlationCapacity = 4096
    static let pendingCapacity = 4096
    static let defaultKeptLimit = 10_000
    /// kube-apiserver's default `--event-ttl`.
    static let defaultTimeToLive: TimeInterval = 3600
    static let combinedPrefix = "(combined from similar events): "

    private struct Pending {
        var namespace: String
        var name: String
        var involved: JSONValue
        var severity: Severity
        var reason: String
        var message: String
        var source: Source
        var at: String
        /// How many times it was recorded since it was last written.
        var times: Int64
    }

    private let store: any ResourceStore
    private let logger: Logger
    private let keptLimit: Int
    private let timeToLive: TimeInterval
    /// The wall clock Events are timed and expired by (a test's own, to pass the time to live).
    private let clock: @Sendable () -> Date
    private var pending: [String: Pending] = [:]
    private var order: [String] = []
    /// Per source, object, type and reason: the distinct messages seen in the current window.
    private var similar: [String: (messages: Set<String>, since: ContinuousClock.Instant)] = [:]
    private var similarOrder: [String] = []
    /// The Event each distinct event (source, object, type, reason, message) was last recorded in.
    private var names: [String: String] = [:]
    private var namesOrder: [String] = []
    private var lastNanoseconds: UInt64 = 0
    /// The Events written (by `namespace/name`), when last written, and the order they were written in.
    private var kept: [String: Date] = [:]
    private var keptOrder: [(key: String, at: Date)] = []
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    init(
        store: any ResourceStore, logger: Logger, keptLimit: Int = defaultKeptLimit, timeToLive: TimeInterval = defaultTimeToLive,
        clock: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.store = store
        self.logger = logger
        self.keptLimit = keptLimit
        self.timeToLive = timeToLive
        self.clock = clock
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues one event about `object`; `fieldPath` names a part of it (`spec.containers{web}`).
    func record(_ severity: Severity, _ reason: String, _ message: String, about object: JSONValue, fieldPath: String? = nil, source: Source) {
        guard let name = object.name, let uid = object.uid else { return }
        let namespace = object.namespace ?? "default"
        var involved: [String: JSONValue] = [
            "apiVersion": .string(object.apiVersion ?? "v1"), "kind": .string(object.kind ?? ""), "name": .string(name),
            "uid": .string(uid),
        ]
        if let objectNamespace = object.namespace { involved["namespace"] = .string(objectNamespace) }
        if let version = object.resourceVersion { involved["resourceVersion"] = .string(String(version)) }
        if let fieldPath { involved["fieldPath"] = .string(fieldPath) }

        let similarKey = [source.component, source.host ?? "", uid, fieldPath ?? "", severity.rawValue, reason].joined(separator: "\u{1F}")
        let combined = noteSimilar(similarKey, message: message)
        let recordedIn = eventName(for: similarKey + "\u{1F}" + (combined ? "" : message), about: name)
        let key = "\(namespace)/\(recordedIn)"
        let shownMessage = combined ? Self.combinedPrefix + message : message
        if var queued = pending[key] {
            queued.message = shownMessage
            queued.at = kubernetesTimestamp()
            queued.times += 1
            pending[key] = queued
            return
        }
        guard pending.count < Self.pendingCapacity else {
            Counter(label: "tether_sim_events_dropped_total").increment()
            return
        }
        pending[key] = Pending(
            namespace: namespace, name: recordedIn, involved: .object(involved), severity: severity, reason: reason, message: shownMessage,
            source: source, at: kubernetesTimestamp(), times: 1)
        order.append(key)
        wake.yield()
    }

    /// The Event an event is recorded in: the one the same event went to before, or a new one
    /// named, as Kubernetes names them, after its object and the time in nanoseconds, so that
    /// listing by name lists by time (kubectl sorts by `lastTimestamp`, to the second only).
    private func eventName(for correlation: String, about object: String) -> String {
        if let known = names[correlation] { return known }
        let nanoseconds = UInt64(max(0, Date().timeIntervalSince1970 * 1e9))
        lastNanoseconds = max(nanoseconds, lastNanoseconds + 1)
        let made = "\(object.prefix(236)).\(String(lastNanoseconds, radix: 16))"
        names[correlation] = made
        namesOrder.append(correlation)
        if namesOrder.count > Self.correlationCapacity { names[namesOrder.removeFirst()] = nil }
        return made
    }

    /// Whether this message joins its similar events' combined Event (the window's limit is reached).
    private func noteSimilar(_ key: String, message: String) -> Bool {
        let now = ContinuousClock.now
        if var entry = similar[key], now - entry.since < Self.similarWindow {
            entry.messages.insert(message)
            similar[key] = entry
            return entry.messages.count >= Self.similarLimit
        }
        if similar[key] == nil { similarOrder.append(key) }
        similar[key] = ([message], now)
        if similarOrder.count > Self.correlationCapacity {
            // The least recently started windows go; an object that speaks again starts a new one.
            let evicted = similarOrder.removeFirst()
            similar[evicted] = nil
        }
        return false
    }

    /// Writes what is queued until the simulator stops. Events left by an earlier run are
    /// counted against the limits first, so a restarted member still deletes them in time.
    func run() async {
        await loadKept()
        for await _ in wakeups {
            while !order.isEmpty {
                let key = order.removeFirst()
                guard let event = pending.removeValue(forKey: key) else { continue }
                await write(event, key: key)
                await expire()
            }
        }
    }

    private func write(_ event: Pending, key: String) async {
        do {
            // A first write of a new Event creates it without reading first; a name taken
            // (written before a restart) falls back to counting up the stored one.
            if kept[key] == nil {
                do throws(StoreError) {
                    _ = try await store.create(Self.newEvent(event), as: Self.events, dryRun: false)
                    remember(key)
                    return
                } catch  where error.code == .alreadyExists {}
            }
            try await store.modify(
                Self.events, namespace: event.namespace, name: event.name, attempts: 3,
                createIfMissing: { Self.newEvent(event) },
                change: { existing in
                    existing.set(.integer((existing.integer(at: "count") ?? 1) + event.times), at: ["count"])
                    existing.set(.string(event.at), at: ["lastTimestamp"])
                    existing.set(.string(event.message), at: ["message"])
                    existing.set(event.involved, at: ["involvedObject"])
                    return true
                })
            remember(key)
        } catch {
            // A namespace being deleted refuses new Events, as kube-apiserver does.
            logger.debug("simulated event not recorded", metadata: ["tether.object": "\(key)", "tether.error": "\(error)"])
        }
    }

    private func remember(_ key: String) {
        let now = clock()
        kept[key] = now
        keptOrder.append((key, now))
    }

    private static func newEvent(_ event: Pending) -> JSONValue {
        var source: JSONValue = ["component": .string(event.source.component)]
        if let host = event.source.host { source[member: "host"] = .string(host) }
        return [
            "apiVersion": "v1", "kind": "Event",
            "metadata": ["name": .string(event.name), "namespace": .string(event.namespace)],
            "involvedObject": event.involved, "reason": .string(event.reason), "type": .string(event.severity.rawValue),
            "message": .string(event.message), "source": source, "reportingComponent": .string(event.source.component),
            "reportingInstance": .string(event.source.host ?? ""), "firstTimestamp": .string(event.at),
            "lastTimestamp": .string(event.at), "count": .integer(event.times),
        ]
    }

    /// Deletes Events past their time to live, and the oldest beyond the limit.
    private func expire() async {
        let cutoff = clock().addingTimeInterval(-timeToLive)
        while let oldest = keptOrder.first {
            guard kept[oldest.key] == oldest.at else {
                // Written again since: a later entry stands for it.
                keptOrder.removeFirst()
                continue
            }
            guard oldest.at < cutoff || kept.count > keptLimit else { break }
            keptOrder.removeFirst()
            kept[oldest.key] = nil
            let parts = oldest.key.split(separator: "/", maxSplits: 1).map(String.init)
            do throws(StoreError) {
                _ = try await store.delete(Self.events, namespace: parts[0], name: parts[1], preconditions: .init(), dryRun: false)
            } catch  where error.code == .notFound {
                // Deleted with its namespace, or by hand.
            } catch {
                logger.debug("expired simulated event not deleted", metadata: ["tether.object": "\(oldest.key)", "tether.error": "\(error)"])
            }
        }
        if keptOrder.count > 2 * keptLimit { keptOrder.removeAll { kept[$0.key] != $0.at } }
    }

    private func loadKept() async {
        guard let page = try? await store.list(Self.events, options: ListOptions()) else { return }
        let found = page.objects.compactMap { event -> (key: String, at: Date)? in
            guard let name = event.name, let namespace = event.namespace else { return nil }
            let written =
                (event.string(at: "lastTimestamp") ?? event.metadata["creationTimestamp"]?.stringValue)
                .flatMap(kubernetesTimeParts)
                .map { Date(timeIntervalSince1970: TimeInterval($0.seconds)) } ?? clock()
            return ("\(namespace)/\(name)", written)
        }
        for entry in found.sorted(by: { $0.at < $1.at }) {
            kept[entry.key] = entry.at
            keptOrder.append(entry)
        }
        await expire()
    }
}
