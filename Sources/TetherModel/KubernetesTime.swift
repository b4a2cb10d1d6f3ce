import Foundation

/// A time as Kubernetes writes it in objects (`creationTimestamp`, `lastTransitionTime`):
/// RFC 3339 in UTC, to the second, `2026-11-25T09:15:02Z`.
public func kubernetesTimestamp(_ date: Date = Date()) -> String {
    date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: false).timeZone(separator: .omitted))
}

/// A `metav1.MicroTime` as Kubernetes writes it (an Event's `eventTime`): RFC 3339 in UTC with
/// six fractional digits, `2026-11-25T09:15:02.123456Z`.
public func kubernetesMicroTimestamp(seconds: Int64, nanos: Int32) -> String {
    let whole = kubernetesTimestamp(Date(timeIntervalSince1970: TimeInterval(seconds)))
    let micros = String(Int(nanos) / 1000)
    return whole.dropLast() + "." + String(repeating: "0", count: max(0, 6 - micros.count)) + micros + "Z"
}

/// An RFC 3339 time with or without fractional seconds, as seconds since 1970 and nanoseconds:
/// the fraction is read digit by digit, so a microsecond time survives exactly.
public func kubernetesTimeParts(_ text: String) -> (seconds: Int64, nanos: Int32)? {
    var whole = text
    var nanos: Int32 = 0
    if let dot = text.firstIndex(of: ".") {
        let fraction = text[text.index(after: dot)...].prefix { $0.isASCII && $0.isNumber }
        guard !fraction.isEmpty, fraction.count <= 9 else { return nil }
        nanos = Int32(fraction + String(repeating: "0", count: 9 - fraction.count)) ?? 0
        whole = String(text[..<dot]) + String(text[text.index(dot, offsetBy: 1 + fraction.count)...])
    }
    guard let date = try? Date(whole, strategy: .iso8601) else { return nil }
    return (Int64(date.timeIntervalSince1970), nanos)
}
