/// Why a graph could not be run on the given inputs.
public enum ExecutionError: Error, CustomStringConvertible, Equatable {
    /// A required graph input was not supplied.
    case missingInput(name: String)
    /// A supplied input's shape does not match the graph's declaration.
    case inputShapeMismatch(name: String, expected: [Int?], got: [Int])
    /// A node reads a tensor that nothing produces.
    case undefinedTensor(node: String, tensor: String)
    /// A node's operands have shapes the operator cannot combine.
    case incompatibleShapes(node: String, op: String, detail: String)
    /// A requested tensor is not produced by the graph.
    case unknownTensor(name: String)
    /// The input holds no samples (its first dimension is 0).
    case noSamples(name: String)
    /// The batch size (samples per forward pass) is not positive.
    case invalidBatchSize(Int)
    /// The graph's output is a constant (an initializer), not computed from its input.
    case constantOutput(name: String)

    public var description: String {
        switch self {
        case .missingInput(let name):
            return "input '\(name)' was not given; supply a tensor for every graph input (see `rapq inspect`)"
        case .inputShapeMismatch(let name, let expected, let got):
            let want = expected.map { $0.map(String.init) ?? "?" }.joined(separator: "x")
            let shape = got.isEmpty ? "no dimensions (a scalar)" : "shape " + got.map(String.init).joined(separator: "x")
            return "input '\(name)' has \(shape) but the model expects \(want) (? = any); reshape or resize the data to match"
        case .undefinedTensor(let node, let tensor):
            return "node '\(node)' reads tensor '\(tensor)', which is neither a graph input, an initializer nor the output of an earlier node"
        case .incompatibleShapes(let node, let op, let detail):
            return "node '\(node)' (\(op)): \(detail)"
        case .unknownTensor(let name):
            return "tensor '\(name)' is not produced by this graph"
        case .noSamples(let name):
            return "the data for input '\(name)' hold 0 samples; give at least one sample (the first dimension is the batch)"
        case .invalidBatchSize(let size):
            return "batch size \(size) is not positive; use 1 or more samples per forward pass"
        case .constantOutput(let name):
            return "the model's output '\(name)' is a constant stored in the file, not computed from its input; rapq runs models whose first output is the result of their nodes (re-export the model with the network's output)"
        }
    }
}
