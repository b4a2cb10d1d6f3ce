import TetherJSON

/// A value as CEL sees it: JSON's kinds, and the two CEL adds for time. kube-apiserver types a
/// schema's `format: duration` string as a `duration` and `format: date-time` as a `timestamp`,
/// and `duration('1h')`/`timestamp('...')` make them in a rule.
public indirect enum CELValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case integer(Int64)
    case double(Double)
    case string(String)
    case array([CELValue])
    case object([String: CELValue])
    /// `google.protobuf.Duration`, in nanoseconds: the range of Go's `time.Duration`, about ±292 years.
    case duration(Int64)
    /// `google.protobuf.Timestamp`: seconds since 1970-01-01T00:00:00Z and nanoseconds (0 to 999,999,999), years 1 to 9999.
    case timestamp(CELTimestamp)
    /// Kubernetes' `resource.Quantity` (`quantity('1.5Gi')`), exactly, in billionths of a unit.
    case quantity(Int128)
    /// cel-go's optional type (`self.?spec`, `optional.of(x)`); nil is `optional.none()`.
    case optional(CELValue?)
    /// Kubernetes' IP library: `ip('10.0.0.1')`.
    case ip(CELAddress)
    /// Kubernetes' CIDR library: `cidr('10.0.0.0/8')`.
    case cidr(CELNetwork)
    /// Kubernetes' URL library: `url('https://example.com/path')`.
    case url(CELURL)
    /// A named format of Kubernetes' format library: `format.dns1123Label()`.
    case format(String)
    /// Kubernetes' semver library: `semver('1.2.3')`.
    case semver(CELSemver)

    /// `json` as CEL sees it under `schema`: strings of `format: duration` or `date-time` become
    /// durations and timestamps where they parse (one that does not stays a string).
    public init(_ json: JSONValue, schema: StructuralSchema? = nil) {
        switch json {
        case .null: self = .null
        case .bool(let flag): self = .bool(flag)
        case .integer(let number): self = .integer(number)
        case .double(let number): self = .double(number)
        case .string(let text):
            switch schema?.format {
            case "duration": self = CELDuration.parse(text).map(CELValue.duration) ?? .string(text)
            case "date-time": self = CELTimestamp(parsing: text).map(CELValue.timestamp) ?? .string(text)
            default: self = .string(text)
            }
        case .array(let items): self = .array(items.map { CELValue($0, schema: schema?.items) })
        case .object(let members):
            var converted: [String: CELValue] = [:]
            converted.reserveCapacity(members.count)
            for (name, member) in members {
                converted[name] = CELValue(member, schema: schema?.properties[name] ?? schema?.additionalProperties)
            }
            self = .object(converted)
        }
    }

    /// The value as JSON: a duration as CEL's `string()` writes it (`90s`), a timestamp in RFC 3339.
    public var json: JSONValue {
        switch self {
        case .null: .null
        case .bool(let flag): .bool(flag)
        case .integer(let number): .integer(number)
        case .double(let number): .double(number)
        case .string(let text): .string(text)
        case .array(let items): .array(items.map(\.json))
        case .object(let members): .object(members.mapValues(\.json))
        case .duration(let nanoseconds): .string(CELDuration.format(nanoseconds))
        case .timestamp(let timestamp): .string(timestamp.description)
        case .quantity(let nanounits): .string(CELQuantity.format(nanounits))
        case .optional(let wrapped): wrapped?.json ?? .null
        case .ip(let address): .string(address.description)
        case .cidr(let network): .string(network.description)
        case .url(let url): .string(url.text)
        case .format(let name): .string(name)
        case .semver(let version): .string(version.description)
        }
    }

    /// CEL's name for the value's type, for error messages.
    var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "bool"
        case .integer: "int"
        case .double: "double"
        case .string: "string"
        case .array: "list"
        case .object: "map"
        case .duration: "google.protobuf.Duration"
        case .timestamp: "google.protobuf.Timestamp"
        case .quantity: "kubernetes.Quantity"
        case .optional: "optional_type"
        case .ip: "net.IP"
        case .cidr: "net.CIDR"
        case .url: "kubernetes.URL"
        case .format: "kubernetes.NamedFormat"
        case .semver: "kubernetes.Semver"
        }
    }
}

