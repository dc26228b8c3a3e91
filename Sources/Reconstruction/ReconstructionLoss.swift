import Foundation
import TensorKernels

/// The reconstruction loss `L_rec = mean over batch and positions of sum over channels |y_hat - y|^p`
/// (BRECQ's `lp_loss` with reduction "all but channel"), and its gradient.
public enum ReconstructionLoss {
    /// The loss and `dL/dy_hat` for outputs `[N, C, ...]`.
    ///
    /// One pass over both tensors, in parallel chunks whose boundaries depend only on the element count;
    /// each chunk sums its terms in double precision and the chunk sums are added in chunk order, so the
    /// loss has the same bits on any number of threads. The gradient is element-wise and exact as before.
    public static func lp(_ output: Tensor, target: Tensor, p: Float) -> (loss: Double, gradient: Tensor) {
        precondition(output.shape == target.shape)
        let positions = output.shape.count > 2 ? Array(output.shape[2...]).shapeProduct : 1
        let denominator = Float(output.shape[0] * positions)
        let n = output.count
        let chunks = Swift.max(1, Swift.min(64, n / chunkLength))
        var sums = [Double](repeating: 0, count: chunks)
        let gradient = [Float](unsafeUninitializedCapacity: n) { g, initialized in
            output.withUnsafeBufferPointer { y in
                target.withUnsafeBufferPointer { t in
                    sums.withUnsafeMutableBufferPointer { sums in
                        let (Y, T, G, S) = (y.baseAddress, t.baseAddress, g.baseAddress, sums.baseAddress!)
                        Parallel.forEach(chunks) { c in
                            let lower = n * c / chunks, upper = n * (c + 1) / chunks
                            guard lower < upper, let Y, let T, let G else { return }
                            S[c] = p == 2 ? squaredTerms(Y, T, G, lower..<upper, denominator)
                                          : powerTerms(Y, T, G, lower..<upper, p, denominator)
                        }
                    }
                }
            }
            initialized = n
        }
        return (sums.reduce(0, +) / Double(denominator), Tensor(shape: output.shape, data: gradient))
    }

    /// Elements per chunk of `lp` (at least): large enough that a chunk outweighs handing it to a thread.
    private static let chunkLength = 1 << 15

    /// `sum (y - t)^2` over `range` in double precision; writes `2 (y - t) / denominator` to `g`.
    @inline(__always)
    private static func squaredTerms(_ y: UnsafePointer<Float>, _ t: UnsafePointer<Float>, _ g: UnsafeMutablePointer<Float>,
                                     _ range: Range<Int>, _ denominator: Float) -> Double {
        var total = 0.0
        for i in range {
            let d = y[i] - t[i]
            total += Double(d * d)
            g[i] = 2 * d / denominator
        }
        return total
    }

    /// `sum |y - t|^p` over `range` in double precision; writes `p |y - t|^(p-1) sign(y - t) / denominator` to `g`.
    @inline(__always)
    private static func powerTerms(_ y: UnsafePointer<Float>, _ t: UnsafePointer<Float>, _ g: UnsafeMutablePointer<Float>,
                                   _ range: Range<Int>, _ p: Float, _ denominator: Float) -> Double {
        var total = 0.0
        for i in range {
            let d = y[i] - t[i], m = abs(d)
            let mp = powf(m, p)
            total += Double(mp)
            g[i] = m > 0 ? p * mp / m * (d > 0 ? 1 : -1) / denominator : 0
        }
        return total
    }

    /// RAPQ's BN-derived exponent: `round_to_one_decimal(1 + c * sigmoid((sum_j g_j - 1) / C))` for a unit
    /// whose output BN had gammas `g_1..g_C`; 2 when there was no BN.
    public static func exponent(gammas: [Float]?, c: Float) -> Float {
        guard let gammas, !gammas.isEmpty else { return 2 }
        let u = (gammas.reduce(0, +) - 1) / Float(gammas.count)
        let p = 1 + c / (1 + expf(-u))
        return (p * 10).rounded(.toNearestOrEven) / 10
    }
}
