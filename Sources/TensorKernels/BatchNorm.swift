/// Batch normalisation with frozen statistics (ONNX `BatchNormalization`, inference mode).
public enum BatchNorm {
    /// `y = (x − mean) / √(variance + ε) · scale + bias` per channel (dimension 1) of a tensor of rank ≥ 2.
    ///
    /// The per-channel factor `a = scale / √(variance + ε)` and offset `b = bias − mean·a` are computed
    /// once in double precision; the loop is then one multiply-add per element.
    public static func inference(_ x: Tensor, scale: Tensor, bias: Tensor, mean: Tensor, variance: Tensor,
                                 epsilon: Float) -> Tensor {
        precondition(x.rank >= 2, "BatchNorm expects rank >= 2, got \(x.shape)")
        let channels = x.shape[1], batch = x.shape[0]
        let inner = x.shape.dropFirst(2).reduce(1, *)
        precondition([scale, bias, mean, variance].allSatisfy { $0.count == channels }, "BatchNorm parameters must have \(channels) elements")
        var factor = [Float](repeating: 0, count: channels), offset = factor
        for c in 0..<channels {
            let a = Double(scale.data[c]) / (Double(variance.data[c]) + Double(epsilon)).squareRoot()
            factor[c] = Float(a)
            offset[c] = Float(Double(bias.data[c]) - Double(mean.data[c]) * a)
        }
        return Tensor(shape: x.shape) { out in
            x.withUnsafeBufferPointer { input in
                let X = input.base, Y = out.base
                Parallel.forEachChunk(batch * channels, maxChunks: x.count < ElementMap.parallelThreshold ? 1 : 64) { planes in
                    for plane in planes {
                        let a = factor[plane % channels], b = offset[plane % channels]
                        let x = X + plane * inner, y = Y + plane * inner
                        for i in 0..<inner { y[i] = x[i] * a + b }
                    }
                }
            }
        }
    }
}
