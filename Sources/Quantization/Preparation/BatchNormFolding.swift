import Graph
import ONNX
import TensorKernels

/// A graph whose BatchNormalization nodes that follow a Conv or Gemm have been folded into it.
public struct FoldedGraph: Sendable {
    /// The graph without the folded BN nodes; the producing layers now carry the BN's affine transform.
    public var graph: Graph
    /// For each layer that absorbed a BN, that BN's per-channel gamma as it was before folding
    /// (the BN-derived loss exponent of RAPQ needs it).
    public var gammas: [String: [Float]]
}

/// Folds each inference BatchNormalization into the Conv or Gemm that feeds it:
/// `W' = W * g / sqrt(v + eps)` per output channel and `b' = beta + (b - m) * g / sqrt(v + eps)`.
///
/// A BN is folded only when its input is produced by a Conv (or a Gemm with `transB` and 2-D output)
/// whose output nothing else reads; other BNs stay as nodes. Computed in Double so that the folded
/// network matches the original to float32 rounding.
public func foldBatchNormalization(_ graph: Graph) -> FoldedGraph {
    var g = graph
    foldChannelScales(&g)
    var gammas: [String: [Float]] = [:]
    var readers: [String: Int] = [:]
    for node in g.nodes { for name in node.inputs { readers[name, default: 0] += 1 } }
    let graphOutputs = Set(g.outputs.map(\.name))
    var removed = Set<Int>()
    var producer: [String: Int] = [:]
    for (i, node) in g.nodes.enumerated() { for name in node.outputs { producer[name] = i } }

    for (bnIndex, bn) in g.nodes.enumerated() {
        guard case .batchNormalization(let epsilon) = bn.op, let x = bn.inputs.first,
              let layerIndex = producer[x], readers[x] == 1, !graphOutputs.contains(x) else { continue }
        let layer = g.nodes[layerIndex]
        let channelAxisIsRows: Bool
        switch layer.op {
        case .conv: channelAxisIsRows = true
        case .gemm(_, _, false, true): channelAxisIsRows = true
        case .gemm(_, _, false, false): channelAxisIsRows = false
        default: continue
        }
        guard layer.inputs.count >= 2, let weight = g.initializers[layer.inputs[1]],
              bn.inputs.count == 5,
              let stats = Optional(bn.inputs[1...4].compactMap { g.initializers[$0] }), stats.count == 4 else { continue }
        let channels = channelAxisIsRows ? weight.shape[0] : weight.shape[1]
        guard stats.allSatisfy({ $0.count == channels }) else { continue }
        let (gamma, beta, mean, variance) = (stats[0].data, stats[1].data, stats[2].data, stats[3].data)
        let factor = (0..<channels).map { Double(gamma[$0]) / (Double(variance[$0]) + Double(epsilon)).squareRoot() }

        var w = weight.data
        if channelAxisIsRows {
            let per = weight.count / channels
            for c in 0..<channels { for j in 0..<per { w[c * per + j] = Float(Double(w[c * per + j]) * factor[c]) } }
        } else {
            let rows = weight.shape[0]
            for r in 0..<rows { for c in 0..<channels { w[r * channels + c] = Float(Double(w[r * channels + c]) * factor[c]) } }
        }
        var biasScale: Double = 1
        if case .gemm(_, let gemmBeta, _, _) = layer.op { biasScale = Double(gemmBeta) }
        let oldBias = layer.inputs.count > 2 && !layer.inputs[2].isEmpty ? g.initializers[layer.inputs[2]] : nil
        if let oldBias, oldBias.count != channels && oldBias.count != 1 { continue }
        let bias = (0..<channels).map { c in
            let b = oldBias.map { Double($0.data[$0.count == 1 ? 0 : c]) * biasScale } ?? 0
            return Float(Double(beta[c]) + (b - Double(mean[c])) * factor[c])
        }
        let weightName = layer.name + ".folded_weight", biasName = layer.name + ".folded_bias"
        g.initializers[weightName] = Tensor(shape: weight.shape, data: w)
        g.initializers[biasName] = Tensor(shape: [channels], data: bias)
        var newLayer = layer
        newLayer.inputs = [layer.inputs[0], weightName, biasName]
        newLayer.outputs = bn.outputs
        if case .gemm(let alpha, _, let ta, let tb) = layer.op {
            // Gemm computes alpha*A*B + beta*C: fold alpha into the weights so the bias enters with beta = 1.
            if alpha != 1 { g.initializers[weightName] = Tensor(shape: weight.shape, data: w.map { $0 * alpha }) }
            newLayer.op = .gemm(alpha: 1, beta: 1, transA: ta, transB: tb)
        }
        g.nodes[layerIndex] = newLayer
        removed.insert(bnIndex)
        gammas[layer.name] = gamma
    }
    g.nodes = g.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    convertStandaloneBatchNormalization(&g, gammas: &gammas)
    // Drop initializers nothing reads any more.
    let used = Set(g.nodes.flatMap(\.inputs))
    g.initializers = g.initializers.filter { used.contains($0.key) }
    return FoldedGraph(graph: g, gammas: gammas)
}

