import Foundation

/// A request's query string, parsed once (by ``APIRequestMiddleware``, onto the context) into
/// what the verbs read. Values are checked where they are used: a `limit` is no error on a write.
struct RequestQuery: Sendable {
    /// Each parameter's last value, decoded as clients encode them: `+` for a space, then percent-escapes.
    let values: [String: String]

    init(_ raw: String?) {
        var values: [String: String] = [:]
        for pair in (raw ?? "").split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String {
                let spaced = text.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            values[decode(parts[0])] = parts.count > 1 ? decode(parts[1]) : ""
        }
        self.values = values
    }

    subscript(name: String) -> String? { values[name] }

    /// A boolean parameter as Kubernetes reads one (Go's `strconv.ParseBool`): the Python client
    /// sends `watch=True`.
    func flag(_ name: String) -> Bool { ["1", "t", "T", "true", "TRUE", "True"].contains(values[name] ?? "") }

    var watch: Bool { flag("watch") }
    var dryRun: Bool { values["dryRun"] == "All" }
    var labelSelector: String? { values["labelSelector"] }
    var fieldSelector: String? { values["fieldSelector"] }
    var continueToken: String? { values["continue"].flatMap { $0.isEmpty ? nil : $0 } }
    /// The version a watch starts after; anything but a number means "now".
    var resourceVersion: UInt64? { values["resourceVersion"].flatMap { UInt64($0) } }
    var propagationPolicy: String? { values["propagationPolicy"] }
    var orphanDependents: String? { values["orphanDependents"] }

    enum FieldValidation: String, Sendable {
        case strict = "Strict"
        case warn = "Warn"
        case ignore = "Ignore"
    }

    /// `fieldValidation`: `Strict`, `Warn` (the default, as in Kubernetes) or `Ignore`.
    func fieldValidation() throws(APIError) -> FieldValidation {
        let directive = values["fieldValidation"] ?? "Warn"
        guard let validation = FieldValidation(rawValue: directive) else {
            throw APIError.badRequest("fieldValidation must be Strict, Warn or Ignore, not \"\(directive.prefix(40))\"")
        }
        return validation
    }

    /// `limit`: nil for none (absent or 0).
    func limit() throws(APIError) -> Int? {
        guard let text = values["limit"] else { return nil }
        guard let value = Int(text), value >= 0 else { throw APIError.badRequest("limit must be a non-negative integer") }
        return value == 0 ? nil : value
    }

    /// `timeoutSeconds` of a watch, as asked (the server cuts it to its maximum).
    func timeoutSeconds() throws(APIError) -> Int64? {
        guard let text = values["timeoutSeconds"] else { return nil }
        guard let seconds = Int64(text), seconds >= 0 else {
            throw APIError.badRequest("timeoutSeconds must be a non-negative integer, not \"\(text.prefix(40))\"")
        }
        return seconds
    }
}
