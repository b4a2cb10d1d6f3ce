import Foundation
import TetherModel

/// cel-go's optionals and Kubernetes' IP, CIDR, URL and format libraries, as kube-apiserver
/// offers them to validation rules.
extension CELEvaluator {
    /// `opt.optMap(v, expr)` and `optFlatMap`: none stays none; a value is bound to `v` and the
    /// result wrapped (optMap) or, already optional, returned (optFlatMap).
    mutating func optionalMacro(
        _ name: String, over target: CELValue, variable: String, _ expression: CELExpression, bindings: [String: CELValue]
    ) throws(EvaluationError) -> CELValue {
        guard case .optional(let wrapped) = target else { throw EvaluationError("no such overload: \(target.kindName).\(name)()") }
        guard let wrapped else { return .optional(nil) }
        var scope = bindings
        scope[variable] = wrapped
        let result = try value(of: expression, in: scope)
        if name == "optMap" { return .optional(result) }
        guard case .optional = result else { throw EvaluationError("optFlatMap's expression must give an optional, not \(result.kindName)") }
        return result
    }

    /// `name` applied to `values` (the target first, for a method), or nil when no overload matches.
    static func library(_ name: String, _ values: [CELValue]) throws(EvaluationError) -> CELValue? {
        let first: CELValue? = values.first
        let second: CELValue? = values.count > 1 ? .some(values[1]) : .none
        func parsed<Value>(_ result: Result<Value, CELLibraryError>) throws(EvaluationError) -> Value {
            switch result {
            case .success(let value): return value
            case .failure(let error): throw EvaluationError(error.description)
            }
        }
        switch (name, first, second) {
        // Optionals.
        case ("optional.of", let wrapped?, .none): return .optional(wrapped)
        case ("optional.none", .none, .none): return .optional(nil)
        case ("optional.ofNonZeroValue", let wrapped?, .none): return .optional(isZero(wrapped) ? nil : wrapped)
        case ("hasValue", .optional(let wrapped)?, .none): return .bool(wrapped != nil)
        case ("value", .optional(let wrapped)?, .none):
            guard let wrapped else { throw EvaluationError("optional.none() dereference") }
            return wrapped
        case ("orValue", .optional(let wrapped)?, let fallback?): return wrapped ?? fallback
        case ("or", .optional(let wrapped)?, .optional?): return wrapped.map { .optional($0) } ?? values[1]

        // IP addresses.
        case ("ip", .string(let text)?, .none): return .ip(try parsed(CELAddress.parse(text)))
        case ("isIP", .string(let text)?, .none):
            if case .success = CELAddress.parse(text) { return .bool(true) }
            return .bool(false)
        case ("ip.isCanonical", .string(let text)?, .none): return .bool(try parsed(CELAddress.parse(text)).description == text)
        case ("string", .ip(let address)?, .none): return .string(address.description)
        case ("family", .ip(let address)?, .none): return .integer(address.family)
        case ("isUnspecified", .ip(let address)?, .none): return .bool(address.isUnspecified)
        case ("isLoopback", .ip(let address)?, .none): return .bool(address.isLoopback)
        case ("isLinkLocalMulticast", .ip(let address)?, .none): return .bool(address.isLinkLocalMulticast)
        case ("isLinkLocalUnicast", .ip(let address)?, .none): return .bool(address.isLinkLocalUnicast)
        case ("isGlobalUnicast", .ip(let address)?, .none): return .bool(address.isGlobalUnicast)

        // CIDR prefixes.
        case ("cidr", .string(let text)?, .none): return .cidr(try parsed(CELNetwork.parse(text)))
        case ("isCIDR", .string(let text)?, .none):
            if case .success = CELNetwork.parse(text) { return .bool(true) }
            return .bool(false)
        case ("string", .cidr(let network)?, .none): return .string(network.description)
        case ("ip", .cidr(let network)?, .none): return .ip(network.address)
        case ("masked", .cidr(let network)?, .none):
            return .cidr(CELNetwork(address: network.address.masked(to: network.prefix), prefix: network.prefix))
        case ("prefixLength", .cidr(let network)?, .none): return .integer(Int64(network.prefix))
        case ("containsIP", .cidr(let network)?, .ip(let address)?): return .bool(network.contains(address))
        case ("containsIP", .cidr(let network)?, .string(let text)?): return .bool(network.contains(try parsed(CELAddress.parse(text))))
        case ("containsCIDR", .cidr(let network)?, .cidr(let other)?):
            return .bool(other.prefix >= network.prefix && network.contains(other.address))
        case ("containsCIDR", .cidr(let network)?, .string(let text)?):
            let other = try parsed(CELNetwork.parse(text))
            return .bool(other.prefix >= network.prefix && network.contains(other.address))

        // URLs.
        case ("url", .string(let text)?, .none): return .url(try parsed(CELURL.parse(text)))
        case ("isURL", .string(let text)?, .none):
            if case .success = CELURL.parse(text) { return .bool(true) }
            return .bool(false)
        case ("getScheme", .url(let url)?, .none): return .string(url.scheme)
        case ("getHost", .url(let url)?, .none): return .string(url.host)
        case ("getHostname", .url(let url)?, .none): return .string(url.hostname)
        case ("getPort", .url(let url)?, .none): return .string(url.port)
        case ("getEscapedPath", .url(let url)?, .none): return .string(url.path)
        case ("getQuery", .url(let url)?, .none): return .object(url.queryValues.mapValues { .array($0.map(CELValue.string)) })

        // Semantic versions.
        case ("isSemver", .string(let text)?, _):
            return .bool(CELSemver.parse(text, normalize: try normalizing(values)) != nil)
        case ("semver", .string(let text)?, _):
            guard let version = CELSemver.parse(text, normalize: try normalizing(values)) else {
                throw EvaluationError("could not parse \"\(text)\" as version")
            }
            return .semver(version)
        case ("major", .semver(let version)?, .none): return .integer(version.major)
        case ("minor", .semver(let version)?, .none): return .integer(version.minor)
        case ("patch", .semver(let version)?, .none): return .integer(version.patch)
        case ("isGreaterThan", .semver(let a)?, .semver(let b)?): return .bool(a > b)
        case ("isLessThan", .semver(let a)?, .semver(let b)?): return .bool(a < b)
        case ("compareTo", .semver(let a)?, .semver(let b)?): return .integer(a == b ? 0 : (a < b ? -1 : 1))

        // cel-go's string extensions, by code point.
        case ("charAt", .string(let text)?, .integer(let position)?):
            let scalars = Array(text.unicodeScalars)
            guard position >= 0, position <= scalars.count else { throw EvaluationError("index out of range: \(position)") }
            return .string(position == scalars.count ? "" : String(scalars[Int(position)]))
        case ("indexOf", .string(let text)?, .string(let part)?) where values.count == 3:
            guard case .integer(let offset) = values[2] else { return nil }
            return .integer(try codePointIndex(of: part, in: text, from: offset, last: false))
        case ("lastIndexOf", .string(let text)?, .string(let part)?):
            var offset = Int64(text.unicodeScalars.count)
            if values.count == 3 {
                guard case .integer(let given) = values[2] else { return nil }
                offset = given
            }
            return .integer(try codePointIndex(of: part, in: text, from: offset, last: true))
        case ("replace", .string(let text)?, .string(let old)?) where values.count >= 3:
            guard case .string(let new) = values[2] else { return nil }
            var limit: Int64 = -1
            if values.count == 4 {
                guard case .integer(let given) = values[3] else { return nil }
                limit = given
            }
            return .string(replacing(old, with: new, in: text, limit: limit))
        case ("split", .string(let text)?, .string(let separator)?) where values.count == 3:
            guard case .integer(let limit) = values[2] else { return nil }
            return .array(splitting(text, by: separator, limit: limit).map(CELValue.string))
        case ("substring", .string(let text)?, .integer(let start)?):
            let scalars = Array(text.unicodeScalars)
            var end = Int64(scalars.count)
            if values.count == 3 {
                guard case .integer(let given) = values[2] else { return nil }
                end = given
            }
            guard start >= 0, end <= scalars.count, start <= end else {
                throw EvaluationError("substring out of range: [\(start):\(end)] of a string of \(scalars.count)")
            }
            var result = String.UnicodeScalarView()
            result.append(contentsOf: scalars[Int(start)..<Int(end)])
            return .string(String(result))
        case ("reverse", .string(let text)?, .none):
            var result = String.UnicodeScalarView()
            result.append(contentsOf: text.unicodeScalars.reversed())
            return .string(String(result))
        case ("strings.quote", .string(let text)?, .none): return .string(quoted(text))
        case ("format", .string(let template)?, .array(let arguments)?): return .string(try CELFormat.format(template, arguments))

        // Kubernetes' list library.
        case ("indexOf", .array(let elements)?, let element?):
            return .integer(Int64(elements.firstIndex { equal($0, element) } ?? -1))
        case ("lastIndexOf", .array(let elements)?, let element?):
            return .integer(Int64(elements.lastIndex { equal($0, element) } ?? -1))

        // Kubernetes' regex library.
        case ("find", .string(let text)?, .string(let pattern)?):
            return .string(try matches(of: pattern, in: text, limit: 1).first ?? "")
        case ("findAll", .string(let text)?, .string(let pattern)?):
            var limit: Int64 = -1
            if values.count == 3 {
                guard case .integer(let given) = values[2] else { return nil }
                limit = given
            }
            return .array(try matches(of: pattern, in: text, limit: limit).map(CELValue.string))

        // cel-go's set extension, over lists.
        case ("sets.contains", .array(let whole)?, .array(let part)?):
            return .bool(part.allSatisfy { element in whole.contains { equal($0, element) } })
        case ("sets.equivalent", .array(let a)?, .array(let b)?):
            return .bool(
                a.allSatisfy { element in b.contains { equal($0, element) } } && b.allSatisfy { element in a.contains { equal($0, element) } })
        case ("sets.intersects", .array(let a)?, .array(let b)?):
            return .bool(a.contains { element in b.contains { equal($0, element) } })

        // Named formats: `validate` is none when the text is valid, else the list of why not.
        case ("format.named", .string(let formatName)?, .none): return .optional(formats[formatName] == nil ? nil : .format(formatName))
        case ("validate", .format(let formatName)?, .string(let text)?):
            let problems = formats[formatName]?(text) ?? []
            return .optional(problems.isEmpty ? nil : .array(problems.map(CELValue.string)))
        default:
            if name.hasPrefix("format."), values.isEmpty, formats[String(name.dropFirst("format.".count))] != nil {
                return .format(String(name.dropFirst("format.".count)))
            }
            return nil
        }
    }

