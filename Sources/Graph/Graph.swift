import TensorKernels

/// One operation of a network: an operator applied to named tensors, producing named tensors.
public struct Node: Equatable, Sendable {
    /// The node's name (unique within its graph; the importer invents one when the file has none).
    public var name: String
    /// What the node computes.
    public var op: Operator
    /// Names of the tensors it reads: graph inputs, outputs of earlier nodes, or initializers.
    public var inputs: [String]
    /// Names of the tensors it writes.
    public var outputs: [String]

    /// A node from its parts.
    public init(name: String, op: Operator, inputs: [String], outputs: [String]) {
        self.name = name
        self.op = op
        self.inputs = inputs
        self.outputs = outputs
    }
}

/// A graph input or output: a name and a shape whose dimensions may be unknown (`nil`, e.g. the batch).
public struct ValueInfo: Equatable, Sendable {
    /// The tensor's name.
    public var name: String
    /// Declared dimensions; `nil` marks a symbolic or unknown dimension.
    public var dimensions: [Int?]

    /// A value description from its parts.
    public init(name: String, dimensions: [Int?]) {
        self.name = name
        self.dimensions = dimensions
    }
}

/// A network as a value: inputs, nodes in topological order, outputs, and constant tensors.
public struct Graph: Equatable, Sendable {
    /// A name for messages and export.
    public var name: String
    /// The tensors a caller supplies (initializers are not listed here).
    public var inputs: [ValueInfo]
    /// The tensors a run returns.
    public var outputs: [ValueInfo]
    /// The operations, each after every node that produces one of its inputs.
    public var nodes: [Node]
    /// Constant tensors (weights, biases, BN statistics) by name.
    public var initializers: [String: Tensor]

    /// A graph from its parts; call `validated()` to check names and order.
    public init(name: String, inputs: [ValueInfo], outputs: [ValueInfo], nodes: [Node], initializers: [String: Tensor]) {
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.nodes = nodes
        self.initializers = initializers
    }
}
