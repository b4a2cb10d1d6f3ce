import TetherJSON

/// A parsed CEL expression: the subset of the Common Expression Language that
/// CustomResourceDefinitions' `x-kubernetes-validations` rules use (literals, field selection,
/// indexing, arithmetic, comparison, `in`, logic, the ternary, `has()`, `size()`, the string
/// functions, durations, timestamps and quantities, optionals (`self.?spec.orValue(...)`),
/// Kubernetes' IP, CIDR, URL, format, semver, list and regex libraries, cel-go's string and set
/// extensions, the `all`/`exists`/`exists_one`/`map`/`filter` macros, and cel-go's two-variable
/// comprehensions: `all`/`exists`/`existsOne` over index and element, or key and value, and
/// `transformList`/`transformMap`/`transformMapEntry`).
///
/// An expression outside the subset (`cel.bind`, other extension libraries) fails to parse with ``CELSyntaxError``; the caller decides what that
/// means (a rule Tether does not evaluate).
public indirect enum CELExpression: Sendable {
    case literal(JSONValue)
    case identifier(String)
    case select(CELExpression, String)
    /// `a.?b`: `b` of `a` as an optional, none when absent.
    case optionalSelect(CELExpression, String)
    /// `has(a.b)`: whether `b` is present in `a`.
    case presence(CELExpression, String)
    case index(CELExpression, CELExpression)
    /// `a[?k]`: the element or entry as an optional, none when absent.
    case optionalIndex(CELExpression, CELExpression)
    /// A function or method: `size(x)`, `x.startsWith(y)`.
    case call(String, target: CELExpression?, arguments: [CELExpression])
    /// `list.all(v, predicate)` and the other macros, with the variables they bind: one, or two
    /// (index and element of a list, key and value of a map) for `all(i, v, predicate)` and the transforms.
    case comprehension(String, target: CELExpression, variables: [String], arguments: [CELExpression])
    case unary(String, CELExpression)
    case binary(String, CELExpression, CELExpression)
    case conditional(CELExpression, CELExpression, CELExpression)
    case list([CELExpression])
    case map([(key: CELExpression, value: CELExpression)])

    /// Parses `text`; refuses anything outside the subset, and more than 64 levels of nesting.
    public init(parsing text: String) throws(CELSyntaxError) {
        var parser = CELParser(tokens: try CELLexer.tokens(of: text))
        self = try parser.expression(depth: 0)
        guard parser.atEnd else { throw CELSyntaxError("unexpected \(parser.peekDescription) after the expression") }
        // Evaluation recurses once per level, so the tree's depth is bounded, not only the
        // parser's (`a || b || ...` and `a.b.c...` nest without parentheses).
        guard depth <= Self.maximumDepth else { throw CELSyntaxError("the expression is nested more than \(Self.maximumDepth) levels deep") }
    }

    public static let maximumDepth = 100

    /// The depth of the tree, counted without recursion.
    var depth: Int {
        var deepest = 0
        var pending: [(CELExpression, Int)] = [(self, 1)]
        while let (node, level) = pending.popLast() {
            deepest = max(deepest, level)
            guard level <= Self.maximumDepth else { return level }
            pending += node.children.map { ($0, level + 1) }
        }
        return deepest
    }

    private var children: [CELExpression] {
        switch self {
        case .literal, .identifier: []
        case .select(let target, _), .optionalSelect(let target, _), .presence(let target, _), .unary(_, let target): [target]
        case .index(let target, let key), .optionalIndex(let target, let key): [target, key]
        case .call(_, let target, let arguments): (target.map { [$0] } ?? []) + arguments
        case .comprehension(_, let target, _, let arguments): [target] + arguments
        case .binary(_, let left, let right): [left, right]
        case .conditional(let condition, let then, let otherwise): [condition, then, otherwise]
        case .list(let elements): elements
        case .map(let entries): entries.flatMap { [$0.key, $0.value] }
        }
    }

    /// Whether the expression reads `name` (a transition rule reads `oldSelf`).
    public func mentions(_ name: String) -> Bool {
        switch self {
        case .literal: false
        case .identifier(let identifier): identifier == name
        case .select(let target, _), .optionalSelect(let target, _), .presence(let target, _), .unary(_, let target): target.mentions(name)
        case .index(let target, let key), .optionalIndex(let target, let key): target.mentions(name) || key.mentions(name)
        case .call(_, let target, let arguments): (target?.mentions(name) ?? false) || arguments.contains { $0.mentions(name) }
        case .comprehension(_, let target, _, let arguments): target.mentions(name) || arguments.contains { $0.mentions(name) }
        case .binary(_, let left, let right): left.mentions(name) || right.mentions(name)
        case .conditional(let condition, let then, let otherwise): [condition, then, otherwise].contains { $0.mentions(name) }
        case .list(let elements): elements.contains { $0.mentions(name) }
        case .map(let entries): entries.contains { $0.key.mentions(name) || $0.value.mentions(name) }
        }
    }
}