    /// The format library's formats: why a text is not of the format (nothing when it is), in
    /// apimachinery's words.
    static let formats: [String: @Sendable (String) -> [String]] = [
        "dns1123Label": { KubernetesNames.dns1123LabelProblem($0).map { [$0] } ?? [] },
        "dns1123Subdomain": { KubernetesNames.dns1123SubdomainProblem($0).map { [$0] } ?? [] },
        "dns1035Label": { dns1035LabelProblem($0).map { [$0] } ?? [] },
        "qualifiedName": { KubernetesNames.qualifiedNameProblem($0).map { [$0] } ?? [] },
        // A prefix of generated names may end in '-', which the generated suffix follows.
        "dns1123LabelPrefix": { KubernetesNames.dns1123LabelProblem(maskingTrailingDash($0)).map { [$0] } ?? [] },
        "dns1123SubdomainPrefix": { KubernetesNames.dns1123SubdomainProblem(maskingTrailingDash($0)).map { [$0] } ?? [] },
        "dns1035LabelPrefix": { dns1035LabelProblem(maskingTrailingDash($0)).map { [$0] } ?? [] },
        "labelValue": { KubernetesNames.labelValueProblem($0).map { [$0] } ?? [] },
        "uri": { text in
            if case .failure(let error) = CELURL.parse(text) { return [error.description] }
            return []
        },
        "uuid": { text in isUUID(text) ? [] : ["does not match the UUID format"] },
        "byte": { text in Data(base64Encoded: text) == nil ? ["invalid base64"] : [] },
        "date": { text in
            CELTimestamp(parsing: text + "T00:00:00Z") != nil && text.count == 10 ? [] : ["invalid date"]
        },
        "datetime": { text in CELTimestamp(parsing: text) == nil ? ["invalid datetime"] : [] },
    ]

