import TensorKernels

/// A forward pass of a whole graph over a large batch that advances node by node on request, so a caller
/// can stop before a unit, work on the tensors alive there, and continue. Tensors are freed after their
/// last reader, as in `Executor`.
public struct GraphStream: Sendable {
    /// The graph being run.
    public let graph: Graph
    /// Index of the next node to evaluate.
    public private(set) var position = 0
    /// Tensors alive at `position`.
    public private(set) var values: [String: Tensor]
    private let lastUse: [String: Int]

    /// A stream over `graph` fed with `inputs`. Tensors in `retain` are never freed.
    public init(graph: Graph, inputs: [String: Tensor], retain: Set<String> = []) {
        self.graph = graph
        values = inputs
        var last: [String: Int] = [:]
        for (i, node) in graph.nodes.enumerated() { for name in node.inputs { last[name] = i } }
        for name in retain.union(graph.outputs.map(\.name)) { last[name] = Int.max }
        lastUse = last
    }

    /// Evaluates nodes until `position == index`. `parameters` override initializers by name; `observe`
    /// may replace each produced tensor (fake quantization).
    public mutating func advance(to index: Int, parameters: [String: Tensor] = [:],
                                 observe: ((String, Tensor) -> Tensor?)? = nil) throws {
        while position < Swift.min(index, graph.nodes.count) {
            let node = graph.nodes[position]
            let operands = try node.inputs.map { name -> Tensor? in
                if name.isEmpty { return nil }
                if let v = values[name] ?? parameters[name] ?? graph.initializers[name] { return v }
                throw ExecutionError.undefinedTensor(node: node.name, tensor: name)
            }
            for (name, result) in zip(node.outputs, try NodeEvaluator.forward(node, operands)) {
                values[name] = observe?(name, result) ?? result
            }
            for name in node.inputs where (lastUse[name] ?? 0) <= position { values[name] = nil }
            position += 1
        }
    }

    /// Replaces the value of an alive tensor (e.g. after quantizing it).
    public mutating func set(_ name: String, _ value: Tensor) { values[name] = value }
}
