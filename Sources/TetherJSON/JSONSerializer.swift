/// Why a value cannot be written as JSON.
public struct JSONSerializationError: Error, Hashable, CustomStringConvertible {
    public let reason: String
    public var description: String { reason }
}

extension JSONValue {
    /// The value as compact JSON: object members sorted by name, so the same value is always the
    /// same bytes (stable for tests, hashes and compression), and `/` left unescaped. Throws only
    /// for a double that is not finite, which JSON cannot express.
    public func serialized() throws(JSONSerializationError) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(256)
        try serialize(into: &output)
        return output
    }

    /// The value as compact JSON text (see ``serialized()``).
    public func serializedText() throws(JSONSerializationError) -> String {
        String(decoding: try serialized(), as: UTF8.self)
    }

    /// Appends the value's compact JSON to `output` (see ``serialized()``).
    public func serialize(into output: inout [UInt8]) throws(JSONSerializationError) {
        switch self {
        case .null: output.append(contentsOf: [0x6E, 0x75, 0x6C, 0x6C])
        case .bool(true): output.append(contentsOf: [0x74, 0x72, 0x75, 0x65])
        case .bool(false): output.append(contentsOf: [0x66, 0x61, 0x6C, 0x73, 0x65])
        case .integer(let value): JSONWriting.appendInteger(value, to: &output)
        case .double(let value): try JSONWriting.appendDouble(value, to: &output)
        case .string(let value): JSONWriting.appendString(value, to: &output)
        case .array(let elements):
            output.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                try element.serialize(into: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let members):
            output.append(UInt8(ascii: "{"))
            var first = true
            for key in members.keys.sorted() {
                if !first { output.append(UInt8(ascii: ",")) }
                first = false
                JSONWriting.appendString(key, to: &output)
                output.append(UInt8(ascii: ":"))
                try members[key].unsafelyUnwrapped.serialize(into: &output)
            }
            output.append(UInt8(ascii: "}"))
        }
    }
}

enum JSONWriting {
    static func appendInteger(_ value: Int64, to output: inout [UInt8]) {
        if value == 0 {
            output.append(UInt8(ascii: "0"))
            return
        }
        // Digits are produced from the least significant, into a fixed scratch, negatively so
        // Int64.min needs no special case.
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { scratch in
            var remaining = value > 0 ? -value : value
            var index = scratch.count
            while remaining != 0 {
                let (quotient, remainder) = remaining.quotientAndRemainder(dividingBy: 10)
                index -= 1
                scratch[index] = UInt8(ascii: "0") + UInt8(-remainder)
                remaining = quotient
            }
            if value < 0 {
                index -= 1
                scratch[index] = UInt8(ascii: "-")
            }
            output.append(contentsOf: scratch[index...])
        }
    }

    static func appendDouble(_ value: Double, to output: inout [UInt8]) throws(JSONSerializationError) {
        guard value.isFinite else { throw JSONSerializationError(reason: "\(value) cannot be written as a JSON number") }
        if value.rounded() == value, abs(value) < 9.2e18 {
            appendInteger(Int64(value), to: &output)
            return
        }
        // Swift's description is the shortest text that reads back as the same double, and is
        // valid JSON for every finite value ("1e-05", "0.1", "1.5e+300").
        output.append(contentsOf: value.description.utf8)
    }

    static func appendString(_ value: String, to output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { utf8 in
            var runStart = 0
            for index in 0..<utf8.count {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                output.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
                runStart = index + 1
                output.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): output.append(byte)
                case 0x0A: output.append(UInt8(ascii: "n"))
                case 0x0D: output.append(UInt8(ascii: "r"))
                case 0x09: output.append(UInt8(ascii: "t"))
                case 0x08: output.append(UInt8(ascii: "b"))
                case 0x0C: output.append(UInt8(ascii: "f"))
                default:
                    let hex = Array("0123456789abcdef".utf8)
                    output.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
                }
            }
            output.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<utf8.count]))
        }
        output.append(UInt8(ascii: "\""))
    }
}
