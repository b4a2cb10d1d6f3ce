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
