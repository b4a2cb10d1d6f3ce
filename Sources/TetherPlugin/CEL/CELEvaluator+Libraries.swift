/// cel-go's optionals and Kubernetes' IP, CIDR and URL libraries, as kube-apiserver offers them
/// to validation rules.
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
        default: return nil
        }
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
        case .timestamp, .ip, .cidr, .url: false
        }
    }
}
