/// The scales and zero points of one quantizer: one entry per output channel for weights, one for an
/// activation tensor.
///
/// Scales and zero points are stored as the values they are, not as exponents, so that `verify` checks
/// what a model really holds: a power-of-two model has every scale equal to `2^e` exactly (significand 1)
/// and every zero point a whole number in the grid's range.
public struct QuantizerParameters: Equatable, Codable, Sendable {
    /// The integer range.
    public var grid: QuantizationGrid
    /// Step size per channel (one value for per-tensor quantizers).
    public var scales: [Float]
    /// Zero point per channel, in code units.
    public var zeroPoints: [Float]

    /// A quantizer from its parts; `scales` and `zeroPoints` must have the same count.
    public init(grid: QuantizationGrid, scales: [Float], zeroPoints: [Float]) {
        precondition(scales.count == zeroPoints.count)
        self.grid = grid
        self.scales = scales
        self.zeroPoints = zeroPoints
    }

    /// A power-of-two quantizer from integer exponents and zero points.
    public init(grid: QuantizationGrid, exponents: [Int], zeroPoints: [Int]) {
        self.init(grid: grid, scales: exponents.map { PowerOfTwo.value($0) }, zeroPoints: zeroPoints.map(Float.init))
    }

    /// The exponent `e` with `scale == 2^e` for each channel, or nil if any scale is not an exact power of two.
    public var exponents: [Int]? {
        let e = scales.map(PowerOfTwo.exactExponent)
        return e.contains(where: { $0 == nil }) ? nil : e.map { $0! }
    }

    /// The zero points as integers, or nil if any is not a whole number inside the grid.
    public var integerZeroPoints: [Int]? {
        guard zeroPoints.allSatisfy({ $0.rounded() == $0 && $0 >= Float(grid.qmin) && $0 <= Float(grid.qmax) }) else { return nil }
        return zeroPoints.map { Int($0) }
    }
}

/// Exact powers of two as Float values.
public enum PowerOfTwo {
    /// `2^e` exactly (e within the normal Float range).
    @inlinable
    public static func value(_ e: Int) -> Float { Float(sign: .plus, exponent: e, significand: 1) }

    /// `e` if `x == 2^e` exactly (positive, normal, significand exactly 1), else nil: a bit-level check, not a tolerance.
    @inlinable
    public static func exactExponent(_ x: Float) -> Int? {
        guard x > 0, x.isNormal, x.significandBitPattern == 0 else { return nil }
        return Int(x.exponent)
    }
}
