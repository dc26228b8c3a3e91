import TensorKernels

/// A forward pass of a whole graph over a large batch that advances node by node on request, so a caller
/// can stop before a unit, work on the tensors alive there, and continue. Tensors are freed after their
/// last reader, as in `Executor`.
///
/// Nodes are evaluated on slices of `chunkSize` samples, so the intermediate tensors of a span of nodes
/// cost `chunkSize` samples of memory; only the tensors still alive at the end of the span are kept for
/// the whole batch.
public struct GraphStream: Sendable {
    /// The graph being run.
    public let graph: Graph
    /// Index of the next node to evaluate.
    public private(set) var position = 0
    /// Tensors alive at `position`, each holding every sample.
    public private(set) var values: [String: Tensor]
    /// Samples per evaluation slice.
    public let chunkSize: Int
    private let lastUse: [String: Int]
    private let samples: Int

    /// A stream over `graph` fed with `inputs` (all with the same number of samples). Tensors in `retain`
    /// are never freed.
    public init(graph: Graph, inputs: [String: Tensor], retain: Set<String> = [], chunkSize: Int = 64) {
        self.graph = graph
        values = inputs
        self.chunkSize = Swift.max(1, chunkSize)
        samples = inputs.values.first?.shape.first ?? 0
        var last: [String: Int] = [:]
        for (i, node) in graph.nodes.enumerated() { for name in node.inputs { last[name] = i } }
        for name in retain.union(graph.outputs.map(\.name)) { last[name] = Int.max }
        lastUse = last
    }

    /// Evaluates nodes until `position == index`. `parameters` override initializers by name; `observe`
    /// may replace each produced tensor (fake quantization; it must act per sample).
    public mutating func advance(to index: Int, parameters: [String: Tensor] = [:],
                                 observe: ((String, Tensor) -> Tensor?)? = nil) throws {
        let end = Swift.min(index, graph.nodes.count)
        guard position < end else { return }
        let span = graph.nodes[position..<end]
        // Tensors that outlive the span: produced or alive now, read at or after `end`.
        let survivors = Set(values.keys).union(span.flatMap(\.outputs)).filter { (lastUse[$0] ?? -1) >= end }
        var collected: [String: [Tensor]] = [:]
        for start in stride(from: 0, to: samples, by: chunkSize) {
            let range = start..<Swift.min(samples, start + chunkSize)
            var local: [String: Tensor] = [:]
            for (name, tensor) in values { local[name] = tensor.rows(range) }
            var step = position
            for node in span {
                let operands = try node.inputs.map { name -> Tensor? in
                    if name.isEmpty { return nil }
                    if let v = local[name] ?? parameters[name] ?? graph.initializers[name] { return v }
                    throw ExecutionError.undefinedTensor(node: node.name, tensor: name)
                }
                for (name, result) in zip(node.outputs, try NodeEvaluator.forward(node, operands)) {
                    local[name] = observe?(name, result) ?? result
                }
                for name in node.inputs where (lastUse[name] ?? 0) <= step { local[name] = nil }
                step += 1
            }
            for name in survivors { if let t = local[name] { collected[name, default: []].append(t) } }
        }
        var next: [String: Tensor] = [:]
        for name in survivors {
            guard let parts = collected[name] else { continue }
            next[name] = parts.count == 1 ? parts[0] : Shaping.concat(parts, axis: 0)
        }
        values = next
        position = end
    }

    /// Replaces the value of an alive tensor (e.g. after quantizing it).
    public mutating func set(_ name: String, _ value: Tensor) { values[name] = value }
}
