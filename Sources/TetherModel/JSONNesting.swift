/// Bounds the nesting of JSON arrays and objects before a recursive decoder sees the bytes.
///
/// A linear scan that skips string contents, so `"[[["` inside a string does not count.
public enum JSONNesting {
    /// Whether no array or object in `bytes` nests deeper than `maximum`.
    public static func fits(_ bytes: some Sequence<UInt8>, maximum: Int) -> Bool {
        var depth = 0
        var inString = false
        var escaped = false
        for byte in bytes {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > maximum { return false }
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth -= 1
            default:
                break
            }
        }
        return true
    }
}
