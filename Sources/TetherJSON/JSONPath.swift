/// Reading and writing nested members of an object by their keys, the way plugins walk
/// `spec.template.spec` or `status.loadBalancer.ingress`.
extension JSONValue {
    /// The value under `keys`, one object member per key; nil when any step is missing or not an object.
    public func value(at keys: String...) -> JSONValue? {
        value(at: keys)
    }

    public func value(at keys: [String]) -> JSONValue? {
        var current: JSONValue? = self
        for key in keys { current = current?[key] }
        return current
    }

    /// The integer under `keys`, or nil.
    public func integer(at keys: String...) -> Int64? { value(at: keys)?.integerValue }

    /// The string under `keys`, or nil.
    public func string(at keys: String...) -> String? { value(at: keys)?.stringValue }

    /// Sets (or, with nil, removes) the member under `keys`, creating objects on the way.
    /// Does nothing when a step on the way holds something other than an object.
    public mutating func set(_ newValue: JSONValue?, at keys: [String]) {
        guard let first = keys.first else { return }
        if keys.count == 1 {
            self[member: first] = newValue
            return
        }
        if self[first] == nil {
            guard newValue != nil else { return }
            self[member: first] = .object([:])
        }
        guard case .object = self[first] else { return }
        var child = self[first] ?? .object([:])
        child.set(newValue, at: Array(keys.dropFirst()))
        self[member: first] = child
    }

    /// Removes the member under `keys` if it is there.
    public mutating func remove(at keys: String...) {
        set(nil, at: keys)
    }

    /// Sets or (with nil) removes a top-level member of an object; does nothing to non-objects.
    public subscript(member key: String) -> JSONValue? {
        get { self[key] }
        set {
            guard case .object(var members) = self else { return }
            members[key] = newValue
            self = .object(members)
        }
    }

    /// The members of an object as a dictionary; empty for anything else.
    public var objectMembers: [String: JSONValue] {
        if case .object(let members) = self { return members }
        return [:]
    }

    /// The elements of an array; empty for anything else.
    public var arrayElements: [JSONValue] {
        if case .array(let elements) = self { return elements }
        return []
    }
}
