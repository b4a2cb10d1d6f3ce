import Foundation
import TetherModel

/// cel-go's optionals and Kubernetes' IP, CIDR, URL and format libraries, as kube-apiserver
/// offers them to validation rules.
extension CELEvaluator {
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
        case .timestamp, .ip, .cidr, .url, .format: false
        }
    }
}
