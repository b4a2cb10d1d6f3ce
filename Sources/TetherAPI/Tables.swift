import Foundation
import TetherJSON
import TetherModel
import TetherPlugin

/// `meta.k8s.io/v1` Table responses: what `kubectl get` prints, computed by the server.
struct TableWriter {
    /// What each row carries besides its cells: the `includeObject` query parameter.
    /// kubectl asks for `Object` to sort (`--sort-by`); the default is `Metadata`.
    enum RowObject: String, Sendable {
        case none = "None"
        case metadata = "Metadata"
        case object = "Object"

        /// The parameter's value, as kube-apiserver reads it; nil for one it does not know.
        init?(parameter: String?) {
            guard let parameter, !parameter.isEmpty else {
                self = .metadata
                return
            }
            self.init(rawValue: parameter)
        }
    }

    let kind: KindDescriptor
    let now: Date
    var rowObject: RowObject = .metadata

    /// `shownObjects`: the objects as the client's version shows them (``KindDescriptor/shown(_:)``),
    /// carried by `Object` rows; nil, as stored.
    func table(_ objects: [JSONValue], resourceVersion: String?, continueToken: String? = nil, shownObjects: [JSONValue]? = nil) -> JSONValue {
        var columns: [JSONValue] = [
            ["name": "Name", "type": "string", "format": "name", "description": "Name of the object", "priority": 0]
        ]
        for (index, column) in kind.printerColumns.enumerated() {
            if index == ageAt { columns.append(Self.ageColumn) }
            columns.append([
                "name": .string(column.name), "type": .string(column.type), "format": "",
                "description": .string(column.description), "priority": .integer(Int64(column.priority)),
            ])
        }
        if ageAt == nil { columns.append(Self.ageColumn) }
        var metadata: [String: JSONValue] = [:]
        if let resourceVersion { metadata["resourceVersion"] = .string(resourceVersion) }
        if let continueToken { metadata["continue"] = .string(continueToken) }
        return [
            "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": .object(metadata),
            "columnDefinitions": .array(columns),
            "rows": .array(objects.indices.map { index in row(objects[index], shown: shownObjects?[index]) }),
        ]
    }

    static let ageColumn: JSONValue = ["name": "Age", "type": "string", "format": "", "description": "Time since creation", "priority": 0]

    /// Where AGE goes among the kind's columns: after the ones every table shows and before
    /// `-o wide`'s, as kube-apiserver's tables place it (nil: after all of them).
    private var ageAt: Int? { kind.ageColumnAt ?? kind.printerColumns.firstIndex { $0.priority > 0 } }

    private func row(_ object: JSONValue, shown converted: JSONValue? = nil) -> JSONValue {
        var cells: [JSONValue] = [.string(kind.displayedName?(object) ?? object.name ?? "")]
        cells += kind.printerColumns.map { $0.cell(object) }
        cells.insert(.string(Self.age(of: object, now: now)), at: 1 + (ageAt ?? kind.printerColumns.count))
        switch rowObject {
        case .none:
            return ["cells": .array(cells)]
        case .metadata:
            let partial: JSONValue = [
                "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": .object(object.metadata),
            ]
            return ["cells": .array(cells), "object": partial]
        case .object:
            return ["cells": .array(cells), "object": converted ?? object]
        }
    }

    /// Ages as kubectl prints them: `45s`, `12m`, `5h`, `3d`.
    static func age(of object: JSONValue, now: Date) -> String {
        guard let stamp = object.metadata["creationTimestamp"]?.stringValue,
            let created = try? Date(stamp, strategy: .iso8601)
        else { return "<unknown>" }
        return ObjectAge.since(created, now: now)
    }
}
