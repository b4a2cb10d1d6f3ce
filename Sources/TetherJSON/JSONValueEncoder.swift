import Foundation

/// Encodes `Encodable` values as a ``JSONValue`` (and from there as bytes), with Foundation
/// `JSONEncoder`'s default strategies (dates as seconds since 2001, `Data` as base64, `nil`
/// optionals left out) and sorted keys.
///
/// A `JSONValue` member is taken as it is, where Foundation's encoder rewrote it value by value
/// through `Codable`: that is most of a wire message or a stored object.
public struct JSONValueEncoder {
    public init() {}

    public func encodeValue<T: Encodable>(_ value: T) throws -> JSONValue {
        if let direct = Self.direct(value) { return direct }
        let slot = EncodingSlot()
        try value.encode(to: EncodingNode(slot: slot, codingPath: []))
        return slot.materialize()
    }

    /// The value as compact JSON bytes with sorted keys (see ``JSONValue/serialized()``).
    public func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        try encodeValue(value).serialized()
    }

    /// Values that need no `Encoder`: the unstructured ones, and what Foundation's encoder
    /// special-cases.
    static func direct<T: Encodable>(_ value: T) -> JSONValue? {
        switch value {
        case let json as JSONValue: return json
        case let elements as [JSONValue]: return .array(elements)
        case let members as [String: JSONValue]: return .object(members)
        case let data as Data: return .string(data.base64EncodedString())
        default: return nil
        }
    }
}

/// Where an encoder writes: a value, or members and elements still being written.
private final class EncodingSlot {
    enum Content {
        case empty
        case value(JSONValue)
        case object([String: EncodingSlot])
        case array([EncodingSlot])
    }

    var content: Content = .empty

    init() {}
    init(_ value: JSONValue) { content = .value(value) }

    func materialize() -> JSONValue {
        switch content {
        case .empty: return .object([:])
        case .value(let value): return value
        case .object(let members): return .object(members.mapValues { $0.materialize() })
        case .array(let elements): return .array(elements.map { $0.materialize() })
        }
    }

    /// The members of this slot, turning an empty slot into an object.
    func insert(_ member: EncodingSlot, forKey key: String) {
        if case .object(var members) = content {
            content = .empty
            members[key] = member
            content = .object(members)
        } else {
            content = .object([key: member])
        }
    }

    func append(_ element: EncodingSlot) {
        if case .array(var elements) = content {
            content = .empty
            elements.append(element)
            content = .array(elements)
        } else {
            content = .array([element])
        }
    }

    var elementCount: Int {
        if case .array(let elements) = content { return elements.count }
        return 0
    }

    func existingMember(_ key: String) -> EncodingSlot? {
        if case .object(let members) = content { return members[key] }
        return nil
    }
}

