/// What a value costs, measured without encoding it: nesting and compact-JSON size, both with
/// a bound so that measuring a hostile value costs no more than the bound.
extension JSONValue {
    /// How deeply arrays and objects nest in this value (a scalar is 0, `{}` is 1); counting stops
    /// once it passes `bound`, so a hostile value costs no more than `bound` levels of walking.
    public func nestingDepth(stoppingAfter bound: Int = .max) -> Int {
        switch self {
        case .null, .bool, .integer, .double, .string:
            return 0
        case .array(let items):
            guard bound > 0 else { return 1 }
            var deepest = 0
            for item in items {
                deepest = max(deepest, item.nestingDepth(stoppingAfter: bound - 1))
                if deepest >= bound { break }
            }
            return deepest + 1
        case .object(let members):
            guard bound > 0 else { return 1 }
            var deepest = 0
            for item in members.values {
                deepest = max(deepest, item.nestingDepth(stoppingAfter: bound - 1))
                if deepest >= bound { break }
            }
            return deepest + 1
        }
    }

    /// The length of this value's compact JSON encoding, in bytes (strings counted as written,
    /// escapes included); the count stops once it passes `bound`.
    public func encodedSize(stoppingAfter bound: Int = .max) -> Int {
        var total = 0
        accumulateSize(into: &total, bound: bound)
        return total
    }

    private func accumulateSize(into total: inout Int, bound: Int) {
        guard total <= bound else { return }
        switch self {
        case .null: total += 4
        case .bool(let flag): total += flag ? 4 : 5
        case .integer(let number): total += String(number).utf8.count
        case .double(let number): total += String(number).utf8.count
        case .string(let text): total += Self.encodedStringSize(text)
        case .array(let items):
            total += 2 + max(0, items.count - 1)
            for item in items {
                item.accumulateSize(into: &total, bound: bound)
                if total > bound { return }
            }
        case .object(let members):
            total += 2 + max(0, members.count - 1)
            for (key, item) in members {
                total += Self.encodedStringSize(key) + 1
                item.accumulateSize(into: &total, bound: bound)
                if total > bound { return }
            }
        }
    }

    private static func encodedStringSize(_ text: String) -> Int {
        var size = 2
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), 0x08, 0x0C, 0x0A, 0x0D, 0x09: size += 2
            case 0..<0x20: size += 6
            default: size += 1
            }
        }
        return size
    }
}
