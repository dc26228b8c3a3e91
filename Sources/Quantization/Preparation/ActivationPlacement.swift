import Graph

/// A tensor that carries an activation quantizer, and how wide it is.
public struct ActivationSite: Equatable, Codable, Sendable {
    /// The quantized tensor.
    public var tensor: String
    /// Its bit width.
    public var bits: Int
    /// Whether the tensor is never negative (after ReLU/ReLU6, or pooling of such): its zero point is then 0.
    public var nonNegative: Bool
    /// Whether its zero point must be even: the output of an Add whose inputs are all quantized (see
    /// `quantizedAddOutputs(in:sites:)`).
    public var evenZeroPoint = false
}

/// Bit widths that differ by position in the network (METHOD §2).
public struct BitWidths: Equatable, Codable, Sendable {
    /// Weight bits of the layers in general.
    public var weights: Int
    /// Activation bits in general.
    public var activations: Int
    /// Weight bits of the first and last layer, and the bits of the network input, the first layer's output
    /// and the last layer's input.
    public var firstLast: Int
    /// Quantize the last layer's input at `activations` bits instead of `firstLast` (the authors' release
    /// does, inheriting it from BRECQ).
    public var lowBitClassifierInput = false
    /// When non-zero, the outputs of convolutions that feed a residual Add (main branch and shortcut) get
    /// their own quantizer of this many bits. METHOD §2 leaves them unquantized (the integer engine adds the
    /// int32 accumulators exactly); onnxruntime can only fuse a convolution into `QLinearConv` when its
    /// output is quantized, so this is the setting for QDQ models that must run fully integer there.
    public var residualInputs = 0

    /// Bit widths from their parts.
    public init(weights: Int, activations: Int, firstLast: Int = 8) {
        self.weights = weights
        self.activations = activations
        self.firstLast = firstLast
    }

    private enum CodingKeys: String, CodingKey { case weights, activations, firstLast, lowBitClassifierInput, residualInputs }

    /// Decodes bit widths; the two position switches default to off when absent (older files).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        weights = try c.decode(Int.self, forKey: .weights)
        activations = try c.decode(Int.self, forKey: .activations)
        firstLast = try c.decode(Int.self, forKey: .firstLast)
        lowBitClassifierInput = try c.decodeIfPresent(Bool.self, forKey: .lowBitClassifierInput) ?? false
        residualInputs = try c.decodeIfPresent(Int.self, forKey: .residualInputs) ?? 0
    }
}

/// Operators whose output carries the same quantizer as their input (they never create a value off the grid).
func isQuantizationTransparent(_ op: Operator) -> Bool {
    switch op {
    case .maxPool, .flatten, .reshape, .identity, .transpose, .slice: return true
    default: return false
    }
}

/// The node producing each tensor of `graph`.
func producers(in graph: Graph) -> [String: Node] {
    var producer: [String: Node] = [:]
    for node in graph.nodes { for name in node.outputs { producer[name] = node } }
    return producer
}

/// The tensor whose quantizer `tensor` shares: `tensor` followed back through MaxPool/Flatten/Reshape/Identity/Transpose/Slice.
func quantizationSource(of tensor: String, producers producer: [String: Node]) -> String {
    var t = tensor
    while let p = producer[t], isQuantizationTransparent(p.op), let input = p.inputs.first { t = input }
    return t
}

