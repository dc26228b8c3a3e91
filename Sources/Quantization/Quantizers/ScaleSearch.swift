import Foundation
import TensorKernels

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
        let candidates = (0..<steps).map { i -> (scale: Float, zeroPoint: Float) in
            let shrink = 1 - 0.01 * Float(i)
            let (mn, mx) = (lo * shrink, hi * shrink)
            if grid.signed { return (Swift.max(abs(mn), mx) / Float(grid.qmax), 0) }
            let s = (mx - mn) / Float(grid.levels)
            return (s, Swift.min(Swift.max((-mn / s).rounded(.toNearestOrEven), Float(grid.qmin)), Float(grid.qmax)))
        }
        return best(of: candidates, on: values, grid: grid) ?? (1, 0)
    }

    /// Whichever of two grids has the smaller L2.4 error on `values` (`first` on a tie).
    public static func lessError(_ first: (scale: Float, zeroPoint: Float), _ second: (scale: Float, zeroPoint: Float),
                                 on values: UnsafeBufferPointer<Float>, grid: QuantizationGrid) -> (scale: Float, zeroPoint: Float) {
        best(of: [first, second], on: values, grid: grid) ?? first
    }

    /// The first candidate with the least L2.4 error; candidates are scored concurrently when the data are large.
    static func best(of candidates: [(scale: Float, zeroPoint: Float)], on values: UnsafeBufferPointer<Float>,
                     grid: QuantizationGrid) -> (scale: Float, zeroPoint: Float)? {
        var errors = [Double](repeating: .infinity, count: candidates.count)
        let score = { (i: Int) -> Double in
            let c = candidates[i]
            guard c.scale > 0, c.scale.isFinite else { return .infinity }
            return UniformQuantization.error(values, scale: c.scale, zeroPoint: c.zeroPoint, grid: grid, power: power)
        }
        if values.count >= 1 << 14 {
            errors.withUnsafeMutableBufferPointer { e in Parallel.forEach(candidates.count) { e[$0] = score($0) } }
        } else {
            for i in candidates.indices { errors[i] = score(i) }
        }
        guard let index = errors.indices.min(by: { errors[$0] < errors[$1] || (errors[$0] == errors[$1] && $0 < $1) }),
              errors[index].isFinite else { return nil }
        return candidates[index]
    }

    /// At most `limit` values of `values`, taken at a fixed stride: activation tensors of 64 samples hold
    /// tens of millions of values, and the L2.4 score of a strided sample of 262,144 of them picks the
    /// same step to within the search's 1% resolution.
    public static func strided(_ values: UnsafeBufferPointer<Float>, limit: Int = 1 << 18) -> [Float] {
        let stride = Swift.max(1, (values.count + limit - 1) / limit)
        return Swift.stride(from: 0, to: values.count, by: stride).map { values[$0] }
    }

    /// The zero point that keeps the float grid's origin when the scale changes from `s0` to `s`:
    /// `clamp(round(z0 * s0 / s), qmin, qmax)`; with `even`, the nearest even code instead (`qmax` is odd,
    /// so the largest even one is `qmax - 1`).
    public static func rescaledZeroPoint(_ z0: Float, from s0: Float, to s: Float, grid: QuantizationGrid, even: Bool = false) -> Float {
        let v = z0 * s0 / s
        let z = Swift.min(Swift.max(even ? 2 * (v / 2).rounded(.toNearestOrEven) : v.rounded(.toNearestOrEven), Float(grid.qmin)), Float(grid.qmax))
        return even && z == Float(grid.qmax) && grid.qmax % 2 != 0 ? z - 1 : z
    }

    /// `z` if it is even, otherwise whichever of `z - 1` and `z + 1` (inside the grid) has the smaller L2.4
    /// error on `values` at scale `s`: the zero point of a site that must have an even one
    /// (`ActivationSite.evenZeroPoint`).
    public static func evenZeroPoint(_ values: UnsafeBufferPointer<Float>, scale s: Float, zeroPoint z: Float, grid: QuantizationGrid) -> Float {
        guard z.truncatingRemainder(dividingBy: 2) != 0 else { return z }
        let candidates = [z - 1, z + 1].filter { $0 >= Float(grid.qmin) && $0 <= Float(grid.qmax) }.map { (scale: s, zeroPoint: $0) }
        return best(of: candidates, on: values, grid: grid)?.zeroPoint ?? candidates[0].zeroPoint
    }

    /// The stored scale and zero point for `values` under `policy`, starting from the float search result.
    public static func search(_ values: UnsafeBufferPointer<Float>, grid: QuantizationGrid, policy: ScalePolicy) -> (scale: Float, zeroPoint: Float) {
        let (s0, z0) = searchFloat(values, grid: grid)
        // s0 is positive and finite (searchFloat skips other candidates), so its log2 is a finite Int; the
        // exponent is kept within the normal floats (near 3.4e38 it would round up to 2^128, infinity).
        var nearest: (scale: Float, zeroPoint: Float) {
            let e = Int(log2(Double(s0)).rounded(.toNearestOrEven))
            let s = PowerOfTwo.value(Swift.min(Swift.max(e, -126), 127))
            return (s, rescaledZeroPoint(z0, from: s0, to: s, grid: grid))
        }
        switch policy {
        case .float:
            return (s0, z0)
        case .nearestPowerOfTwo:
            return nearest
        case .bestPowerOfTwo:
            let l = log2(Double(s0))
            let candidates = ((Int(l.rounded(.down)) - 1)...(Int(l.rounded(.up)) + 1)).map { e -> (scale: Float, zeroPoint: Float) in
                let s = PowerOfTwo.value(e)
                return (s, rescaledZeroPoint(z0, from: s0, to: s, grid: grid))
            }
            // Every candidate scores infinite only on values near the float32 limit (3e38): keep the nearest.
            return best(of: candidates, on: values, grid: grid) ?? nearest
        }
    }

    /// Per-channel search over the rows of a `[channels, per]` weight buffer.
    /// A layer without channels (shape inference refuses such models) gets empty parameters.
    public static func searchPerChannel(_ weights: [Float], channels: Int, grid: QuantizationGrid, policy: ScalePolicy) -> QuantizerParameters {
        guard channels > 0 else { return QuantizerParameters(grid: grid, scales: [], zeroPoints: []) }
        let per = weights.count / channels
        var scales = [Float](repeating: 1, count: channels), zeros = [Float](repeating: 0, count: channels)
        weights.withUnsafeBufferPointer { w in
            scales.withUnsafeMutableBufferPointer { scales in
                zeros.withUnsafeMutableBufferPointer { zeros in
                    Parallel.forEach(channels) { c in
                        let r = search(UnsafeBufferPointer(rebasing: w[c * per..<(c + 1) * per]), grid: grid, policy: policy)
                        scales[c] = r.scale
                        zeros[c] = r.zeroPoint
                    }
                }
            }
        }
        return QuantizerParameters(grid: grid, scales: scales, zeroPoints: zeros)
    }
}
