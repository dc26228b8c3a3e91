/// Layer normalization over a block of consecutive axes (ONNX LayerNormalization, and the channel-only
/// normalization of NCHW tensors that ConvNeXt's "LayerNorm2d" computes):
/// `y = (x − mean) / sqrt(var + epsilon) · scale + bias`, mean and (biased) variance over the normalized
/// axes of each position of the others. `scale` and `bias` hold one value per element of the normalized
/// block (in its row-major order) or a single value.
public struct LayerNormalization: Equatable, Sendable {
    /// The first normalized axis; negative counts from the end.
    public var axis: Int
    /// How many axes from `axis` on are normalized; `nil` for all of them through the last (ONNX semantics).
    public var span: Int?
    public var epsilon: Float

    /// A normalization from its parts.
    public init(axis: Int, span: Int? = nil, epsilon: Float) {
        self.axis = axis
        self.span = span
        self.epsilon = epsilon
    }

    /// The normalized axes of a tensor of `rank` dimensions, or `nil` when they do not fit it.
    public func axes(rank: Int) -> Range<Int>? {
        let first = axis < 0 ? axis + rank : axis
        let count = span ?? (rank - first)
        guard first >= 0, count >= 1, first + count <= rank else { return nil }
        return first..<(first + count)
    }

    /// `(outer, extent, inner)`: positions before the block, elements in it, positions after it.
    private func layout(_ shape: [Int]) -> (outer: Int, extent: Int, inner: Int) {
        guard let a = axes(rank: shape.count) else { preconditionFailure("normalized axes do not fit shape \(shape)") }
        return (shape[..<a.lowerBound].reduce(1, *), shape[a].reduce(1, *), shape[a.upperBound...].reduce(1, *))
    }

    /// Mean and `1 / sqrt(var + epsilon)` of every normalized group, in Double, indexed `o * inner + i`.
    private func statistics(_ x: Tensor) -> (mean: [Double], reciprocal: [Double]) {
        let (outer, extent, inner) = layout(x.shape)
        var mean = [Double](repeating: 0, count: outer * inner), reciprocal = mean
        x.withUnsafeBufferPointer { v in
            for o in 0..<outer {
                for i in 0..<inner {
                    let base = o * extent * inner + i
                    var sum = 0.0
                    for k in 0..<extent { sum += Double(v[base + k * inner]) }
                    let m = sum / Double(extent)
                    var squares = 0.0
                    for k in 0..<extent { let d = Double(v[base + k * inner]) - m; squares += d * d }
                    mean[o * inner + i] = m
                    reciprocal[o * inner + i] = 1 / (squares / Double(extent) + Double(epsilon)).squareRoot()
                }
            }
        }
        return (mean, reciprocal)
    }

    /// The normalized tensor.
    public func forward(_ x: Tensor, scale: Tensor, bias: Tensor?) -> Tensor {
        let (outer, extent, inner) = layout(x.shape)
        let (mean, reciprocal) = statistics(x)
        let gamma = scale.data, beta = bias?.data
        var y = x
        y.withUnsafeMutableBufferPointer { v in
            for o in 0..<outer {
                for i in 0..<inner {
                    let base = o * extent * inner + i, m = mean[o * inner + i], r = reciprocal[o * inner + i]
                    for k in 0..<extent {
                        let shift = beta.map { Double($0[$0.count == 1 ? 0 : k]) } ?? 0
                        let normalized = (Double(v[base + k * inner]) - m) * r
                        v[base + k * inner] = Float(normalized * Double(gamma[gamma.count == 1 ? 0 : k]) + shift)
                    }
                }
            }
        }
        return y
    }

    /// The gradient of the input (scale and bias are constants here): with `x̂` the normalized input and
    /// `d = g · scale`, `∂L/∂x = r · (d − mean(d) − x̂ · mean(d · x̂))` per group, `r = 1 / sqrt(var + epsilon)`.
    public func backward(_ x: Tensor, scale: Tensor, outputGradient g: Tensor) -> Tensor {
        let (outer, extent, inner) = layout(x.shape)
        let (mean, reciprocal) = statistics(x)
        let gamma = scale.data
        var result = x
        result.withUnsafeMutableBufferPointer { out in
            var d = [Double](repeating: 0, count: extent), normalized = d
            for o in 0..<outer {
                for i in 0..<inner {
                    let base = o * extent * inner + i, m = mean[o * inner + i], r = reciprocal[o * inner + i]
                    var meanD = 0.0, meanDX = 0.0
                    for k in 0..<extent {
                        normalized[k] = (Double(x.data[base + k * inner]) - m) * r
                        d[k] = Double(g.data[base + k * inner]) * Double(gamma[gamma.count == 1 ? 0 : k])
                        meanD += d[k]
                        meanDX += d[k] * normalized[k]
                    }
                    meanD /= Double(extent)
                    meanDX /= Double(extent)
                    for k in 0..<extent { out[base + k * inner] = Float(r * (d[k] - meanD - normalized[k] * meanDX)) }
                }
            }
        }
        return result
    }
}
