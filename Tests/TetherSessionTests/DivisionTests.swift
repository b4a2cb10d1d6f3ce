import Testing

@testable import TetherHub

@Suite("Replica division")
struct ReplicaDivisionTests {
    @Test("the article's figures: 1000 over 5 is 200 each, over 3 is 334/333/333; weights 2:1:1 give 500/250/250")
    func figures() {
        let five = ReplicaDivision.divide(1000, among: ["a", "b", "c", "d", "e"])
        #expect(five.values.allSatisfy { $0 == 200 })
        #expect(ReplicaDivision.divide(1000, among: ["c", "b", "a"]) == ["a": 334, "b": 333, "c": 333])
        #expect(ReplicaDivision.divide(1000, among: ["a", "b", "c"], weights: ["a": 2]) == ["a": 500, "b": 250, "c": 250])
        #expect(ReplicaDivision.divide(0, among: ["a", "b"]) == ["a": 0, "b": 0])
        #expect(ReplicaDivision.divide(5, among: []) == [:])
        #expect(ReplicaDivision.divide(3, among: ["a", "b"], weights: ["a": 0, "b": 0]) == ["a": 2, "b": 1])
    }

    @Test("over random inputs the shares sum to the total, stay within one of the exact weighted share, and do not depend on order")
    func properties() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let count = Int.random(in: 1...12, using: &generator)
            let names = (0..<count).map { "c\($0)" }
            let total = Int64.random(in: 0...100_000, using: &generator)
            var weights: [String: Int64] = [:]
            for name in names { weights[name] = Int64.random(in: 0...9, using: &generator) }
            let shares = ReplicaDivision.divide(total, among: names, weights: weights)
            #expect(shares.values.reduce(0, +) == total)
            #expect(shares.values.allSatisfy { $0 >= 0 })
            let weightSum = weights.values.reduce(0, +)
            if weightSum > 0 {
                for name in names {
                    let exact = Double(total) * Double(weights[name] ?? 0) / Double(weightSum)
                    #expect(abs(Double(shares[name] ?? 0) - exact) < 1.0, "\(name) \(shares) \(weights) \(total)")
                }
            }
            #expect(ReplicaDivision.divide(total, among: names.shuffled(using: &generator), weights: weights) == shares)
        }
    }
}

@Suite("Replica division with bounds")
struct ReplicaDivisionBoundsTests {
    @Test("minimums come first, maximums cap and the excess goes to the others")
    func bounds() {
        let capped = ReplicaDivision.divide(100, among: ["a", "b", "c"], bounds: ["a": .init(maximum: 10)])
        #expect(capped == ["a": 10, "b": 45, "c": 45])
        let floored = ReplicaDivision.divide(10, among: ["a", "b"], weights: ["a": 1, "b": 0], bounds: ["b": .init(minimum: 4)])
        #expect(floored == ["a": 6, "b": 4])
        let scarce = ReplicaDivision.divide(3, among: ["a", "b", "c"], bounds: ["b": .init(minimum: 2), "c": .init(minimum: 2)])
        #expect(scarce.values.reduce(0, +) == 3 && scarce["b"] == 2)
    }

    @Test("over random weights and bounds the sum is the total (or every cap), and every bound holds")
    func properties() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let names = (0..<Int.random(in: 1...8, using: &generator)).map { "c\($0)" }
            let total = Int64.random(in: 0...5000, using: &generator)
            var weights: [String: Int64] = [:]
            var bounds: [String: ReplicaDivision.Bounds] = [:]
            for name in names {
                weights[name] = Int64.random(in: 0...5, using: &generator)
                let minimum = Int64.random(in: 0...50, using: &generator)
                let maximum: Int64? = Bool.random(using: &generator) ? minimum + Int64.random(in: 0...2000, using: &generator) : nil
                bounds[name] = .init(minimum: minimum, maximum: maximum)
            }
            let shares = ReplicaDivision.divide(total, among: names, weights: weights, bounds: bounds)
            let capacity = names.reduce(Int64(0)) { sum, name in bounds[name]?.maximum.map { sum + $0 } ?? .max / 2 }
            #expect(shares.values.reduce(0, +) == min(total, capacity), "\(shares) \(bounds) \(total)")
            for name in names {
                if let maximum = bounds[name]?.maximum { #expect(shares[name]! <= maximum) }
                if shares.values.reduce(0, +) == total, total >= names.reduce(0, { $0 + (bounds[$1]?.minimum ?? 0) }) {
                    #expect(shares[name]! >= bounds[name]!.minimum, "\(name) \(shares) \(bounds) \(total)")
                }
            }
        }
    }
}