public struct CELSyntaxError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

enum CELToken: Equatable {
    case identifier(String)
    case integer(Int64)
    case double(Double)
    case string(String)
    case symbol(String)
}

enum CELLexer {
    static let symbols = [
        "&&", "||", "==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%", "!", "?", ":", ".", ",", "(", ")", "[", "]", "{", "}",
    ]

    static func tokens(of text: String) throws(CELSyntaxError) -> [CELToken] {
        let characters = Array(text.unicodeScalars)
        guard characters.count <= 10_000 else { throw CELSyntaxError("the expression is longer than 10,000 characters") }
        var tokens: [CELToken] = []
        var index = 0
        func at(_ offset: Int) -> Unicode.Scalar? { index + offset < characters.count ? characters[index + offset] : nil }
        while index < characters.count {
            let character = characters[index]
            if character.properties.isWhitespace {
                index += 1
            } else if character.properties.isAlphabetic || character == "_" {
                var word = ""
                while let next = at(0), next.properties.isAlphabetic || next == "_" || ("0"..."9").contains(next) {
                    word.unicodeScalars.append(next)
                    index += 1
                }
                tokens.append(.identifier(word))
            } else if ("0"..."9").contains(character) {
                var number = ""
                var isDouble = false
                while let next = at(0), ("0"..."9").contains(next) || next == "." || next == "e" || next == "E" || next == "x" {
                    // `a.size()` after a number is a method: a dot followed by a letter ends it.
                    if next == ".", let after = at(1), !("0"..."9").contains(after) { break }
                    if next == "." || next == "e" || next == "E" { isDouble = true }
                    number.unicodeScalars.append(next)
                    index += 1
                }
                if at(0) == "u" || at(0) == "U" { index += 1 }  // an unsigned literal is an integer here
                if isDouble, let value = Double(number) {
                    tokens.append(.double(value))
                } else if number.hasPrefix("0x"), let value = Int64(number.dropFirst(2), radix: 16) {
                    tokens.append(.integer(value))
                } else if let value = Int64(number) {
                    tokens.append(.integer(value))
                } else {
                    throw CELSyntaxError("\(number) is not a number")
                }
            } else if character == "\"" || character == "'" {
                tokens.append(.string(try string(characters, at: &index)))
            } else if let symbol = symbols.first(where: { symbol in
                symbol.unicodeScalars.enumerated().allSatisfy { at($0.offset) == $0.element }
            }) {
                tokens.append(.symbol(symbol))
                index += symbol.unicodeScalars.count
            } else {
                throw CELSyntaxError("unexpected character \"\(character)\"")
            }
        }
        return tokens
    }