/// Where activation quantizers go (METHOD §2): on every tensor a Conv/Gemm reads (so the integer engine
/// sees integers), which covers the network input and the inside of blocks, on every unit output, and on
/// the operands and results of Sigmoid, HardSigmoid, HardSwish and of products of two activations, and on
/// Concat outputs.
/// Tensors seen through MaxPool/Flatten/Reshape/Identity share the quantizer of their source. The conv
/// feeding a residual Add and the shortcut conv get none of their own; the logits get none.
public func placeActivationQuantizers(in graph: Graph, units: [ReconstructionUnit], bits: BitWidths) -> [ActivationSite] {
    let producer = producers(in: graph)
    func source(_ tensor: String) -> String { quantizationSource(of: tensor, producers: producer) }
    func nonNegative(_ tensor: String) -> Bool {
        guard let p = producer[tensor] else { return false }
        switch p.op {
        case .relu, .sigmoid, .hardSigmoid: return true
        case .clip(let lo, _): return lo >= 0
        case .maxPool, .averagePool, .globalAveragePool, .flatten, .reshape, .identity, .transpose, .slice: return nonNegative(p.inputs[0])
        case .concat, .mul: return p.inputs.allSatisfy(nonNegative)
        default: return false
        }
    }
    let layers = graph.nodes.filter {
        switch $0.op { case .conv, .gemm, .matMul: return true; default: return false }
    }
    // The logits: the graph's outputs, or the input of a Softmax that produces one (probabilities are a float
    // function of the logits; the integer engine computes them from the dequantized logits).
    let logits = Set(graph.outputs.map { output in
        guard let p = producer[output.name], case .softmax = p.op else { return output.name }
        return p.inputs[0]
    })
    var sites: [String] = []
    func add(_ tensor: String) {
        let s = source(tensor)
        if !logits.contains(s), !sites.contains(s) { sites.append(s) }
    }
    for layer in layers { add(layer.inputs[0]) }
    for unit in units { add(unit.output) }
    // The integer engine computes Sigmoid, HardSigmoid, HardSwish, Gelu and Erf by a table over the input's
    // codes, LayerNormalization in Float between two quantized tensors, and
    // the product of two activations (squeeze-excitation, SiLU) from both codes: their operands and results
    // are quantized. A Concat's output is quantized too, so that inputs on different grids can be joined.
    for node in graph.nodes {
        switch node.op {
        case .sigmoid, .hardSigmoid, .hardSwish, .gelu, .erf, .layerNormalization:
            add(node.inputs[0]); add(node.outputs[0])
        case .mul where node.inputs.allSatisfy({ graph.initializers[$0] == nil }):
            node.inputs.forEach(add); add(node.outputs[0])
        case .concat:
            // Every input is on a grid (a pooled branch too); inputs on different grids are requantized onto
            // the output's grid.
            node.inputs.forEach(add); add(node.outputs[0])
        default: break
        }
    }
    var residual = Set<String>()
    if bits.residualInputs > 0 {
        for node in graph.nodes where node.op == .add {
            for input in node.inputs {
                if let p = producer[input], case .conv = p.op { add(input); residual.insert(input) }
            }
        }
    }

    let firstOutput = units.first { $0.layers.contains(layers.first?.name ?? "") }.map { source($0.output) }
    let lastInput = layers.last.map { source($0.inputs[0]) }
    let inputs = Set(graph.inputs.map(\.name))
    let even = quantizedAddOutputs(in: graph, sites: Set(sites))
    // Keep graph order: a tensor's position is its producer's index (graph inputs first).
    let order = Dictionary(uniqueKeysWithValues: graph.nodes.enumerated().flatMap { i, n in n.outputs.map { ($0, i) } })
    return sites.sorted { (order[$0] ?? -1) < (order[$1] ?? -1) }.map { t in
        let wide = inputs.contains(t) || t == firstOutput || (t == lastInput && !bits.lowBitClassifierInput)
        let width = residual.contains(t) ? bits.residualInputs : (wide ? bits.firstLast : bits.activations)
        return ActivationSite(tensor: t, bits: width, nonNegative: nonNegative(t), evenZeroPoint: even.contains(t))
    }
}

/// The sites that hold the output of an Add whose inputs are all quantized (seen through
/// MaxPool/Flatten/Reshape/Identity), directly or through Relu/Clip: the Adds onnxruntime runs as
/// `QLinearAdd`. Their zero points must be even.
///
/// Why: the integer engine, the simulation and ONNX's QuantizeLinear round first and add the zero point
/// after, `q = round_half_even(x / s) + z`. onnxruntime's QLinearAdd on x86 (MLAS, AVX2 and SSE2 kernels)
/// computes `round_half_even(x / s + z)` in float32 instead: the zero point goes in before the rounding.
/// The two agree for every `x` when `z` is even, and differ by one code on every tie (`x / s = k + 1/2`)
/// when `z` is odd; ties are common there because the inputs sit on finer grids than the output
/// (`s_a / s_y = 2^-k`). With power-of-two scales everything else in that kernel is exact.
public func quantizedAddOutputs(in graph: Graph, sites: Set<String>) -> Set<String> {
    let producer = producers(in: graph)
    func source(_ tensor: String) -> String { quantizationSource(of: tensor, producers: producer) }
    return sites.filter { site in
        var node = producer[site]
        while let p = node {
            switch p.op {
            case .relu, .clip: node = producer[p.inputs[0]]
            case .add: return p.inputs.allSatisfy { sites.contains(source($0)) }
            default: return false
            }
        }
        return false
    }
}
