/// FNV-1a over 64 bits: the same value in every run and on every machine, unlike `Hasher`, for
/// digests that are persisted (revision records), compared across processes (a hold's token) or
/// served (an OpenAPI document's ETag).
public struct StableHash: Sendable, Hashable {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    public mutating func combine<Bytes: Sequence<UInt8>>(bytes: Bytes) {
        for byte in bytes {
            value ^= UInt64(byte)
            value &*= 0x100_0000_01b3
        }
    }

    public mutating func combine(_ number: UInt64) {
        withUnsafeBytes(of: number.littleEndian) { combine(bytes: $0) }
    }

    /// The text's UTF-8 bytes and a terminator, so `"ab", "c"` and `"a", "bc"` differ.
    public mutating func combine(_ text: String) {
        combine(bytes: text.utf8)
        combine(bytes: CollectionOfOne(0xFF))
    }

    /// A canonical walk of `json`: object keys sorted, every value tagged with its type, so equal
    /// values hash equal whatever their members' order, without encoding them.
    public mutating func combine(_ json: JSONValue) {
        switch json {
        case .null: combine(bytes: CollectionOfOne(0))
        case .bool(let flag): combine(bytes: [1, flag ? 1 : 0])
        case .integer(let number):
            combine(bytes: CollectionOfOne(2))
            combine(UInt64(bitPattern: number))
        case .double(let number):
            combine(bytes: CollectionOfOne(3))
            combine(number.bitPattern)
        case .string(let text):
            combine(bytes: CollectionOfOne(4))
            combine(text)
        case .array(let items):
            combine(bytes: CollectionOfOne(5))
            combine(UInt64(items.count))
            for item in items { combine(item) }
        case .object(let members):
            combine(bytes: CollectionOfOne(6))
            combine(UInt64(members.count))
            for key in members.keys.sorted() {
                combine(key)
                combine(members[key] ?? .null)
            }
        }
    }
}
