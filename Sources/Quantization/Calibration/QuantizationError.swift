/// Why a model could not be quantized as asked.
public enum QuantizationError: Error, CustomStringConvertible, Equatable {
    /// A bit width outside 2...8.
    case bitsOutOfRange(what: String, bits: Int)
    /// The model has no Conv or Gemm to quantize.
    case nothingToQuantize
    /// The calibration data do not fit the model or the method.
    case badCalibration(String)
    /// A weight or bias holds NaN or an infinity.
    case nonFiniteWeights(layer: String)
    /// An operator has no integer implementation.
    case noIntegerKernel(node: String, op: String)
    /// The model's structure is outside what quantization handles (e.g. several outputs).
    case unsupportedModel(String)

    public var description: String {
        switch self {
        case .bitsOutOfRange(let what, let bits):
            return "\(what) bit width \(bits) is out of range; use 2 to 8"
        case .nothingToQuantize:
            return "the model has no Conv or Gemm layer to quantize"
        case .badCalibration(let detail):
            return "calibration data: \(detail)"
        case .nonFiniteWeights(let layer):
            return "layer '\(layer)' has NaN or infinite weights or bias; fix the model before quantizing"
        case .unsupportedModel(let detail):
            return "the model cannot be quantized: \(detail)"
        case .noIntegerKernel(let node, let op):
            return "node '\(node)' (\(op)) has no integer-only implementation; the integer engine supports Conv, Gemm, Relu, Clip, Add, Mul of two activations, Sigmoid, HardSigmoid, HardSwish, Gelu, Erf, LayerNormalization (in Float between quantized tensors), MaxPool, AveragePool, GlobalAveragePool, Concat, Slice, Transpose, Flatten, Reshape and Identity"
        }
    }
}
