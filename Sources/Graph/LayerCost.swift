import TensorKernels

/// The parameter count and arithmetic cost of one node for given tensor shapes.
public struct LayerCost: Equatable, Sendable {
    /// Number of weight and bias elements the node reads from initializers.
    public var parameters: Int
    /// Multiply-accumulate operations for one forward pass of the whole batch.
    public var multiplyAccumulates: Int

    /// FLOPs counted as two per multiply-accumulate (`Int.max` when that overflows).
    public var flops: Int { Self.product(2, multiplyAccumulates) }

    /// `a * b`, or `Int.max` when the product overflows: costs are only reported, and shapes from a file
    /// with a huge batch must not trap.
    public static func product(_ a: Int, _ b: Int) -> Int {
        let (p, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? Int.max : p
    }

    private static func product(_ shape: [Int]) -> Int { shape.reduce(1, product) }

    /// The cost of `node` in `graph`, given every tensor's shape (from shape inference).
    public init(node: Node, graph: Graph, shapes: [String: [Int]]) {
        parameters = node.inputs.compactMap { graph.initializers[$0]?.count }.reduce(0) { $0.addingReportingOverflow($1).overflow ? Int.max : $0 + $1 }
        let output = node.outputs.first.flatMap { shapes[$0] } ?? []
        switch node.op {
        case .conv:
            let weight = node.inputs.count > 1 ? graph.initializers[node.inputs[1]]?.shape ?? shapes[node.inputs[1]] ?? [] : []
            // Each output element sums C/groups * kH * kW products.
            multiplyAccumulates = Self.product(Self.product(output), Self.product(Array(weight.dropFirst())))
        case .gemm(_, _, let transA, _):
            let a = shapes[node.inputs[0]] ?? []
            let k = a.count == 2 ? (transA ? a[0] : a[1]) : 0
            multiplyAccumulates = Self.product(Self.product(output), k)
        case .matMul:
            let a = shapes[node.inputs[0]] ?? []
            multiplyAccumulates = Self.product(Self.product(output), a.last ?? 0)
        default:
            multiplyAccumulates = 0
        }
    }
}
