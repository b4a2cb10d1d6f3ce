import TetherJSON

/// Reading and writing `metadata` fields of an unstructured Kubernetes object.
///
/// The object stays a ``JSONValue``: these accessors touch only the fields they name, so fields
/// Tether does not know (a newer Kubernetes' additions, a CRD's) pass through unchanged.
extension JSONValue {
    public var apiVersion: String? { self["apiVersion"]?.stringValue }
    public var kind: String? { self["kind"]?.stringValue }

    public var metadata: [String: JSONValue] {
        get {
            if case .object(let members)? = self["metadata"] { return members }
            return [:]
        }
        set { self[member: "metadata"] = .object(newValue) }
    }

    public var name: String? {
        get { metadata["name"]?.stringValue }
        set { metadata["name"] = newValue.map(JSONValue.string) }
    }

    public var namespace: String? {
        get { metadata["namespace"]?.stringValue }
        set { metadata["namespace"] = newValue.map(JSONValue.string) }
    }

    public var uid: String? {
        get { metadata["uid"]?.stringValue }
        set { metadata["uid"] = newValue.map(JSONValue.string) }
    }

    /// `metadata.resourceVersion` as the store's counter; nil when absent or not a number.
    public var resourceVersion: UInt64? {
        get { metadata["resourceVersion"]?.stringValue.flatMap(UInt64.init) }
        set { metadata["resourceVersion"] = newValue.map { .string(String($0)) } }
    }

    public var generation: Int64? {
        get { metadata["generation"]?.integerValue }
        set { metadata["generation"] = newValue.map(JSONValue.integer) }
    }

    public var labels: [String: String] {
        get { Self.stringMap(metadata["labels"]) }
        set { metadata["labels"] = newValue.isEmpty ? nil : .object(newValue.mapValues(JSONValue.string)) }
    }

    public var annotations: [String: String] {
        get { Self.stringMap(metadata["annotations"]) }
        set { metadata["annotations"] = newValue.isEmpty ? nil : .object(newValue.mapValues(JSONValue.string)) }
    }

    public var finalizers: [String] {
        get {
            guard case .array(let items)? = metadata["finalizers"] else { return [] }
            return items.compactMap(\.stringValue)
        }
        set { metadata["finalizers"] = newValue.isEmpty ? nil : .array(newValue.map(JSONValue.string)) }
    }

    public var deletionTimestamp: String? {
        get { metadata["deletionTimestamp"]?.stringValue }
        set { metadata["deletionTimestamp"] = newValue.map(JSONValue.string) }
    }

    /// Everything but `metadata` and `status`: what a change to bumps `metadata.generation`.
    public var specPart: JSONValue {
        guard case .object(var members) = self else { return self }
        members["metadata"] = nil
        members["status"] = nil
        members["apiVersion"] = nil
        members["kind"] = nil
        return .object(members)
    }

    private static func stringMap(_ value: JSONValue?) -> [String: String] {
        guard case .object(let members)? = value else { return [:] }
        return members.compactMapValues(\.stringValue)
    }
}
