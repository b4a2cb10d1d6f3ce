import Foundation

/// A CronJob's `schedule`, read as the CronJob controller reads it (the standard five fields of
/// robfig/cron): minute, hour, day of month, month, day of week; each `*` or `?`, a value, a
/// range `a-b`, a step `*/n` or `a-b/n` or `a/n`, or a list of those; months and weekdays also by
/// their three-letter names; and the descriptors `@yearly`, `@annually`, `@monthly`, `@weekly`,
/// `@daily`, `@midnight` and `@hourly`, or `@every DURATION` (Go's form, `90s`, `1h30m`: every
/// that long, in whole seconds and at least one, from the time before). When both the day of
/// month and the day of week are
/// restricted, a day matching either runs (cron's rule); when either is `*`, both must match.
/// Time zones come from the CronJob's `timeZone`, never from the schedule (kube-apiserver refuses
/// `TZ=` and `CRON_TZ=` there).
public struct CronSchedule: Sendable, Equatable {
    public struct Invalid: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    let minutes: Set<Int>
    let hours: Set<Int>
    let days: Set<Int>
    let months: Set<Int>
    let weekdays: Set<Int>
    /// The day-of-month or day-of-week field was `*` or `?`.
    let anyDay: Bool
    let anyWeekday: Bool
    /// `@every`'s interval in whole seconds; the fields are unused then.
    let every: Int64?

    private static let descriptors = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0", "@daily": "0 0 * * *",
        "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]
    private static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    private static let weekdayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

    public init(_ text: String) throws(Invalid) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.hasPrefix("TZ=") || trimmed.hasPrefix("CRON_TZ=") {
            throw Invalid(description: "cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
        }
        if trimmed.hasPrefix("@every ") {
            let duration = String(trimmed.dropFirst("@every ".count)).trimmingCharacters(in: .whitespaces)
            guard let seconds = Self.goDuration(duration) else { throw Invalid(description: "failed to parse duration @every \(duration)") }
            // As robfig/cron: whole seconds, at least one.
            (minutes, hours, days, months, weekdays, anyDay, anyWeekday) = ([], [], [], [], [], true, true)
            every = max(1, Int64(seconds.rounded(.down)))
            return
        }
        every = nil
        let expanded = trimmed.hasPrefix("@") ? Self.descriptors[trimmed.lowercased()] : trimmed
        guard let expanded else { throw Invalid(description: "unrecognized descriptor: \(trimmed)") }
        let fields = expanded.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard fields.count == 5 else { throw Invalid(description: "expected exactly 5 fields, found \(fields.count): \(trimmed)") }
        (minutes, _) = try Self.field(fields[0], 0...59, names: [], what: "minute")
        (hours, _) = try Self.field(fields[1], 0...23, names: [], what: "hour")
        (days, anyDay) = try Self.field(fields[2], 1...31, names: [], what: "day of month")
        (months, _) = try Self.field(fields[3], 1...12, names: Self.monthNames, what: "month", firstName: 1)
        (weekdays, anyWeekday) = try Self.field(fields[4], 0...6, names: Self.weekdayNames, what: "day of week")
    }

