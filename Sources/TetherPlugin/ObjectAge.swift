import Foundation

/// Ages and durations as kube-apiserver's tables print them (apimachinery's `HumanDuration`):
/// `45s`, `3m20s`, `42m`, `5h10m`, `20h`, `3d4h`, `40d`, `2y30d`.
public enum ObjectAge {
    public static func since(_ date: Date, now: Date) -> String {
        human(seconds: Int(now.timeIntervalSince(date).rounded(.down)))
    }

    public static func human(seconds: Int) -> String {
        // A second or two in the future is clock skew, and reads as now.
        if seconds < -1 { return "<invalid>" }
        if seconds < 0 { return "0s" }
        if seconds < 120 { return "\(seconds)s" }
        let minutes = seconds / 60
        if minutes < 10 { return seconds % 60 == 0 ? "\(minutes)m" : "\(minutes)m\(seconds % 60)s" }
        if minutes < 180 { return "\(minutes)m" }
        let hours = minutes / 60
        if hours < 8 { return minutes % 60 == 0 ? "\(hours)h" : "\(hours)h\(minutes % 60)m" }
        if hours < 48 { return "\(hours)h" }
        let days = hours / 24
        if hours < 24 * 8 { return hours % 24 == 0 ? "\(days)d" : "\(days)d\(hours % 24)h" }
        if days < 365 * 2 { return "\(days)d" }
        if days < 365 * 8 { return days % 365 == 0 ? "\(days / 365)y" : "\(days / 365)y\(days % 365)d" }
        return "\(days / 365)y"
    }
}
