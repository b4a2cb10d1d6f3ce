import Foundation

/// A time as Kubernetes writes it in objects (`creationTimestamp`, `lastTransitionTime`):
/// RFC 3339 in UTC, to the second, `2026-11-25T09:15:02Z`.
public func kubernetesTimestamp(_ date: Date = Date()) -> String {
    date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: false).timeZone(separator: .omitted))
}
