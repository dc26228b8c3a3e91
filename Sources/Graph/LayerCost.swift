import TensorKernels

/// The parameter count and arithmetic cost of one node for given tensor shapes.
public struct LayerCost: Equatable, Sendable {
    /// Number of weight and bias elements the node reads from initializers.
    public var parameters: Int
    /// Multiply-accumulate operations for one forward pass of the whole batch.
    public var multiplyAccumulates: Int

    /// FLOPs counted as two per multiply-accumulate.
    public var flops: Int { 2 * multiplyAccumulates }

    /// The cost of `node` in `graph`, given every tensor's shape (from shape inference).
    public init(node: Node, graph: Graph, shapes: [String: [Int]]) {
        parameters = node.inputs.compactMap { graph.initializers[$0]?.count }.reduce(0, +)
        let output = node.outputs.first.flatMap { shapes[$0] } ?? []
        switch node.op {
        case .conv:
            let weight = node.inputs.count > 1 ? graph.initializers[node.inputs[1]]?.shape ?? shapes[node.inputs[1]] ?? [] : []
            // Each output element sums C/groups * kH * kW products.
            multiplyAccumulates = output.shapeProduct * Array(weight.dropFirst()).shapeProduct
        case .gemm(_, _, let transA, _):
            let a = shapes[node.inputs[0]] ?? []
            let k = a.count == 2 ? (transA ? a[0] : a[1]) : 0
            multiplyAccumulates = output.shapeProduct * k
        case .matMul:
            let a = shapes[node.inputs[0]] ?? []
            multiplyAccumulates = output.shapeProduct * (a.last ?? 0)
        default:
            multiplyAccumulates = 0
        }
    }
}
