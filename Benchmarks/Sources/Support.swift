import Foundation
import TetherLocal
import TetherSecurity

/// Memory and CPU of a process, from /proc.
struct ProcessStats: Sendable {
    /// Resident and peak resident memory, bytes.
    var resident: Int
    var peakResident: Int
    /// User plus system CPU time, seconds.
    var cpuSeconds: Double

    static func read(_ pid: Int32) -> ProcessStats? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        else { return nil }
        func kilobytes(_ field: String) -> Int {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }) else { return 0 }
            return (Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0") ?? 0) * 1024
        }
        // Fields after the command name (which may hold spaces) start after the last ')'.
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let user = Double(fields[11]) ?? 0
        let system = Double(fields[12]) ?? 0
        return ProcessStats(resident: kilobytes("VmRSS"), peakResident: kilobytes("VmHWM"), cpuSeconds: (user + system) / ticks)
    }
}

/// A measured figure: printed as a table row, collected into one JSON line.
struct Report {
    let benchmark: String
    private(set) var rows: [(String, String)] = []
    private(set) var values: [String: Double] = [:]
    private(set) var notes: [String: String] = [:]

    init(_ benchmark: String) {
        self.benchmark = benchmark
    }

    mutating func add(_ key: String, _ value: Double, _ label: String, format: String = "%.1f", unit: String = "") {
        values[key] = value
        rows.append((label, String(format: format, value) + (unit.isEmpty ? "" : " " + unit)))
    }

    mutating func note(_ key: String, _ text: String) {
        notes[key] = text
    }

    func print() {
        let width = rows.map(\.0.count).max() ?? 10
        Swift.print("\n\(benchmark)")
        for (label, value) in rows {
            Swift.print("  " + label.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + value)
        }
        var object: [String: Any] = ["benchmark": benchmark, "date": ISO8601DateFormatter().string(from: Date())]
        for (key, value) in values { object[key] = value }
        for (key, value) in notes { object[key] = value }
        object["machine"] = Machine.description
        if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) {
            Swift.print(String(decoding: data, as: UTF8.self))
        }
    }
}

enum Machine {
    static var description: String {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let memory = ProcessInfo.processInfo.physicalMemory / (1 << 30)
        let model =
            (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
        return "\(cores) cores, \(memory) GiB, \(model)"
    }
}

/// Percentiles of durations, in milliseconds.
func percentiles(_ samples: [Duration]) -> (p50: Double, p99: Double, max: Double) {
    let sorted = samples.map { Double($0.components.seconds) * 1000 + Double($0.components.attoseconds) / 1e15 }.sorted()
    guard !sorted.isEmpty else { return (0, 0, 0) }
    func at(_ fraction: Double) -> Double { sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * fraction).rounded(.up)))] }
    return (at(0.5), at(0.99), sorted.last ?? 0)
}

func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}

/// A scratch federation with the executables from `binDirectory` (default: `TETHER_BIN_DIR`, else
/// the main package's build folder of tether-bench's configuration).
func makeFederation(binDirectory: String?, label: String) throws -> LocalFederation {
    let root = NSTemporaryDirectory() + "tether-bench-\(label)-\(UUID().uuidString.prefix(6))"
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    let directory =
        try binDirectory.map { URL(fileURLWithPath: $0) } ?? TetherBinaries.locate().directory
    return try LocalFederation(root: root, binaries: TetherBinaries(directory: directory), trustDomain: "bench.local")
}

/// Certificates for `count` clusters `c0`..., issued in memory from the federation CA.
func clusterMaterials(_ count: Int, directory: FederationDirectory) throws -> [TLSMaterial] {
    let authority = try directory.loadAuthority()
    let bundle = try directory.loadTrustBundle()
    let trustDomain = try directory.loadConfig().trustDomain
    return try (0..<count).map { index in
        let keyed = try authority.issue(for: .cluster("c\(index)", trustDomain: trustDomain), usage: .client)
        return try TLSMaterial(keyed, trustRoots: bundle)
    }
}
