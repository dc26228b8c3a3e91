import TensorKernels

/// Runs a graph forward on a batch, freeing each intermediate tensor after its last reader.
public struct Executor: Sendable {
    /// The graph being run.
    public let graph: Graph
    /// For each node, the names of tensors whose last reader it is (freed after it runs).
    private let releaseAfter: [[String]]
    /// For each node, the output bounds of an activation fused into it (convolutions only).
    private let clamps: [ClosedRange<Float>?]

    /// Prepares `graph` for execution; fails if a node reads a tensor that is not defined before it.
    ///
    /// With `fuseActivations`, each Relu or Clip whose input is a convolution output that nothing else
    /// reads is computed inside that convolution as its output is written (the same values, one pass
    /// fewer over memory). The convolution's own output then never exists, so it cannot be kept or
    /// observed; `graph` is the graph actually run.
    public init(graph original: Graph, fuseActivations: Bool = false) throws {
        HeapPolicy.reuseLargeBlocks()
        var graph = original
        var clamps = [ClosedRange<Float>?](repeating: nil, count: graph.nodes.count)
        if fuseActivations { Self.fuseActivations(&graph, clamps: &clamps) }
        self.graph = graph
        self.clamps = clamps
        var defined = Set(graph.inputs.map(\.name)).union(graph.initializers.keys)
        var lastUse: [String: Int] = [:]
        for (index, node) in graph.nodes.enumerated() {
            for name in node.inputs where !name.isEmpty {
                guard defined.contains(name) else { throw ExecutionError.undefinedTensor(node: node.name, tensor: name) }
                lastUse[name] = index
            }
            defined.formUnion(node.outputs)
        }
        for output in graph.outputs where !defined.contains(output.name) {
            throw ExecutionError.unknownTensor(name: output.name)
        }
        let kept = Set(graph.outputs.map(\.name)).union(graph.initializers.keys).union(graph.inputs.map(\.name))
        var release = [[String]](repeating: [], count: graph.nodes.count)
        for (name, index) in lastUse where !kept.contains(name) { release[index].append(name) }
        self.releaseAfter = release.map { $0.sorted() }
    }

    /// Runs the graph and returns its outputs, plus any tensor named in `keep`.
    ///
    /// `observe`, when given, sees each graph input and each node output as it is produced and may replace
    /// it (a quantization simulation fake-quantizes activations here); what it leaves is what later nodes read.
    public func run(_ inputs: [String: Tensor], keep: Set<String> = [],
                    observe: ((String, inout Tensor) throws -> Void)? = nil) throws -> [String: Tensor] {
        var values: [String: Tensor] = [:]
        for info in graph.inputs {
            guard let tensor = inputs[info.name] else { throw ExecutionError.missingInput(name: info.name) }
            try Self.check(tensor.shape, against: info)
            var value = tensor
            try observe?(info.name, &value)
            values[info.name] = value
        }
        for name in keep where !graph.nodes.contains(where: { $0.outputs.contains(name) }) && values[name] == nil {
            throw ExecutionError.unknownTensor(name: name)
        }
        for (index, node) in graph.nodes.enumerated() {
            let operands = try node.inputs.map { name -> Tensor? in
                if name.isEmpty { return nil }
                if let value = values[name] ?? graph.initializers[name] { return value }
                throw ExecutionError.undefinedTensor(node: node.name, tensor: name)
            }
            let results = try NodeEvaluator.forward(node, operands, clamp: clamps[index])
            for (name, tensor) in zip(node.outputs, results) {
                var value = tensor
                try observe?(name, &value)
                values[name] = value
            }
            for name in releaseAfter[index] where !keep.contains(name) { values[name] = nil }
        }
        var result: [String: Tensor] = [:]
        for output in graph.outputs { result[output.name] = values[output.name] }
        for name in keep { result[name] = values[name] ?? graph.initializers[name] }
        return result
    }

    /// Folds each Relu or Clip that alone reads a convolution's output into that convolution: the
    /// convolution takes over the activation's outputs and records its bounds in `clamps`.
    private static func fuseActivations(_ graph: inout Graph, clamps: inout [ClosedRange<Float>?]) {
        var readers: [String: [Int]] = [:]
        for (index, node) in graph.nodes.enumerated() {
            for name in node.inputs where !name.isEmpty { readers[name, default: []].append(index) }
        }
        let graphOutputs = Set(graph.outputs.map(\.name))
        var removed = Set<Int>()
        for (index, node) in graph.nodes.enumerated() {
            guard case .conv = node.op, node.outputs.count == 1, let output = node.outputs.first,
                  !graphOutputs.contains(output), let reader = readers[output], reader.count == 1 else { continue }
            let activation = graph.nodes[reader[0]]
            let bounds: ClosedRange<Float>
            switch activation.op {
            case .relu: bounds = 0...Float.infinity
            case .clip(let lo, let hi) where lo <= hi: bounds = lo...hi
            default: continue
            }
            graph.nodes[index].outputs = activation.outputs
            clamps[index] = bounds
            removed.insert(reader[0])
        }
        clamps = clamps.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    /// Checks a supplied shape against a declared one (`nil` dimensions match anything).
    static func check(_ shape: [Int], against info: ValueInfo) throws {
        guard shape.count == info.dimensions.count,
              zip(shape, info.dimensions).allSatisfy({ $1 == nil || $0 == $1! })
        else { throw ExecutionError.inputShapeMismatch(name: info.name, expected: info.dimensions, got: shape) }
    }
}
