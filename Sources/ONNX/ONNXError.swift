import Foundation

/// Why an ONNX model could not be read, converted to the Graph IR, or written.
///
/// Each description says what is wrong, where (node, operator, tensor) and what the user can do.
public enum ONNXError: Error, CustomStringConvertible, Equatable {
    /// The file could not be opened or read.
    case unreadableFile(path: String, reason: String)
    /// The bytes are not a valid serialized `ModelProto` (truncated, corrupted, or not ONNX at all).
    case malformedProtobuf(reason: String)
    /// The model parsed but holds no graph.
    case missingGraph
    /// The model imports no default-domain opset, or one outside the supported range.
    case unsupportedOpset(domain: String, version: Int?, supported: ClosedRange<Int>)
    /// A node uses an operator (or a domain) the Graph IR has no counterpart for.
    case unsupportedOperator(node: String, op: String, domain: String, supported: [String])
    /// Nodes use operators (or domains) the Graph IR has no counterpart for: every such node, by operator.
    case unsupportedOperators([UnsupportedOperator], supported: [String])
    /// A node that computes on values known at import (shape arithmetic) could not be evaluated.
    case cannotFold(node: String, op: String, reason: String)
    /// A node's result depends on the batch size in a way the importer cannot express for any batch.
    case batchDependent(node: String, op: String, reason: String)
    /// A node's attribute (or constant operand) has a value the Graph IR cannot represent.
    case unsupportedAttribute(node: String, op: String, attribute: String, value: String, reason: String)
    /// A node lacks an attribute that has no default.
    case missingAttribute(node: String, op: String, attribute: String)
    /// A node reads a tensor that is neither a graph input, an initializer nor another node's output.
    case missingInput(node: String, op: String, tensor: String)
    /// A node needs a constant (an initializer or a `Constant` node) where the file has a computed tensor.
    case nonConstantOperand(node: String, op: String, tensor: String, role: String)
    /// A node has the wrong number of inputs or outputs.
    case wrongArity(node: String, op: String, detail: String)
    /// A graph output is produced by nothing.
    case undefinedGraphOutput(tensor: String)
    /// A tensor's dimensions are negative, or imply more elements than RAPQ accepts.
    case invalidDimensions(tensor: String, dims: [Int64], reason: String)
    /// A tensor's data holds a different number of elements (or bytes) than its dimensions require.
    case dataSizeMismatch(tensor: String, dims: [Int64], expected: Int, actual: Int, unit: String)
    /// A tensor's element type is not one RAPQ reads in that place.
    case unsupportedDataType(tensor: String, dataType: Int32, expected: String)
    /// A tensor's external data could not be located or read.
    case externalData(tensor: String, reason: String)
    /// Two producers (nodes, initializers or graph inputs) define the same tensor name.
    case duplicateOutput(tensor: String, producers: [String])
    /// The nodes' inputs and outputs form a cycle, so no execution order exists.
    case cycle(nodes: [String])
    /// A graph input or output has an unusable type description.
    case invalidValueInfo(tensor: String, reason: String)
    /// Writing a model to disk failed.
    case writeFailed(path: String, reason: String)
    /// A weight (an initializer read as data) holds NaN or an infinity.
    case nonFiniteData(tensor: String, index: Int, value: Float)