    /// Seconds in a duration as Go writes one: numbers with an optional fraction, each with a
    /// unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), an optional sign; nil if it is not one.
    static func goDuration(_ text: String) -> Double? {
        var rest = Substring(text)
        var sign = 1.0
        if let first = rest.first, first == "-" || first == "+" {
            sign = first == "-" ? -1 : 1
            rest = rest.dropFirst()
        }
        if rest == "0" { return 0 }
        guard !rest.isEmpty else { return nil }
        let units: [(String, Double)] = [("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("μs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600)]
        var total = 0.0
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            // The longest unit that fits ("ms" before "m").
            guard let unit = units.filter({ rest.hasPrefix($0.0) }).max(by: { $0.0.count < $1.0.count }) else { return nil }
            rest = rest.dropFirst(unit.0.count)
            total += value * unit.1
        }
        return sign * total
    }

    /// The values one field names, and whether it was `*` or `?`.
    private static func field(
        _ text: String, _ bounds: ClosedRange<Int>, names: [String], what: String, firstName: Int = 0
    ) throws(Invalid) -> (Set<Int>, Bool) {
        var values = Set<Int>()
        var star = false
        func number(_ part: Substring) throws(Invalid) -> Int {
            if let value = Int(part) { return value }
            if let index = names.firstIndex(of: part.lowercased()) { return index + firstName }
            throw Invalid(description: "failed to parse \(what) '\(part)' in '\(text)'")
        }
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let rangeAndStep = item.split(separator: "/", omittingEmptySubsequences: false)
            guard rangeAndStep.count <= 2, let range = rangeAndStep.first, !range.isEmpty else {
                throw Invalid(description: "failed to parse \(what) '\(item)' in '\(text)'")
            }
            var low: Int
            var high: Int
            var isStar = false
            if range == "*" || range == "?" {
                (low, high, isStar) = (bounds.lowerBound, bounds.upperBound, true)
            } else {
                let ends = range.split(separator: "-", omittingEmptySubsequences: false)
                guard ends.count <= 2 else { throw Invalid(description: "failed to parse \(what) '\(item)' in '\(text)'") }
                low = try number(ends[0])
                high = ends.count == 2 ? try number(ends[1]) : low
            }
            var step = 1
            if rangeAndStep.count == 2 {
                guard let parsed = Int(rangeAndStep[1]), parsed > 0 else {
                    throw Invalid(description: "step of \(what) '\(item)' must be a positive number")
                }
                step = parsed
                // `a/n` runs from a to the end of the range.
                if !isStar, !range.contains("-") { high = bounds.upperBound }
                if step > 1 { isStar = false }
            }
            guard bounds.contains(low), bounds.contains(high) else {
                throw Invalid(description: "\(what) '\(item)' is out of range \(bounds.lowerBound)-\(bounds.upperBound)")
            }
            guard low <= high else { throw Invalid(description: "beginning of \(what) range \(low) is beyond its end \(high)") }
            values.formUnion(stride(from: low, through: high, by: step))
            star = star || isStar
        }
        return (values, star)
    }

    private func dayMatches(day: Int, weekday: Int) -> Bool {
        let (onDay, onWeekday) = (days.contains(day), weekdays.contains(weekday))
        return anyDay || anyWeekday ? onDay && onWeekday : onDay || onWeekday
    }

    /// The first time the schedule names strictly after `date`, in `zone`; nil if none within
    /// five years (a day that never comes, such as 30 February).
    public func next(after date: Date, in zone: TimeZone) -> Date? {
        if let every { return Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down) + TimeInterval(every)) }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        var time = Date(timeIntervalSince1970: (date.timeIntervalSince1970 / 60).rounded(.down) * 60 + 60)
        let limit = date.addingTimeInterval(5 * 366 * 86_400)
        while time <= limit {
            let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .weekday], from: time)
            guard let year = parts.year, let month = parts.month, let day = parts.day, let hour = parts.hour, let minute = parts.minute,
                let weekday = parts.weekday
            else { return nil }
            let next: Date?
            if !months.contains(month) {
                next = calendar.date(from: DateComponents(year: month == 12 ? year + 1 : year, month: month == 12 ? 1 : month + 1, day: 1))
            } else if !dayMatches(day: day, weekday: weekday - 1) {
                next = calendar.date(byAdding: .day, value: 1, to: calendar.startOfDay(for: time))
            } else if !hours.contains(hour) {
                next = calendar.date(from: DateComponents(year: year, month: month, day: day, hour: hour))
                    .flatMap { calendar.date(byAdding: .hour, value: 1, to: $0) }
            } else if !minutes.contains(minute) {
                next = time.addingTimeInterval(60)
            } else {
                return time
            }
            // A step that does not move (a time zone's jump) moves by a minute instead.
            guard let next, next > time else {
                time = time.addingTimeInterval(60)
                continue
            }
            time = next
        }
        return nil
    }

    /// The latest time the schedule names after `earliest` and no later than `now`, and how many
    /// such times there were (at most `limit` are walked, as the controller gives up counting).
    public func latest(after earliest: Date, upTo now: Date, in zone: TimeZone, limit: Int = 1_000) -> (time: Date, missed: Int)? {
        if let every {
            let start = earliest.timeIntervalSince1970.rounded(.down)
            let count = Int64(((now.timeIntervalSince1970 - start) / TimeInterval(every)).rounded(.down))
            guard count >= 1 else { return nil }
            return (Date(timeIntervalSince1970: start + TimeInterval(count * every)), Int(min(count, Int64(limit))))
        }
        func walk(from start: Date) -> (time: Date?, count: Int) {
            var (found, count, cursor): (Date?, Int, Date) = (nil, 0, start)
            while count < limit, let next = next(after: cursor, in: zone), next <= now {
                (found, count, cursor) = (next, count + 1, next)
            }
            return (found, count)
        }
        let all = walk(from: earliest)
        guard all.count >= limit else { return all.time.map { ($0, all.count) } }
        // Too many to walk: the latest is found in the shortest recent window that has one.
        for window: TimeInterval in [3_600, 86_400, 31 * 86_400, 366 * 86_400, 5 * 366 * 86_400] {
            let recent = walk(from: max(earliest, now.addingTimeInterval(-window)))
            if let time = recent.time, recent.count < limit { return (time, limit) }
        }
        return all.time.map { ($0, limit) }
    }
}
