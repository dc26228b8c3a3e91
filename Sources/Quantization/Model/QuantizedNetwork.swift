import Graph
import TensorKernels

/// A quantized network as a value: the FP32 structure, integer weights per layer, and a quantizer per
/// activation site. It can be simulated (fake-quantized FP32), run by the integer engine, saved and exported.
public struct QuantizedNetwork: Sendable {
    /// The prepared graph (BN folded). Initializers of quantized layers' weights and biases are not used:
    /// the layers below replace them.
    public var graph: Graph
    /// Reconstruction units, in network order.
    public var units: [ReconstructionUnit]
    /// Quantized layers by node name.
    public var layers: [String: QuantizedLayer]
    /// Activation quantizers by tensor name.
    public var activations: [String: QuantizerParameters]
    /// The method that produced the network (`rtn`, `naive-pot`, `rapq`, ...).
    public var method: String
    /// The bit widths asked for.
    public var bits: BitWidths

    /// A network from its parts.
    public init(graph: Graph, units: [ReconstructionUnit], layers: [String: QuantizedLayer],
                activations: [String: QuantizerParameters], method: String, bits: BitWidths) {
        self.graph = graph
        self.units = units
        self.layers = layers
        self.activations = activations
        self.method = method
        self.bits = bits
    }

    /// The scale of the quantizer on `tensor`, looking through MaxPool/Flatten/Reshape/Identity.
    public func activationQuantizer(for tensor: String) -> QuantizerParameters? {
        var t = tensor
        while activations[t] == nil, let p = graph.nodes.first(where: { $0.outputs.contains(t) }),
              isQuantizationTransparent(p.op), let input = p.inputs.first { t = input }
        return activations[t]
    }

    /// The FP32 graph that simulates this network: each layer's weights are its dequantized codes and its
    /// bias the int32 bias rescaled, exactly as the integer engine uses them.
    public func simulationGraph() -> Graph {
        var g = graph
        for (i, node) in g.nodes.enumerated() {
            guard let layer = layers[node.name] else { continue }
            let weightName = node.name + ".quantized_weight", biasName = node.name + ".quantized_bias"
            g.initializers[weightName] = Tensor(shape: layer.weightShape, data: layer.dequantizedWeights)
            let inputScale = activationQuantizer(for: layer.input)?.scales[0]
            g.initializers[biasName] = Tensor(shape: [layer.channels], data: inputScale.map { layer.simulatedBias(inputScale: $0) } ?? layer.bias)
            g.nodes[i].inputs = [node.inputs[0], weightName, biasName]
        }
        let used = Set(g.nodes.flatMap(\.inputs))
        g.initializers = g.initializers.filter { used.contains($0.key) }
        return g
    }
}

/// Fake-quantizes a tensor in place with a per-tensor quantizer.
public func fakeQuantize(_ tensor: inout Tensor, with q: QuantizerParameters) {
    let s = q.scales[0], z = q.zeroPoints[0], grid = q.grid
    tensor.withUnsafeMutableBufferPointer { buffer in
        for i in buffer.indices { buffer[i] = UniformQuantization.fakeQuantize(buffer[i], scale: s, zeroPoint: z, grid: grid) }
    }
}