    public var description: String {
        switch self {
        case .unreadableFile(let path, let reason):
            return "cannot read ONNX file '\(path)': \(reason); check the path and the file's permissions"
        case .malformedProtobuf(let reason):
            return "the file is not a valid ONNX model (the protobuf is truncated or corrupted: \(reason)); "
                + "re-export or re-download the model"
        case .missingGraph:
            return "the ONNX model has no graph; re-export the model"
        case .unsupportedOpset(let domain, let version, let supported):
            let name = domain.isEmpty ? "the default ONNX domain" : "domain '\(domain)'"
            guard let version else {
                return "the model imports no opset for \(name); re-export it with an opset between "
                    + "\(supported.lowerBound) and \(supported.upperBound)"
            }
            return "the model uses opset \(version) of \(name), but RAPQ supports opsets \(supported.lowerBound) to "
                + "\(supported.upperBound); re-export it with an opset in that range (e.g. torch.onnx.export(..., opset_version=17))"
        case .unsupportedOperator(let node, let op, let domain, let supported):
            let qualified = domain.isEmpty || domain == "ai.onnx" ? op : "\(domain).\(op)"
            return "node '\(node)' uses operator \(qualified), which RAPQ does not support; supported operators "
                + "(default domain): \(supported.joined(separator: ", ")). Simplify or re-export the model so that "
                + "it uses only these"
        case .unsupportedOperators(let list, let supported):
            let total = list.map(\.nodes.count).reduce(0, +)
            let lines = list.map { entry -> String in
                let shown = entry.nodes.prefix(5).map { "'\($0)'" }.joined(separator: ", ")
                return "  \(entry.op): \(entry.nodes.count) node\(entry.nodes.count == 1 ? "" : "s") (\(shown)\(entry.nodes.count > 5 ? ", ..." : ""))"
            }
            return "the model has \(total) node\(total == 1 ? "" : "s") with \(list.count) operator\(list.count == 1 ? "" : "s") RAPQ does not support:\n"
                + lines.joined(separator: "\n")
                + "\nsupported operators (default domain): \(supported.joined(separator: ", ")). Simplify or re-export the "
                + "model so that it uses only these"
        case .cannotFold(let node, let op, let reason):
            return "node '\(node)' (\(op)) computes shapes or constants that RAPQ evaluates before running the model, "
                + "but it cannot: \(reason)"
        case .batchDependent(let node, let op, let reason):
            return "node '\(node)' (\(op)) depends on the batch size in a way RAPQ cannot follow: \(reason); re-export "
                + "the model with a dynamic batch (torch.onnx.export(..., dynamic_axes={'input': {0: 'batch'}}))"
        case .unsupportedAttribute(let node, let op, let attribute, let value, let reason):
            return "node '\(node)' (\(op)) has \(attribute) = \(value), which RAPQ does not support: \(reason)"
        case .missingAttribute(let node, let op, let attribute):
            return "node '\(node)' (\(op)) lacks the required attribute '\(attribute)'; the file is incomplete, re-export it"
        case .missingInput(let node, let op, let tensor):
            return "node '\(node)' (\(op)) reads tensor '\(tensor)', which is neither a graph input, an initializer, "
                + "nor produced by any node; the file is incomplete (external weights not saved?), re-export it"
        case .nonConstantOperand(let node, let op, let tensor, let role):
            return "node '\(node)' (\(op)) takes its \(role) from tensor '\(tensor)', which is computed at run time; "
                + "RAPQ needs it as a constant (an initializer or a Constant node): export with constant folding "
                + "(e.g. torch.onnx.export(..., do_constant_folding=True)) or run onnxsim"
        case .wrongArity(let node, let op, let detail):
            return "node '\(node)' (\(op)): \(detail); the file does not follow the ONNX operator's definition"
        case .undefinedGraphOutput(let tensor):
            return "graph output '\(tensor)' is produced by no node, input or initializer; the file is incomplete"
        case .invalidDimensions(let tensor, let dims, let reason):
            return "tensor '\(tensor)' has dimensions \(dims): \(reason); the file is corrupted or not a model RAPQ can hold"
        case .dataSizeMismatch(let tensor, let dims, let expected, let actual, let unit):
            return "tensor '\(tensor)' declares dimensions \(dims), which need \(expected) \(unit), but its data "
                + "holds \(actual) \(unit); the file is corrupted or truncated"
        case .unsupportedDataType(let tensor, let dataType, let expected):
            return "tensor '\(tensor)' has element type \(Self.dataTypeName(dataType)), but RAPQ expects \(expected) "
                + "here; export the model in float32"
        case .externalData(let tensor, let reason):
            return "cannot load external data of tensor '\(tensor)': \(reason)"
        case .duplicateOutput(let tensor, let producers):
            return "tensor '\(tensor)' is defined more than once (by \(producers.joined(separator: ", "))); "
                + "ONNX requires each name to be assigned once, re-export the model"
        case .cycle(let nodes):
            return "the graph has a cycle through nodes \(nodes.joined(separator: ", ")); a feed-forward network "
                + "cannot be ordered, re-export the model"
        case .invalidValueInfo(let tensor, let reason):
            return "graph value '\(tensor)': \(reason)"
        case .nonFiniteData(let tensor, let index, let value):
            return "weight tensor '\(tensor)' holds \(value) at flat index \(index); a model with NaN or infinite weights computes nothing meaningful: re-export it from a trained checkpoint"
        case .writeFailed(let path, let reason):
            return "cannot write ONNX file '\(path)': \(reason); check that the directory exists and is writable"
        }
    }

    /// The ONNX name of a `TensorProto.DataType` value (its number when unknown).
    static func dataTypeName(_ value: Int32) -> String {
        if let known = Onnx_TensorProto.DataType(rawValue: Int(value)) {
            return "\(known)".uppercased()
        }
        return "#\(value)"
    }
}

/// One operator the importer cannot read and the nodes that use it.
public struct UnsupportedOperator: Equatable, Sendable {
    /// The operator, qualified with its domain when that is not the default one.
    public var op: String
    /// The nodes that use it, in file order.
    public var nodes: [String]

    /// An entry from its parts.
    public init(op: String, nodes: [String]) {
        self.op = op
        self.nodes = nodes
    }
}
