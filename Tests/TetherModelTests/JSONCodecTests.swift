import Foundation
import Testing
import TetherJSON
import TetherModel

@Suite("JSON parsing, writing and coding")
struct JSONCodecTests {
    static let deployment = """
        {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"shop","labels":{"app":"web",\
        "tether.io/placement":"eu"},"annotations":{"note":"caf\\u00e9 \\"quoted\\" \\\\ tab\\tend","emoji":"\\ud83d\\ude00 ok"}},\
        "spec":{"replicas":3,"paused":false,"progressDeadlineSeconds":600,"ratio":0.25,"big":1.5e300,"tiny":-2.5E-7,\
        "template":{"spec":{"containers":[{"name":"app","image":"nginx:1.27","ports":[{"containerPort":8080}],\
        "resources":{"limits":{"cpu":"500m"}},"args":[],"env":null}]}}}, "status" : { } }
        """

    @Test("parses what Foundation's decoder parses, to the same value")
    func agreesWithFoundation() throws {
        let bytes = Array(Self.deployment.utf8)
        let ours = try JSONValue(parsing: bytes)
        let foundations = try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
        #expect(ours == foundations)
        #expect(ours["metadata"]?["annotations"]?["note"] == "café \"quoted\" \\ tab\tend")
        #expect(ours["metadata"]?["annotations"]?["emoji"] == "😀 ok")
        #expect(ours["spec"]?["ratio"] == .double(0.25))
    }

    @Test(
        "numbers keep integers exact and whole numbers integral",
        arguments: [
            ("0", JSONValue.integer(0)), ("-0", .integer(0)), ("42", .integer(42)),
            ("9223372036854775807", .integer(.max)), ("-9223372036854775808", .integer(.min)),
            ("9223372036854775808", .double(9_223_372_036_854_775_808)), ("1.0", .integer(1)), ("1e3", .integer(1000)),
            ("2.5", .double(2.5)), ("-1.25e-3", .double(-0.00125)), ("1E+2", .integer(100)),
        ]
    )
    func numbers(text: String, expected: JSONValue) throws {
        #expect(try JSONValue(parsing: text) == expected)
    }

    @Test(
        "malformed documents are refused with the byte where reading stopped",
        arguments: [
            ("", 0), ("{", 1), ("[1,]", 3), ("{\"a\":1,}", 7), ("{\"a\" 1}", 5), ("{a:1}", 1), ("01", 1), ("1.", 2),
            ("-", 1), ("1e", 2), ("tru", 0), ("nul", 0), ("\"open", 0), ("[1] x", 4), ("\"\\x\"", 1), ("\"\\u12g4\"", 5),
            ("\"a\u{01}b\"", 2), ("\"\\ud83d\"", 1), ("\"\\ude00\"", 1), ("1e999", 0), ("[1 2]", 3), ("{\"a\":1 \"b\":2}", 7),
        ]
    )
    func malformed(text: String, offset: Int) {
        #expect(throws: JSONSyntaxError.self) { try JSONValue(parsing: text) }
        do {
            _ = try JSONValue(parsing: text)
        } catch {
            #expect(error.offset == offset, "\(error)")
        }
    }

    @Test("invalid UTF-8 inside a string is refused")
    func invalidUTF8() {
        #expect(throws: JSONSyntaxError.self) { try JSONValue(parsing: [0x22, 0xC3, 0x28, 0x22]) }
        #expect(throws: JSONSyntaxError.self) { try JSONValue(parsing: [0x22, 0x5C, 0x6E, 0xFF, 0x22]) }
    }

    @Test("nesting past the bound is refused, without exhausting the stack")
    func deepNesting() throws {
        let deep = String(repeating: "[", count: 100_000)
        #expect(throws: JSONSyntaxError.self) { try JSONValue(parsing: deep) }
        let allowed = String(repeating: "[", count: 512) + String(repeating: "]", count: 512)
        #expect(try JSONValue(parsing: allowed) != .null)
        #expect(throws: JSONSyntaxError.self) { try JSONValue(parsing: "[[[]]]", maximumDepth: 2) }
    }

    @Test("writing sorts keys, escapes what JSON requires and matches Foundation's sorted output")
    func writing() throws {
        let value: JSONValue = [
            "b": "line\nbreak \"q\" back\\slash /path \u{01}", "a": [1, -7, .double(2.5), true, false, nil], "c": ["z": 1, "y": [:]],
            "d": .double(1e-05), "e": .integer(.min), "f": "ünïcødé",
        ]
        let text = try value.serializedText()
        #expect(text.hasPrefix(#"{"a":[1,-7,2.5,true,false,null],"b":"line\nbreak \"q\" back\\slash /path \u0001","c":{"y":{},"z":1}"#))
        #expect(try JSONValue(parsing: text) == value)
        let foundation = JSONEncoder()
        foundation.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let deploymentValue = try JSONValue(parsing: Self.deployment)
        #expect(try deploymentValue.serialized() == Array(try foundation.encode(deploymentValue)))
        #expect(throws: JSONSerializationError.self) { try JSONValue.double(.nan).serialized() }
    }

