import Foundation
import NIOHTTP1

/// Every write the fault suite sent to the hub and what the API answered: the truth the hub
/// and the members are checked against.
///
/// An acknowledged write (2xx) is certain. A write whose answer never came (the hub was killed
/// under it) may or may not have happened: its object is *uncertain* between the two states
/// until the hub is read again, and either is accepted. Object names are never reused, so an
/// object's member UID identifies the copy the agent made.
public struct WriteLedger: Sendable {
    public enum State: Hashable, Sendable, CustomStringConvertible {
        case absent
        /// Present with this value of `data.gen`.
        case present(Int)

        public var description: String {
            switch self {
            case .absent: "absent"
            case .present(let generation): "gen \(generation)"
            }
        }
    }

    public enum Operation: Sendable {
        case create(String)
        case update(String, to: Int)
        case delete(String)
    }

    public let namespace: String
    /// Objects whose state the API acknowledged.
    public private(set) var known: [String: State] = [:]
    /// Objects with a write in doubt, and the states they may be in.
    public private(set) var uncertain: [String: Set<State>] = [:]
    /// Names with a write in flight, which no other write may touch.
    private var inFlight: Set<String> = []
    private var nextIndex = 0
    public private(set) var acknowledged = 0

    public init(namespace: String) {
        self.namespace = namespace
    }

    /// What should be on every member the objects are placed on: name to `data.gen`.
    public var expected: [String: Int] {
        known.compactMapValues { state in
            if case .present(let generation) = state { return generation }
            return nil
        }
    }

    public var population: Int { expected.count }

    /// Picks the next write: creates below `target` objects, otherwise mostly updates, some
    /// deletes and creates; never an object in doubt or with a write in flight, and no more
    /// deletes than `deletesLeft` (so no burst removes most of what the agents manage).
    public mutating func nextOperation(target: Int, deletesLeft: inout Int) -> Operation {
        let candidates = expected.keys.filter { !inFlight.contains($0) && uncertain[$0] == nil }.sorted()
        let roll = Int.random(in: 0..<10)
        let operation: Operation
        if population < target || candidates.isEmpty || roll < 2 {
            operation = .create("cm-\(nextIndex)")
            nextIndex += 1
        } else if roll < 4, deletesLeft > 0 {
            deletesLeft -= 1
            operation = .delete(candidates.randomElement()!)
        } else {
            let name = candidates.randomElement()!
            operation = .update(name, to: (expected[name] ?? 0) + 1)
        }
        inFlight.insert(Self.name(of: operation))
        return operation
    }

    /// Records the API's answer to `operation`: a status, or nil when none came.
    public mutating func record(_ operation: Operation, status: Int?) -> Bool {
        let name = Self.name(of: operation)
        inFlight.remove(name)
        let before = known[name] ?? .absent
        let after: State
        switch operation {
        case .create: after = .present(1)
        case .update(_, let generation): after = .present(generation)
        case .delete: after = .absent
        }
        guard let status else {
            known[name] = nil
            uncertain[name] = [before, after]
            return false
        }
        if (200..<300).contains(status) {
            known[name] = after
            acknowledged += 1
            return true
        }
        // Refused (429, 503 while the hub stops): Kubernetes semantics say nothing changed, but a
        // 5xx after the write reached the store is possible, so it is in doubt like a lost answer.
        if status >= 500 {
            known[name] = nil
            uncertain[name] = [before, after]
        }
        return false
    }

    /// Settles a doubtful object from what the hub holds; false if the hub holds a state no
    /// write could have produced.
    public mutating func settle(_ name: String, atHub state: State) -> Bool {
        guard let possible = uncertain.removeValue(forKey: name) else { return true }
        known[name] = state
        return possible.contains(state)
    }

    /// The ledger as it stood at a moment (a backup), to compare a restored hub against.
    public func snapshot() -> [String: State] { known }

    /// The object written by `operation`, as JSON for the API.
    public func body(for operation: Operation) -> String? {
        switch operation {
        case .create(let name):
            return #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"\#(name)","namespace":"\#(namespace)"},"data":{"gen":"1"}}"#
        case .update(_, let generation):
            return #"{"data":{"gen":"\#(generation)"}}"#
        case .delete:
            return nil
        }
    }

    public func request(for operation: Operation) -> (HTTPMethod, String, contentType: String) {
        let collection = "/api/v1/namespaces/\(namespace)/configmaps"
        switch operation {
        case .create: return (.POST, collection, "application/json")
        case .update(let name, _): return (.PATCH, "\(collection)/\(name)", "application/merge-patch+json")
        case .delete(let name): return (.DELETE, "\(collection)/\(name)", "application/json")
        }
    }

    static func name(of operation: Operation) -> String {
        switch operation {
        case .create(let name), .update(let name, _), .delete(let name): name
        }
    }

    /// `name` → `data.gen` of a ConfigMap list (from the hub or a member), with each object's UID.
    public static func parseList(_ data: Data) throws -> [String: (generation: Int, uid: String)] {
        guard let list = try JSONSerialization.jsonObject(with: data) as? [String: Any], let items = list["items"] as? [[String: Any]] else {
            throw FaultSuiteError("not a list: \(String(decoding: data.prefix(300), as: UTF8.self))")
        }
        var objects: [String: (Int, String)] = [:]
        for item in items {
            guard let metadata = item["metadata"] as? [String: Any], let name = metadata["name"] as? String,
                let generation = ((item["data"] as? [String: Any])?["gen"] as? String).flatMap(Int.init)
            else { continue }
            objects[name] = (generation, metadata["uid"] as? String ?? "")
        }
        return objects
    }
}

public struct FaultSuiteError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
