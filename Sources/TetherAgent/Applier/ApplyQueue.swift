import TetherJSON
import TetherModel

/// Objects waiting to be reconciled, each at most once, lowest priority number first.
///
/// A priority is a barrier: nothing of priority `p` starts while something of a lower number is
/// waiting or in flight, so a namespace is applied before what lives in it. An object whose work
/// is in flight when it is added again is held back and queued once that work finishes, so two
/// workers never touch the same object.
struct ApplyQueue {
    private var buckets: [[ObjectReference]]
    private var heads: [Int]
    private var queued: [ObjectReference: Int] = [:]
    private var inFlight: [ObjectReference: Int] = [:]
    private var inFlightByPriority: [Int]
    private var again: [ObjectReference: Int] = [:]

    init(priorities: Int) {
        buckets = Array(repeating: [], count: priorities)
        heads = Array(repeating: 0, count: priorities)
        inFlightByPriority = Array(repeating: 0, count: priorities)
    }

    var isEmpty: Bool { queued.isEmpty && inFlight.isEmpty }
    var waitingCount: Int { queued.count }

    mutating func add(_ key: ObjectReference, priority: Int) {
        let priority = min(max(priority, 0), buckets.count - 1)
        if inFlight[key] != nil {
            again[key] = priority
            return
        }
        guard queued[key] != priority else { return }
        queued[key] = priority
        buckets[priority].append(key)
    }

    /// Drops a waiting object (its work no longer matters).
    mutating func remove(_ key: ObjectReference) {
        queued[key] = nil
        again[key] = nil
    }

    /// The next object to work on, or nil when nothing may start now.
    mutating func take() -> ObjectReference? {
        for priority in buckets.indices {
            while heads[priority] < buckets[priority].count {
                let key = buckets[priority][heads[priority]]
                guard queued[key] == priority else {
                    heads[priority] += 1
                    continue
                }
                // Something earlier is still in flight: wait for it.
                if (0..<priority).contains(where: { inFlightByPriority[$0] > 0 }) { return nil }
                heads[priority] += 1
                compact(priority)
                queued[key] = nil
                inFlight[key] = priority
                inFlightByPriority[priority] += 1
                return key
            }
            compact(priority)
            if inFlightByPriority[priority] > 0 { return nil }
        }
        return nil
    }

    /// Work on `key` ended; queues it again if it was added meanwhile.
    mutating func finish(_ key: ObjectReference) {
        guard let priority = inFlight.removeValue(forKey: key) else { return }
        inFlightByPriority[priority] -= 1
        if let next = again.removeValue(forKey: key) { add(key, priority: next) }
    }

    private mutating func compact(_ priority: Int) {
        guard heads[priority] > 64, heads[priority] * 2 > buckets[priority].count else { return }
        buckets[priority].removeFirst(heads[priority])
        heads[priority] = 0
    }
}
