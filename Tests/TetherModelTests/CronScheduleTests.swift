import Foundation
import Testing
import TetherModel

@Suite("CronJob schedules")
struct CronScheduleTests {
    static let utc = TimeZone(identifier: "UTC")!

    static func date(_ text: String) -> Date {
        Date(timeIntervalSince1970: TimeInterval(kubernetesTimeParts(text)?.seconds ?? 0))
    }

    static func next(_ schedule: String, after: String, in zone: TimeZone = utc) throws -> String? {
        try CronSchedule(schedule).next(after: date(after), in: zone).map { kubernetesTimestamp($0) }
    }

    @Test("the next time of values, ranges, steps, lists, names and descriptors")
    func nextTimes() throws {
        #expect(try Self.next("* * * * *", after: "2026-12-04T10:15:30Z") == "2026-12-04T10:16:00Z")
        #expect(try Self.next("* * * * *", after: "2026-12-04T10:15:00Z") == "2026-12-04T10:16:00Z", "strictly after")
        #expect(try Self.next("*/15 * * * *", after: "2026-12-04T10:16:00Z") == "2026-12-04T10:30:00Z")
        #expect(try Self.next("5 4 * * *", after: "2026-12-04T10:00:00Z") == "2026-12-05T04:05:00Z")
        #expect(try Self.next("0 9-17/4 * * MON-FRI", after: "2026-12-04T17:30:00Z") == "2026-12-07T09:00:00Z", "Friday evening to Monday")
        #expect(try Self.next("30 2 1,15 * *", after: "2026-12-04T00:00:00Z") == "2026-12-15T02:30:00Z")
        #expect(try Self.next("0 0 1 jan *", after: "2026-12-04T00:00:00Z") == "2027-01-01T00:00:00Z")
        #expect(try Self.next("@hourly", after: "2026-12-04T10:15:00Z") == "2026-12-04T11:00:00Z")
        #expect(try Self.next("@weekly", after: "2026-12-04T10:15:00Z") == "2026-12-06T00:00:00Z", "Sunday")
        #expect(try Self.next("@yearly", after: "2026-12-04T10:15:00Z") == "2027-01-01T00:00:00Z")
        #expect(try Self.next("10/20 * * * *", after: "2026-12-04T10:31:00Z") == "2026-12-04T10:50:00Z", "a/n runs to the end")
        // Both day fields restricted: either matches (the 13th, or a Friday).
        #expect(try Self.next("0 0 13 * 5", after: "2026-12-04T01:00:00Z") == "2026-12-11T00:00:00Z")
        // One of them `*`: both must (a Friday the 13th).
        #expect(try Self.next("0 0 13 * *", after: "2026-12-04T01:00:00Z") == "2026-12-13T00:00:00Z")
        #expect(try Self.next("0 0 30 2 *", after: "2026-12-04T00:00:00Z") == nil, "30 February never comes")
    }

    @Test("@every: the interval in whole seconds from the time before, at least one second; the latest missed run counted, not walked")
    func every() throws {
        #expect(try Self.next("@every 90m", after: "2026-12-04T10:15:00Z") == "2026-12-04T11:45:00Z")
        #expect(try Self.next("@every 1h30m", after: "2026-12-04T10:15:00Z") == "2026-12-04T11:45:00Z")
        #expect(try Self.next("@every 1.5s", after: "2026-12-04T10:15:00Z") == "2026-12-04T10:15:01Z")
        #expect(try Self.next("@every 300ms", after: "2026-12-04T10:15:00Z") == "2026-12-04T10:15:01Z", "at least a second")
        let found = try CronSchedule("@every 10m").latest(
            after: Self.date("2026-12-04T10:00:00Z"), upTo: Self.date("2026-12-04T10:35:00Z"), in: Self.utc)
        #expect(found.map { kubernetesTimestamp($0.time) } == "2026-12-04T10:30:00Z" && found?.missed == 3)
        let year = try CronSchedule("@every 1s").latest(
            after: Self.date("2025-12-04T10:00:00Z"), upTo: Self.date("2026-12-04T10:35:30Z"), in: Self.utc)
        #expect(year.map { kubernetesTimestamp($0.time) } == "2026-12-04T10:35:30Z" && year?.missed == 1_000)
    }

    @Test("a time zone shifts the schedule: 09:00 in Tokyo is 00:00 UTC")
    func timeZone() throws {
        let tokyo = try #require(TimeZone(identifier: "Asia/Tokyo"))
        #expect(try Self.next("0 9 * * *", after: "2026-12-04T01:00:00Z", in: tokyo) == "2026-12-05T00:00:00Z")
    }

    @Test("the latest missed time, how many were missed, and none before the first")
    func latest() throws {
        let every = try CronSchedule("*/10 * * * *")
        let found = every.latest(after: Self.date("2026-12-04T10:00:00Z"), upTo: Self.date("2026-12-04T10:35:00Z"), in: Self.utc)
        #expect(found.map { kubernetesTimestamp($0.time) } == "2026-12-04T10:30:00Z" && found?.missed == 3)
        #expect(every.latest(after: Self.date("2026-12-04T10:00:00Z"), upTo: Self.date("2026-12-04T10:09:00Z"), in: Self.utc) == nil)
        // A year of minutes is more than is walked: the latest is still found.
        let minutely = try CronSchedule("* * * * *")
        let long = minutely.latest(after: Self.date("2025-12-04T10:00:00Z"), upTo: Self.date("2026-12-04T10:35:30Z"), in: Self.utc)
        #expect(long.map { kubernetesTimestamp($0.time) } == "2026-12-04T10:35:00Z")
    }

    @Test(
        "schedules kube-apiserver refuses",
        arguments: [
            "", "* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 7", "*/0 * * * *", "5-1 * * * *", "TZ=UTC * * * * *",
            "@every", "@every 5x", "@every 1h-5m", "x * * * *",
        ])
    func refused(_ schedule: String) {
        #expect(throws: CronSchedule.Invalid.self) { try CronSchedule(schedule) }
    }
}
