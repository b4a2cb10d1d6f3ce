/// Why a byte sequence is not a JSON document, and where.
public struct JSONSyntaxError: Error, Hashable, CustomStringConvertible {
    /// The offset of the first byte that could not be read, counted from the document's start.
    public let offset: Int
    public let reason: String
    /// True when the document is refused only for nesting deeper than the bound it was read with.
    public let isNestingTooDeep: Bool

    init(offset: Int, reason: String, isNestingTooDeep: Bool = false) {
        self.offset = offset
        self.reason = reason
        self.isNestingTooDeep = isNestingTooDeep
    }

    public var description: String { "\(reason) at byte \(offset)" }
}

extension JSONValue {
    /// The default bound on the nesting of arrays and objects (Foundation's decoder uses the same).
    public static let defaultMaximumDepth = 512

    /// Parses one JSON document (RFC 8259) straight into a value.
    ///
    /// Foundation's `JSONDecoder` reaches `JSONValue` through `Codable`, which cannot peek at a
    /// value's type, so every string and object cost failed, throwing attempts at other types;
    /// this reads each value once. Integers that fit `Int64` stay exact; a number with a fraction
    /// or exponent whose value is a whole `Int64` becomes `.integer` too, as Foundation's decoding
    /// gave it. Strings must be valid UTF-8; nesting deeper than `maximumDepth` is refused before
    /// it can exhaust the stack.
    public init(parsing bytes: UnsafeRawBufferPointer, maximumDepth: Int = JSONValue.defaultMaximumDepth) throws(JSONSyntaxError) {
        var parser = JSONParser(bytes: bytes, maximumDepth: maximumDepth)
        self = try parser.parseDocument()
    }

    /// Parses one JSON document from any contiguous bytes (`[UInt8]`, `Data`, a string's UTF-8).
    public init(parsing bytes: some Sequence<UInt8>, maximumDepth: Int = JSONValue.defaultMaximumDepth) throws(JSONSyntaxError) {
        let parsed: Result<JSONValue, JSONSyntaxError>? = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(JSONSyntaxError) -> JSONValue in
                try JSONValue(parsing: UnsafeRawBufferPointer(buffer), maximumDepth: maximumDepth)
            }
        }
        if let parsed {
            self = try parsed.get()
        } else {
            let copy = Array(bytes)
            self = try copy.withUnsafeBytes { buffer in
                Result { () throws(JSONSyntaxError) -> JSONValue in try JSONValue(parsing: buffer, maximumDepth: maximumDepth) }
            }.get()
        }
    }

    /// Parses one JSON document held in a string.
    public init(parsing text: String, maximumDepth: Int = JSONValue.defaultMaximumDepth) throws(JSONSyntaxError) {
        var text = text
        self = try text.withUTF8 { buffer in
            Result { () throws(JSONSyntaxError) -> JSONValue in
                try JSONValue(parsing: UnsafeRawBufferPointer(buffer), maximumDepth: maximumDepth)
            }
        }.get()
    }
}

/// A recursive-descent reader over raw bytes; one instance reads one document.
struct JSONParser {
    private let bytes: UnsafeRawBufferPointer
    private let maximumDepth: Int
    private var position = 0
    private var depth = 0

    init(bytes: UnsafeRawBufferPointer, maximumDepth: Int) {
        self.bytes = bytes
        self.maximumDepth = maximumDepth
    }

    mutating func parseDocument() throws(JSONSyntaxError) -> JSONValue {
        skipWhitespace()
        let value = try parseValue()
        skipWhitespace()
        guard position == bytes.count else { throw failure("unexpected \(describe(bytes[position])) after the document") }
        return value
    }

