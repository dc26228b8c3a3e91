#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Point-wise activations and their gradients (ONNX `Relu`, `Clip`, `Sigmoid`, `HardSigmoid`,
/// `HardSwish`, `Erf`, `Gelu`). Backward functions take the forward input (or output, for sigmoid) and the gradient
/// of the result and return the gradient of the input.
public enum Activation {
    /// `max(x, 0)`.
    public static func relu(_ x: Tensor) -> Tensor {
        ElementMap.unary(x) { x, y, n in for i in 0..<n { y[i] = Swift.max(x[i], 0) } }
    }

    /// `g` where `x > 0`, else 0.
    public static func reluBackward(_ x: Tensor, outputGradient: Tensor) -> Tensor {
        ElementMap.binary(x, outputGradient) { x, g, y, n in for i in 0..<n { y[i] = x[i] > 0 ? g[i] : 0 } }
    }

    /// `min(max(x, min), max)` (ReLU6 is `clip(x, 0, 6)`).
    public static func clip(_ x: Tensor, min: Float, max: Float) -> Tensor {
        ElementMap.unary(x) { x, y, n in for i in 0..<n { y[i] = Swift.min(Swift.max(x[i], min), max) } }
    }

    /// `g` where `min < x < max`, else 0 (the gradient of a saturated value is zero).
    public static func clipBackward(_ x: Tensor, min: Float, max: Float, outputGradient: Tensor) -> Tensor {
        ElementMap.binary(x, outputGradient) { x, g, y, n in
            // Eight lanes at a time with a mask: the short-circuit `&&` of the scalar form keeps the
            // compiler from vectorising, which made this the slowest kernel of a ReLU6 unit's backward.
            let lo = SIMD8<Float>(repeating: min), hi = SIMD8<Float>(repeating: max)
            var i = 0
            while i + 8 <= n {
                let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
                let d = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD8<Float>.self)
                let inside = (v .> lo) .& (v .< hi)
                UnsafeMutableRawPointer(y + i).storeBytes(of: SIMD8<Float>.zero.replacing(with: d, where: inside), as: SIMD8<Float>.self)
                i += 8
            }
            while i < n { y[i] = x[i] > min && x[i] < max ? g[i] : 0; i += 1 }
        }
    }

    /// `1 / (1 + e^(−x))`, evaluated as `e^x / (1 + e^x)` for negative `x` so that `e^(−x)` never overflows.
    public static func sigmoid(_ x: Tensor) -> Tensor {
        ElementMap.unary(x) { x, y, n in
            for i in 0..<n {
                let v = x[i]
                if v >= 0 {
                    y[i] = 1 / (1 + exp(-v))
                } else {
                    let e = exp(v)
                    y[i] = e / (1 + e)
                }
            }
        }
    }

    /// `g · y · (1 − y)` from the forward output `y = sigmoid(x)`.
    public static func sigmoidBackward(output: Tensor, outputGradient: Tensor) -> Tensor {
        ElementMap.binary(output, outputGradient) { s, g, y, n in for i in 0..<n { y[i] = g[i] * s[i] * (1 - s[i]) } }
    }

    /// `max(0, min(1, alpha·x + beta))` (ONNX defaults: alpha 0.2, beta 0.5).
    public static func hardSigmoid(_ x: Tensor, alpha: Float, beta: Float) -> Tensor {
        ElementMap.unary(x) { x, y, n in for i in 0..<n { y[i] = Swift.max(0, Swift.min(1, alpha * x[i] + beta)) } }
    }

    /// `alpha · g` where `0 < alpha·x + beta < 1`, else 0.
    public static func hardSigmoidBackward(_ x: Tensor, alpha: Float, beta: Float, outputGradient: Tensor) -> Tensor {
        ElementMap.binary(x, outputGradient) { x, g, y, n in
            for i in 0..<n {
                let t = alpha * x[i] + beta
                y[i] = t > 0 && t < 1 ? alpha * g[i] : 0
            }
        }
    }

    /// `x · hardSigmoid(x, 1/6, 1/2)`: 0 below −3, `x` above 3, `x(x + 3)/6` between.
    public static func hardSwish(_ x: Tensor) -> Tensor {
        ElementMap.unary(x) { x, y, n in
            for i in 0..<n {
                let v = x[i]
                y[i] = v * Swift.max(0, Swift.min(1, v / 6 + 0.5))
            }
        }
    }

    /// `g · (x/3 + 1/2)` on `(−3, 3)`, `g` above, 0 below.
    public static func hardSwishBackward(_ x: Tensor, outputGradient: Tensor) -> Tensor {
        ElementMap.binary(x, outputGradient) { x, g, y, n in
            for i in 0..<n {
                let v = x[i], t = v / 6 + 0.5
                y[i] = t <= 0 ? 0 : (t >= 1 ? g[i] : g[i] * (t + v / 6))
            }
        }
    }

    /// The Gauss error function (ONNX `Erf`), evaluated in Double.
    public static func erf(_ x: Tensor) -> Tensor {
        ElementMap.unary(x) { x, y, n in for i in 0..<n { y[i] = Float(errorFunction(Double(x[i]))) } }
    }

    /// `g · 2/√π · e^(−x²)`.
    public static func erfBackward(_ x: Tensor, outputGradient: Tensor) -> Tensor {
        let c = 2 / Double.pi.squareRoot()
        return ElementMap.binary(x, outputGradient) { x, g, y, n in
            for i in 0..<n { let v = Double(x[i]); y[i] = Float(Double(g[i]) * c * exp(-v * v)) }
        }
    }

    /// GELU, `x · Φ(x) = x/2 · (1 + erf(x/√2))` (ONNX `Gelu` without approximation), evaluated in Double.
    public static func gelu(_ x: Tensor) -> Tensor {
        ElementMap.unary(x) { x, y, n in
            for i in 0..<n { let v = Double(x[i]); y[i] = Float(0.5 * v * (1 + errorFunction(v / 2.squareRoot()))) }
        }
    }

    /// `g · (Φ(x) + x · φ(x))`, with `φ` the standard normal density.
    public static func geluBackward(_ x: Tensor, outputGradient: Tensor) -> Tensor {
        let density = 1 / (2 * Double.pi).squareRoot()
        return ElementMap.binary(x, outputGradient) { x, g, y, n in
            for i in 0..<n {
                let v = Double(x[i])
                let derivative = 0.5 * (1 + errorFunction(v / 2.squareRoot())) + v * density * exp(-v * v / 2)
                y[i] = Float(Double(g[i]) * derivative)
            }
        }
    }

    /// ONNX Softmax (opset 13): `exp(x - max) / Σ exp(x - max)` along `axis` (already normalised to
    /// `0..<rank`), in Double for the sum so that the result does not depend on the length of the axis.
    public static func softmax(_ x: Tensor, axis: Int) -> Tensor {
        precondition(axis >= 0 && axis < x.rank, "axis \(axis) out of range for \(x.shape)")
        let extent = x.shape[axis], inner = x.shape[(axis + 1)...].reduce(1, *)
        let outer = x.shape[..<axis].reduce(1, *)
        var y = x
        y.withUnsafeMutableBufferPointer { buffer in
            for o in 0..<outer {
                for i in 0..<inner {
                    let base = o * extent * inner + i
                    var peak = -Float.infinity
                    for k in 0..<extent { peak = Swift.max(peak, buffer[base + k * inner]) }
                    var total = 0.0
                    for k in 0..<extent {
                        let e = exp(buffer[base + k * inner] - peak)
                        buffer[base + k * inner] = e
                        total += Double(e)
                    }
                    for k in 0..<extent { buffer[base + k * inner] = Float(Double(buffer[base + k * inner]) / total) }
                }
            }
        }
        return y
    }

    /// `y · (g − Σ g·y)` along `axis`, from the forward output `y = softmax(x)`.
    public static func softmaxBackward(output y: Tensor, axis: Int, outputGradient g: Tensor) -> Tensor {
        let extent = y.shape[axis], inner = y.shape[(axis + 1)...].reduce(1, *)
        let outer = y.shape[..<axis].reduce(1, *)
        var result = g
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * extent * inner + i
                var dot = 0.0
                for k in 0..<extent { dot += Double(g.data[base + k * inner]) * Double(y.data[base + k * inner]) }
                for k in 0..<extent {
                    let j = base + k * inner
                    result.data[j] = Float(Double(y.data[j]) * (Double(g.data[j]) - dot))
                }
            }
        }
        return result
    }
}

/// The C library's `erf` (named apart so that `Activation.erf` does not shadow it).
private func errorFunction(_ v: Double) -> Double { erf(v) }
