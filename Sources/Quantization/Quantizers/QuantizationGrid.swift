/// The integer range a quantizer rounds onto: `bits` wide, signed (`[-2^(b-1), 2^(b-1)-1]`) or
/// unsigned (`[0, 2^b - 1]`).
public struct QuantizationGrid: Equatable, Hashable, Codable, Sendable {
    /// Bit width, 2 to 8 (the range is also valid up to 16 for intermediate use).
    public var bits: Int
    /// Whether codes are two's-complement signed.
    public var signed: Bool

    /// A grid of `bits` bits.
    public init(bits: Int, signed: Bool) {
        precondition((1...16).contains(bits), "bit width \(bits) out of range")
        self.bits = bits
        self.signed = signed
    }

    /// The smallest code.
    public var qmin: Int { signed ? -(1 << (bits - 1)) : 0 }
    /// The largest code.
    public var qmax: Int { signed ? (1 << (bits - 1)) - 1 : (1 << bits) - 1 }
    /// Number of steps between the smallest and largest code (`2^b - 1`).
    public var levels: Int { (1 << bits) - 1 }
}

/// Uniform affine quantization with round-half-to-even:
/// `q = clamp(round(x / s) + z, qmin, qmax)` and `x_hat = (q - z) * s`.
public enum UniformQuantization {
    /// The integer code of `x` for scale `s` and zero point `z` on `grid`.
    @inlinable
    public static func code(_ x: Float, scale s: Float, zeroPoint z: Float, grid: QuantizationGrid) -> Float {
        let q = (x / s).rounded(.toNearestOrEven) + z
        return Swift.min(Swift.max(q, Float(grid.qmin)), Float(grid.qmax))
    }

    /// The quantize-dequantize value of `x`.
    @inlinable
    public static func fakeQuantize(_ x: Float, scale s: Float, zeroPoint z: Float, grid: QuantizationGrid) -> Float {
        (code(x, scale: s, zeroPoint: z, grid: grid) - z) * s
    }

    /// `mean(|x - x_hat|^p)` over `values` for one scale and zero point: the score of the range search.
    public static func error(_ values: UnsafeBufferPointer<Float>, scale s: Float, zeroPoint z: Float,
                             grid: QuantizationGrid, power p: Float = 2.4) -> Double {
        guard !values.isEmpty else { return 0 }
        let lo = Float(grid.qmin), hi = Float(grid.qmax)
        var total: Double = 0
        for x in values {
            let q = Swift.min(Swift.max((x / s).rounded(.toNearestOrEven) + z, lo), hi)
            let e = abs(x - (q - z) * s)
            total += Double(p == 2 ? e * e : powf(e, p))
        }
        return total / Double(values.count)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