    /// A quoted string (single or double, or tripled), with CEL's escapes.
    private static func string(_ characters: [Unicode.Scalar], at index: inout Int) throws(CELSyntaxError) -> String {
        let quote = characters[index]
        let tripled = index + 2 < characters.count && characters[index + 1] == quote && characters[index + 2] == quote
        index += tripled ? 3 : 1
        var text = ""
        while index < characters.count {
            let character = characters[index]
            if character == quote && (!tripled || (index + 2 < characters.count && characters[index + 1] == quote && characters[index + 2] == quote))
            {
                index += tripled ? 3 : 1
                return text
            }
            if character == "\\" {
                guard index + 1 < characters.count else { break }
                let escaped = characters[index + 1]
                switch escaped {
                case "n": text += "\n"
                case "t": text += "\t"
                case "r": text += "\r"
                case "\\", "\"", "'", "`", "?": text.unicodeScalars.append(escaped)
                default: throw CELSyntaxError("the escape \\\(escaped) is not supported here")
                }
                index += 2
                continue
            }
            guard tripled || character != "\n" else { break }
            text.unicodeScalars.append(character)
            index += 1
        }
        throw CELSyntaxError("a string is not closed")
    }
}

struct CELParser {
    let tokens: [CELToken]
    var position = 0
    static let maximumDepth = 64
    static let macros: Set<String> = ["all", "exists", "exists_one", "existsOne", "map", "filter", "optMap", "optFlatMap"]
    /// cel-go's two-variable comprehensions, with the argument counts each takes after its two variables.
    static let twoVariableMacros: [String: Set<Int>] = [
        "all": [1], "exists": [1], "existsOne": [1], "transformList": [1, 2], "transformMap": [1, 2], "transformMapEntry": [1, 2],
    ]
    /// The functions the evaluator knows, with the argument counts each takes (method form).
    static let methods: [String: Set<Int>] = [
        "size": [0], "startsWith": [1], "endsWith": [1], "contains": [1], "matches": [1], "lowerAscii": [0], "upperAscii": [0],
        "trim": [0], "indexOf": [1, 2], "join": [0, 1], "split": [1, 2], "isSorted": [0], "sum": [0], "min": [0], "max": [0],
        // cel-go's string extensions and Kubernetes' list and regex libraries.
        "charAt": [1], "format": [1], "lastIndexOf": [1, 2], "replace": [2, 3], "substring": [1, 2], "reverse": [0], "find": [1], "findAll": [1, 2],
        // Kubernetes' semver library.
        "major": [0], "minor": [0], "patch": [0],
        // A timestamp's fields in UTC or in a time zone given, a duration's totals.
        "getFullYear": [0, 1], "getMonth": [0, 1], "getDate": [0, 1], "getDayOfMonth": [0, 1], "getDayOfWeek": [0, 1],
        "getDayOfYear": [0, 1], "getHours": [0, 1], "getMinutes": [0, 1], "getSeconds": [0, 1], "getMilliseconds": [0, 1],
        // Kubernetes' quantity library.
        "isInteger": [0], "asInteger": [0], "asApproximateFloat": [0], "sign": [0], "add": [1], "sub": [1], "isGreaterThan": [1],
        "isLessThan": [1], "compareTo": [1],
        // Optionals.
        "hasValue": [0], "value": [0], "orValue": [1], "or": [1],
        // Kubernetes' IP and CIDR libraries.
        "family": [0], "isUnspecified": [0], "isLoopback": [0], "isLinkLocalMulticast": [0], "isLinkLocalUnicast": [0],
        "isGlobalUnicast": [0], "containsIP": [1], "containsCIDR": [1], "ip": [0], "masked": [0], "prefixLength": [0],
        // Kubernetes' URL library.
        "getScheme": [0], "getHost": [0], "getHostname": [0], "getPort": [0], "getEscapedPath": [0], "getQuery": [0],
        // Kubernetes' format library.
        "validate": [1],
    ]
    static let functions: [String: Set<Int>] = [
        "size": [1], "int": [1], "double": [1], "string": [1], "matches": [2], "duration": [1], "timestamp": [1], "quantity": [1],
        "isQuantity": [1], "ip": [1], "isIP": [1], "cidr": [1], "isCIDR": [1], "url": [1], "isURL": [1], "semver": [1, 2],
        "isSemver": [1, 2],
    ]
    /// Functions named with a namespace, with their argument counts.
    static let namespacedFunctions: [String: Set<Int>] = [
        "optional.of": [1], "optional.none": [0], "optional.ofNonZeroValue": [1], "ip.isCanonical": [1], "format.named": [1],
        "format.dns1123Label": [0], "format.dns1123Subdomain": [0], "format.dns1035Label": [0], "format.qualifiedName": [0],
        "format.dns1123LabelPrefix": [0], "format.dns1123SubdomainPrefix": [0], "format.dns1035LabelPrefix": [0],
        "format.labelValue": [0], "format.uri": [0], "format.uuid": [0], "format.byte": [0], "format.date": [0], "format.datetime": [0],
        "strings.quote": [1], "sets.contains": [2], "sets.equivalent": [2], "sets.intersects": [2],
    ]