    private static func dns1035LabelProblem(_ text: String) -> String? {
        guard text.utf8.count <= 63 else { return "must be no more than 63 characters" }
        guard let first = text.unicodeScalars.first, ("a"..."z").contains(first), KubernetesNames.dns1123LabelProblem(text) == nil else {
            return "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
                + "character, and end with an alphanumeric character (e.g. 'my-name', or 'abc-123')"
        }
        return nil
    }

    private static func maskingTrailingDash(_ text: String) -> String {
        text.count > 1 && text.hasSuffix("-") ? String(text.dropLast()) + "a" : text
    }

    private static func isUUID(_ text: String) -> Bool {
        let groups = text.split(separator: "-", omittingEmptySubsequences: false)
        return groups.map(\.count) == [8, 4, 4, 4, 12] && groups.allSatisfy { $0.unicodeScalars.allSatisfy(\.properties.isASCIIHexDigit) }
    }

    private static func normalizing(_ values: [CELValue]) throws(EvaluationError) -> Bool {
        guard values.count == 2 else { return false }
        guard case .bool(let normalize) = values[1] else { throw EvaluationError("no such overload: semver's second argument is a bool") }
        return normalize
    }

    /// The code point index of `part` in `text`, the first at or after `offset` (or the last at or before it).
    private static func codePointIndex(of part: String, in text: String, from offset: Int64, last: Bool) throws(EvaluationError) -> Int64 {
        let scalars = Array(text.unicodeScalars)
        let needle = Array(part.unicodeScalars)
        guard offset >= 0, offset <= scalars.count else { throw EvaluationError("index out of range: \(offset)") }
        let latestStart = scalars.count - needle.count
        func matches(at start: Int) -> Bool { scalars[start..<start + needle.count].elementsEqual(needle) }
        if last {
            var start = min(Int(offset), latestStart)
            while start >= 0 {
                if matches(at: start) { return Int64(start) }
                start -= 1
            }
        } else {
            var start = Int(offset)
            while start <= latestStart {
                if matches(at: start) { return Int64(start) }
                start += 1
            }
        }
        return -1
    }

