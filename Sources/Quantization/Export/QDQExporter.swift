import Foundation
import Graph
import ONNX
import TensorKernels

/// Writes a `QuantizedNetwork` as a QDQ ONNX model (opset 13) that onnxruntime runs with integer kernels
/// (QLinearConv, QGemm) and that reproduces `Simulation` exactly when every scale is a power of two.
///
/// - Activation site `T`: `QuantizeLinear(x, s, z) -> [Clip] -> DequantizeLinear -> T` in a uint8 container
///   (int8 for a signed grid). Sites narrower than 8 bits get the low-bit clamp as an integer `Clip` on the
///   codes (`[qmin, qmax]`), between Q and DQ, where it is exact and does not stop onnxruntime from fusing the
///   producer with the Q. A Relu/Clip whose output is the site is folded into that integer clamp
///   (`quantize(clip(x, a, b)) = clamp(quantize(x), quantize(a), quantize(b))`, since rounding is monotone),
///   so the layer's output goes straight into the Q, which is the pattern onnxruntime fuses.
/// - A layer's input seen through MaxPool/Flatten/Reshape/Identity gets its source's Q/DQ again (exact: those
///   operators keep values on the grid) so the layer reads a DequantizeLinear directly.
/// - Weights: int8 initializer `q - z_c` with zero point 0 and `DequantizeLinear(axis=0)` (onnxruntime's
///   per-channel QLinearConv requires all weight zero points 0). Bias: the int32 bias at scale `s_x * s_w[c]`
///   (the product computed in Float, exact for powers of two) through `DequantizeLinear(axis=0)`.
/// - Every other operator is copied as a float operator; the model input and the logits stay float.
public enum QDQExporter {
    /// The opset the QDQ model declares (at least; an operator that needs a newer one raises it).
    public static let opset = 13

    /// The QDQ model for `network`.
    public static func modelProto(for network: QuantizedNetwork) throws -> Onnx_ModelProto {
        var builder = QDQGraphBuilder(network: network)
        return try builder.build()
    }

    /// Writes the QDQ model for `network` to `url` atomically (temporary file, then rename).
    public static func write(_ network: QuantizedNetwork, to url: URL) throws {
        try ONNXExporter.write(modelProto(for: network), to: url)
    }
}

/// The state of one QDQ export: names in use and the nodes and initializers emitted so far.
struct QDQGraphBuilder {
    let network: QuantizedNetwork
    private var taken = Set<String>()
    private var nodes: [Onnx_NodeProto] = []
    private var initializers: [Onnx_TensorProto] = []

    init(network: QuantizedNetwork) {
        self.network = network
    }

    mutating func build() throws -> Onnx_ModelProto {
        let graph = network.graph
        var structure = graph
        let owned = network.layerOwnedInitializerNames
        structure.initializers = structure.initializers.filter { !owned.contains($0.key) }
        var (model, spans) = ONNXExporter.modelProtoWithSpans(for: structure, opset: QDQExporter.opset)
        let base = model.graph.node
        taken = Set(model.graph.initializer.map(\.name)).union(graph.inputs.map(\.name)).union(graph.outputs.map(\.name))
        for node in base { taken.formUnion(node.input); taken.formUnion(node.output); taken.insert(node.name) }
        initializers = model.graph.initializer

        let points = try quantizationPoints()
        // Activations whose output is a quantization point are folded into that point's integer clamp.
        var folded: [Int: Operator] = [:]
        for (i, node) in graph.nodes.enumerated() where node.outputs.count == 1 && points[node.outputs[0]] != nil {
            switch node.op {
            case .relu, .clip: folded[i] = node.op
            default: break
            }
        }
        // Graph inputs are the model's interface: their readers are rewired to the DequantizeLinear.
        var rewired: [String: String] = [:]
        for input in graph.inputs {
            guard let q = points[input.name] else { continue }
            let output = fresh(input.name + "/dequantized")
            try emitQuantizeDequantize(source: input.name, output: output, tensor: input.name, q, folding: nil)
            rewired[input.name] = output
        }
        func resolve(_ name: String) -> String { rewired[name] ?? name }

        for (i, node) in graph.nodes.enumerated() {
            if let op = folded[i] {
                let t = node.outputs[0]
                try emitQuantizeDequantize(source: resolve(node.inputs[0]), output: t, tensor: t, points[t]!, folding: op)
                continue
            }
            // The ONNX nodes written for this graph node (one, or a pattern whose last node makes its outputs).
            var group = Array(base[spans[i]])
            for k in group.indices { group[k].input = group[k].input.map(resolve) }
            if let layer = network.layers[node.name] {
                group[0].input = try emitLayerOperands(layer, node: node, input: group[0].input[0])
            }
            // A quantized output is renamed; its DequantizeLinear takes over the name, so readers need no change.
            var pending: [(source: String, tensor: String)] = []
            let last = group.count - 1
            for (k, t) in group[last].output.enumerated() where points[t] != nil {
                let renamed = fresh(t + "/float")
                group[last].output[k] = renamed
                pending.append((renamed, t))
            }
            nodes += group
            for (source, t) in pending {
                try emitQuantizeDequantize(source: source, output: t, tensor: t, points[t]!, folding: nil)
            }
        }
        model.graph.node = nodes
        model.graph.initializer = initializers
        model.producerName = "rapq"
        return model
    }

