import Foundation
/// Why the shapes of a graph's tensors could not be computed.
public enum ShapeInferenceError: Error, CustomStringConvertible, Equatable {
    /// The batch size is not positive.
    case invalidBatch(Int)
    /// A node reads a tensor whose shape is not known at that point.
    case unknownTensor(node: String, tensor: String)
    /// A node's operand shapes do not fit its operator.
    case inconsistentShapes(node: String, op: String, detail: String)
    /// A tensor would hold more elements than `ShapeLimits.maximumElements`.
    case tooLarge(tensor: String, shape: [Int], limit: Int)
    /// One tensor of a batch would need more than half of the machine's memory.
    case beyondMemory(tensor: String, shape: [Int], bytes: Int, memory: Int)

    public var description: String {
        switch self {
        case .invalidBatch(let batch):
            return "batch size \(batch) is not positive; use 1 or more"
        case .unknownTensor(let node, let tensor):
            return "node '\(node)' reads tensor '\(tensor)', whose shape is unknown: it is neither a graph input, "
                + "an initializer nor the output of an earlier node"
        case .inconsistentShapes(let node, let op, let detail):
            return "node '\(node)' (\(op)): \(detail); the model is inconsistent or needs other input sizes"
        case .tooLarge(let tensor, let shape, let limit):
            return "tensor '\(tensor)' would have shape \(shape), more than \(limit) elements (the limit per tensor, \(limit / (1 << 28)) GiB as float32); "
                + "use a smaller batch, or the model's attributes (pads, strides, kernel sizes) or input sizes are wrong"
        case .beyondMemory(let tensor, let shape, let bytes, let memory):
            return String(format: "tensor '%@' would have shape %@ and need %.1f GiB, more than half of this machine's memory (%.1f GiB of %.1f); use a smaller batch",
                          tensor, "\(shape)", Double(bytes) / 1_073_741_824, Double(memory) / 1_073_741_824, Double(memory) / 536_870_912)
        }
    }
}
