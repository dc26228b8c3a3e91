import Graph
import TensorKernels

/// Patterns exporters write for operations the IR has as one node, rewritten after conversion so that the
/// rest of the pipeline sees what the network computes:
///
/// - GELU, which `torch.onnx.export` writes as `Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5)` (and other
///   orders of the same factors), becomes one `.gelu` node;
/// - layers that run channels-last between `Transpose(0,2,3,1)` and `Transpose(0,3,1,2)` (ConvNeXt's
///   LayerNorm2d and its pointwise MLP written as `nn.Linear` on NHWC tensors) become their NCHW forms: a
///   MatMul by a constant `[C, K]` matrix is the 1x1 convolution with weight `[K, C, 1, 1]` (its bias Add
///   becomes the convolution's bias), a LayerNormalization over the last axis normalizes the channel axis,
///   per-channel constants are reshaped to `[1, K, 1, 1]`, and both Transposes disappear.
///
/// Both rewrites keep the names of the tensors the rest of the graph reads, so a quantized model exported
/// and imported again has the same tensors and nodes.
enum GraphRewrites {
    static func apply(_ graph: inout Graph) {
        fuseGELU(&graph)
        moveChannelsFirst(&graph)
        let read = Set(graph.nodes.flatMap(\.inputs))
        graph.initializers = graph.initializers.filter { read.contains($0.key) }
    }

    /// Who produces and who reads each tensor, and which tensors the graph returns.
    private struct Topology {
        var producer: [String: Int] = [:]
        var readers: [String: [Int]] = [:]
        let outputs: Set<String>

        init(_ graph: Graph) {
            outputs = Set(graph.outputs.map(\.name))
            for (i, node) in graph.nodes.enumerated() {
                for name in node.outputs { producer[name] = i }
                for name in Set(node.inputs) where !name.isEmpty { readers[name, default: []].append(i) }
            }
        }

        /// The one node reading `tensor`, when exactly one does and the graph does not return it.
        func soleReader(of tensor: String) -> Int? {
            guard !outputs.contains(tensor), let r = readers[tensor], r.count == 1 else { return nil }
            return r[0]
        }
    }

    /// The value of a one-element constant, if `tensor` is one.
    private static func scalar(_ tensor: String, in graph: Graph) -> Float? {
        guard let t = graph.initializers[tensor], t.count == 1 else { return nil }
        return t.data[0]
    }

    private static func close(_ a: Float, _ b: Double) -> Bool { abs(Double(a) - b) <= 1e-6 * abs(b) }

    // MARK: - GELU

    private static func fuseGELU(_ graph: inout Graph) {
        let topology = Topology(graph)
        var removed = Set<Int>()
        var replaced: [Int: Node] = [:]
        for (erfIndex, erf) in graph.nodes.enumerated() where erf.op == .erf {
            guard let match = matchGELU(erfIndex: erfIndex, in: graph, topology) else { continue }
            let last = graph.nodes[match.last]
            replaced[match.last] = Node(name: last.name, op: .gelu, inputs: [match.input], outputs: last.outputs)
            removed.formUnion(match.nodes.filter { $0 != match.last })
        }
        guard !replaced.isEmpty else { return }
        graph.nodes = graph.nodes.indices.compactMap { i in removed.contains(i) ? nil : (replaced[i] ?? graph.nodes[i]) }
    }

    /// The nodes of a GELU around the Erf at `erfIndex`: `x · (1 + erf(x · 1/√2)) · 1/2` with the factors `x`
    /// and `1/2` applied in any order (also as one factor `x · 1/2`), every intermediate read once.
    private static func matchGELU(erfIndex: Int, in graph: Graph, _ topology: Topology) -> (input: String, nodes: [Int], last: Int)? {
        let nodes = graph.nodes
        let erf = nodes[erfIndex]
        // Erf(x · 1/√2): the importer turned Div(x, √2) into a product with the reciprocal.
        guard let scaling = topology.producer[erf.inputs[0]], topology.soleReader(of: erf.inputs[0]) == erfIndex,
              nodes[scaling].op == .mul, nodes[scaling].inputs.count == 2 else { return nil }
        let scalingInputs = nodes[scaling].inputs
        guard let constant = scalingInputs.firstIndex(where: { scalar($0, in: graph).map { close($0, 0.5.squareRoot()) } ?? false })
        else { return nil }
        let x = scalingInputs[1 - constant]
        guard graph.initializers[x] == nil else { return nil }
        // 1 + erf(...)
        guard let addIndex = topology.soleReader(of: erf.outputs[0]), nodes[addIndex].op == .add,
              nodes[addIndex].inputs.contains(where: { scalar($0, in: graph) == 1 }) else { return nil }
        var matched = [scaling, erfIndex, addIndex]
        // Then products by `x` and by 1/2 (or by a tensor `x · 1/2` computed beside it), in any order.
        var current = nodes[addIndex].outputs[0]
        var haveX = false, haveHalf = false
        while !(haveX && haveHalf) {
            guard let next = topology.soleReader(of: current), nodes[next].op == .mul, nodes[next].inputs.count == 2 else { return nil }
            let other = nodes[next].inputs[0] == current ? nodes[next].inputs[1] : nodes[next].inputs[0]
            if other == x, !haveX {
                haveX = true
            } else if let v = scalar(other, in: graph), close(v, 0.5), !haveHalf {
                haveHalf = true
            } else if !haveX, !haveHalf, let half = topology.producer[other], topology.soleReader(of: other) == next,
                      nodes[half].op == .mul, nodes[half].inputs.contains(x),
                      nodes[half].inputs.contains(where: { scalar($0, in: graph).map { close($0, 0.5) } ?? false }) {
                haveX = true
                haveHalf = true
                matched.append(half)
            } else {
                return nil
            }
            matched.append(next)
            current = nodes[next].outputs[0]
        }
        return (x, matched, matched.last!)
    }

