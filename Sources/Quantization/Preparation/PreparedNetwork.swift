import Graph
import TensorKernels

/// An FP32 network made ready for quantization: BatchNorms folded, Gemm weights laid out with the output
/// channel first, MatMuls by constant matrices turned into Gemms, and the reconstruction units found.
public struct PreparedNetwork: Sendable {
    /// The folded, canonical FP32 graph.
    public var graph: Graph
    /// Each folded layer's BN gamma, recorded before folding.
    public var gammas: [String: [Float]]
    /// The reconstruction units in network order.
    public var units: [ReconstructionUnit]

    /// Prepares `graph`: folds BN, canonicalises layers and finds units.
    public init(_ graph: Graph) {
        let folded = foldBatchNormalization(Self.canonicalLayers(graph))
        self.graph = folded.graph
        self.gammas = folded.gammas
        self.units = findReconstructionUnits(in: folded.graph, gammas: folded.gammas)
    }

    /// Names of the Conv and Gemm nodes, in graph order.
    public var layerNames: [String] {
        graph.nodes.filter { if case .conv = $0.op { return true }; if case .gemm = $0.op { return true }; return false }.map(\.name)
    }

    /// Gemm with `transB = false` gets its weight transposed so output channels come first; a MatMul of a
    /// 2-D activation by a constant 2-D matrix becomes such a Gemm. Other nodes are unchanged.
    static func canonicalLayers(_ graph: Graph) -> Graph {
        var g = graph
        for (i, node) in g.nodes.enumerated() {
            var transA = false, alpha: Float = 1, beta: Float = 1
            switch node.op {
            case .gemm(let a, let b, let ta, false): (alpha, beta, transA) = (a, b, ta)
            case .matMul: break
            default: continue
            }
            guard !transA, node.inputs.count >= 2, let w = g.initializers[node.inputs[1]], w.rank == 2 else { continue }
            let (k, n) = (w.shape[0], w.shape[1])
            var t = [Float](repeating: 0, count: w.count)
            for r in 0..<k { for c in 0..<n { t[c * k + r] = w.data[r * n + c] } }
            let name = node.name + ".weight_nk"
            g.initializers[name] = Tensor(shape: [n, k], data: t)
            g.nodes[i].inputs[1] = name
            g.nodes[i].op = .gemm(alpha: alpha, beta: beta, transA: false, transB: true)
        }
        let used = Set(g.nodes.flatMap(\.inputs))
        g.initializers = g.initializers.filter { used.contains($0.key) }
        return g
    }
}
