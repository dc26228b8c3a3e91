#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// ONNX LRN (AlexNet, GoogLeNet from Caffe): each value divided by a power of the sum of squares over
/// nearby channels, `y = x / (bias + alpha / size · Σ x²)^beta`, the sum over channels
/// `c - ⌊(size-1)/2⌋ ... c + ⌈(size-1)/2⌉` of the same position (clipped at the first and last channel).
public struct LocalResponseNormalization: Equatable, Sendable {
    /// Channels in the window.
    public var size: Int
    public var alpha: Float
    public var beta: Float
    public var bias: Float

    /// The normalization with ONNX's attributes.
    public init(size: Int, alpha: Float = 1e-4, beta: Float = 0.75, bias: Float = 1) {
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.bias = bias
    }

    /// Channels before and after `c` in its window.
    private var reach: (before: Int, after: Int) { ((size - 1) / 2, size / 2) }

    /// `d = bias + alpha / size · Σ x²` for every element of an `[N, C, ...]` tensor, in Double.
    private func denominators(_ x: Tensor) -> [Double] {
        let channels = x.shape[1], plane = x.shape[2...].reduce(1, *), batch = x.shape[0]
        var d = [Double](repeating: Double(bias), count: x.count)
        let scale = Double(alpha) / Double(size)
        for n in 0..<batch {
            for c in 0..<channels {
                let lo = Swift.max(0, c - reach.before), hi = Swift.min(channels - 1, c + reach.after)
                let out = (n * channels + c) * plane
                for k in lo...hi {
                    let source = (n * channels + k) * plane
                    for p in 0..<plane { let v = Double(x.data[source + p]); d[out + p] += scale * v * v }
                }
            }
        }
        return d
    }

    /// The normalized tensor (input `[N, C, ...]`).
    public func forward(_ x: Tensor) -> Tensor {
        precondition(x.rank >= 2, "LRN needs [N, C, ...], got \(x.shape)")
        let d = denominators(x)
        return Tensor(shape: x.shape, data: x.data.indices.map { Float(Double(x.data[$0]) * pow(d[$0], -Double(beta))) })
    }

    /// `∂L/∂x_j = g_j d_j^(-β) − (2αβ / size) x_j Σ_{c whose window holds j} g_c x_c d_c^(-β-1)`.
    public func backward(_ x: Tensor, outputGradient g: Tensor) -> Tensor {
        let d = denominators(x)
        let channels = x.shape[1], plane = x.shape[2...].reduce(1, *), batch = x.shape[0]
        let b = Double(beta), factor = 2 * Double(alpha) * b / Double(size)
        let weighted = x.data.indices.map { Double(g.data[$0]) * Double(x.data[$0]) * pow(d[$0], -b - 1) }
        var result = [Float](repeating: 0, count: x.count)
        for n in 0..<batch {
            for j in 0..<channels {
                // Channel j is in the window of channels j - after ... j + before.
                let lo = Swift.max(0, j - reach.after), hi = Swift.min(channels - 1, j + reach.before)
                let at = (n * channels + j) * plane
                for p in 0..<plane {
                    var sum = 0.0
                    for c in lo...hi { sum += weighted[(n * channels + c) * plane + p] }
                    result[at + p] = Float(Double(g.data[at + p]) * pow(d[at + p], -b) - factor * Double(x.data[at + p]) * sum)
                }
            }
        }
        return Tensor(shape: x.shape, data: result)
    }
}
