/// Why a quantized network cannot be written as a QDQ ONNX model.
public enum QDQExportError: Error, CustomStringConvertible, Equatable {
    /// An activation quantizer is wider than the 8-bit containers ONNX QuantizeLinear offers at opset 13.
    case activationTooWide(tensor: String, bits: Int)
    /// A zero point is not a whole number inside the container's range.
    case badZeroPoint(owner: String, value: Float)
    /// A scale is zero, negative, subnormal or not finite.
    case badScale(owner: String, value: Float)
    /// `q - z` of a layer's weights leaves int8, the container onnxruntime's per-channel QLinearConv needs.
    case weightsExceedInt8(layer: String, lowest: Int, highest: Int)
    /// A layer the exporter cannot express (missing node, Gemm without `transB`, inconsistent sizes).
    case unsupportedLayer(node: String, reason: String)
    /// An activation quantizer sits on a tensor that is neither a graph input nor a node output.
    case unknownTensor(String)

    public var description: String {
        switch self {
        case .activationTooWide(let tensor, let bits):
            return "activation '\(tensor)' is quantized to \(bits) bits; QDQ export holds at most 8-bit activations (use --abits 8 or less)"
        case .badZeroPoint(let owner, let value):
            return "\(owner) has zero point \(value), which is not a whole number in its container's range; QDQ needs integer zero points"
        case .badScale(let owner, let value):
            return "\(owner) has scale \(value); QDQ needs positive, finite, normal scales"
        case .weightsExceedInt8(let layer, let lowest, let highest):
            return "layer '\(layer)': weight codes minus zero points span \(lowest)...\(highest), outside int8; onnxruntime needs int8 weights with zero point 0 (use --symmetric or at most 7-bit asymmetric weights)"
        case .unsupportedLayer(let node, let reason):
            return "layer '\(node)' cannot be exported as QDQ: \(reason)"
        case .unknownTensor(let name):
            return "an activation quantizer sits on '\(name)', which no node produces and which is not a graph input; the network is inconsistent"
        }
    }
}
