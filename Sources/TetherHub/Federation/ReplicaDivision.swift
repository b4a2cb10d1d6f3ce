/// Dividing a replica count across clusters: exact and deterministic.
///
/// Each cluster gets `total * weight / sum(weights)` rounded down; the replicas left over go
/// one each to the largest remainders, ties broken by cluster name. The counts always sum to
/// the total: 1000 over three equal clusters is 334/333/333.
public enum ReplicaDivision {
    public static func divide(_ total: Int64, among clusters: [String], weights: [String: Int64] = [:]) -> [String: Int64] {
        let names = clusters.sorted()
        guard total > 0, !names.isEmpty else { return Dictionary(uniqueKeysWithValues: names.map { ($0, 0) }) }
        let weightOf = { (name: String) in max(0, weights[name] ?? 1) }
        var weightSum = names.reduce(Int64(0)) { $0 + weightOf($1) }
        // All weights zero: divide equally rather than give nothing to anyone.
        let equal = weightSum == 0
        if equal { weightSum = Int64(names.count) }
        var shares: [String: Int64] = [:]
        var remainders: [(name: String, remainder: Int64)] = []
        var assigned: Int64 = 0
        for name in names {
            let weight = equal ? 1 : weightOf(name)
            let product = total.multipliedFullWidth(by: weight)
            let (quotient, remainder) = weightSum.dividingFullWidth(product)
            shares[name] = quotient
            assigned += quotient
            remainders.append((name, remainder))
        }
        remainders.sort { $0.remainder != $1.remainder ? $0.remainder > $1.remainder : $0.name < $1.name }
        var left = total - assigned
        var index = 0
        while left > 0, !remainders.isEmpty {
            shares[remainders[index % remainders.count].name, default: 0] += 1
            left -= 1
            index += 1
        }
        return shares
    }
}
