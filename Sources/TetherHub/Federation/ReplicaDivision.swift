/// Dividing a replica count across clusters: exact and deterministic.
///
/// Minimums first (in cluster-name order while replicas last); then what is left goes by
/// weight: each cluster gets `left * weight / sum(weights)` rounded down, and the remainder one
/// each to the largest remainders, ties broken by cluster name. A cluster pushed past its
/// maximum keeps the maximum and the excess is divided again among the others. The counts
/// always sum to the total unless every cluster is capped below it: 1000 over three equal
/// clusters is 334/333/333.
public enum ReplicaDivision {
    public struct Bounds: Sendable, Hashable {
        public var minimum: Int64
        public var maximum: Int64?

        public init(minimum: Int64 = 0, maximum: Int64? = nil) {
            self.minimum = minimum
            self.maximum = maximum
        }
    }

    public static func divide(
        _ total: Int64,
        among clusters: [String],
        weights: [String: Int64] = [:],
        bounds: [String: Bounds] = [:]
    ) -> [String: Int64] {
        let names = clusters.sorted()
        var shares = Dictionary(uniqueKeysWithValues: names.map { ($0, Int64(0)) })
        guard total > 0, !names.isEmpty else { return shares }
        var left = total
        for name in names where left > 0 {
            let minimum = min(max(0, bounds[name]?.minimum ?? 0), bounds[name]?.maximum ?? .max, left)
            shares[name] = minimum
            left -= minimum
        }
        var open = names.filter { name in bounds[name]?.maximum.map { shares[name, default: 0] < $0 } ?? true }
        while left > 0, !open.isEmpty {
            let portions = weighted(left, among: open, weights: weights)
            var excess: Int64 = 0
            var stillOpen: [String] = []
            for name in open {
                var share = shares[name, default: 0] + portions[name, default: 0]
                if let maximum = bounds[name]?.maximum, share >= maximum {
                    excess += share - maximum
                    share = maximum
                } else {
                    stillOpen.append(name)
                }
                shares[name] = share
            }
            left = excess
            open = stillOpen
        }
        return shares
    }

    /// `total` by weight with largest remainders; all-zero weights divide equally.
    private static func weighted(_ total: Int64, among names: [String], weights: [String: Int64]) -> [String: Int64] {
        let weightOf = { (name: String) in max(0, weights[name] ?? 1) }
        var weightSum = names.reduce(Int64(0)) { $0 + weightOf($1) }
        let equal = weightSum == 0
        if equal { weightSum = Int64(names.count) }
        var shares: [String: Int64] = [:]
        var remainders: [(name: String, remainder: Int64)] = []
        var assigned: Int64 = 0
        for name in names {
            let (quotient, remainder) = weightSum.dividingFullWidth(total.multipliedFullWidth(by: equal ? 1 : weightOf(name)))
            shares[name] = quotient
            assigned += quotient
            remainders.append((name, remainder))
        }
        remainders.sort { $0.remainder != $1.remainder ? $0.remainder > $1.remainder : $0.name < $1.name }
        var left = total - assigned
        var index = 0
        while left > 0 {
            shares[remainders[index % remainders.count].name, default: 0] += 1
            left -= 1
            index += 1
        }
        return shares
    }
}
