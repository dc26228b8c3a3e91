/// Why a quantized network cannot be run, or a batch cannot be run, by the integer engine.
public enum IntegerEngineError: Error, CustomStringConvertible, Equatable {
    /// A weight or activation scale is not an exact power of two, or a zero point not an integer on its grid.
    case notPowerOfTwo(method: String, detail: String)
    /// The graph input, or a tensor a layer reads, carries no activation quantizer.
    case unquantizedInput(node: String, tensor: String)
    /// A node's operands do not fit what the engine planned for it.
    case inconsistentInput(node: String, detail: String)
    /// A layer's integer sum could leave `Int32`.
    case accumulatorRange(layer: String, bound: Int64)
    /// The input batch does not match the graph's declared input shape.
    case inputShapeMismatch(expected: [Int?], got: [Int])

    public var description: String {
        switch self {
        case .notPowerOfTwo(let method, let detail):
            return "the network has non-power-of-two scales (method '\(method)': \(detail)); the integer engine shifts instead of "
                + "multiplying and needs every scale to be 2^e and every zero point an integer: quantize with a power-of-two "
                + "method (naive-pot, pot-mse, rapq), not rtn or brecq, which keep float scales"
        case .unquantizedInput(let node, let tensor):
            return "node '\(node)' reads tensor '\(tensor)', which has no activation quantizer; the integer engine needs integer codes there"
        case .inconsistentInput(let node, let detail):
            return "node '\(node)': \(detail)"
        case .accumulatorRange(let layer, let bound):
            return "layer '\(layer)': its integer sum can reach \(bound), beyond the int32 accumulator (2^31 - 1); use fewer bits"
        case .inputShapeMismatch(let expected, let got):
            let want = expected.map { $0.map(String.init) ?? "?" }.joined(separator: "x")
            return "the input has shape \(got.map(String.init).joined(separator: "x")) but the model expects \(want) (? = any)"
        }
    }
}
