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
        var y = fakeQuantized(x, with: q)
        guard dropProbability > 0 else { return y }
        DropDraw(key: key(name, iteration), probability: dropProbability).restoreKept(from: x, into: &y)
        return y
    }

    /// Maps `g`, the gradient w.r.t. the replacement of `x`, to the gradient w.r.t. `x`: straight through on
    /// quantized elements inside the grid, zero on clamped ones, unchanged on dropped ones.
    public func backward(_ name: String, _ x: Tensor, _ g: inout Tensor, iteration: Int) {
        guard let q = quantizers[name] else { return }
        guard dropProbability > 0 else { return fakeQuantizeBackward(x, with: q, gradient: &g) }
        let incoming = g
        fakeQuantizeBackward(x, with: q, gradient: &g)
        DropDraw(key: key(name, iteration), probability: dropProbability).restoreKept(from: incoming, into: &g)
    }

    private func key(_ name: String, _ iteration: Int) -> UInt64 {
        var generator = SeededGenerator(seed: seed ^ (UInt64(iteration) &* 0xA24B_AED4_963E_E407) ^ (siteKeys[name]! &* 0x9FB2_1C65_1E98_DF25))
        return generator.next()
    }
}

/// One iteration's drop decisions for one tensor. Each run of 8 elements takes the 8 bytes of one
/// SplitMix64 output (of `key` + run index); an element keeps its FP32 value when its byte is below
/// `probability` x 256, so the probability is applied in steps of 1/256.
private struct DropDraw {
    let key: UInt64
    let threshold: UInt64

    init(key: UInt64, probability: Float) {
        self.key = key
        threshold = UInt64((Double(probability) * 256).rounded())
    }

    /// Copies `source[i]` into `target[i]` for every element `i` that keeps its FP32 value.
    func restoreKept(from source: Tensor, into target: inout Tensor) {
        precondition(source.count == target.count, "drop source and target sizes differ")
        let runs = (source.count + 7) / 8
        source.withUnsafeBufferPointer { xs in
            target.withUnsafeMutableBufferPointer { ys in
                guard let x = xs.baseAddress, let y = ys.baseAddress else { return }
                let count = xs.count
                ElementMap.forEachChunk(runs) { first, n in
                    for run in first..<(first + n) {
                        var bits = mix(key &+ UInt64(run))
                        for i in (run * 8)..<Swift.min(run * 8 + 8, count) {
                            // A select rather than a branch: at p = 0.5 a branch mispredicts half the time.
                            let keep: UInt32 = bits & 0xFF < threshold ? ~0 : 0
                            y[i] = Float(bitPattern: (x[i].bitPattern & keep) | (y[i].bitPattern & ~keep))
                            bits >>= 8
                        }
                    }
                }
            }
        }
    }

    @inline(__always)
    private func mix(_ value: UInt64) -> UInt64 {
        var z = value &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
