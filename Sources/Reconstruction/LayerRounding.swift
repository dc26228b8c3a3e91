import Foundation
import Quantization

/// What happens to a channel's learned exponent when its learning phase ends.
public enum ExponentHardening: String, Codable, Sendable {
    /// This project: `e = floor(log2 s0) + [h(v) >= 0.5]`, zero point rounded to an integer (scales are then exact powers of two).
    case hard
    /// Like `hard`, but each channel takes whichever of the floor and ceiling exponents (with its rounded zero
    /// point) has the smaller L2.4 error on the channel's current soft weights (`--exponent-hardening fit`).
    case fitted
    /// Like `hard`, but each channel takes whichever of the floor and ceiling exponents changes the layer's
    /// output less: the squared error of the layer (without bias or activation) applied to `Q(w_soft) - W` on
    /// the inputs it sees in the unit (`--exponent-hardening output`). Unlike a weight-space fit, this knows
    /// which weights meet large inputs.
    case output
    /// The authors' release: `h(v)` is frozen at its fractional value (scales are not powers of two). The zero
    /// point `z0 * s0 / s` stays fractional while the rounding is learned; `hardened` stores it rounded.
    case frozenFractional
}

/// The learnable quantization of one layer's weights during reconstruction: AdaRound variables per
/// weight and, for RAPQ, one exponent variable per output channel (METHOD §4, §5.1).
///
/// Soft weight: `w = s * (clamp(floor(W / s) + h(a) + z, qmin, qmax) - z)`. With a learned exponent,
/// `s = 2^(floor(log2 s0) + h(v))` and `z = z0 * s0 / s` until the exponent is hardened.
public struct LayerRounding: Codable, Sendable {
    /// The layer's node name.
    public let node: String
    /// Folded FP32 weights, output channel first.
    public let weights: [Float]
    /// Output channels.
    public let channels: Int
    /// The grid.
    public let grid: QuantizationGrid
    /// Rounding variables, one per weight.
    public private(set) var rounding: [Float]
    /// Exponent variables, one per channel, while the exponent is being learned (nil otherwise).
    public private(set) var exponentVariables: [Float]?
    /// `floor(log2 s0)` per channel (learned exponents only).
    private let exponentFloor: [Int]
    /// The initial float scale and zero point per channel (learned exponents only).
    private let initialScales: [Float], initialZeroPoints: [Float]
    /// The current scale and zero point per channel (exact once fixed or hardened).
    public private(set) var scales: [Float], zeroPoints: [Float]
    private var roundingOptimizer: Adam
    private var exponentOptimizer: Adam?

    /// Rounding state for `layer`'s float `weights`, starting from the layer's quantizer. With
    /// `learnExponent`, the layer's (float) scales and zero points are the start `s0`, `z0` of the exponent.
    public init(layer: QuantizedLayer, weights: [Float], learnExponent: Bool, learningRate: Float = 1e-3,
                exponentLearningRate: Float = 1e-3) {
        let initialScales: [Float]? = layer.weight.scales, initialZeroPoints: [Float]? = layer.weight.zeroPoints
        node = layer.node
        self.weights = weights
        channels = layer.channels
        grid = layer.weight.grid
        if learnExponent, let s0 = initialScales, let z0 = initialZeroPoints {
            self.initialScales = s0
            self.initialZeroPoints = z0
            exponentFloor = s0.map { Int(log2(Double($0)).rounded(.down)) }
            exponentVariables = zip(s0, exponentFloor).map { s, e in
                RectifiedSigmoid.inverse(Float(log2(Double(s)) - Double(e)))
            }
            scales = s0
            zeroPoints = z0
            exponentOptimizer = Adam(count: channels, learningRate: exponentLearningRate)
        } else {
            self.initialScales = []
            self.initialZeroPoints = []
            exponentFloor = []
            exponentVariables = nil
            scales = layer.weight.scales
            zeroPoints = layer.weight.zeroPoints
        }
        let per = weights.count / channels
        var a = [Float](repeating: 0, count: weights.count)
        for c in 0..<channels {
            for j in c * per..<(c + 1) * per {
                let x = weights[j] / scales[c]
                a[j] = RectifiedSigmoid.inverse(x - x.rounded(.down))
            }
        }
        rounding = a
        roundingOptimizer = Adam(count: a.count, learningRate: learningRate)
    }

    /// The soft (differentiable) weights at the current variables.
    public func softWeights() -> [Float] {
        let per = weights.count / channels
        let (lo, hi) = (Float(grid.qmin), Float(grid.qmax))
        return [Float](unsafeUninitializedCapacity: weights.count) { w, initialized in
            weights.withUnsafeBufferPointer { weights in
                rounding.withUnsafeBufferPointer { rounding in
                    for c in 0..<channels {
                        let s = scales[c], z = zeroPoints[c]
                        for j in c * per..<(c + 1) * per {
                            let q = (weights[j] / s).rounded(.down) + RectifiedSigmoid.value(rounding[j]) + z
                            w[j] = (Swift.min(Swift.max(q, lo), hi) - z) * s
                        }
                    }
                }
            }
            initialized = weights.count
        }
    }