/// Durations in Go's notation, which CEL's `duration()` reads: `1h30m`, `1.5s`, `-250ms`, `0`.
enum CELDuration {
    private static let units: [(suffix: String, nanoseconds: Int64)] = [
        ("ns", 1), ("us", 1_000), ("µs", 1_000), ("μs", 1_000), ("ms", 1_000_000), ("s", 1_000_000_000),
        ("m", 60_000_000_000), ("h", 3_600_000_000_000),
    ]

    /// Nanoseconds, or nil when `text` is not a duration or does not fit in 64 bits.
    static func parse(_ text: String) -> Int64? {
        var rest = Substring(text)
        let negative = DecimalText.sign(&rest)
        if rest == "0" { return 0 }
        guard !rest.isEmpty else { return nil }
        var total: Int64 = 0
        while !rest.isEmpty {
            guard let (whole, fraction) = DecimalText.number(&rest) else { return nil }
            let unitText = rest.prefix { !($0.isASCII && ($0.isNumber || $0 == ".")) }
            guard let unit = units.first(where: { $0.suffix == unitText }) else { return nil }
            rest = rest.dropFirst(unitText.count)
            guard let wholeNumber = whole.isEmpty ? 0 : Int64(whole) else { return nil }
            var (part, overflow) = wholeNumber.multipliedReportingOverflow(by: unit.nanoseconds)
            guard !overflow else { return nil }
            // The fraction's digits scaled to the unit, as Go does, dropping what is below a nanosecond.
            var scale = unit.nanoseconds
            for digit in fraction {
                scale /= 10
                guard scale > 0 else { break }
                (part, overflow) = part.addingReportingOverflow(Int64(digit.wholeNumberValue ?? 0) * scale)
                guard !overflow else { return nil }
            }
            (total, overflow) = total.addingReportingOverflow(part)
            guard !overflow else { return nil }
        }
        return negative ? -total : total
    }

    /// As CEL's `string(duration)`: seconds with the fraction that is not zero, `5400s`, `1.5s`.
    static func format(_ nanoseconds: Int64) -> String {
        let sign = nanoseconds < 0 ? "-" : ""
        let magnitude = nanoseconds.magnitude
        let seconds = magnitude / 1_000_000_000
        let fraction = magnitude % 1_000_000_000
        guard fraction != 0 else { return "\(sign)\(seconds)s" }
        var digits = String(fraction)
        digits = String(repeating: "0", count: 9 - digits.count) + digits
        while digits.hasSuffix("0") { digits.removeLast() }
        return "\(sign)\(seconds).\(digits)s"
    }
}