    // MARK: - Channels-last layers

    private static func moveChannelsFirst(_ graph: inout Graph) {
        let topology = Topology(graph)
        var removed = Set<Int>()
        var replaced: [Int: Node] = [:]
        for (first, node) in graph.nodes.enumerated() where node.op == .transpose(permutation: [0, 2, 3, 1]) {
            guard let chain = channelsLastChain(from: first, in: graph, topology) else { continue }
            rewrite(chain: chain, opening: first, in: &graph, removed: &removed, replaced: &replaced)
        }
        guard !replaced.isEmpty else { return }
        graph.nodes = graph.nodes.indices.compactMap { i in removed.contains(i) ? nil : (replaced[i] ?? graph.nodes[i]) }
    }

    /// The nodes between a `Transpose(0,2,3,1)` at `first` and the `Transpose(0,3,1,2)` that undoes it, each
    /// reading only the previous one's output, all with an NCHW form; the closing Transpose is the last.
    private static func channelsLastChain(from first: Int, in graph: Graph, _ topology: Topology) -> [Int]? {
        var chain: [Int] = []
        var current = graph.nodes[first].outputs[0]
        while let next = topology.soleReader(of: current) {
            let node = graph.nodes[next]
            guard node.inputs.first == current || node.op == .add || node.op == .mul else { return nil }
            switch node.op {
            case .transpose(let permutation) where permutation == [0, 3, 1, 2]:
                return chain + [next]
            case .layerNormalization(let norm):
                guard norm.span == nil, norm.axis == -1 || norm.axis == 3,
                      node.inputs.dropFirst().allSatisfy({ graph.initializers[$0] != nil }) else { return nil }
            case .matMul:
                guard node.inputs.count == 2, let w = graph.initializers[node.inputs[1]], w.rank == 2 else { return nil }
            case .add, .mul:
                guard node.inputs.count == 2, node.inputs.contains(current),
                      let c = constantOperand(of: node, in: graph), lastAxisConstant(c.value) else { return nil }
            case .relu, .clip, .sigmoid, .hardSigmoid, .hardSwish, .gelu, .erf, .identity:
                break
            default:
                return nil
            }
            chain.append(next)
            current = node.outputs[0]
        }
        return nil
    }

    /// The constant operand of a binary node and its value (exporters put it first or second).
    private static func constantOperand(of node: Node, in graph: Graph) -> (name: String, value: Tensor)? {
        guard let name = node.inputs.first(where: { graph.initializers[$0] != nil }) else { return nil }
        return (name, graph.initializers[name]!)
    }

    /// Whether a constant broadcasts along the last axis only (`[K]`, `[1, K]`, `[1, 1, 1, K]`, or one value).
    private static func lastAxisConstant(_ c: Tensor) -> Bool {
        c.count == 1 || (c.rank >= 1 && c.rank <= 4 && c.shape.dropLast().allSatisfy { $0 == 1 })
    }

    private static func rewrite(chain: [Int], opening first: Int, in graph: inout Graph, removed: inout Set<Int>,
                                replaced: inout [Int: Node]) {
        let closing = chain.last!
        removed.insert(first)
        removed.insert(closing)
        let source = graph.nodes[first].inputs[0]
        let body = Array(chain.dropLast())
        guard !body.isEmpty else {
            replaced[closing] = Node(name: graph.nodes[closing].name, op: .identity, inputs: [source], outputs: graph.nodes[closing].outputs)
            removed.remove(closing)
            return
        }
        var input = source
        var k = 0
        while k < body.count {
            let index = body[k]
            var node = graph.nodes[index]
            if node.op != .add && node.op != .mul { node.inputs[0] = input }
            switch node.op {
            case .layerNormalization(let norm):
                node.op = .layerNormalization(LayerNormalization(axis: 1, span: 1, epsilon: norm.epsilon))
            case .matMul:
                let w = graph.initializers[node.inputs[1]]!
                let (c, m) = (w.shape[0], w.shape[1])
                let weightName = node.name + ".pointwise_weight"
                graph.initializers[weightName] = Tensor(shape: [m, c, 1, 1], data: (0..<(m * c)).map { w.data[($0 % c) * m + $0 / c] })
                node.op = .conv(Conv2DParameters(window: WindowGeometry(kernel: (1, 1)), groups: 1))
                node.inputs = [input, weightName]
                // A following Add of a per-channel constant is the convolution's bias.
                if k + 1 < body.count, graph.nodes[body[k + 1]].op == .add,
                   let b = constantOperand(of: graph.nodes[body[k + 1]], in: graph)?.value, b.count == m || b.count == 1 {
                    let biasName = node.name + ".pointwise_bias"
                    graph.initializers[biasName] = Tensor(shape: [m], data: (0..<m).map { b.data[b.count == 1 ? 0 : $0] })
                    node.inputs.append(biasName)
                    node.outputs = graph.nodes[body[k + 1]].outputs
                    removed.insert(body[k + 1])
                    k += 1
                }
            case .add, .mul:
                let (name, c) = constantOperand(of: node, in: graph)!
                node.inputs = [input, name]
                if c.count > 1 {
                    let moved = name + "/channels_first"
                    graph.initializers[moved] = Tensor(shape: [1, c.count, 1, 1], data: c.data)
                    node.inputs[1] = moved
                }
            default:
                break
            }
            if k == body.count - 1 { node.outputs = graph.nodes[closing].outputs }
            replaced[index] = node
            input = node.outputs[0]
            k += 1
        }
    }
}
