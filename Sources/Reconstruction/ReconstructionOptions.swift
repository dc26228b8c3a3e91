/// How the reconstruction loss exponent `p` of each unit is chosen.
public enum LossExponentPolicy: Equatable, Codable, Sendable {
    /// RAPQ's BN-derived `p` (METHOD §5.2) with coefficient `c`.
    case batchNorm(c: Float)
    /// The same `p` for every unit.
    case fixed(Float)
}

/// The knobs of block reconstruction (METHOD §4-§5). Methods are configurations of these.
public struct ReconstructionOptions: Equatable, Codable, Sendable {
    /// Weight-phase iterations per unit.
    public var iterations: Int = 1000
    /// Activation-phase iterations per unit (0 turns the activation phase off). Off by default: learning
    /// the power-of-two activation exponents measured worse than keeping the L2.4-best initial exponents
    /// (Fashion-MNIST, 200 iterations: ResNet W2A4 88.3% without vs 87.4% with; MobileNetV2 W4A4 87.5% vs
    /// 68.2%; MobileNetV2 W2A4 68.3% vs 69.6%; docs/BENCHMARKS.md).
    public var activationIterations: Int = 0
    /// Mini-batch size.
    public var batchSize: Int = 32
    /// Adam step size for rounding and exponent variables.
    public var learningRate: Float = 1e-3
    /// Adam step size for RAPQ's exponent variables. METHOD gives 1e-3 for the paper's 20k-80k iterations
    /// with K = 500; with the CPU budgets here (K capped at half the iterations) 1e-2 lets the exponents
    /// move off round-to-nearest (measured: Fashion-MNIST MobileNetV2 W4A4, 200 iterations, weights only:
    /// 51.3% top-1 at 1e-3, 87.5% at 1e-2; docs/BENCHMARKS.md).
    public var exponentLearningRate: Float = 1e-2
    /// Adam step size for activation log2-scales.
    public var activationLearningRate: Float = 1e-2
    /// Rounding regulariser weight (lambda).
    public var roundingWeight: Float = 0.01
    /// Fraction of iterations before the rounding regulariser starts.
    public var warmup: Float = 0.2
    /// Learn a per-channel exponent from the float scale (RAPQ); otherwise the initial scales stay fixed.
    public var learnExponents = false
    /// Iterations K during which exponents are learned before they are frozen (0 freezes them at the start,
    /// which for `.hard` is `round(log2 s0)`); capped at half the iterations so rounding can follow the freeze.
    public var exponentIterations: Int = 500
    /// How learned exponents end.
    public var exponentHardening: ExponentHardening = .hard
    /// The loss exponent policy.
    public var lossExponent: LossExponentPolicy = .fixed(2)
    /// The weight phase sees quantized activations: each unit's inputs come from the partly quantized model
    /// with its activation quantizers applied, and the quantizers inside the unit fake-quantize as the unit's
    /// weights are learned (gradient passed straight through, zero where clamped), so the rounding and the
    /// exponents learn to absorb activation error too (QDrop's setting without its random drop: Wei et al.,
    /// ICLR 2022). Off: BRECQ's weight phase on FP32 activations, as METHOD §4 and the authors' release.
    public var quantizedActivationsInWeightPhase = false
    /// With `quantizedActivationsInWeightPhase`: the probability that an activation element keeps its FP32
    /// value in an iteration (QDrop's drop; 0 quantizes every element).
    public var activationDropProbability: Float = 0
    /// Activation scales are kept powers of two while learned (rounded with a straight-through estimator).
    public var powerOfTwoActivations: Bool = true
    /// Stop a unit's phase early when the reconstruction loss has not improved by 0.1% over this many
    /// iterations after the warm-up (0 = never).
    public var patience: Int = 0
    /// Seed of the mini-batch draws.
    public var seed: UInt64 = 0

    /// Default options.
    public init() {}
}

/// A report of reconstruction progress.
public struct ReconstructionEvent: Sendable {
    /// Which phase: "weights" or "activations".
    public var phase: String
    /// 1-based unit index and unit count.
    public var unit: Int, units: Int
    /// The unit's name.
    public var unitName: String
    /// Iterations done in this unit's phase, and its total.
    public var iteration: Int, iterations: Int
    /// Reconstruction loss, rounding and exponent regularisers (mean over the last report interval).
    public var reconstructionLoss: Double, roundingLoss: Double, exponentLoss: Double
    /// The loss exponent of the unit.
    public var p: Float
    /// Seconds since the run started.
    public var elapsed: Double
}
