import Foundation
import TensorKernels

/// The reconstruction loss `L_rec = mean over batch and positions of sum over channels |y_hat - y|^p`
/// (BRECQ's `lp_loss` with reduction "all but channel"), and its gradient.
public enum ReconstructionLoss {
    /// The loss and `dL/dy_hat` for outputs `[N, C, ...]`.
    public static func lp(_ output: Tensor, target: Tensor, p: Float) -> (loss: Double, gradient: Tensor) {
        precondition(output.shape == target.shape)
        let positions = output.shape.count > 2 ? Array(output.shape[2...]).shapeProduct : 1
        let denominator = Float(output.shape[0] * positions)
        var gradient = Tensor(shape: output.shape)
        var total = 0.0
        output.withUnsafeBufferPointer { y in
            target.withUnsafeBufferPointer { t in
                gradient.withUnsafeMutableBufferPointer { g in
                    for i in 0..<y.count {
                        let d = y[i] - t[i], m = abs(d)
                        if p == 2 {
                            total += Double(d * d)
                            g[i] = 2 * d / denominator
                        } else {
                            let mp = powf(m, p)
                            total += Double(mp)
                            g[i] = m > 0 ? p * mp / m * (d > 0 ? 1 : -1) / denominator : 0
                        }
                    }
                }
            }
        }
        return (total / Double(denominator), gradient)
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