    @Test("random documents survive writing and reading, and Foundation reads them the same")
    func randomRoundTrips() throws {
        var generator = SeededGenerator(seed: 0x7E7E_4E12)
        for _ in 0..<300 {
            let value = Self.randomValue(depth: 0, using: &generator)
            let bytes = try value.serialized()
            #expect(try JSONValue(parsing: bytes) == value)
            #expect(try JSONDecoder().decode(JSONValue.self, from: Data(bytes)) == value)
        }
    }

    struct Message: Codable, Equatable {
        struct Reference: Codable, Equatable {
            var kind: String
            var name: String?
        }

        var revision: UInt64
        var objects: [JSONValue]
        var summary: [String: JSONValue]
        var references: [Reference]
        var optionalCount: Int?
        var sentAt: Date
        var blob: Data
        var ratio: Double
        var flags: [Bool]
        var nested: [String: [Int]]
    }

    static let message = Message(
        revision: 42, objects: [["kind": "ConfigMap", "data": ["k": "v"]], "loose", 7],
        summary: ["ready": true, "replicas": 3], references: [.init(kind: "Service", name: "web"), .init(kind: "Secret", name: nil)],
        optionalCount: nil, sentAt: Date(timeIntervalSinceReferenceDate: 815_000_000.5), blob: Data([0, 1, 2, 254, 255]),
        ratio: 0.75, flags: [true, false], nested: ["a": [1, 2], "b": []]
    )

    @Test("the coders write what Foundation writes and read what Foundation reads")
    func codersAgreeWithFoundation() throws {
        let foundation = JSONEncoder()
        foundation.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let ours = try JSONValueEncoder().encode(Self.message)
        #expect(ours == Array(try foundation.encode(Self.message)))
        #expect(try JSONValueDecoder().decode(Message.self, from: ours) == Self.message)
        #expect(try JSONDecoder().decode(Message.self, from: Data(ours)) == Self.message)
        let encodedValue = try JSONValueEncoder().encodeValue(Self.message)
        #expect(encodedValue["optionalCount"] == nil)
        #expect(encodedValue["blob"] == "AAEC/v8=")
    }

    @Test("decoding errors name the field, as Foundation's do")
    func decodingErrors() throws {
        let decoder = JSONValueDecoder()
        func failure(_ text: String) -> DecodingError? {
            do {
                _ = try decoder.decode(Message.Reference.self, from: Array(text.utf8))
                return nil
            } catch {
                return error as? DecodingError
            }
        }
        guard case .keyNotFound(let key, _) = failure(#"{"name":"x"}"#) else {
            Issue.record("a missing field is keyNotFound")
            return
        }
        #expect(key.stringValue == "kind")
        guard case .typeMismatch(_, let context) = failure(#"{"kind":7}"#) else {
            Issue.record("a number for a string is typeMismatch")
            return
        }
        #expect(context.codingPath.map(\.stringValue) == ["kind"])
        guard case .dataCorrupted(let corrupt) = failure(#"{"kind":"#) else {
            Issue.record("broken JSON is dataCorrupted")
            return
        }
        #expect(corrupt.debugDescription.contains("at byte 8"))
        #expect(throws: DecodingError.self) { try decoder.decode(UInt8.self, from: JSONValue.integer(300)) }
        #expect(throws: DecodingError.self) { try decoder.decode([Int].self, from: JSONValue.array([1, "two"])) }
        #expect(throws: EncodingError.self) { try JSONValueEncoder().encode(UInt64.max) }
    }

    static func randomValue(depth: Int, using generator: inout SeededGenerator) -> JSONValue {
        let choice = depth > 4 ? Int.random(in: 0..<5, using: &generator) : Int.random(in: 0..<7, using: &generator)
        switch choice {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &generator))
        case 2: return .integer(Int64.random(in: .min ... .max, using: &generator))
        case 3:
            return .double(Double(Int.random(in: -1_000_000...1_000_000, using: &generator)) + Double.random(in: 0.001..<0.999, using: &generator))
        case 4: return .string(randomString(using: &generator))
        case 5: return .array((0..<Int.random(in: 0..<5, using: &generator)).map { _ in randomValue(depth: depth + 1, using: &generator) })
        default:
            var members: [String: JSONValue] = [:]
            for _ in 0..<Int.random(in: 0..<5, using: &generator) {
                members[randomString(using: &generator)] = randomValue(depth: depth + 1, using: &generator)
            }
            return .object(members)
        }
    }

    static func randomString(using generator: inout SeededGenerator) -> String {
        let alphabet: [Character] = ["a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\u{01}", "\u{1F}", "é", "€", "😀", "\u{7F}"]
        return String((0..<Int.random(in: 0..<12, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! })
    }
}

/// A reproducible source of randomness (SplitMix64), so a failing case can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}
