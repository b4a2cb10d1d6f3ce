import TetherJSON
import TetherModel
import TetherPlugin

/// The patch formats a PATCH body may come in.
extension ResourceOperation {
    /// Applies a patch body of `contentType` to `current`, within `limits` while it applies.
    static func apply(_ patch: JSONValue, contentType: String, to current: JSONValue, schema: FieldSchema, limits: ObjectLimits) throws -> JSONValue {
        do {
            switch contentType {
            case "application/merge-patch+json", "application/apply-patch+yaml":
                return current.mergePatched(with: patch)
            case "application/strategic-merge-patch+json":
                return current.strategicMergePatched(with: patch) { ManagedFields.mergeKey(at: $0, in: schema) }
            case "application/json-patch+json":
                return try current.applyingJSONPatch(patch, limits: limits)
            default:
                throw APIError.unsupportedMediaType(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, "
                        + "application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"
                )
            }
        } catch let error as PatchError {
            switch error.code {
            case .tooLarge: throw APIError.tooLarge("the patch cannot be applied: \(error)")
            case .invalid, .tooDeep: throw APIError.invalid("the patch cannot be applied: \(error)")
            }
        }
    }
}
