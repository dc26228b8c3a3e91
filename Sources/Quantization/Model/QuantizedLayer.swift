/// A Conv or Gemm with integer weights: codes on a grid, per-output-channel scales and zero points, and
/// the float bias it had after BN folding (its int32 form depends on the input's scale).
public struct QuantizedLayer: Equatable, Codable, Sendable {
    /// The layer's node name in the network's graph.
    public var node: String
    /// The weight tensor's shape, output channels first.
    public var weightShape: [Int]
    /// Per-output-channel scales and zero points.
    public var weight: QuantizerParameters
    /// The weight codes `q` (row-major, `weightShape`), each within the grid's range.
    public var codes: [Int32]
    /// The float bias per output channel (zeros when the layer had none).
    public var bias: [Float]
    /// The activation tensor the layer reads (its quantizer sets the bias scale).
    public var input: String

    /// Output channels.
    public var channels: Int { weightShape[0] }

    /// The weights the codes stand for: `(q - z_c) * s_c`.
    public var dequantizedWeights: [Float] {
        let per = codes.count / channels
        var w = [Float](repeating: 0, count: codes.count)
        for c in 0..<channels {
            let s = weight.scales[c], z = weight.zeroPoints[c]
            for j in c * per..<(c + 1) * per { w[j] = (Float(codes[j]) - z) * s }
        }
        return w
    }

    /// The bias in int32 at scale `inputScale * s_c` (round half to even, saturated to the int32 range).
    public func integerBias(inputScale: Float) -> [Int32] {
        (0..<channels).map { c in
            let v = (Double(bias[c]) / (Double(inputScale) * Double(weight.scales[c]))).rounded(.toNearestOrEven)
            return Int32(Swift.max(Swift.min(v, Double(Int32.max)), Double(Int32.min)))
        }
    }

    /// The bias as the integer engine sees it: `integerBias * inputScale * s_c`.
    public func simulatedBias(inputScale: Float) -> [Float] {
        zip(integerBias(inputScale: inputScale), weight.scales).map { Float(Double($0) * Double(inputScale) * Double($1)) }
    }

    /// Quantizes float weights `w` with `parameters` (per output channel) into a layer.
    public static func quantize(node: String, weights w: [Float], shape: [Int], bias: [Float], input: String,
                                parameters: QuantizerParameters) -> QuantizedLayer {
        let channels = shape[0], per = w.count / channels
        var codes = [Int32](repeating: 0, count: w.count)
        for c in 0..<channels {
            let s = parameters.scales[c], z = parameters.zeroPoints[c]
            for j in c * per..<(c + 1) * per {
                codes[j] = Int32(UniformQuantization.code(w[j], scale: s, zeroPoint: z, grid: parameters.grid))
            }
        }
        return QuantizedLayer(node: node, weightShape: shape, weight: parameters, codes: codes, bias: bias, input: input)
    }
}