/// A point in time as CEL's `timestamp`: seconds since the Unix epoch and nanoseconds, in UTC.
public struct CELTimestamp: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let seconds: Int64
    public let nanoseconds: Int32

    /// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, CEL's bounds.
    static let earliest: Int64 = -62_135_596_800
    static let latest: Int64 = 253_402_300_799

    /// Nil outside CEL's range.
    init?(seconds: Int64, nanoseconds: Int64) {
        var seconds = seconds
        var nanoseconds = nanoseconds
        seconds += nanoseconds / 1_000_000_000
        nanoseconds %= 1_000_000_000
        if nanoseconds < 0 {
            nanoseconds += 1_000_000_000
            seconds -= 1
        }
        guard seconds >= Self.earliest, seconds <= Self.latest else { return nil }
        self.seconds = seconds
        self.nanoseconds = Int32(nanoseconds)
    }

    /// RFC 3339 (`2026-12-03T09:00:00Z`, `2026-12-03T10:00:00.5+01:00`), as CEL's `timestamp()` reads it.
    init?(parsing text: String) {
        let bytes = Array(text.utf8)
        func number(_ start: Int, _ count: Int) -> Int64? {
            guard start + count <= bytes.count else { return nil }
            var value: Int64 = 0
            for byte in bytes[start..<start + count] {
                guard byte >= 48, byte <= 57 else { return nil }
                value = value * 10 + Int64(byte - 48)
            }
            return value
        }
        guard bytes.count >= 20, bytes[4] == 45, bytes[7] == 45, bytes[10] == 84 || bytes[10] == 116, bytes[13] == 58, bytes[16] == 58,
            let year = number(0, 4), let month = number(5, 2), let day = number(8, 2), let hour = number(11, 2), let minute = number(14, 2),
            let second = number(17, 2), (1...12).contains(month), day >= 1, day <= Self.days(inMonth: month, year: year), hour < 24,
            minute < 60, second < 60
        else { return nil }
        var index = 19
        var nanoseconds: Int64 = 0
        if index < bytes.count, bytes[index] == 46 {
            index += 1
            var digits = 0
            while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
                if digits < 9 { nanoseconds = nanoseconds * 10 + Int64(bytes[index] - 48) }
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            for _ in digits..<max(9, digits) { nanoseconds *= 10 }
        }
        var offset: Int64 = 0
        guard index < bytes.count else { return nil }
        if bytes[index] == 90 || bytes[index] == 122 {
            index += 1
        } else if bytes[index] == 43 || bytes[index] == 45, bytes.count == index + 6, bytes[index + 3] == 58,
            let hours = number(index + 1, 2), let minutes = number(index + 4, 2), hours < 24, minutes < 60
        {
            offset = (hours * 60 + minutes) * 60 * (bytes[index] == 45 ? -1 : 1)
            index += 6
        } else {
            return nil
        }
        guard index == bytes.count else { return nil }
        let days = Self.daysSinceEpoch(year: year, month: month, day: day)
        self.init(seconds: days * 86_400 + hour * 3_600 + minute * 60 + second - offset, nanoseconds: nanoseconds)
    }

    public static func < (left: CELTimestamp, right: CELTimestamp) -> Bool {
        (left.seconds, left.nanoseconds) < (right.seconds, right.nanoseconds)
    }

    /// RFC 3339 in UTC, with the fraction that is not zero, as CEL's `string(timestamp)` writes it.
    public var description: String {
        let parts = civil
        func padded(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        var text =
            "\(padded(parts.year, 4))-\(padded(parts.month, 2))-\(padded(parts.day, 2))T\(padded(parts.hour, 2)):\(padded(parts.minute, 2)):\(padded(parts.second, 2))"
        if nanoseconds != 0 {
            var digits = padded(Int64(nanoseconds), 9)
            while digits.hasSuffix("0") { digits.removeLast() }
            text += "." + digits
        }
        return text + "Z"
    }

    /// The UTC calendar fields of the timestamp; `weekday` 0 is Sunday, `dayOfYear` 0 is 1 January.
    var civil: (year: Int64, month: Int64, day: Int64, hour: Int64, minute: Int64, second: Int64, weekday: Int64, dayOfYear: Int64) {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        // Howard Hinnant's days-to-civil: exact for the proleptic Gregorian calendar.
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfShiftedYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfShiftedYear + 2) / 153
        let day = dayOfShiftedYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        let weekday = ((days % 7) + 11) % 7  // 1970-01-01 was a Thursday (4)
        let dayOfYear = days - Self.daysSinceEpoch(year: year, month: 1, day: 1)
        return (year, month, day, secondOfDay / 3_600, secondOfDay % 3_600 / 60, secondOfDay % 60, weekday, dayOfYear)
    }

    /// Howard Hinnant's days-from-civil.
    static func daysSinceEpoch(year: Int64, month: Int64, day: Int64) -> Int64 {
        let shiftedYear = month <= 2 ? year - 1 : year
        let era = (shiftedYear >= 0 ? shiftedYear : shiftedYear - 399) / 400
        let yearOfEra = shiftedYear - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    static func days(inMonth month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }
}

/// Kubernetes quantities (`4`, `500m`, `1.5Gi`, `1e3`), as the CEL library of kube-apiserver
/// reads them: exactly, in billionths of a unit, which `Int128` holds past `1Ei`. A fraction
/// below a billionth is rounded up, as Kubernetes rounds it.
enum CELQuantity {
    private static let suffixes: [String: (base: Int128, power: Int)] = [
        "n": (10, -9), "u": (10, -6), "m": (10, -3), "": (10, 0), "k": (10, 3), "M": (10, 6), "G": (10, 9), "T": (10, 12), "P": (10, 15),
        "E": (10, 18), "Ki": (2, 10), "Mi": (2, 20), "Gi": (2, 30), "Ti": (2, 40), "Pi": (2, 50), "Ei": (2, 60),
    ]
    static let unit: Int128 = 1_000_000_000