private struct EncodingNode: Encoder, SingleValueEncodingContainer {
    let slot: EncodingSlot
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if case .object = slot.content {} else { slot.content = .object([:]) }
        return KeyedEncodingContainer(KeyedEncodingNode<Key>(slot: slot, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if case .array = slot.content {} else { slot.content = .array([]) }
        return UnkeyedEncodingNode(slot: slot, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { self }

    func encodeNil() { slot.content = .value(.null) }
    func encode(_ value: Bool) { slot.content = .value(.bool(value)) }
    func encode(_ value: String) { slot.content = .value(.string(value)) }
    func encode(_ value: Double) throws { slot.content = .value(try Self.number(value, codingPath)) }
    func encode(_ value: Float) throws { slot.content = .value(try Self.number(Double(value), codingPath)) }
    func encode(_ value: Int) throws { slot.content = .value(try Self.integer(value, codingPath)) }
    func encode(_ value: Int8) throws { slot.content = .value(try Self.integer(value, codingPath)) }
    func encode(_ value: Int16) throws { slot.content = .value(try Self.integer(value, codingPath)) }
    func encode(_ value: Int32) throws { slot.content = .value(try Self.integer(value, codingPath)) }
    func encode(_ value: Int64) throws { slot.content = .value(try Self.integer(value, codingPath)) }
    func encode(_ value: UInt) throws { slot.content = .value(try Self.integer(value, codingPath)) }
    func encode(_ value: UInt8) throws { slot.content = .value(try Self.integer(value, codingPath)) }
    func encode(_ value: UInt16) throws { slot.content = .value(try Self.integer(value, codingPath)) }
    func encode(_ value: UInt32) throws { slot.content = .value(try Self.integer(value, codingPath)) }
    func encode(_ value: UInt64) throws { slot.content = .value(try Self.integer(value, codingPath)) }

    func encode<T: Encodable>(_ value: T) throws {
        if let direct = JSONValueEncoder.direct(value) {
            slot.content = .value(direct)
        } else {
            try value.encode(to: self)
        }
    }

    static func integer<Integer: BinaryInteger>(_ value: Integer, _ codingPath: @autoclosure () -> [any CodingKey]) throws -> JSONValue {
        guard let exact = Int64(exactly: value) else {
            throw EncodingError.invalidValue(
                value, .init(codingPath: codingPath(), debugDescription: "\(value) does not fit a 64-bit signed integer"))
        }
        return .integer(exact)
    }

    static func number(_ value: Double, _ codingPath: @autoclosure () -> [any CodingKey]) throws -> JSONValue {
        guard value.isFinite else {
            throw EncodingError.invalidValue(value, .init(codingPath: codingPath(), debugDescription: "\(value) cannot be written as a JSON number"))
        }
        return .double(value)
    }

    /// Encodes `value` into a fresh slot (what keyed and unkeyed containers store).
    static func slot<T: Encodable>(for value: T, codingPath: [any CodingKey]) throws -> EncodingSlot {
        if let direct = JSONValueEncoder.direct(value) { return EncodingSlot(direct) }
        let slot = EncodingSlot()
        try value.encode(to: EncodingNode(slot: slot, codingPath: codingPath))
        return slot
    }
}

private struct KeyedEncodingNode<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let slot: EncodingSlot
    let codingPath: [any CodingKey]

    private func put(_ value: JSONValue, _ key: Key) { slot.insert(EncodingSlot(value), forKey: key.stringValue) }

    mutating func encodeNil(forKey key: Key) { put(.null, key) }
    mutating func encode(_ value: Bool, forKey key: Key) { put(.bool(value), key) }
    mutating func encode(_ value: String, forKey key: Key) { put(.string(value), key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { put(try EncodingNode.number(value, codingPath + [key]), key) }
    mutating func encode(_ value: Float, forKey key: Key) throws { put(try EncodingNode.number(Double(value), codingPath + [key]), key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { put(try EncodingNode.integer(value, codingPath + [key]), key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { put(try EncodingNode.integer(value, codingPath + [key]), key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { put(try EncodingNode.integer(value, codingPath + [key]), key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { put(try EncodingNode.integer(value, codingPath + [key]), key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { put(try EncodingNode.integer(value, codingPath + [key]), key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { put(try EncodingNode.integer(value, codingPath + [key]), key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { put(try EncodingNode.integer(value, codingPath + [key]), key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { put(try EncodingNode.integer(value, codingPath + [key]), key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { put(try EncodingNode.integer(value, codingPath + [key]), key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { put(try EncodingNode.integer(value, codingPath + [key]), key) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        slot.insert(try EncodingNode.slot(for: value, codingPath: codingPath + [key]), forKey: key.stringValue)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let child = slot.existingMember(key.stringValue) ?? EncodingSlot()
        slot.insert(child, forKey: key.stringValue)
        return EncodingNode(slot: child, codingPath: codingPath + [key]).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let child = slot.existingMember(key.stringValue) ?? EncodingSlot()
        slot.insert(child, forKey: key.stringValue)
        return EncodingNode(slot: child, codingPath: codingPath + [key]).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder { superEncoder(forKey: Key(stringValue: "super")!) }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        let child = EncodingSlot()
        slot.insert(child, forKey: key.stringValue)
        return EncodingNode(slot: child, codingPath: codingPath + [key])
    }
}

private struct UnkeyedEncodingNode: UnkeyedEncodingContainer {
    let slot: EncodingSlot
    let codingPath: [any CodingKey]

    var count: Int { slot.elementCount }

    private var nextPath: [any CodingKey] { codingPath + [JSONCodingKey(intValue: count)] }
    private func put(_ value: JSONValue) { slot.append(EncodingSlot(value)) }

    mutating func encodeNil() { put(.null) }
    mutating func encode(_ value: Bool) { put(.bool(value)) }
    mutating func encode(_ value: String) { put(.string(value)) }
    mutating func encode(_ value: Double) throws { put(try EncodingNode.number(value, nextPath)) }
    mutating func encode(_ value: Float) throws { put(try EncodingNode.number(Double(value), nextPath)) }
    mutating func encode(_ value: Int) throws { put(try EncodingNode.integer(value, nextPath)) }
    mutating func encode(_ value: Int8) throws { put(try EncodingNode.integer(value, nextPath)) }
    mutating func encode(_ value: Int16) throws { put(try EncodingNode.integer(value, nextPath)) }
    mutating func encode(_ value: Int32) throws { put(try EncodingNode.integer(value, nextPath)) }
    mutating func encode(_ value: Int64) throws { put(try EncodingNode.integer(value, nextPath)) }
    mutating func encode(_ value: UInt) throws { put(try EncodingNode.integer(value, nextPath)) }
    mutating func encode(_ value: UInt8) throws { put(try EncodingNode.integer(value, nextPath)) }
    mutating func encode(_ value: UInt16) throws { put(try EncodingNode.integer(value, nextPath)) }
    mutating func encode(_ value: UInt32) throws { put(try EncodingNode.integer(value, nextPath)) }
    mutating func encode(_ value: UInt64) throws { put(try EncodingNode.integer(value, nextPath)) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        slot.append(try EncodingNode.slot(for: value, codingPath: nextPath))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let child = EncodingSlot()
        let path = nextPath
        slot.append(child)
        return EncodingNode(slot: child, codingPath: path).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let child = EncodingSlot()
        let path = nextPath
        slot.append(child)
        return EncodingNode(slot: child, codingPath: path).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let child = EncodingSlot()
        let path = nextPath
        slot.append(child)
        return EncodingNode(slot: child, codingPath: path)
    }
}
