import Foundation

/// AdaRound's rectified sigmoid `h(a) = clamp(sigmoid(a) * (zeta - gamma) + gamma, 0, 1)` with
/// zeta = 1.1 and gamma = -0.1 (Nagel et al., "Up or Down? Adaptive Rounding", ICML 2020).
///
/// Stretching the sigmoid past [0, 1] and clipping lets `h` reach exactly 0 or 1 with a finite `a`,
/// so the regulariser can drive every variable to a hard rounding decision.
public enum RectifiedSigmoid {
    /// Upper stretch.
    public static let zeta: Float = 1.1
    /// Lower stretch.
    public static let gamma: Float = -0.1

    /// `h(a)`.
    @inlinable
    public static func value(_ a: Float) -> Float {
        let s = 1 / (1 + expf(-a))
        return Swift.min(Swift.max(s * (zeta - gamma) + gamma, 0), 1)
    }

    /// `dh/da`: zero where the clamp is active.
    @inlinable
    public static func derivative(_ a: Float) -> Float {
        let s = 1 / (1 + expf(-a))
        let h = s * (zeta - gamma) + gamma
        return h <= 0 || h >= 1 ? 0 : s * (1 - s) * (zeta - gamma)
    }

    /// `h(a)` and `dh/da` from one evaluation of the sigmoid (the same values as `value` and `derivative`).
    @inlinable
    public static func valueAndDerivative(_ a: Float) -> (value: Float, derivative: Float) {
        let s = 1 / (1 + expf(-a))
        let h = s * (zeta - gamma) + gamma
        return (Swift.min(Swift.max(h, 0), 1), h <= 0 || h >= 1 ? 0 : s * (1 - s) * (zeta - gamma))
    }

    /// The `a` with `h(a) = h` for `h` in (0, 1): `-log((zeta - gamma) / (h - gamma) - 1)`.
    @inlinable
    public static func inverse(_ h: Float) -> Float {
        -logf((zeta - gamma) / (h - gamma) - 1)
    }
}
