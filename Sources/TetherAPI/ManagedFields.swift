import TetherJSON
import TetherModel
import TetherPlugin

/// Server-side apply's field ownership, `metadata.managedFields` in `FieldsV1`: which manager
/// set which field of an object, so that an apply changing a field another manager set is a
/// conflict (409, naming the field and its manager) unless forced, and a field an applier stops
/// applying is removed unless someone else set it.
///
/// A path is a list of steps in FieldsV1 notation: `f:<name>` for an object member, and
/// `k:{"<key>":<value>}` for an element of a list the kind's schema merges by a key (containers
/// by name). Any other list is one field, owned whole. Pure: values in, values out.
struct ManagedFields: Equatable {
    typealias Path = [String]

    struct Entry: Equatable {
        var manager: String
        var operation: String
        var apiVersion: String
        var time: String
        var fields: Set<Path>
        /// The subresource the writes went through (`scale`); empty for the object itself.
        var subresource = ""
    }

    struct Conflict: Equatable {
        var manager: String
        var apiVersion: String
        var path: Path
        var subresource = ""

        /// `"kubectl-scale" with subresource "scale"`, as kube-apiserver names a manager.
        var managerDescription: String {
            subresource.isEmpty ? "\"\(manager)\"" : "\"\(manager)\" with subresource \"\(subresource)\""
        }

        /// `.spec.replicas`, `.spec.template.spec.containers[name="web"].image`, as kube-apiserver writes them.
        var field: String {
            path.map { step in
                if step.hasPrefix("f:") { return "." + step.dropFirst(2) }
                let key = String(step.dropFirst(2))
                guard case .object(let pairs)? = try? JSONValue(parsing: key) else { return "[\(key)]" }
                return "[" + pairs.sorted { $0.key < $1.key }.map { "\($0.key)=\((try? $0.value.serializedText()) ?? "")" }.joined(separator: ",")
                    + "]"
            }.joined()
        }
    }

    var entries: [Entry]

    /// The object's record; anything malformed in it is dropped (it is the server's to write).
    init(of object: JSONValue) {
        entries = (object.metadata["managedFields"]?.arrayElements ?? []).compactMap { entry in
            guard let manager = entry["manager"]?.stringValue, let operation = entry["operation"]?.stringValue else { return nil }
            return Entry(
                manager: manager, operation: operation, apiVersion: entry["apiVersion"]?.stringValue ?? "",
                time: entry["time"]?.stringValue ?? "", fields: Self.decode(entry["fieldsV1"] ?? [:]),
                subresource: entry["subresource"]?.stringValue ?? "")
        }
    }

    var json: JSONValue {
        .array(
            entries.map { entry in
                var json: JSONValue = [
                    "manager": .string(entry.manager), "operation": .string(entry.operation), "apiVersion": .string(entry.apiVersion),
                    "time": .string(entry.time), "fieldsType": "FieldsV1", "fieldsV1": Self.encode(entry.fields),
                ]
                if !entry.subresource.isEmpty { json[member: "subresource"] = .string(entry.subresource) }
                return json
            })
    }

    // MARK: Which fields an object sets

    /// Every field `object` sets, along `schema`: what an applier owns by applying it. The
    /// object's identity, the server's metadata and its status are nobody's.
    static func fields(of object: JSONValue, schema: FieldSchema) -> Set<Path> {
        var paths = Set<Path>()
        guard case .object(let members) = object else { return paths }
        let shape = memberSchemas(schema)
        for (name, value) in members {
            switch name {
            case "apiVersion", "kind", "status": continue
            case "metadata":
                guard case .object(let metadata) = value else { continue }
                for (field, member) in metadata where ["labels", "annotations", "finalizers", "ownerReferences"].contains(field) {
                    collect(
                        member, schema: shape("metadata").flatMap { memberSchemas($0)(field) } ?? .free, at: ["f:metadata", "f:\(field)"],
                        into: &paths)
                }
            default:
                collect(value, schema: shape(name) ?? .free, at: ["f:\(name)"], into: &paths)
            }
        }
        return paths
    }

    private static func collect(_ value: JSONValue, schema: FieldSchema, at path: Path, into paths: inout Set<Path>) {
        switch value {
        case .object(let members) where !members.isEmpty:
            let shape = memberSchemas(schema)
            for (name, member) in members { collect(member, schema: shape(name) ?? .free, at: path + ["f:\(name)"], into: &paths) }
        case .array(let elements):
            guard case .keyedList(let element, let key) = schema else {
                paths.insert(path)
                return
            }
            for item in elements {
                guard let step = keyStep(of: item, key: key) else {
                    // An element without its key cannot be told apart: the list is owned whole.
                    paths.insert(path)
                    return
                }
                paths.insert(path + [step])
                collect(item, schema: element, at: path + [step], into: &paths)
            }
        default:
            paths.insert(path)
        }
    }

