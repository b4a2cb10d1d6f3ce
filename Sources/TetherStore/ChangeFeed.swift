import Synchronization

/// Hands each committed change to the live watches it concerns.
///
/// Each watch has a bounded buffer. A watch whose reader falls more than its buffer behind is
/// ended with ``StoreError/Code/watchOverflow`` rather than left to grow: the reader lists
/// again and resumes, as Kubernetes clients do after a 410.
package final class ChangeFeed: Sendable {
    private struct Subscriber {
        /// The resource's ``ResourceType/storageKey``, as changes name it.
        var resource: String
        var namespace: String?
        var continuation: WatchStream.Continuation
    }

    private let subscribers = Mutex<(next: Int, all: [Int: Subscriber])>((0, [:]))

    /// A stream that first yields `replay`, then every live change of `type` (in `namespace`, or all).
    package init() {}

    package func subscribe(type: ResourceType, namespace: String?, replay: [WatchEvent], liveLimit: Int) -> WatchStream {
        let (stream, continuation) = WatchStream.makeStream(bufferingPolicy: .bufferingOldest(replay.count + liveLimit))
        for event in replay { continuation.yield(event) }
        let id = subscribers.withLock { state in
            defer { state.next += 1 }
            state.all[state.next] = Subscriber(resource: type.storageKey, namespace: namespace, continuation: continuation)
            return state.next
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.all.removeValue(forKey: id) }
        }
        return stream
    }

    /// Called on commit, in commit order; each change names its resource by ``ResourceType/storageKey``
    /// and its namespace (empty for cluster-scoped kinds).
    package func publish(_ events: [(event: WatchEvent, resource: String, namespace: String)]) {
        let current = subscribers.withLock { $0.all }
        for (id, subscriber) in current {
            for (event, resource, namespace) in events where resource == subscriber.resource {
                if let wanted = subscriber.namespace, wanted != namespace { continue }
                if case .dropped = subscriber.continuation.yield(event) {
                    _ = subscribers.withLock { $0.all.removeValue(forKey: id) }
                    subscriber.continuation.finish(
                        throwing: StoreError(.watchOverflow, "the watch fell too far behind and was closed; list again and resume")
                    )
                    break
                }
            }
        }
    }

    package var subscriberCount: Int { subscribers.withLock { $0.all.count } }

    /// Ends every live watch with `error`: the feed can no longer promise them every change.
    package func finishAll(throwing error: StoreError) {
        let all = subscribers.withLock { state in
            defer { state.all.removeAll() }
            return state.all
        }
        for subscriber in all.values { subscriber.continuation.finish(throwing: error) }
    }
}