    private static func replacing(_ old: String, with new: String, in text: String, limit: Int64) -> String {
        guard limit != 0 else { return text }
        guard !old.isEmpty else { return text }
        var result = ""
        var rest = Substring(text)
        var done: Int64 = 0
        while limit < 0 || done < limit, let range = rest.range(of: old) {
            result += rest[..<range.lowerBound] + new
            rest = rest[range.upperBound...]
            done += 1
        }
        return result + rest
    }

    private static func splitting(_ text: String, by separator: String, limit: Int64) -> [String] {
        guard limit != 0 else { return [] }
        guard limit != 1 else { return [text] }
        var parts = separator.isEmpty ? text.map { String($0) } : text.components(separatedBy: separator)
        if limit > 0, parts.count > Int(limit) {
            let kept = Int(limit) - 1
            parts = Array(parts.prefix(kept)) + [parts.dropFirst(kept).joined(separator: separator)]
        }
        return parts
    }

    private static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": result += "\\\\"
            case "\"": result += "\\\""
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }

    private static func matches(of pattern: String, in text: String, limit: Int64) throws(EvaluationError) -> [String] {
        guard let expression = try? NSRegularExpression(pattern: pattern) else { throw EvaluationError("invalid regular expression: \(pattern)") }
        guard limit != 0 else { return [] }
        var found: [String] = []
        for match in expression.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
            guard let range = Range(match.range, in: text) else { continue }
            found.append(String(text[range]))
            if limit > 0, found.count >= Int(limit) { break }
        }
        return found
    }

    /// Whether `value` is its type's zero value, for `optional.ofNonZeroValue`.
    private static func isZero(_ value: CELValue) -> Bool {
        switch value {
        case .null: true
        case .bool(let flag): !flag
        case .integer(let number): number == 0
        case .double(let number): number == 0
        case .string(let text): text.isEmpty
        case .array(let items): items.isEmpty
        case .object(let members): members.isEmpty
        case .duration(let nanoseconds): nanoseconds == 0
        case .quantity(let nanounits): nanounits == 0
        case .optional(let wrapped): wrapped == nil
        case .timestamp, .ip, .cidr, .url, .format, .semver: false
        }
    }
}
