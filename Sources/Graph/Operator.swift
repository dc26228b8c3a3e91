import TensorKernels

/// An operator of the Graph IR with its attributes resolved to typed values.
///
/// Constant operands that ONNX passes as inputs (Clip's bounds, Reshape's target shape) are resolved at
/// import time and stored here, so a node's `inputs` name only tensors: activations or weights.
public enum Operator: Equatable, Sendable {
    /// 2-D convolution; inputs `[x, weight, bias?]`, weight `[M, C/groups, kH, kW]`.
    case conv(Conv2DParameters)
    /// Inference-mode batch normalization; inputs `[x, scale, bias, mean, variance]`.
    case batchNormalization(epsilon: Float)
    /// `max(x, 0)`.
    case relu
    /// `min(max(x, min), max)`; ReLU6 is `clip(0, 6)`.
    case clip(min: Float, max: Float)
    /// Element-wise sum with NumPy broadcasting.
    case add
    /// Element-wise product with NumPy broadcasting.
    case mul
    /// `1 / (1 + exp(-x))`.
    case sigmoid
    /// `max(0, min(1, alpha * x + beta))`.
    case hardSigmoid(alpha: Float, beta: Float)
    /// `x * max(0, min(1, x / 6 + 1 / 2))`.
    case hardSwish
    /// `x/2 * (1 + erf(x/√2))` (ONNX Gelu without approximation; exporters write it as Div, Erf, Add, Mul, Mul).
    case gelu
    /// The Gauss error function.
    case erf
    /// Normalization over a block of axes with a per-element scale and bias; inputs `[x, scale, bias?]`.
    case layerNormalization(LayerNormalization)
    /// Max pooling over NCHW.
    case maxPool(WindowGeometry)
    /// Average pooling over NCHW; `countIncludePad` divides by the full window size.
    case averagePool(WindowGeometry, countIncludePad: Bool)
    /// Mean over H and W, keeping them as size-1 dimensions.
    case globalAveragePool
    /// Collapse to 2-D: dimensions before `axis` form the rows.
    case flatten(axis: Int)
    /// Reshape to `shape` with ONNX semantics (0 copies the input's dimension unless `allowZero`, -1 is inferred).
    case reshape(shape: [Int], allowZero: Bool)
    /// `alpha * A' * B' + beta * C`; inputs `[A, B, C?]`.
    case gemm(alpha: Float, beta: Float, transA: Bool, transB: Bool)
    /// NumPy `matmul`.
    case matMul
    /// Concatenation along `axis`.
    case concat(axis: Int)
    /// Local response normalization across channels (ONNX LRN).
    case localResponseNormalization(LocalResponseNormalization)
    /// Softmax along `axis` (ONNX opset 13 semantics; older files are converted at import).
    case softmax(axis: Int)
    /// The elements `start..<end` along `axis` (ONNX Slice with step 1 on one axis, bounds resolved at import).
    case slice(axis: Int, start: Int, end: Int)
    /// Permutes the dimensions: output dimension `i` is input dimension `permutation[i]`.
    case transpose(permutation: [Int])
    /// Passes its input through (ONNX Identity, Dropout at inference).
    case identity

    /// The ONNX operator name, for messages and export.
    public var onnxName: String {
        switch self {
        case .conv: return "Conv"
        case .batchNormalization: return "BatchNormalization"
        case .relu: return "Relu"
        case .clip: return "Clip"
        case .add: return "Add"
        case .mul: return "Mul"
        case .sigmoid: return "Sigmoid"
        case .hardSigmoid: return "HardSigmoid"
        case .hardSwish: return "HardSwish"
        case .gelu: return "Gelu"
        case .erf: return "Erf"
        case .layerNormalization: return "LayerNormalization"
        case .maxPool: return "MaxPool"
        case .averagePool: return "AveragePool"
        case .globalAveragePool: return "GlobalAveragePool"
        case .flatten: return "Flatten"
        case .reshape: return "Reshape"
        case .gemm: return "Gemm"
        case .matMul: return "MatMul"
        case .concat: return "Concat"
        case .transpose: return "Transpose"
        case .slice: return "Slice"
        case .softmax: return "Softmax"
        case .localResponseNormalization: return "LRN"
        case .identity: return "Identity"
        }
    }
}