    /// The gradients of the loss w.r.t. the rounding variables (one per weight) and the exponent variables (one
    /// per channel; empty without a learned exponent), from `dL/dw` (the reconstruction loss's gradient w.r.t.
    /// the soft weights) plus the regularisers at iteration `t`: the rounding regulariser when past its warm-up,
    /// the exponent regulariser whenever `exponentSchedule` is given (the release applies it from the first
    /// iteration). `floor(W / s)` is held constant (its derivative is zero almost everywhere).
    public func gradients(weightGradient g: [Float], iteration t: Int, rounding schedule: RoundingRegularizer,
                          exponent exponentSchedule: RoundingRegularizer?) -> (rounding: [Float], exponent: [Float]) {
        let r = evaluate(weightGradient: g, iteration: t, rounding: schedule, exponent: exponentSchedule)
        return (r.rounding, r.exponent)
    }

    /// The gradients of `gradients(...)` and the regularisers' values (rounding, exponent).
    ///
    /// One pass over the weights: the sigmoid of each rounding variable is evaluated once for `h` and `dh/da`,
    /// and `|2h - 1|^(beta - 1)` once for the regulariser's gradient and (times `|2h - 1|`) its value.
    private func evaluate(weightGradient g: [Float], iteration t: Int, rounding schedule: RoundingRegularizer,
                          exponent exponentSchedule: RoundingRegularizer?)
        -> (rounding: [Float], exponent: [Float], roundingValue: Double, exponentValue: Double) {
        precondition(g.count == weights.count, "weight gradient has \(g.count) values for \(weights.count) weights")
        let per = weights.count / channels
        let (lo, hi) = (Float(grid.qmin), Float(grid.qmax))
        let active = schedule.isActive(at: t), beta = schedule.beta(at: t)
        var gradV = [Float](repeating: 0, count: exponentVariables == nil ? 0 : channels)
        var roundingValue = 0.0
        let gradA = [Float](unsafeUninitializedCapacity: weights.count) { gradA, initialized in
            weights.withUnsafeBufferPointer { weights in
                rounding.withUnsafeBufferPointer { rounding in
                    g.withUnsafeBufferPointer { g in
                        for c in 0..<channels {
                            let s = scales[c], z = zeroPoints[c]
                            var dLds: Float = 0
                            for j in c * per..<(c + 1) * per {
                                let (h, dh) = RectifiedSigmoid.valueAndDerivative(rounding[j])
                                let q = (weights[j] / s).rounded(.down) + h + z
                                let inside = q > lo && q < hi
                                let qc = Swift.min(Swift.max(q, lo), hi)
                                var ga: Float = inside ? g[j] * s * dh : 0
                                // dw/ds with floor(W/s) held constant and z = z0 * s0 / s: qc - [inside] * z.
                                dLds += g[j] * (qc - (inside ? z : 0))
                                if active {
                                    let r = schedule.gradientAndValue(h, beta: beta)
                                    ga += r.gradient * dh
                                    roundingValue += Double(schedule.weight) * Double(r.value)
                                }
                                gradA[j] = ga
                            }
                            if let v = exponentVariables {
                                gradV[c] = dLds * s * Float(M_LN2) * RectifiedSigmoid.derivative(v[c])
                            }
                        }
                    }
                }
            }
            initialized = weights.count
        }
        var exponentValue = 0.0
        if let v = exponentVariables, let exponentSchedule {
            // The release uses the rounding schedule's beta for the exponent regulariser.
            let b = schedule.beta(at: t)
            for c in 0..<channels {
                let (h, dh) = RectifiedSigmoid.valueAndDerivative(v[c])
                let r = exponentSchedule.gradientAndValue(h, beta: b)
                gradV[c] += r.gradient * dh
                exponentValue += Double(exponentSchedule.weight) * Double(r.value)
            }
        }
        return (gradA, gradV, roundingValue, exponentValue)
    }

    /// One Adam step from `dL/dw` (the reconstruction loss's gradient w.r.t. the soft weights) plus the
    /// regularisers at iteration `t` (see `gradients`). The exponent variables move only while
    /// `exponentSchedule` is given. Returns the regularisers' values (rounding, exponent).
    @discardableResult
    public mutating func step(weightGradient g: [Float], iteration t: Int, rounding schedule: RoundingRegularizer,
                              exponent exponentSchedule: RoundingRegularizer?) -> (rounding: Double, exponent: Double) {
        let r = evaluate(weightGradient: g, iteration: t, rounding: schedule, exponent: exponentSchedule)
        roundingOptimizer.update(&rounding, gradient: r.rounding)
        if var v = exponentVariables, var optimizer = exponentOptimizer, exponentSchedule != nil {
            optimizer.update(&v, gradient: r.exponent)
            exponentVariables = v
            exponentOptimizer = optimizer
            updateLearnedScales()
        }
        return (r.roundingValue, r.exponentValue)
    }

    /// `s = 2^(floor(log2 s0) + h(v))`, `z = z0 * s0 / s` from the exponent variables.
    private mutating func updateLearnedScales() {
        guard let v = exponentVariables else { return }
        for c in 0..<channels {
            let s = Float(exp2(Double(exponentFloor[c]) + Double(RectifiedSigmoid.value(v[c]))))
            scales[c] = s
            zeroPoints[c] = initialZeroPoints[c] * initialScales[c] / s
        }
    }

