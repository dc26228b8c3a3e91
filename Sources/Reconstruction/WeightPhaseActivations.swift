import Quantization
import TensorKernels

/// The activation quantizers a unit's weight phase applies to the tensors the unit produces, with QDrop's
/// random drop (Wei et al., "QDrop", ICLR 2022): each element takes its fake-quantized value or, with
/// probability `dropProbability`, keeps its FP32 value, drawn afresh every iteration.
///
/// The draw is a hash of (seed, iteration, site, element index), so the backward pass finds the same
/// elements without a stored mask and the result does not depend on the thread count.
public struct WeightPhaseActivations: Sendable {
    /// Quantizers by tensor name.
    public let quantizers: [String: QuantizerParameters]
    /// Probability that an element keeps its FP32 value (0: every element is quantized).
    public let dropProbability: Float
    private let seed: UInt64
    private let siteKeys: [String: UInt64]

    /// Applies `quantizers`, dropping with `dropProbability` (in [0, 1)); `seed` fixes the draws.
    public init(quantizers: [String: QuantizerParameters], dropProbability: Float, seed: UInt64) {
        precondition(dropProbability >= 0 && dropProbability < 1, "drop probability must be in [0, 1)")
        self.quantizers = quantizers
        self.dropProbability = dropProbability
        self.seed = seed
        siteKeys = Dictionary(uniqueKeysWithValues: quantizers.keys.sorted().enumerated().map { ($1, UInt64($0 + 1)) })
    }

    /// The tensor that replaces `x` (named `name`) at `iteration`, or nil when it has no quantizer.
    public func forward(_ name: String, _ x: Tensor, iteration: Int) -> Tensor? {
        guard let q = quantizers[name] else { return nil }
        var y = x
        fakeQuantize(&y, with: q)
        guard dropProbability > 0 else { return y }
        let draw = DropDraw(key: key(name, iteration), probability: dropProbability)
        x.withUnsafeBufferPointer { xs in
            y.withUnsafeMutableBufferPointer { ys in
                for i in 0..<xs.count where draw.keepsFloat(i) { ys[i] = xs[i] }
            }
        }
        return y
    }

    /// Maps `g`, the gradient w.r.t. the replacement of `x`, to the gradient w.r.t. `x`: straight through on
    /// quantized elements inside the grid, zero on clamped ones, unchanged on dropped ones.
    public func backward(_ name: String, _ x: Tensor, _ g: inout Tensor, iteration: Int) {
        guard let q = quantizers[name] else { return }
        guard dropProbability > 0 else { return fakeQuantizeBackward(x, with: q, gradient: &g) }
        let incoming = g
        fakeQuantizeBackward(x, with: q, gradient: &g)
        let draw = DropDraw(key: key(name, iteration), probability: dropProbability)
        incoming.withUnsafeBufferPointer { gi in
            g.withUnsafeMutableBufferPointer { go in
                for i in 0..<gi.count where draw.keepsFloat(i) { go[i] = gi[i] }
            }
        }
    }

    private func key(_ name: String, _ iteration: Int) -> UInt64 {
        var generator = SeededGenerator(seed: seed ^ (UInt64(iteration) &* 0xA24B_AED4_963E_E407) ^ (siteKeys[name]! &* 0x9FB2_1C65_1E98_DF25))
        return generator.next()
    }
}

/// One iteration's drop decisions for one tensor: element `i` keeps its FP32 value when the SplitMix64
/// finaliser of `key + i` falls below `probability`.
private struct DropDraw {
    let key: UInt64
    let threshold: UInt64

    init(key: UInt64, probability: Float) {
        self.key = key
        threshold = UInt64(Double(probability) * Double(1 << 32))
    }

    @inline(__always)
    func keepsFloat(_ i: Int) -> Bool {
        var z = key &+ UInt64(i) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return (z ^ (z >> 31)) >> 32 < threshold
    }
}
