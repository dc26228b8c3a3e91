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
    ///
    /// The error is measured in steps, `|x - x_hat| = s * d`, so `|x - x_hat|^p = s^p * d^p`. For values inside
    /// the grid `d` is a rounding residue in [0, 1/2], and `d^p` comes from a table (linear interpolation over
    /// 4096 intervals, relative error below 1e-6 except near d = 0 where the terms vanish); only clipped values
    /// need `powf`. That makes the 80-step search over millions of activations affordable on a CPU.
    public static func error(_ values: UnsafeBufferPointer<Float>, scale s: Float, zeroPoint z: Float,
                             grid: QuantizationGrid, power p: Float = 2.4) -> Double {
        guard !values.isEmpty else { return 0 }
        let lo = Float(grid.qmin), hi = Float(grid.qmax)
        let table = ResidueTable.shared(p)
        var inside = 0.0, clipped = 0.0
        for x in values {
            let v = x / s, r = v.rounded(.toNearestOrEven), q = r + z
            if q >= lo && q <= hi {
                inside += Double(table.value(abs(v - r)))
            } else {
                clipped += Double(powf(abs(v - (Swift.min(Swift.max(q, lo), hi) - z)), p))
            }
        }
        return (inside + clipped) * pow(Double(s), Double(p)) / Double(values.count)
    }
}

/// `d^p` for `d` in [0, 1/2], tabulated with linear interpolation (see `UniformQuantization.error`).
struct ResidueTable: Sendable {
    static let intervals = 4096
    let power: Float
    let entries: [Float]

    init(power: Float) {
        self.power = power
        entries = (0...Self.intervals + 1).map { powf(Float($0) / Float(2 * Self.intervals), power) }
    }

    @inline(__always)
    func value(_ d: Float) -> Float {
        let t = d * Float(2 * Self.intervals)
        let i = Swift.min(Int(t), Self.intervals)
        let f = t - Float(i)
        return entries.withUnsafeBufferPointer { $0[i] + ($0[i + 1] - $0[i]) * f }
    }

    private static let l24 = ResidueTable(power: 2.4), l2 = ResidueTable(power: 2)

    /// The table for power `p` (2.4 and 2 are kept; others are built on demand).
    static func shared(_ p: Float) -> ResidueTable { p == 2.4 ? l24 : (p == 2 ? l2 : ResidueTable(power: p)) }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
