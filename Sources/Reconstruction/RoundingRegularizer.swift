import Foundation

/// The annealed regulariser that pushes soft rounding variables to 0 or 1:
/// `weight * sum(1 - |2h - 1|^beta)`, off during warm-up, with beta falling linearly from `startBeta` to
/// `endBeta` between the warm-up fraction and the end (AdaRound; BRECQ's schedule: lambda 0.01, warm-up
/// 20%, beta 20 -> 2).
public struct RoundingRegularizer: Equatable, Codable, Sendable {
    /// The regulariser's weight (lambda; 10 x lambda for RAPQ's exponent variables).
    public var weight: Float
    /// Total iterations of the schedule.
    public var iterations: Int
    /// Fraction of iterations before the regulariser turns on.
    public var warmup: Float
    /// Beta when the regulariser turns on.
    public var startBeta: Float
    /// Beta at the last iteration.
    public var endBeta: Float

    /// A schedule; defaults are the method's.
    public init(weight: Float = 0.01, iterations: Int, warmup: Float = 0.2, startBeta: Float = 20, endBeta: Float = 2) {
        self.weight = weight
        self.iterations = iterations
        self.warmup = warmup
        self.startBeta = startBeta
        self.endBeta = endBeta
    }

    /// Whether iteration `t` (0-based) is past the warm-up.
    public func isActive(at t: Int) -> Bool { Float(t) >= warmup * Float(iterations) }

    /// Beta at iteration `t`: `startBeta` until the warm-up ends, then linear to `endBeta` at the last iteration.
    public func beta(at t: Int) -> Float {
        let start = warmup * Float(iterations)
        guard Float(t) > start, iterations > 0 else { return startBeta }
        let progress = Swift.min(1, (Float(t) - start) / (Float(iterations) - start))
        return endBeta + (startBeta - endBeta) * (1 - progress)
    }

    /// The regulariser's value for soft values `h` at iteration `t` (0 during warm-up).
    public func value(_ h: [Float], at t: Int) -> Double {
        guard isActive(at: t) else { return 0 }
        let b = beta(at: t)
        return Double(weight) * h.reduce(0.0) { $0 + Double(1 - powf(abs(2 * $1 - 1), b)) }
    }

    /// `d value / d h` for one soft value at iteration `t`.
    @inlinable
    public func gradient(_ h: Float, beta b: Float) -> Float {
        let u = 2 * h - 1
        let m = abs(u)
        guard m > 0 else { return 0 }
        return -weight * b * powf(m, b - 1) * (u > 0 ? 2 : -2)
    }

    /// `gradient(h, beta:)` and the per-value term `1 - |2h - 1|^beta` of `value` (without `weight`), sharing
    /// one power: `|2h - 1|^beta = |2h - 1|^(beta - 1) * |2h - 1|`.
    @inlinable
    public func gradientAndValue(_ h: Float, beta b: Float) -> (gradient: Float, value: Float) {
        let u = 2 * h - 1
        let m = abs(u)
        guard m > 0 else { return (0, 1) }
        let power = powf(m, b - 1)
        return (-weight * b * power * (u > 0 ? 2 : -2), 1 - power * m)
    }
}
