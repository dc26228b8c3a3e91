/// A per-tensor power-of-two quantizer as the integer engine uses it: `x = (q - z) * 2^e`, `q` on `grid`.
struct SiteQuantizer: Equatable, Sendable {
    var exponent: Int
    var zeroPoint: Int
    var grid: QuantizationGrid

    /// The site's quantizer, or nil unless it has one exact power-of-two scale and an integer zero point.
    init?(_ parameters: QuantizerParameters) {
        guard let e = parameters.exponents, let z = parameters.integerZeroPoints, e.count == 1 else { return nil }
        exponent = e[0]
        zeroPoint = z[0]
        grid = parameters.grid
    }

    /// The codes a real-valued clamp `[lo, hi]` allows: `[z + round(lo / s), z + round(hi / s)]` intersected
    /// with the grid. Rounding is monotone, so clamping codes to this range equals clamping the real value
    /// and then quantizing (exactly, for any input).
    func codeRange(lo: Float, hi: Float) -> ClosedRange<Int64> {
        func code(_ bound: Float) -> Int64 {
            let scaled = (Double(bound) * PowerOfTwo.double(-exponent)).rounded(.toNearestOrEven) + Double(zeroPoint)
            return Int64(Swift.min(Swift.max(scaled, Double(grid.qmin)), Double(grid.qmax)))
        }
        let l = code(lo), h = code(hi)
        return l...Swift.max(l, h)
    }

    /// The whole grid.
    var fullRange: ClosedRange<Int64> { Int64(grid.qmin)...Int64(grid.qmax) }
}

extension PowerOfTwo {
    /// `2^e` as a Double (exact for the exponents a model holds).
    static func double(_ e: Int) -> Double { Double(sign: .plus, exponent: e, significand: 1) }
}

/// Codes of a site-quantized tensor: `x = (q - z) * 2^e`, row-major in `shape`.
struct CodeTensor: Sendable {
    var shape: [Int]
    var codes: [Int32]
    var quantizer: SiteQuantizer
}

/// Integer values with an exponent per channel: `x = v * 2^exponents[c]`, where element `i` belongs to
/// channel `(i / inner) % exponents.count` (the layout of the `[N, C, ...]` tensor that created it; a
/// reshape keeps it because it does not move elements). One exponent stands for the whole tensor.
struct AccumulatorTensor: Sendable {
    var shape: [Int]
    var values: [Int64]
    var exponents: [Int]
    var inner: Int
    /// What the values still have to be divided by: 1, except for a global average pool that produces the
    /// logits, whose division by the plane size happens when they are turned into Float.
    var divisor: Int64 = 1

    /// The exponent of element `i`.
    @inline(__always) func exponent(at i: Int) -> Int { exponents[(i / inner) % exponents.count] }
}

/// A value flowing through the engine: codes on a site's grid, or a wide accumulator.
enum IntegerValue: Sendable {
    case codes(CodeTensor)
    case accumulator(AccumulatorTensor)

    var shape: [Int] {
        switch self {
        case .codes(let t): return t.shape
        case .accumulator(let t): return t.shape
        }
    }

    /// The same elements under another shape.
    func reshaped(_ shape: [Int]) -> IntegerValue {
        switch self {
        case .codes(var t): t.shape = shape; return .codes(t)
        case .accumulator(var t): t.shape = shape; return .accumulator(t)
        }
    }
}

/// How a value that is not yet on a grid leaves an operator: requantized onto a site (with the clamp of
/// the Relu/Clip nodes folded into it), or kept as a wide accumulator.
struct OutputSite: Sendable {
    /// The tensor the codes are stored under (the site; the last of the fused Relu/Clip chain).
    var tensor: String
    var quantizer: SiteQuantizer
    /// Allowed codes: the grid, narrowed by the fused Relu (`>= z`) or Clip(a, b).
    var range: ClosedRange<Int64>

    /// `clamp(round_half_even(v * 2^(e_v - e_y)) + z_y, lo, hi)`.
    @inline(__always) func code(_ v: Int64, exponent: Int) -> Int32 {
        code(v, shift: quantizer.exponent - exponent)
    }

    /// The same with the shift `e_y - e_v` precomputed.
    @inline(__always) func code(_ v: Int64, shift: Int) -> Int32 {
        let q = IntegerRounding.shift(v, right: shift) + Int64(quantizer.zeroPoint)
        return Int32(Swift.min(Swift.max(q, range.lowerBound), range.upperBound))
    }
}
