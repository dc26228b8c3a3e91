import Graph
import TensorKernels

/// How weights and activations are initialised before any reconstruction.
public struct CalibrationOptions: Equatable, Codable, Sendable {
    /// Bit widths by position.
    public var bits: BitWidths
    /// How weight float scales become stored scales (the method's exponent policy).
    public var weightPolicy: ScalePolicy
    /// How activation float scales become stored scales.
    public var activationPolicy: ScalePolicy
    /// Symmetric weights (signed grid, zero point 0); otherwise asymmetric below 8 bits.
    public var symmetricWeights: Bool
    /// Calibration samples used to initialise activation quantizers.
    public var activationSamples: Int

    /// Options from their parts; 64 activation samples as in METHOD §3. `scalePolicy` applies to weights and
    /// activations unless `activationPolicy` is given.
    public init(bits: BitWidths, scalePolicy: ScalePolicy, activationPolicy: ScalePolicy? = nil, symmetricWeights: Bool = false,
                activationSamples: Int = 64) {
        self.bits = bits
        self.weightPolicy = scalePolicy
        self.activationPolicy = activationPolicy ?? scalePolicy
        self.symmetricWeights = symmetricWeights
        self.activationSamples = activationSamples
    }

    /// The weight grid for a layer of `bits` bits: signed (z = 0) when symmetric or 8-bit (so 8-bit codes
    /// fit int8 hardware and onnxruntime's per-channel QLinearConv), otherwise unsigned with a zero point.
    public func weightGrid(bits: Int) -> QuantizationGrid {
        QuantizationGrid(bits: bits, signed: symmetricWeights || bits == 8)
    }

    /// Checks that every bit width is within 2...8.
    public func validate() throws {
        for (what, b) in [("weight", bits.weights), ("activation", bits.activations), ("first/last layer", bits.firstLast)] where !(2...8).contains(b) {
            throw QuantizationError.bitsOutOfRange(what: what, bits: b)
        }
        guard activationSamples > 0 else { throw QuantizationError.badCalibration("at least one sample is needed to initialise activation quantizers") }
    }
}

/// Quantizes a prepared network without reconstruction: per-channel weight range search, then activation
/// quantizers initialised in network order from calibration samples (each site sees the quantized output of
/// the sites before it). This is the whole of `rtn`, `naive-pot` and `pot-mse`, and the starting point of
/// the reconstruction methods. With `activationsOnFloatWeights` the activation quantizers are initialised on
/// the FP32 weights instead (for a weight phase that learns with them in place).
public func calibrate(_ prepared: PreparedNetwork, calibration: Tensor, options: CalibrationOptions, method: String,
                      activationsOnFloatWeights: Bool = false) throws -> QuantizedNetwork {
    try options.validate()
    let graph = prepared.graph
    let names = prepared.layerNames
    guard !names.isEmpty else { throw QuantizationError.nothingToQuantize }
    guard calibration.rank >= 1, calibration.shape[0] > 0 else { throw QuantizationError.badCalibration("no samples") }
    let sites = placeActivationQuantizers(in: graph, units: prepared.units, bits: options.bits)
    let nodes = Dictionary(uniqueKeysWithValues: graph.nodes.map { ($0.name, $0) })

    var layers: [String: QuantizedLayer] = [:]
    for name in names {
        let node = nodes[name]!
        let w = graph.initializers[node.inputs[1]]!
        let b = node.inputs.count > 2 ? graph.initializers[node.inputs[2]]?.data : nil
        guard w.data.allSatisfy(\.isFinite), b?.allSatisfy(\.isFinite) ?? true else { throw QuantizationError.nonFiniteWeights(layer: name) }
        let bits = name == names.first || name == names.last ? options.bits.firstLast : options.bits.weights
        let params = ScaleSearch.searchPerChannel(w.data, channels: w.shape[0], grid: options.weightGrid(bits: bits), policy: options.weightPolicy)
        layers[name] = QuantizedLayer.quantize(node: name, weights: w.data, shape: w.shape, bias: b ?? [Float](repeating: 0, count: w.shape[0]),
                                               input: node.inputs[0], parameters: params)
    }

    var network = QuantizedNetwork(graph: graph, units: prepared.units, layers: layers, activations: [:], method: method, bits: options.bits)
    network.activations = try initialiseActivations(of: network, sites: sites, samples: calibration, count: options.activationSamples,
                                                    policy: options.activationPolicy, floatWeights: activationsOnFloatWeights)
    fitBiasesInInt32(&network)
    return network
}

