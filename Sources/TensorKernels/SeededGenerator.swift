/// A small deterministic random generator, SplitMix64 (Steele, Lea and Flood 2014): a 64-bit state advanced
/// by the golden-ratio increment and mixed by two xor-shift-multiply rounds. The same seed gives the same
/// sequence on every machine and thread count.
public struct SeededGenerator: RandomNumberGenerator, Codable, Sendable, Equatable {
    private var state: UInt64

    /// A generator started from `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform double in [0, 1) from the top 53 bits.
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// `count` distinct indices drawn uniformly from `0..<population` (a partial Fisher-Yates shuffle).
    public mutating func sample(_ count: Int, from population: Int) -> [Int] {
        var pool = Array(0..<population)
        let k = Swift.min(count, population)
        for i in 0..<k {
            let j = i + Int(next() % UInt64(population - i))
            pool.swapAt(i, j)
        }
        return Array(pool[0..<k])
    }
}
