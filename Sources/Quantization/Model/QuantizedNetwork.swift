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

/// Fake-quantizes a tensor in place with a per-tensor quantizer: element for element the same values as
/// `UniformQuantization.fakeQuantize`, in a loop the compiler vectorises.
public func fakeQuantize(_ tensor: inout Tensor, with q: QuantizerParameters) {
    tensor.withUnsafeMutableBufferPointer { buffer in
        guard let x = buffer.baseAddress else { return }
        ElementMap.forEachChunk(buffer.count) { offset, n in fakeQuantizeElements(x + offset, into: x + offset, count: n, with: q) }
    }
}

/// `x` fake-quantized with `q` into a new tensor (one pass over memory, where copying and then quantizing
/// in place takes two).
public func fakeQuantized(_ x: Tensor, with q: QuantizerParameters) -> Tensor {
    ElementMap.unary(x) { source, target, n in fakeQuantizeElements(source, into: target, count: n, with: q) }
}

/// The element loop of `fakeQuantize` (`source` and `target` may be the same buffer).
@inline(__always)
private func fakeQuantizeElements(_ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<Float>, count: Int,
                                  with q: QuantizerParameters) {
    let s = q.scales[0], z = q.zeroPoints[0], lo = Float(q.grid.qmin), hi = Float(q.grid.qmax)
    for i in 0..<count {
        var code = RoundHalfEven.rounded(source[i] / s) + z
        code = code < lo ? lo : (code > hi ? hi : code)
        target[i] = (code - z) * s
    }
}

/// The straight-through gradient of `fakeQuantize`: `gradient` (w.r.t. the fake-quantized tensor) passes
/// unchanged where `x` rounds to a code inside the grid and is zeroed where `x` was clamped.
public func fakeQuantizeBackward(_ x: Tensor, with q: QuantizerParameters, gradient: inout Tensor) {
    precondition(x.count == gradient.count, "gradient and input sizes differ")
    let s = q.scales[0], z = q.zeroPoints[0], lo = Float(q.grid.qmin), hi = Float(q.grid.qmax)
    x.withUnsafeBufferPointer { xs in
        gradient.withUnsafeMutableBufferPointer { gs in
            guard let x = xs.baseAddress, let g = gs.baseAddress else { return }
            ElementMap.forEachChunk(xs.count) { offset, n in
                for i in offset..<(offset + n) {
                    // A bit mask rather than a branch, so the loop vectorises (NaN codes count as outside).
                    let code = RoundHalfEven.rounded(x[i] / s) + z
                    let inside: UInt32 = (code >= lo ? ~0 : 0) & (code <= hi ? ~0 : 0)
                    g[i] = Float(bitPattern: g[i].bitPattern & inside)
                }
            }
        }
    }
}

/// `rounded(.toNearestOrEven)` without a library call, so loops using it vectorise on plain SSE2.
enum RoundHalfEven {
    /// Adding and subtracting 1.5 * 2^23 leaves a float rounded half-to-even to an integer when its
    /// magnitude is below 2^22; larger magnitudes are clamped to ±2^22 first (every grid is far narrower,
    /// so the clamped code is the same). NaN stays NaN.
    @inline(__always)
    static func rounded(_ v: Float) -> Float {
        let limit: Float = 4_194_304, shifter: Float = 12_582_912
        let bounded = v < -limit ? -limit : (v > limit ? limit : v)
        return (bounded + shifter) - shifter
    }
}