/// `fitBiasInInt32` for every layer, with the float weights from the network's graph.
public func fitBiasesInInt32(_ network: inout QuantizedNetwork) {
    for node in network.graph.nodes where network.layers[node.name] != nil {
        if let w = network.graph.initializers[node.inputs[1]] { fitBiasInInt32(&network, layer: node.name, floatWeights: w.data) }
    }
}

/// Coarsens the weight scale of any channel whose bias would not fit int32 at `input scale * weight scale`
/// (dead or nearly dead channels get scales near 1e-9 from the range search), doubling it until the bias
/// fits, and re-quantizes that channel's weights from `floatWeights`.
public func fitBiasInInt32(_ network: inout QuantizedNetwork, layer name: String, floatWeights: [Float]) {
    guard var layer = network.layers[name], let input = network.activationQuantizer(for: layer.input) else { return }
    let limit = Double(Int32.max) / 2
    let per = layer.codes.count / layer.channels
    var changed = false
    for c in 0..<layer.channels {
        var s = layer.weight.scales[c]
        while abs(Double(layer.bias[c]) / (Double(input.scales[0]) * Double(s))) > limit, s < Float.greatestFiniteMagnitude / 4 { s *= 2 }
        guard s != layer.weight.scales[c] else { continue }
        let z = ScaleSearch.rescaledZeroPoint(layer.weight.zeroPoints[c], from: layer.weight.scales[c], to: s, grid: layer.weight.grid)
        layer.weight.scales[c] = s
        layer.weight.zeroPoints[c] = z
        for j in c * per..<(c + 1) * per {
            layer.codes[j] = Int32(UniformQuantization.code(floatWeights[j], scale: s, zeroPoint: z, grid: layer.weight.grid))
        }
        changed = true
    }
    if changed { network.layers[name] = layer }
}

/// Initialises the quantizer of every site from the first `count` samples, in network order, with earlier
/// sites applied and the weights quantized (or, with `floatWeights`, as the FP32 model has them: the
/// weights reconstruction will approach).
public func initialiseActivations(of network: QuantizedNetwork, sites: [ActivationSite], samples: Tensor, count: Int,
                                  policy: ScalePolicy, floatWeights: Bool = false) throws -> [String: QuantizerParameters] {
    let n = Swift.min(count, samples.shape[0]), per = samples.count / samples.shape[0]
    let batch = Tensor(shape: [n] + samples.shape.dropFirst(), data: Array(samples.data[0..<n * per]))
    let bySite = Dictionary(uniqueKeysWithValues: sites.map { ($0.tensor, $0) })
    var floatBiasNetwork = network
    floatBiasNetwork.activations = [:]
    let executor = try Executor(graph: floatWeights ? network.graph : floatBiasNetwork.simulationGraph())
    var found: [String: QuantizerParameters] = [:]
    var overflowed: String?
    let output = network.graph.outputs[0].name
    _ = try executor.run([network.graph.inputs[0].name: batch]) { name, tensor in
        guard overflowed == nil, bySite[name] != nil || name == output else { return }
        // Values near the float32 limit (3e38) in the data or weights overflow to infinities on the way,
        // up to the logits.
        guard tensor.data.allSatisfy(\.isFinite) else { overflowed = name; return }
        guard let site = bySite[name] else { return }
        let grid = QuantizationGrid(bits: site.bits, signed: false)
        let sample = tensor.withUnsafeBufferPointer { ScaleSearch.strided($0) }
        let (s, z) = sample.withUnsafeBufferPointer { buffer in
            let (s, z) = ScaleSearch.search(buffer, grid: grid, policy: policy)
            return (s, site.evenZeroPoint ? ScaleSearch.evenZeroPoint(buffer, scale: s, zeroPoint: z, grid: grid) : z)
        }
        let q = QuantizerParameters(grid: grid, scales: [s], zeroPoints: [site.nonNegative ? 0 : z])
        found[name] = q
        fakeQuantize(&tensor, with: q)
    }
    if let overflowed {
        throw QuantizationError.badCalibration("the FP32 model computes NaN or infinite values at '\(overflowed)' on these samples (float32 overflows above 3.4e38); scale the data or the model's weights into a normal range")
    }
    return found
}