    /// The tensors that get a Q/DQ pair: every activation site, plus each layer input that reaches its site
    /// only through quantization-transparent operators (it gets the same quantizer).
    private func quantizationPoints() throws -> [String: QuantizerParameters] {
        var points = network.activations
        for node in network.graph.nodes where network.layers[node.name] != nil {
            let x = node.inputs[0]
            if points[x] == nil, let q = network.activationQuantizer(for: x) { points[x] = q }
        }
        let defined = Set(network.graph.inputs.map(\.name)).union(network.graph.nodes.flatMap(\.outputs))
        if let unknown = points.keys.sorted().first(where: { !defined.contains($0) }) { throw QDQExportError.unknownTensor(unknown) }
        return points
    }

    /// A tensor name not used yet, derived from `base`.
    private mutating func fresh(_ base: String) -> String {
        var name = base, k = 1
        while taken.contains(name) { name = "\(base)_\(k)"; k += 1 }
        taken.insert(name)
        return name
    }

    // MARK: - Activations

    /// `source -> QuantizeLinear -> [Clip on codes] -> DequantizeLinear -> output` for the per-tensor
    /// quantizer `q` of `tensor`, with the Relu/Clip `folding` (if any) merged into the code clamp.
    private mutating func emitQuantizeDequantize(source: String, output: String, tensor: String, _ q: QuantizerParameters,
                                                 folding: Operator?) throws {
        let grid = q.grid
        guard grid.bits <= 8 else { throw QDQExportError.activationTooWide(tensor: tensor, bits: grid.bits) }
        let s = q.scales[0], z = q.zeroPoints[0]
        let owner = "activation '\(tensor)'"
        guard s > 0, s.isNormal else { throw QDQExportError.badScale(owner: owner, value: s) }
        let container: ClosedRange<Int> = grid.signed ? -128...127 : 0...255
        guard z.rounded() == z, z >= Float(container.lowerBound), z <= Float(container.upperBound) else {
            throw QDQExportError.badZeroPoint(owner: owner, value: z)
        }
        var lo = grid.qmin, hi = grid.qmax
        func code(_ x: Float) -> Int { Int(UniformQuantization.code(x, scale: s, zeroPoint: z, grid: grid)) }
        switch folding {
        case .relu?: lo = max(lo, code(0))
        case .clip(let a, let b)?:
            if a.isFinite { lo = max(lo, code(a)) }
            if b.isFinite { hi = min(hi, code(b)) }
        default: break
        }
        let type: Onnx_TensorProto.DataType = grid.signed ? .int8 : .uint8
        let scaleName = fresh(tensor + "/scale"), zeroName = fresh(tensor + "/zero_point")
        initializers.append(Self.floatTensor([s], shape: [], name: scaleName))
        initializers.append(Self.byteTensor([Int(z)], type: type, shape: [], name: zeroName))
        var codes = fresh(tensor + "/quantized")
        nodes.append(Self.node("QuantizeLinear", name: fresh(tensor + "/QuantizeLinear"), inputs: [source, scaleName, zeroName], outputs: [codes]))
        if lo > container.lowerBound || hi < container.upperBound {
            let loName = fresh(tensor + "/code_min"), hiName = fresh(tensor + "/code_max")
            initializers.append(Self.byteTensor([lo], type: type, shape: [], name: loName))
            initializers.append(Self.byteTensor([hi], type: type, shape: [], name: hiName))
            let clamped = fresh(tensor + "/clamped")
            nodes.append(Self.node("Clip", name: fresh(tensor + "/ClampCodes"), inputs: [codes, loName, hiName], outputs: [clamped]))
            codes = clamped
        }
        nodes.append(Self.node("DequantizeLinear", name: fresh(tensor + "/DequantizeLinear"), inputs: [codes, scaleName, zeroName], outputs: [output]))
    }

    // MARK: - Layers

