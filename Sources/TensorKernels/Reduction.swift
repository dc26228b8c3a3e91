/// Fixed-order sums used by gradient reductions: the same inputs always give the same bits.
enum Reduction {
    /// The sum of `count` floats: eight interleaved single-precision partial sums (so the loop
    /// vectorises), combined in double precision.
    static func sum(_ p: UnsafePointer<Float>, count: Int) -> Double {
        var lanes = SIMD8<Float>()
        var i = 0
        let raw = UnsafeRawPointer(p)
        while i + 8 <= count {
            lanes += raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        var total = 0.0
        for l in 0..<8 { total += Double(lanes[l]) }
        while i < count { total += Double(p[i]); i += 1 }
        return total
    }

    /// `Σ a[i]·b[i]` over `count` contiguous floats, with the same lane structure as `sum`.
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Double {
        var lanes = SIMD8<Float>()
        var i = 0
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        while i + 8 <= count {
            lanes += ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        var total = 0.0
        for l in 0..<8 { total += Double(lanes[l]) }
        while i < count { total += Double(a[i] * b[i]); i += 1 }
        return total
    }
}