    /// Channel `c`'s two power-of-two candidates, floor then ceiling exponent, each with its zero point
    /// `z0 * s0 / s` rounded into the grid (learned exponents only).
    private func candidates(channel c: Int) -> [(scale: Float, zeroPoint: Float)] {
        [exponentFloor[c], exponentFloor[c] + 1].map { e in
            let s = PowerOfTwo.value(e)
            return (s, ScaleSearch.rescaledZeroPoint(initialZeroPoints[c], from: initialScales[c], to: s, grid: grid))
        }
    }

    /// For hardening by output error: per candidate (floor exponent first), how far the current soft weights,
    /// rounded to nearest on that candidate's grid, lie from the FP32 weights (`Q(w_soft) - W`, same layout as
    /// `weights`). Nil without a learned exponent.
    public func candidateWeightErrors() -> [[Float]]? {
        guard exponentVariables != nil else { return nil }
        let soft = softWeights()
        let per = weights.count / channels
        return (0..<2).map { which in
            var errors = [Float](repeating: 0, count: weights.count)
            for c in 0..<channels {
                let (s, z) = candidates(channel: c)[which]
                for j in c * per..<(c + 1) * per {
                    errors[j] = UniformQuantization.fakeQuantize(soft[j], scale: s, zeroPoint: z, grid: grid) - weights[j]
                }
            }
            return errors
        }
    }

    /// Ends exponent learning: `.hard` and `.fitted` snap each channel to the floor or ceiling exponent and an
    /// integer zero point in the grid; `.frozenFractional` keeps the current fractional exponent and float zero point.
    /// `.output` takes the choice from `ceiling` (one flag per channel, true for the ceiling exponent), which the
    /// caller computes from the layer's outputs (`UnitWeightReconstruction.freezeExponents`).
    ///
    /// Hardening moves the grid (`s` and `z` change), so the rounding variables are carried over to keep each
    /// soft weight where it was: `h_new = clamp(w_soft / s_new - floor(W / s_new), 0, 1)`. Without this the
    /// learned roundings would refer to the old grid and the weights would jump at the freeze.
    public mutating func freezeExponents(_ hardening: ExponentHardening, ceiling: [Bool]? = nil) {
        guard let v = exponentVariables else { return }
        precondition(hardening != .output || ceiling?.count == channels, "output hardening needs one choice per channel")
        if hardening != .frozenFractional {
            let soft = softWeights()
            let per = weights.count / channels
            for c in 0..<channels {
                let candidates = candidates(channel: c)
                let chosen: (scale: Float, zeroPoint: Float)
                switch hardening {
                case .fitted:
                    chosen = soft[c * per..<(c + 1) * per].withUnsafeBufferPointer {
                        ScaleSearch.lessError(candidates[0], candidates[1], on: $0, grid: grid)
                    }
                case .output:
                    chosen = candidates[ceiling![c] ? 1 : 0]
                case .hard, .frozenFractional:
                    chosen = candidates[RectifiedSigmoid.value(v[c]) >= 0.5 ? 1 : 0]
                }
                let s = chosen.scale
                scales[c] = s
                zeroPoints[c] = chosen.zeroPoint
                for j in c * per..<(c + 1) * per {
                    let h = Swift.min(Swift.max(soft[j] / s - (weights[j] / s).rounded(.down), 0), 1)
                    rounding[j] = RectifiedSigmoid.inverse(h)
                }
            }
        }
        exponentVariables = nil
        exponentOptimizer = nil
    }

    /// The hard-rounded layer: codes `clamp(floor(W / s) + [a >= 0] + z)` with the current scales.
    ///
    /// Integer codes can only stand for `s * (floor(W / s) + [a >= 0])` (the weight the unit was reconstructed
    /// with, and the release's hard weight) if the zero point is a whole number. A fractional zero point (the
    /// `.frozenFractional` exponent, `z = z0 * s0 / s`) is therefore stored rounded into the grid; otherwise
    /// every weight of the channel would move by `s * (round(z) - z)`, up to half a step.
    public func hardened(from layer: QuantizedLayer) -> QuantizedLayer {
        let per = weights.count / channels
        var codes = [Int32](repeating: 0, count: weights.count)
        let (lo, hi) = (Float(grid.qmin), Float(grid.qmax))
        let integerZeroPoints = zeroPoints.map { Swift.min(Swift.max($0.rounded(.toNearestOrEven), lo), hi) }
        for c in 0..<channels {
            let s = scales[c], z = integerZeroPoints[c]
            for j in c * per..<(c + 1) * per {
                let q = (weights[j] / s).rounded(.down) + (rounding[j] >= 0 ? 1 : 0) + z
                codes[j] = Int32(Swift.min(Swift.max(q, lo), hi))
            }
        }
        var result = layer
        result.weight = QuantizerParameters(grid: grid, scales: scales, zeroPoints: integerZeroPoints)
        result.codes = codes
        return result
    }
}