    /// Emits the weight and bias DequantizeLinear nodes of `layer` and returns the layer node's new inputs.
    private mutating func emitLayerOperands(_ layer: QuantizedLayer, node: Node, input: String) throws -> [String] {
        let name = node.name
        switch node.op {
        case .conv: break
        case .gemm(_, _, false, true): break
        case .gemm: throw QDQExportError.unsupportedLayer(node: name, reason: "a Gemm layer must have transA = 0 and transB = 1 (weights [N, K])")
        default: throw QDQExportError.unsupportedLayer(node: name, reason: "only Conv and Gemm layers carry integer weights")
        }
        let channels = layer.channels
        guard layer.codes.count == layer.weightShape.shapeProduct, layer.weight.scales.count == channels, layer.bias.count == channels else {
            throw QDQExportError.unsupportedLayer(node: name, reason: "shape \(layer.weightShape), \(layer.codes.count) codes, \(layer.weight.scales.count) scales, \(layer.bias.count) biases do not agree")
        }
        let per = layer.codes.count / channels
        var values = [Int](repeating: 0, count: layer.codes.count)
        var lowest = Int.max, highest = Int.min
        for c in 0..<channels {
            let s = layer.weight.scales[c], z = layer.weight.zeroPoints[c]
            guard s > 0, s.isNormal else { throw QDQExportError.badScale(owner: "layer '\(name)' channel \(c)", value: s) }
            guard z.rounded() == z, z.magnitude < 65536 else { throw QDQExportError.badZeroPoint(owner: "layer '\(name)' channel \(c)", value: z) }
            for j in c * per..<(c + 1) * per {
                let v = Int(layer.codes[j]) - Int(z)
                values[j] = v
                lowest = min(lowest, v)
                highest = max(highest, v)
            }
        }
        guard lowest >= -128, highest <= 127 else { throw QDQExportError.weightsExceedInt8(layer: name, lowest: lowest, highest: highest) }

        let wq = fresh(name + "/weight_quantized"), ws = fresh(name + "/weight_scale"), wz = fresh(name + "/weight_zero_point")
        initializers.append(Self.byteTensor(values, type: .int8, shape: layer.weightShape, name: wq))
        initializers.append(Self.floatTensor(layer.weight.scales, shape: [channels], name: ws))
        initializers.append(Self.byteTensor([Int](repeating: 0, count: channels), type: .int8, shape: [channels], name: wz))
        let weight = fresh(name + "/weight")
        nodes.append(Self.node("DequantizeLinear", name: fresh(name + "/weight/DequantizeLinear"), inputs: [wq, ws, wz], outputs: [weight], axis: 0))

        guard let inputScale = network.activationQuantizer(for: layer.input)?.scales[0] else {
            // An unquantized input: the layer runs in float with its float bias (as the simulation does).
            let bias = fresh(name + "/bias")
            initializers.append(Self.floatTensor(layer.bias, shape: [channels], name: bias))
            return [input, weight, bias]
        }
        let bq = fresh(name + "/bias_quantized"), bs = fresh(name + "/bias_scale"), bz = fresh(name + "/bias_zero_point")
        initializers.append(Self.int32Tensor(layer.integerBias(inputScale: inputScale), shape: [channels], name: bq))
        initializers.append(Self.floatTensor(layer.weight.scales.map { inputScale * $0 }, shape: [channels], name: bs))
        initializers.append(Self.int32Tensor([Int32](repeating: 0, count: channels), shape: [channels], name: bz))
        let bias = fresh(name + "/bias")
        nodes.append(Self.node("DequantizeLinear", name: fresh(name + "/bias/DequantizeLinear"), inputs: [bq, bs, bz], outputs: [bias], axis: 0))
        return [input, weight, bias]
    }

    // MARK: - Protobuf values

    private static func node(_ op: String, name: String, inputs: [String], outputs: [String], axis: Int? = nil) -> Onnx_NodeProto {
        var n = Onnx_NodeProto()
        n.opType = op
        n.name = name
        n.input = inputs
        n.output = outputs
        if let axis {
            var a = Onnx_AttributeProto()
            a.name = "axis"
            a.type = .int
            a.i = Int64(axis)
            n.attribute = [a]
        }
        return n
    }

    private static func floatTensor(_ values: [Float], shape: [Int], name: String) -> Onnx_TensorProto {
        ONNXExporter.tensorProto(Tensor(shape: shape, data: values), name: name)
    }

    /// An int8 or uint8 tensor; `values` must fit the type.
    private static func byteTensor(_ values: [Int], type: Onnx_TensorProto.DataType, shape: [Int], name: String) -> Onnx_TensorProto {
        var proto = Onnx_TensorProto()
        proto.name = name
        proto.dataType = Int32(type.rawValue)
        proto.dims = shape.map(Int64.init)
        proto.rawData = Data(values.map { UInt8(truncatingIfNeeded: $0) })
        return proto
    }

    private static func int32Tensor(_ values: [Int32], shape: [Int], name: String) -> Onnx_TensorProto {
        var proto = Onnx_TensorProto()
        proto.name = name
        proto.dataType = Int32(Onnx_TensorProto.DataType.int32.rawValue)
        proto.dims = shape.map(Int64.init)
        var bytes = Data(count: values.count * 4)
        bytes.withUnsafeMutableBytes { raw in
            for (i, v) in values.enumerated() { raw.storeBytes(of: v.littleEndian, toByteOffset: i * 4, as: Int32.self) }
        }
        proto.rawData = bytes
        return proto
    }
}
