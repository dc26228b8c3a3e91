import Foundation

/// How a quantizer's float scale becomes the scale a model stores: the exponent policy of a method.
public enum ScalePolicy: String, Codable, Sendable, CaseIterable {
    /// Keep the float scale of the range search (`rtn`, `brecq`: not power-of-two).
    case float
    /// `e = round(log2 s)`: the traditional rounding of the float scale (`naive-pot`).
    case nearestPowerOfTwo
    /// The exponent among `floor(log2 s) - 1 ... ceil(log2 s) + 1` with the least L2.4 error (`pot-mse`).
    case bestPowerOfTwo
}

/// The range search of METHOD §3 and its conversion to power-of-two scales.
public enum ScaleSearch {
    /// Number of shrink steps of the observed range tried by the search.
    public static let steps = 80
    /// The error exponent of the search score `mean(|x - x_hat|^2.4)`.
    public static let power: Float = 2.4

    /// The float scale and zero point minimising the L2.4 error over 80 shrinkings of `[min, max]`
    /// (with the range widened to include 0). On a signed grid the zero point is 0 and the scale
    /// covers the larger magnitude. The first minimum wins. An all-zero input gives scale 1, zero point 0.
    public static func searchFloat(_ values: UnsafeBufferPointer<Float>, grid: QuantizationGrid) -> (scale: Float, zeroPoint: Float) {
        var lo: Float = 0, hi: Float = 0
        for v in values { lo = Swift.min(lo, v); hi = Swift.max(hi, v) }
        guard hi > lo else { return (1, 0) }
        var best = (scale: Float(1), zeroPoint: Float(0)), bestError = Double.infinity
        for i in 0..<steps {
            let shrink = 1 - 0.01 * Float(i)
            let (mn, mx) = (lo * shrink, hi * shrink)
            let candidate: (Float, Float)
            if grid.signed {
                candidate = (Swift.max(abs(mn), mx) / Float(grid.qmax), 0)
            } else {
                let s = (mx - mn) / Float(grid.levels)
                let z = Swift.min(Swift.max((-mn / s).rounded(.toNearestOrEven), Float(grid.qmin)), Float(grid.qmax))
                candidate = (s, z)
            }
            guard candidate.0 > 0, candidate.0.isFinite else { continue }
            let err = UniformQuantization.error(values, scale: candidate.0, zeroPoint: candidate.1, grid: grid, power: power)
            if err < bestError { bestError = err; best = candidate }
        }
        return best
    }

    /// The zero point that keeps the float grid's origin when the scale changes from `s0` to `s`:
    /// `clamp(round(z0 * s0 / s), qmin, qmax)`.
    public static func rescaledZeroPoint(_ z0: Float, from s0: Float, to s: Float, grid: QuantizationGrid) -> Float {
        Swift.min(Swift.max((z0 * s0 / s).rounded(.toNearestOrEven), Float(grid.qmin)), Float(grid.qmax))
    }

    /// The stored scale and zero point for `values` under `policy`, starting from the float search result.
    public static func search(_ values: UnsafeBufferPointer<Float>, grid: QuantizationGrid, policy: ScalePolicy) -> (scale: Float, zeroPoint: Float) {
        let (s0, z0) = searchFloat(values, grid: grid)
        switch policy {
        case .float:
            return (s0, z0)
        case .nearestPowerOfTwo:
            let s = PowerOfTwo.value(Int(log2(Double(s0)).rounded(.toNearestOrEven)))
            return (s, rescaledZeroPoint(z0, from: s0, to: s, grid: grid))
        case .bestPowerOfTwo:
            let l = log2(Double(s0))
            var best = (scale: Float(0), zeroPoint: Float(0)), bestError = Double.infinity
            for e in (Int(l.rounded(.down)) - 1)...(Int(l.rounded(.up)) + 1) {
                let s = PowerOfTwo.value(e)
                let z = rescaledZeroPoint(z0, from: s0, to: s, grid: grid)
                let err = UniformQuantization.error(values, scale: s, zeroPoint: z, grid: grid, power: power)
                if err < bestError { bestError = err; best = (s, z) }
            }
            return best
        }
    }

    /// Per-channel search over the rows of a `[channels, per]` weight buffer.
    public static func searchPerChannel(_ weights: [Float], channels: Int, grid: QuantizationGrid, policy: ScalePolicy) -> QuantizerParameters {
        let per = weights.count / channels
        var scales = [Float](repeating: 1, count: channels), zeros = [Float](repeating: 0, count: channels)
        weights.withUnsafeBufferPointer { w in
            for c in 0..<channels {
                let r = search(UnsafeBufferPointer(rebasing: w[c * per..<(c + 1) * per]), grid: grid, policy: policy)
                scales[c] = r.scale
                zeros[c] = r.zeroPoint
            }
        }
        return QuantizerParameters(grid: grid, scales: scales, zeroPoints: zeros)
    }
}
