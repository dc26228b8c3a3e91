/// Before opset 17 ONNX had no LayerNormalization, and exporters write it out as
///
///     mean = ReduceMean(x, axes)        d = Sub(x, mean)          v = ReduceMean(Pow(d, 2), axes)
///     y = Div(d, Sqrt(Add(v, ε)))       out = Add(Mul(y, γ), β)
///
/// (the squares also as `Mul(d, d)`, the constants on either side of the commutative nodes, β optional; the
/// constants may be initializers, Constant nodes, or Identity nodes of either).
/// This pass finds such chains in the file's nodes and replaces each with one `LayerNormalization` node
/// before conversion, so that the rest of the importer, the channels-last rewrite and the engines see one
/// operation. Only chains over trailing axes given as negative numbers (`[-1]`, `[-2, -1]`, …) match: a
/// LayerNormalization's axis counts from the end, and the rank of `x` is not known at this point. Every
/// intermediate must be read only inside the chain; anything else is left as it is (and reported as
/// unsupported operators if the importer cannot read it).
enum LayerNormDecomposition {
    static func fuse(_ graph: inout Onnx_GraphProto) {
        var values: [String: Onnx_TensorProto] = [:]
        for tensor in graph.initializer { values[tensor.name] = tensor }
        for node in graph.node where node.opType == "Constant" && node.output.count == 1 {
            if let attribute = node.attribute.first(where: { $0.name == "value" }), attribute.hasT { values[node.output[0]] = attribute.t }
        }
        // Exporters share equal parameters through Identity nodes on constants: those outputs are constants too.
        var grew = true
        while grew {
            grew = false
            for node in graph.node where node.opType == "Identity" && node.input.count == 1 && node.output.count == 1 {
                if values[node.output[0]] == nil, let value = values[node.input[0]] { values[node.output[0]] = value; grew = true }
            }
        }
        let chains = Matcher(graph, constants: values)
        var removed = Set<Int>()
        var fused: [Int: Onnx_NodeProto] = [:]
        for (index, node) in graph.node.enumerated() where isDefault(node) && node.opType == "ReduceMean" {
            guard let chain = chains.match(meanAt: index), removed.isDisjoint(with: chain.nodes) else { continue }
            removed.formUnion(chain.nodes)
            fused[chain.last] = chain.layerNormalization
        }
        guard !fused.isEmpty else { return }
        graph.node = graph.node.indices.compactMap { i in fused[i] ?? (removed.contains(i) ? nil : graph.node[i]) }
    }

    private static func isDefault(_ node: Onnx_NodeProto) -> Bool { node.domain.isEmpty || node.domain == "ai.onnx" }

    private struct Chain {
        var nodes: [Int]
        var last: Int
        var layerNormalization: Onnx_NodeProto
    }

    private struct Matcher {
        let nodes: [Onnx_NodeProto]
        let constants: [String: Onnx_TensorProto]
        var producer: [String: Int] = [:]
        var readers: [String: [Int]] = [:]
        let outputs: Set<String>

        init(_ graph: Onnx_GraphProto, constants: [String: Onnx_TensorProto]) {
            nodes = graph.node
            self.constants = constants
            outputs = Set(graph.output.map(\.name))
            for (i, node) in graph.node.enumerated() {
                for name in node.output where !name.isEmpty { producer[name] = i }
                for name in Set(node.input) where !name.isEmpty { readers[name, default: []].append(i) }
            }
        }

        /// The nodes reading `tensor`, when the graph does not also return it.
        private func internalReaders(of tensor: String) -> [Int]? {
            outputs.contains(tensor) ? nil : readers[tensor] ?? []
        }

        /// The one default-domain node with operator `op` reading `tensor`, if it is its only reader.
        private func soleReader(of tensor: String, op: String) -> Int? {
            guard let r = internalReaders(of: tensor), r.count == 1, nodes[r[0]].opType == op, isDefault(nodes[r[0]]) else { return nil }
            return r[0]
        }

        /// The value of a one-element float constant.
        private func scalar(_ name: String) -> Float? {
            guard let proto = constants[name], let tensor = try? ONNXImporter.tensor(from: proto), tensor.count == 1 else { return nil }
            return tensor.data[0]
        }