/// Folds each product of a convolution's output with a constant per output channel (ConvNeXt's layer scale,
/// `[C, 1, 1]`) or a single constant into the convolution: `W' = W * s` per output channel and `b' = b * s`.
/// Only where the convolution's output is read by that product alone. Computed in Double.
func foldChannelScales(_ g: inout Graph) {
    var readers: [String: Int] = [:]
    for node in g.nodes { for name in Set(node.inputs) { readers[name, default: 0] += 1 } }
    let graphOutputs = Set(g.outputs.map(\.name))
    var producer: [String: Int] = [:]
    for (i, node) in g.nodes.enumerated() { for name in node.outputs { producer[name] = i } }
    var removed = Set<Int>()
    for (mulIndex, mul) in g.nodes.enumerated() where mul.op == .mul && mul.inputs.count == 2 {
        guard let k = mul.inputs.firstIndex(where: { g.initializers[$0] != nil }), let scale = g.initializers[mul.inputs[k]] else { continue }
        let x = mul.inputs[1 - k]
        guard let layerIndex = producer[x], readers[x] == 1, !graphOutputs.contains(x), case .conv = g.nodes[layerIndex].op else { continue }
        let layer = g.nodes[layerIndex]
        guard layer.inputs.count >= 2, let weight = g.initializers[layer.inputs[1]], weight.rank == 4 else { continue }
        let channels = weight.shape[0]
        // One value, or one per channel laid out along axis 1 of the NCHW output ([C, 1, 1] or [1, C, 1, 1]).
        let perChannel = scale.count == channels && scale.rank >= 3 && scale.rank <= 4 && scale.shape[scale.rank - 3] == channels
        guard scale.count == 1 || perChannel else { continue }
        let factor = (0..<channels).map { Double(scale.data[scale.count == 1 ? 0 : $0]) }
        let per = weight.count / Swift.max(channels, 1)
        let w = (0..<weight.count).map { Float(Double(weight.data[$0]) * factor[$0 / per]) }
        let oldBias = layer.inputs.count > 2 && !layer.inputs[2].isEmpty ? g.initializers[layer.inputs[2]] : nil
        if let oldBias, oldBias.count != channels { continue }
        let weightName = layer.name + ".scaled_weight", biasName = layer.name + ".scaled_bias"
        g.initializers[weightName] = Tensor(shape: weight.shape, data: w)
        var newLayer = layer
        newLayer.inputs = [layer.inputs[0], weightName]
        if let oldBias {
            g.initializers[biasName] = Tensor(shape: [channels], data: (0..<channels).map { Float(Double(oldBias.data[$0]) * factor[$0]) })
            newLayer.inputs.append(biasName)
        }
        newLayer.outputs = mul.outputs
        g.nodes[layerIndex] = newLayer
        removed.insert(mulIndex)
    }
    g.nodes = g.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
}

/// Turns each BatchNormalization that could not be folded (after a Concat, an Add or the network input) into
/// the depthwise 1x1 convolution that computes it: weight `g / sqrt(v + eps)` and bias `beta - m * g / sqrt(v + eps)`
/// per channel. It is then a layer like any other: its weights are quantized per channel with power-of-two
/// scales, it forms a reconstruction unit, and the integer engine runs it. Only BNs over 4-D NCHW tensors
/// are converted (the others stay BN nodes); the BN's gamma is recorded for the loss exponent.
func convertStandaloneBatchNormalization(_ g: inout Graph, gammas: inout [String: [Float]]) {
    let shapes = try? inferShapes(of: g, batch: 1)
    for (index, bn) in g.nodes.enumerated() {
        guard case .batchNormalization(let epsilon) = bn.op, bn.inputs.count == 5,
              let rank = shapes?[bn.inputs[0]]?.count, rank == 4 else { continue }
        let stats = bn.inputs[1...4].compactMap { g.initializers[$0] }
        guard stats.count == 4, let channels = stats.first?.count, channels > 0,
              stats.allSatisfy({ $0.count == channels }) else { continue }
        let (gamma, beta, mean, variance) = (stats[0].data, stats[1].data, stats[2].data, stats[3].data)
        let factor = (0..<channels).map { Double(gamma[$0]) / (Double(variance[$0]) + Double(epsilon)).squareRoot() }
        let weightName = bn.name + ".depthwise_weight", biasName = bn.name + ".depthwise_bias"
        g.initializers[weightName] = Tensor(shape: [channels, 1, 1, 1], data: factor.map { Float($0) })
        g.initializers[biasName] = Tensor(shape: [channels], data: (0..<channels).map { Float(Double(beta[$0]) - Double(mean[$0]) * factor[$0]) })
        g.nodes[index] = Node(name: bn.name, op: .conv(Conv2DParameters(window: WindowGeometry(kernel: (1, 1)), groups: channels)),
                              inputs: [bn.inputs[0], weightName, biasName], outputs: bn.outputs)
        gammas[bn.name] = gamma
    }
}