    /// Billionths of a unit, or nil when `text` is not a quantity or is too large.
    static func parse(_ text: String) -> Int128? {
        var rest = Substring(text)
        let negative = DecimalText.sign(&rest)
        guard let (whole, fraction) = DecimalText.number(&rest), whole.count + fraction.count <= 30 else { return nil }
        var base: Int128 = 10
        var power = 0
        // `E` alone is exa and `Ei` exbi; `e` or `E` before a signed integer is an exponent.
        if let marker = rest.first, marker == "e" || marker == "E", let exponent = Int(rest.dropFirst()) {
            guard abs(exponent) <= 40 else { return nil }
            power = exponent
        } else {
            guard let suffix = suffixes[String(rest)] else { return nil }
            (base, power) = suffix
        }
        // The digits as one integer, then scaled: ×10^9 for billionths, ÷10^fraction digits, ×base^power.
        var digits: Int128 = 0
        for digit in whole + fraction {
            digits = digits * 10 + Int128(digit.wholeNumberValue ?? 0)
        }
        var numerator = digits
        var denominator: Int128 = 1
        func multiply(_ value: inout Int128, by factor: Int128, times: Int) -> Bool {
            for _ in 0..<times {
                let (product, overflow) = value.multipliedReportingOverflow(by: factor)
                guard !overflow else { return false }
                value = product
            }
            return true
        }
        guard multiply(&numerator, by: 10, times: 9), multiply(&denominator, by: 10, times: fraction.count) else { return nil }
        if power >= 0 {
            guard multiply(&numerator, by: base, times: power) else { return nil }
        } else {
            guard multiply(&denominator, by: base, times: -power) else { return nil }
        }
        var (quotient, remainder) = numerator.quotientAndRemainder(dividingBy: denominator)
        if remainder != 0 { quotient += 1 }
        return negative ? -quotient : quotient
    }

    /// Whole units when it has no fraction, else thousandths (`500m`), else billionths (`1n`).
    static func format(_ nanounits: Int128) -> String {
        if nanounits % unit == 0 { return "\(nanounits / unit)" }
        if nanounits % 1_000_000 == 0 { return "\(nanounits / 1_000_000)m" }
        return "\(nanounits)n"
    }
}

/// The decimal notation durations and quantities share: an optional sign, then digits with an
/// optional fraction (`12`, `1.5`, `.5`), read off the front of the text.
enum DecimalText {
    /// Takes a leading `+` or `-`; whether it was `-`.
    static func sign(_ rest: inout Substring) -> Bool {
        guard let sign = rest.first, sign == "+" || sign == "-" else { return false }
        rest = rest.dropFirst()
        return sign == "-"
    }

    /// Takes the digits before and after a `.`; nil when there is no digit at all.
    static func number(_ rest: inout Substring) -> (whole: Substring, fraction: Substring)? {
        let whole = rest.prefix { $0.isASCII && $0.isNumber }
        rest = rest.dropFirst(whole.count)
        var fraction = Substring("")
        if rest.first == "." {
            rest = rest.dropFirst()
            fraction = rest.prefix { $0.isASCII && $0.isNumber }
            rest = rest.dropFirst(fraction.count)
        }
        return whole.isEmpty && fraction.isEmpty ? nil : (whole, fraction)
    }
}

/// Kubernetes resource quantities (`500m`, `0.5`, `16Gi`, `1e3`) as whole numbers, read exactly
/// (no floating point) and rounded up, as Kubernetes rounds a request.
public enum ResourceQuantity {
    /// Thousandths of a unit: a CPU quantity in millicores. Nil when `text` is not a quantity.
    public static func milli(_ text: String?) -> Int64? { scaled(text, perUnit: 1_000) }

    /// Whole units: bytes of memory, a count of Pods.
    public static func whole(_ text: String?) -> Int64? { scaled(text, perUnit: 1) }

    private static func scaled(_ text: String?, perUnit: Int128) -> Int64? {
        guard let text, let nanounits = CELQuantity.parse(text) else { return nil }
        let (quotient, remainder) = (nanounits * perUnit).quotientAndRemainder(dividingBy: CELQuantity.unit)
        return Int64(exactly: remainder > 0 ? quotient + 1 : quotient)
    }
}