    /// The schema of each member of an object of `schema` (nil: not modelled, take anything).
    private static func memberSchemas(_ schema: FieldSchema) -> (String) -> FieldSchema? {
        switch schema.jsonShape {
        case .object(let fields): return { fields[$0] }
        case .map(let element): return { _ in element }
        default: return { _ in nil }
        }
    }

    private static func keyStep(of item: JSONValue, key: String) -> String? {
        guard let value = item[key], value != .null, let text = try? JSONValue.object([key: value]).serializedText() else { return nil }
        return "k:" + text
    }

    /// The value at `path` in `object`, or nil where there is none.
    static func value(at path: Path, in object: JSONValue) -> JSONValue? {
        var current: JSONValue? = object
        for step in path {
            guard let here = current else { return nil }
            if step.hasPrefix("f:") {
                current = here[String(step.dropFirst(2))]
            } else {
                current = here.arrayElements.first { element in
                    guard case .object(let members) = (try? JSONValue(parsing: String(step.dropFirst(2)))) ?? .null else { return false }
                    return members.allSatisfy { element[$0.key] == $0.value }
                }
            }
        }
        return current
    }

    /// `object` without the field at `path`.
    static func removing(_ path: Path, from object: JSONValue) -> JSONValue {
        guard let step = path.first else { return object }
        let rest = Array(path.dropFirst())
        if step.hasPrefix("f:") {
            guard case .object(var members) = object else { return object }
            let name = String(step.dropFirst(2))
            if rest.isEmpty {
                members[name] = nil
            } else if let member = members[name] {
                members[name] = removing(rest, from: member)
            }
            return .object(members)
        }
        guard case .array(let elements) = object, case .object(let key)? = try? JSONValue(parsing: String(step.dropFirst(2))) else { return object }
        let matches = { (element: JSONValue) in key.allSatisfy { element[$0.key] == $0.value } }
        if rest.isEmpty { return .array(elements.filter { !matches($0) }) }
        return .array(elements.map { matches($0) ? removing(rest, from: $0) : $0 })
    }

    // MARK: Apply and update

    /// Server-side apply's merge of `applied` into `current`: maps merge member by member, a
    /// list the schema keys merges element by element (an applied element merges into the live
    /// one with its key, a new one is appended, the others stay), other lists and values are
    /// replaced, and a null removes. What the applier no longer applies goes afterwards
    /// (``abandoned(by:applying:)``), so two managers can each own elements of one list.
    static func applied(_ applied: JSONValue, to current: JSONValue?, schema: FieldSchema) -> JSONValue {
        switch applied {
        case .object(let patch):
            guard case .object(var base)? = current else { return applied.withoutNulls }
            let shape = memberSchemas(schema)
            for (name, value) in patch {
                if value == .null {
                    base.removeValue(forKey: name)
                } else {
                    base[name] = Self.applied(value, to: base[name], schema: shape(name) ?? .free)
                }
            }
            return .object(base)
        case .array(let items):
            guard case .keyedList(let element, let key) = schema, case .array(let live)? = current,
                (items + live).allSatisfy({ keyStep(of: $0, key: key) != nil })
            else { return applied.withoutNulls }
            var merged = live
            for item in items {
                if let index = merged.firstIndex(where: { $0[key] == item[key] }) {
                    merged[index] = Self.applied(item, to: merged[index], schema: element)
                } else {
                    merged.append(item.withoutNulls)
                }
            }
            return .array(merged)
        default:
            return applied
        }
    }

    /// The merge key of the list at `path` (field names; list elements take no step), when `schema` keys it.
    static func mergeKey(at path: [String], in schema: FieldSchema) -> String? {
        var node = schema
        for step in path {
            if case .keyedList(let element, _) = node { node = element }
            guard let next = memberSchemas(node)(step) else { return nil }
            node = next
        }
        guard case .keyedList(_, let key) = node else { return nil }
        return key
    }