        /// The operand of the two-input node at `index` other than `tensor` (nil unless exactly one input is `tensor`).
        private func other(than tensor: String, at index: Int) -> String? {
            let inputs = nodes[index].input
            guard inputs.count == 2, (inputs[0] == tensor) != (inputs[1] == tensor) else { return nil }
            return inputs[0] == tensor ? inputs[1] : inputs[0]
        }

        /// The axes a ReduceMean keeping its dimensions averages over, when they are the trailing axes counted
        /// from the end (`[-k, …, -1]`): returns `-k`.
        private func trailingAxis(ofMean index: Int) -> Int? {
            let node = nodes[index]
            guard node.output.count == 1 else { return nil }
            var axes: [Int64] = []
            for attribute in node.attribute {
                switch attribute.name {
                case "axes": axes = attribute.ints
                case "keepdims": guard attribute.i == 1 else { return nil }
                case "noop_with_empty_axes": guard attribute.i == 0 else { return nil }
                default: return nil
                }
            }
            if node.input.count == 2 {  // opset 18: the axes are an input
                guard let proto = constants[node.input[1]], proto.dataType == 7 else { return nil }
                axes = proto.int64Data.isEmpty
                    ? stride(from: 0, to: proto.rawData.count / 8, by: 1).map { i in
                        proto.rawData.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)) } }
                    : proto.int64Data
            }
            let sorted = axes.sorted()
            guard let first = sorted.first, first < 0, first >= -64, sorted == Array(first...(-1)) else { return nil }
            return Int(first)
        }

        func match(meanAt meanIndex: Int) -> Chain? {
            let mean = nodes[meanIndex]
            guard let axis = trailingAxis(ofMean: meanIndex), let x = mean.input.first, !x.isEmpty else { return nil }
            // d = x - mean, read by the square and the division only.
            guard let sub = soleReader(of: mean.output[0], op: "Sub"), nodes[sub].input == [x, mean.output[0]] else { return nil }
            let d = nodes[sub].output[0]
            guard let dReaders = internalReaders(of: d), dReaders.count == 2 else { return nil }
            var square: Int?, division: Int?
            for r in dReaders {
                let node = nodes[r]
                if node.opType == "Pow", node.input.count == 2, node.input[0] == d, scalar(node.input[1]) == 2 { square = r }
                else if node.opType == "Mul", node.input == [d, d] { square = r }
                else if node.opType == "Div", node.input.count == 2, node.input[0] == d { division = r }
            }
            guard let square, let division else { return nil }
            guard let variance = soleReader(of: nodes[square].output[0], op: "ReduceMean"),
                  trailingAxis(ofMean: variance) == axis,
                  let addEpsilon = soleReader(of: nodes[variance].output[0], op: "Add"),
                  let epsilonName = other(than: nodes[variance].output[0], at: addEpsilon), let epsilon = scalar(epsilonName),
                  epsilon.isFinite, epsilon >= 0,
                  let root = soleReader(of: nodes[addEpsilon].output[0], op: "Sqrt"),
                  nodes[division].input[1] == nodes[root].output[0],
                  soleReader(of: nodes[root].output[0], op: "Div") == division
            else { return nil }
            // The affine part: a Mul by a constant γ (required: LayerNormalization has a scale), then an
            // optional Add of a constant β.
            let normalized = nodes[division].output[0]
            guard let scale = soleReader(of: normalized, op: "Mul"), let gamma = other(than: normalized, at: scale),
                  constants[gamma] != nil else { return nil }
            var chain = [meanIndex, sub, square, variance, addEpsilon, root, division, scale]
            var last = scale, inputs = [x, gamma]
            if let shift = soleReader(of: nodes[scale].output[0], op: "Add"), let beta = other(than: nodes[scale].output[0], at: shift),
               constants[beta] != nil {
                chain.append(shift)
                last = shift
                inputs.append(beta)
            }
            var node = Onnx_NodeProto()
            node.opType = "LayerNormalization"
            node.name = nodes[last].name
            node.input = inputs
            node.output = [nodes[last].output[0]]
            var axisAttribute = Onnx_AttributeProto()
            axisAttribute.name = "axis"
            axisAttribute.type = .int
            axisAttribute.i = Int64(axis)
            var epsilonAttribute = Onnx_AttributeProto()
            epsilonAttribute.name = "epsilon"
            epsilonAttribute.type = .float
            epsilonAttribute.f = epsilon
            node.attribute = [axisAttribute, epsilonAttribute]
            return Chain(nodes: chain, last: last, layerNormalization: node)
        }
    }
}
