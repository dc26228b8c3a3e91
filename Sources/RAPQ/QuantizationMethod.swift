import Quantization
import Reconstruction

/// The quantization methods: configurations of one pipeline (scale policies, reconstruction, exponent
/// learning, loss exponent), not separate code paths.
public enum QuantizationMethod: String, CaseIterable, Codable, Sendable {
    /// Float scales, round to nearest: the non-power-of-two reference.
    case rtn
    /// `e = round(log2 s)`: the traditional power-of-two rounding.
    case naivePot = "naive-pot"
    /// The power-of-two exponent with the least L2.4 error per channel/tensor.
    case potMse = "pot-mse"
    /// Float scales + AdaRound block reconstruction (BRECQ): the non-power-of-two accuracy ceiling.
    case brecq
    /// Naive power-of-two scales + the same reconstruction: the paper's "traditional" baseline.
    case naivePotRecon = "naive-pot+recon"
    /// RAPQ: per-channel power-of-two weight exponents (chosen before AdaRound, or learned for K iterations and
    /// hardened), BN-derived loss exponent, power-of-two activations on a network rescaled so that activation
    /// ranges between layers sit on powers of two.
    case rapq
    /// The authors' release, reproduced: exponents never hardened, float activation scales not learned,
    /// float zero points, classifier input at the low bit width, c = 0.1. Not power-of-two.
    case rapqReference = "rapq-reference"

    /// How weight scales are initialised.
    public var weightPolicy: ScalePolicy {
        switch self {
        case .rtn, .brecq, .rapq, .rapqReference: return .float
        case .naivePot, .naivePotRecon: return .nearestPowerOfTwo
        case .potMse: return .bestPowerOfTwo
        }
    }

    /// How activation scales are initialised. RAPQ starts from the exponent with the least L2.4 error
    /// rather than `round(log2 s)`: rounding the float scale down clips (METHOD §8), and on the
    /// Fashion-MNIST MobileNetV2 at W4A4 that start cost more than the activation phase could recover
    /// (docs/BENCHMARKS.md).
    public var activationPolicy: ScalePolicy {
        switch self {
        case .rtn, .brecq, .rapqReference: return .float
        case .naivePot, .naivePotRecon: return .nearestPowerOfTwo
        case .potMse, .rapq: return .bestPowerOfTwo
        }
    }

    /// Whether the FP32 network is first rescaled so activation ranges sit on powers of two
    /// (`ActivationAlignment`; `--align-activations off` turns it off). `rapq` only: `naive-pot+recon` is the
    /// paper's traditional baseline and the float-scale methods have nothing to align.
    public var alignsActivationRanges: Bool { self == .rapq }

    /// Whether the method reconstructs units.
    public var reconstructs: Bool {
        switch self {
        case .rtn, .naivePot, .potMse: return false
        default: return true
        }
    }

    /// Whether every scale the method produces is a power of two.
    public var isPowerOfTwo: Bool {
        switch self {
        case .rtn, .brecq, .rapqReference: return false
        default: return true
        }
    }

    /// Whether the weight phase sees quantized activations unless told (`--weight-phase-activations`).
    /// Measured (docs/BENCHMARKS.md): at 3 activation bits quantized activations win by 0.4-30 points on
    /// the Fashion-MNIST models for rapq, naive-pot+recon and brecq; at 4 bits they lose 10 points on
    /// EfficientNet-Lite0 W4A4 (the one ImageNet model) in every variant tried, while moving the Fashion-MNIST
    /// models by -0.1 to +2.7. So: quantized below 4 bits. `rapq-reference` keeps the release's FP32 activations.
    public func quantizedActivationsByDefault(activationBits: Int) -> Bool {
        switch self {
        case .rapq, .naivePotRecon, .brecq: return activationBits <= 3
        case .rtn, .naivePot, .potMse, .rapqReference: return false
        }
    }

    /// RAPQ's exponent-learning iterations K unless told (`--exp-iters`). `rapq-reference` keeps the release's
    /// K = 500. `rapq` chooses each channel's exponent before its rounding is learned (K = 0): learning the
    /// exponent as a continuous `log2 s` for K iterations first moves every weight of a channel with it (a gain,
    /// not a rounding-versus-clipping trade), and at this project's 1,000 iterations per unit that measured
    /// worse on every model (Fashion-MNIST MobileNetV2 W2A4 85.86% at K = 0 vs 81.28% at K = 500;
    /// docs/BENCHMARKS.md).
    public var defaultExponentIterations: Int {
        switch self {
        case .rapqReference: return 500
        case .rtn, .naivePot, .potMse, .brecq, .naivePotRecon, .rapq: return 0
        }
    }

    /// The reconstruction options this method implies, on top of the user's iteration counts and seed.
    public func reconstructionOptions(_ base: ReconstructionOptions, lossCoefficient: Float?, fixedLossExponent: Float?,
                                      exponentIterations: Int? = nil, exponentHardening: ExponentHardening = .fitted,
                                      quantizedActivations: Bool? = nil, activationBits: Int = 8,
                                      dropProbability: Float = 0) -> ReconstructionOptions {
        var o = base
        o.quantizedActivationsInWeightPhase = quantizedActivations ?? quantizedActivationsByDefault(activationBits: activationBits)
        o.activationDropProbability = dropProbability
        switch self {
        case .rtn, .naivePot, .potMse:
            break
        case .brecq:
            o.learnExponents = false
            o.powerOfTwoActivations = false
            o.lossExponent = .fixed(fixedLossExponent ?? 2)
        case .naivePotRecon:
            o.learnExponents = false
            o.powerOfTwoActivations = true
            o.lossExponent = .fixed(fixedLossExponent ?? 2)
        case .rapq:
            o.learnExponents = true
            o.exponentIterations = exponentIterations ?? defaultExponentIterations
            o.exponentHardening = exponentHardening
            o.powerOfTwoActivations = true
            o.lossExponent = fixedLossExponent.map { .fixed($0) } ?? .batchNorm(c: lossCoefficient ?? 0.9)
        case .rapqReference:
            o.learnExponents = true
            o.exponentIterations = exponentIterations ?? defaultExponentIterations
            o.exponentHardening = .frozenFractional
            o.activationIterations = 0
            o.lossExponent = fixedLossExponent.map { .fixed($0) } ?? .batchNorm(c: lossCoefficient ?? 0.1)
        }
        return o
    }
}