    private mutating func parseValue() throws(JSONSyntaxError) -> JSONValue {
        guard position < bytes.count else { throw failure("the document ends where a value should start") }
        switch bytes[position] {
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "t"):
            try expectLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expectLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        case let byte: throw failure("unexpected \(describe(byte)) where a value should start")
        }
    }

    private mutating func parseObject() throws(JSONSyntaxError) -> JSONValue {
        try enterContainer()
        var members: [String: JSONValue] = [:]
        if closes(UInt8(ascii: "}")) { return .object(members) }
        repeat {
            guard peek() == UInt8(ascii: "\"") else { throw failure("expected a member name in quotes") }
            let key = try parseString()
            skipWhitespace()
            guard peek() == UInt8(ascii: ":") else { throw failure("expected ':' after the member name \"\(key)\"") }
            position += 1
            skipWhitespace()
            members[key] = try parseValue()
        } while try continues(closing: UInt8(ascii: "}"), in: "an object")
        return .object(members)
    }

    private mutating func parseArray() throws(JSONSyntaxError) -> JSONValue {
        try enterContainer()
        var elements: [JSONValue] = []
        if closes(UInt8(ascii: "]")) { return .array(elements) }
        repeat {
            elements.append(try parseValue())
        } while try continues(closing: UInt8(ascii: "]"), in: "an array")
        return .array(elements)
    }

    /// After an opening bracket: true (and the container is left) when it closes at once.
    private mutating func closes(_ closing: UInt8) -> Bool {
        skipWhitespace()
        guard peek() == closing else { return false }
        position += 1
        depth -= 1
        return true
    }

    /// After an element: true when a comma announces another, false when `closing` ends the
    /// container (which is then left).
    private mutating func continues(closing: UInt8, in container: String) throws(JSONSyntaxError) -> Bool {
        skipWhitespace()
        switch peek() {
        case UInt8(ascii: ","):
            position += 1
            skipWhitespace()
            return true
        case closing:
            position += 1
            depth -= 1
            return false
        default:
            throw failure("expected ',' or '\(Character(Unicode.Scalar(closing)))' in \(container)")
        }
    }

    /// Steps over an opening bracket, counting the depth.
    private mutating func enterContainer() throws(JSONSyntaxError) {
        depth += 1
        guard depth <= maximumDepth else {
            throw JSONSyntaxError(offset: position, reason: "arrays and objects nest deeper than \(maximumDepth) levels", isNestingTooDeep: true)
        }
        position += 1
    }

    /// Reads a string starting at its opening quote. Strings without escapes (nearly all of a
    /// Kubernetes object) are made from the bytes in place.
    private mutating func parseString() throws(JSONSyntaxError) -> String {
        let start = position + 1
        var index = start
        var isASCII = true
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let content = UnsafeRawBufferPointer(rebasing: bytes[start..<index])
                position = index + 1
                if isASCII { return String(decoding: content, as: UTF8.self) }
                guard let text = String(validating: content, as: UTF8.self) else {
                    position = start
                    throw failure("a string is not valid UTF-8")
                }
                return text
            }
            if byte == UInt8(ascii: "\\") {
                position = index
                return try parseEscapedString(prefix: UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
            }
            if byte < 0x20 {
                position = index
                throw failure("a control character (0x\(String(byte, radix: 16))) must be escaped inside a string")
            }
            if byte >= 0x80 { isASCII = false }
            index += 1
        }
        position = start - 1
        throw failure("a string is not closed")
    }

    private mutating func parseEscapedString(prefix: UnsafeRawBufferPointer) throws(JSONSyntaxError) -> String {
        var utf8 = [UInt8](prefix)
        utf8.reserveCapacity(prefix.count + 64)
        var runStart = position
        while position < bytes.count {
            let byte = bytes[position]
            guard byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 else {
                position += 1
                continue
            }
            utf8.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<position]))
            if byte == UInt8(ascii: "\"") {
                position += 1
                guard let text = String(validating: utf8, as: UTF8.self) else { throw failure("a string is not valid UTF-8") }
                return text
            }
            guard byte == UInt8(ascii: "\\") else {
                throw failure("a control character (0x\(String(byte, radix: 16))) must be escaped inside a string")
            }
            position += 1
            guard position < bytes.count else { throw failure("a string ends inside an escape") }
            let escape = bytes[position]
            position += 1
            switch escape {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"): try appendUnicodeEscape(to: &utf8)
            default:
                position -= 2
                throw failure("\\\(describeBare(escape)) is not a JSON escape")
            }
            runStart = position
        }
        throw failure("a string is not closed")
    }

    /// Reads the four hex digits after `\u` (and a second escape for a surrogate pair).
    private mutating func appendUnicodeEscape(to utf8: inout [UInt8]) throws(JSONSyntaxError) {
        let escapeStart = position - 2
        var scalarValue = try readHexQuad()
        if (0xD800...0xDBFF).contains(scalarValue) {
            guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") else {
                position = escapeStart
                throw failure("a high surrogate escape is not followed by a low one")
            }
            position += 2
            let low = try readHexQuad()
            guard (0xDC00...0xDFFF).contains(low) else {
                position = escapeStart
                throw failure("a high surrogate escape is not followed by a low one")
            }
            scalarValue = 0x10000 + ((scalarValue - 0xD800) << 10) + (low - 0xDC00)
        }
        guard let scalar = Unicode.Scalar(scalarValue) else {
            position = escapeStart
            throw failure("\\u escape of a lone low surrogate")
        }
        utf8.append(contentsOf: UTF8.encode(scalar)!)
    }

    private mutating func readHexQuad() throws(JSONSyntaxError) -> UInt32 {
        guard position + 4 <= bytes.count else { throw failure("a \\u escape needs four hex digits") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw failure("a \\u escape needs four hex digits")
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }

    private mutating func parseNumber() throws(JSONSyntaxError) -> JSONValue {
        let start = position
        let negative = bytes[position] == UInt8(ascii: "-")
        if negative { position += 1 }
        guard let first = peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else {
            throw failure("a number needs digits after '-'")
        }
        // Accumulate negatively so Int64.min parses exactly.
        var magnitude: Int64 = 0
        var fitsInteger = true
        if first == UInt8(ascii: "0") {
            position += 1
            if let next = peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(next) {
                throw failure("a number must not start with a leading zero")
            }
        } else {
            while let byte = peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) {
                if fitsInteger {
                    let (times10, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
                    let (next, overflow2) = times10.subtractingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
                    if overflow1 || overflow2 { fitsInteger = false } else { magnitude = next }
                }
                position += 1
            }
        }
        var isIntegerLiteral = true
        if peek() == UInt8(ascii: ".") {
            isIntegerLiteral = false
            position += 1
            try skipDigits(after: "'.'")
        }
        if let byte = peek(), byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
            isIntegerLiteral = false
            position += 1
            if let sign = peek(), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { position += 1 }
            try skipDigits(after: "an exponent")
        }
        if isIntegerLiteral && fitsInteger {
            if negative { return .integer(magnitude) }
            if magnitude != .min { return .integer(-magnitude) }
        }
        let literal = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        guard let double = Double(literal), double.isFinite else {
            position = start
            throw failure("the number \(literal) is out of range")
        }
        if double.rounded() == double, abs(double) < 9.2e18 { return .integer(Int64(double)) }
        return .double(double)
    }

    private mutating func skipDigits(after what: String) throws(JSONSyntaxError) {
        guard let first = peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else {
            throw failure("a number needs digits after \(what)")
        }
        while let byte = peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { position += 1 }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(JSONSyntaxError) {
        let count = literal.utf8CodeUnitCount
        guard position + count <= bytes.count,
            memcmpEqual(bytes.baseAddress! + position, literal.utf8Start, count)
        else { throw failure("unexpected \(describe(bytes[position])) where a value should start") }
        position += count
    }

    private func memcmpEqual(_ left: UnsafeRawPointer, _ right: UnsafePointer<UInt8>, _ count: Int) -> Bool {
        for offset in 0..<count where left.load(fromByteOffset: offset, as: UInt8.self) != right[offset] { return false }
        return true
    }

    private mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"): position += 1
            default: return
            }
        }
    }

    private func peek() -> UInt8? { position < bytes.count ? bytes[position] : nil }

    private func failure(_ reason: String) -> JSONSyntaxError {
        JSONSyntaxError(offset: position, reason: reason)
    }

    private func describe(_ byte: UInt8) -> String {
        (0x21..<0x7F).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(String(byte, radix: 16))"
    }

    private func describeBare(_ byte: UInt8) -> String {
        (0x21..<0x7F).contains(byte) ? String(Character(Unicode.Scalar(byte))) : "0x\(String(byte, radix: 16))"
    }
}