    var atEnd: Bool { position >= tokens.count }
    var peekDescription: String {
        guard position < tokens.count else { return "the end" }
        switch tokens[position] {
        case .identifier(let name): return "\"\(name)\""
        case .symbol(let symbol): return "\"\(symbol)\""
        case .integer(let number): return "\(number)"
        case .double(let number): return "\(number)"
        case .string(let text): return "\"\(text)\""
        }
    }

    private mutating func take(_ symbol: String) -> Bool {
        guard position < tokens.count, tokens[position] == .symbol(symbol) else { return false }
        position += 1
        return true
    }

    private mutating func expect(_ symbol: String) throws(CELSyntaxError) {
        guard take(symbol) else { throw CELSyntaxError("expected \"\(symbol)\", found \(peekDescription)") }
    }

    mutating func expression(depth: Int) throws(CELSyntaxError) -> CELExpression {
        guard depth < Self.maximumDepth else { throw CELSyntaxError("the expression is nested more than \(Self.maximumDepth) levels deep") }
        let condition = try binary(level: 0, depth: depth)
        guard take("?") else { return condition }
        let then = try binary(level: 0, depth: depth)
        try expect(":")
        return .conditional(condition, then, try expression(depth: depth + 1))
    }

    private static let levels: [[String]] = [["||"], ["&&"], ["==", "!=", "<", "<=", ">", ">=", "in"], ["+", "-"], ["*", "/", "%"]]

    private mutating func binary(level: Int, depth: Int) throws(CELSyntaxError) -> CELExpression {
        guard level < Self.levels.count else { return try unary(depth: depth) }
        var left = try binary(level: level + 1, depth: depth)
        while position < tokens.count {
            let operators = Self.levels[level]
            let found: String? =
                switch tokens[position] {
                case .symbol(let symbol) where operators.contains(symbol): symbol
                case .identifier("in") where operators.contains("in"): "in"
                default: nil
                }
            guard let found else { break }
            position += 1
            left = .binary(found, left, try binary(level: level + 1, depth: depth))
        }
        return left
    }

    private mutating func unary(depth: Int) throws(CELSyntaxError) -> CELExpression {
        guard depth < Self.maximumDepth else { throw CELSyntaxError("the expression is nested more than \(Self.maximumDepth) levels deep") }
        if take("!") { return .unary("!", try unary(depth: depth + 1)) }
        if take("-") {
            // `-9223372036854775808` is a literal, not the negation of one too large.
            if position < tokens.count, case .integer(let number) = tokens[position] {
                position += 1
                return try member(.literal(.integer(-number)), depth: depth)
            }
            return .unary("-", try unary(depth: depth + 1))
        }
        return try member(try primary(depth: depth), depth: depth)
    }