    /// What an apply of `applied` by `manager` would take from other managers: each field it
    /// sets that another manager set to a different value than `current` holds.
    func conflicts(applying applied: JSONValue, fields: Set<Path>, by manager: String, current: JSONValue) -> [Conflict] {
        var found: [Conflict] = []
        for entry in entries where entry.manager != manager {
            // An element's own entry (`k:...`) says it is in the list; only its fields hold values to disagree on.
            for path in entry.fields.intersection(fields)
            where !(path.last?.hasPrefix("k:") ?? false)
                && Self.value(at: path, in: applied) != Self.value(at: path, in: current)
            {
                found.append(Conflict(manager: entry.manager, apiVersion: entry.apiVersion, path: path, subresource: entry.subresource))
            }
        }
        return found.sorted { ($0.manager, $0.field) < ($1.manager, $1.field) }
    }

    /// The fields `manager` applied before and no longer applies that nobody else set: an
    /// apply removes them from the object.
    func abandoned(by manager: String, applying fields: Set<Path>) -> Set<Path> {
        let before = entries.first { $0.manager == manager && $0.operation == "Apply" }?.fields ?? []
        let others = entries.filter { !($0.manager == manager && $0.operation == "Apply") }.reduce(into: Set<Path>()) { $0.formUnion($1.fields) }
        return before.subtracting(fields).filter { path in !others.contains(path) && !others.contains { $0.starts(with: path) } }
    }

    /// Records that `manager` now owns `fields` by `operation`; `taken` are fields it takes from
    /// the others (forced conflicts, or what an update changed).
    mutating func record(
        manager: String, operation: String, apiVersion: String, fields: Set<Path>, taking taken: Set<Path>, at time: String, subresource: String = ""
    ) {
        func isTheWriter(_ entry: Entry) -> Bool { entry.manager == manager && entry.operation == operation && entry.subresource == subresource }
        for index in entries.indices where !isTheWriter(entries[index]) {
            entries[index].fields.subtract(taken)
        }
        if let index = entries.firstIndex(where: isTheWriter) {
            if entries[index].fields != fields || entries[index].apiVersion != apiVersion {
                entries[index].fields = fields
                entries[index].apiVersion = apiVersion
                entries[index].time = time
            }
        } else if !fields.isEmpty {
            entries.append(
                Entry(manager: manager, operation: operation, apiVersion: apiVersion, time: time, fields: fields, subresource: subresource))
        }
        entries.removeAll { $0.fields.isEmpty }
    }

    /// The fields whose values differ between two versions of an object (added, changed or removed).
    static func changed(from old: JSONValue, to new: JSONValue, schema: FieldSchema) -> Set<Path> {
        let before = fields(of: old, schema: schema)
        let after = fields(of: new, schema: schema)
        return after.union(before).filter { value(at: $0, in: old) != value(at: $0, in: new) }
    }

    /// The status fields that differ between `old` and `new`: what a write through the
    /// `status` subresource owns.
    static func changedStatus(from old: JSONValue, to new: JSONValue, schema: FieldSchema) -> Set<Path> {
        let statusSchema = memberSchemas(schema)("status") ?? .free
        var before = Set<Path>()
        var after = Set<Path>()
        if let status = old["status"] { collect(status, schema: statusSchema, at: ["f:status"], into: &before) }
        if let status = new["status"] { collect(status, schema: statusSchema, at: ["f:status"], into: &after) }
        return after.union(before).filter { value(at: $0, in: old) != value(at: $0, in: new) }
    }

    // MARK: FieldsV1

    /// `{"f:spec": {"f:replicas": {}}}`: a node is owned when it is a leaf or holds `"."`.
    static func encode(_ fields: Set<Path>) -> JSONValue {
        var root: JSONValue = [:]
        for path in fields.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            let existing = root.value(at: path)
            if case .object(let members)? = existing, !members.isEmpty {
                root.set(.object(members.merging([".": [:]]) { first, _ in first }), at: path)
            } else {
                for depth in 1..<max(1, path.count) {
                    let prefix = Array(path.prefix(depth))
                    if case .object(let members)? = root.value(at: prefix), members.isEmpty, fields.contains(prefix) {
                        root.set([".": [:]], at: prefix)
                    }
                }
                root.set([:], at: path)
            }
        }
        return root
    }

    static func decode(_ node: JSONValue, at path: Path = []) -> Set<Path> {
        guard case .object(let members) = node else { return [] }
        if members.isEmpty { return path.isEmpty ? [] : [path] }
        var paths = Set<Path>()
        for (step, child) in members {
            if step == "." {
                if !path.isEmpty { paths.insert(path) }
            } else {
                paths.formUnion(decode(child, at: path + [step]))
            }
        }
        return paths
    }
}