    private mutating func member(_ start: CELExpression, depth: Int) throws(CELSyntaxError) -> CELExpression {
        var expression = start
        while true {
            if take(".") {
                let optional = take("?")
                guard position < tokens.count, case .identifier(let name) = tokens[position] else {
                    throw CELSyntaxError("expected a field name after \".\", found \(peekDescription)")
                }
                position += 1
                if optional {
                    expression = .optionalSelect(expression, name)
                    continue
                }
                guard take("(") else {
                    expression = .select(expression, name)
                    continue
                }
                let arguments = try list(until: ")", depth: depth)
                if case .identifier(let namespace) = expression, let counts = Self.namespacedFunctions["\(namespace).\(name)"] {
                    // `optional.of(x)`, `ip.isCanonical(s)`: functions in a namespace, not methods of a value.
                    guard counts.contains(arguments.count) else {
                        throw CELSyntaxError("the function \(namespace).\(name) with \(arguments.count) arguments is not supported here")
                    }
                    expression = .call("\(namespace).\(name)", target: nil, arguments: arguments)
                } else if Self.macros.contains(name) || Self.twoVariableMacros[name] != nil {
                    expression = try comprehension(name, target: expression, arguments: arguments)
                } else {
                    guard Self.methods[name]?.contains(arguments.count) == true else {
                        throw CELSyntaxError("the function \(name) with \(arguments.count) arguments is not supported here")
                    }
                    expression = .call(name, target: expression, arguments: arguments)
                }
            } else if take("[") {
                let optional = take("?")
                let key = try self.expression(depth: depth + 1)
                try expect("]")
                expression = optional ? .optionalIndex(expression, key) : .index(expression, key)
            } else {
                return expression
            }
        }
    }

    private func comprehension(_ name: String, target: CELExpression, arguments: [CELExpression]) throws(CELSyntaxError) -> CELExpression {
        if arguments.count >= 3, case .identifier(let first) = arguments[0], case .identifier(let second) = arguments[1],
            let counts = Self.twoVariableMacros[name], counts.contains(arguments.count - 2)
        {
            // As cel-go: the two names must differ, or the second would hide the first.
            guard first != second else {
                throw CELSyntaxError("\(name) binds \(first) twice; name the index (or key) and the element (or value) differently")
            }
            return .comprehension(name, target: target, variables: [first, second], arguments: Array(arguments.dropFirst(2)))
        }
        guard Self.macros.contains(name), case .identifier(let variable)? = arguments.first,
            arguments.count == 2 || (name == "map" && arguments.count == 3)
        else {
            throw CELSyntaxError("\(name) takes \(Self.twoVariableMacros[name] == nil ? "a variable name" : "variable names") and an expression")
        }
        return .comprehension(name, target: target, variables: [variable], arguments: Array(arguments.dropFirst()))
    }

    private mutating func list(until closing: String, depth: Int) throws(CELSyntaxError) -> [CELExpression] {
        var elements: [CELExpression] = []
        while !take(closing) {
            if !elements.isEmpty {
                try expect(",")
                if take(closing) { break }  // a trailing comma
            }
            elements.append(try expression(depth: depth + 1))
        }
        return elements
    }

    private mutating func primary(depth: Int) throws(CELSyntaxError) -> CELExpression {
        guard position < tokens.count else { throw CELSyntaxError("the expression ends too early") }
        let token = tokens[position]
        position += 1
        switch token {
        case .integer(let number): return .literal(.integer(number))
        case .double(let number): return .literal(.double(number))
        case .string(let text): return .literal(.string(text))
        case .identifier("true"): return .literal(.bool(true))
        case .identifier("false"): return .literal(.bool(false))
        case .identifier("null"): return .literal(.null)
        case .identifier(let name):
            guard take("(") else { return .identifier(name) }
            let arguments = try list(until: ")", depth: depth)
            if name == "has" {
                guard arguments.count == 1, case .select(let target, let field) = arguments[0] else {
                    throw CELSyntaxError("has() takes one field selection, such as has(self.spec)")
                }
                return .presence(target, field)
            }
            guard Self.functions[name]?.contains(arguments.count) == true else {
                throw CELSyntaxError("the function \(name) with \(arguments.count) arguments is not supported here")
            }
            return .call(name, target: nil, arguments: arguments)
        case .symbol("("):
            let inner = try expression(depth: depth + 1)
            try expect(")")
            return inner
        case .symbol("["):
            return .list(try list(until: "]", depth: depth))
        case .symbol("{"):
            var entries: [(key: CELExpression, value: CELExpression)] = []
            while !take("}") {
                if !entries.isEmpty {
                    try expect(",")
                    if take("}") { break }
                }
                let key = try expression(depth: depth + 1)
                try expect(":")
                entries.append((key, try expression(depth: depth + 1)))
            }
            return .map(entries)
        default:
            position -= 1
            throw CELSyntaxError("unexpected \(peekDescription)")
        }
    }
}
