import DataIO
import Foundation
import Graph
import SwiftProtobuf
import TensorKernels

/// Writes Graph IR values as float32 ONNX models.
///
/// Constant operands the IR keeps as attributes go back to being initializer inputs (Clip's bounds,
/// Reshape's shape), as the ONNX opsets from 11/13 on require. Importing the result gives back an equal
/// `Graph`.
public enum ONNXExporter {
    /// The ONNX model for `graph`, declaring at least `opset` of the default domain.
    ///
    /// The declared opset is raised when an operator needs a newer one: HardSwish and Reshape's
    /// `allowzero` need 14, LayerNormalization 17, an AveragePool with dilations 19. `opset` must be one the importer reads.
    public static func modelProto(for graph: Graph, opset: Int = 13) -> Onnx_ModelProto {
        modelProtoWithSpans(for: graph, opset: opset).model
    }

    /// The ONNX model for `graph` (as `modelProto(for:opset:)`) and, for each graph node, the range of the
    /// ONNX nodes written for it: one node, or several where ONNX spells the IR operator as a pattern (GELU, a
    /// channel normalization); the last of them produces the IR node's outputs.
    public static func modelProtoWithSpans(for graph: Graph, opset: Int = 13) -> (model: Onnx_ModelProto, spans: [Range<Int>]) {
        precondition(ONNXImporter.supportedOpsets.contains(opset), "opset \(opset) is outside \(ONNXImporter.supportedOpsets)")
        let declared = graph.nodes.map { requiredOpset($0.op) }.reduce(opset, max)
        var model = Onnx_ModelProto()
        model.irVersion = irVersion(forOpset: declared)
        model.producerName = "rapq"
        var entry = Onnx_OperatorSetIdProto()
        entry.domain = ""
        entry.version = Int64(declared)
        model.opsetImport = [entry]
        let (proto, spans) = graphProto(for: graph)
        model.graph = proto
        return (model, spans)
    }

    /// The serialized model for `graph` at the default opset.
    public static func serialize(_ graph: Graph) throws -> Data {
        try serializedData(of: modelProto(for: graph))
    }

    /// Writes `graph` to `url` atomically (see `write(_:to:)` for models).
    public static func write(_ graph: Graph, to url: URL) throws {
        try write(modelProto(for: graph), to: url)
    }

    /// Writes `model` to `url` atomically (`AtomicFile`): to a temporary file in the same directory, flushed,
    /// then renamed over `url`, so a crash or a full disk never leaves a half-written model or a temporary.
    public static func write(_ model: Onnx_ModelProto, to url: URL) throws {
        let data = try serializedData(of: model)
        do {
            try AtomicFile.write(data, to: url)
        } catch let DataError.unwritable(_, reason) {
            throw ONNXError.writeFailed(path: url.path, reason: reason)
        }
    }

    /// A float32 initializer holding `tensor`'s elements as little-endian `raw_data`.
    public static func tensorProto(_ tensor: Tensor, name: String) -> Onnx_TensorProto {
        var proto = Onnx_TensorProto()
        proto.name = name
        proto.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        proto.dims = tensor.shape.map(Int64.init)
        var bytes = Data(count: tensor.count * 4)
        bytes.withUnsafeMutableBytes { raw in
            for (i, v) in tensor.data.enumerated() {
                raw.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self)
            }
        }
        proto.rawData = bytes
        return proto
    }

    /// An int64 initializer (e.g. Reshape's target shape) of the given shape.
    public static func tensorProto(int64 values: [Int64], shape: [Int], name: String) -> Onnx_TensorProto {
        precondition(shape.shapeProduct == values.count, "shape \(shape) does not hold \(values.count) values")
        var proto = Onnx_TensorProto()
        proto.name = name
        proto.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
        proto.dims = shape.map(Int64.init)
        proto.int64Data = values
        return proto
    }

    // MARK: - Graph

    private static func serializedData(of model: Onnx_ModelProto) throws -> Data {
        do {
            return try model.serializedData()
        } catch {
            throw ONNXError.writeFailed(
                path: "(in memory)", reason: "the model cannot be serialized (\(error)); ONNX files are limited to 2 GiB")
        }
    }

    /// The lowest opset in which `op`, with its attributes, exists.
    static func requiredOpset(_ op: Operator) -> Int {
        switch op {
        case .hardSwish: return 14
        case .layerNormalization: return 17
        case .reshape(_, let allowZero): return allowZero ? 14 : 13
        case .averagePool(let w, _): return w.dilations == (1, 1) ? 11 : 19
        default: return 11
        }
    }

    /// The IR version the ONNX release that introduced `opset` writes (onnx.helper.VERSION_TABLE).
    static func irVersion(forOpset opset: Int) -> Int64 {
        switch opset {
        case ...11: return 6
        case 12...14: return 7
        case 15...18: return 8
        case 19...20: return 9
        case 21...22: return 10
        case 23: return 11
        case 24: return 12
        default: return 13
        }
    }

    private static func graphProto(for graph: Graph) -> (Onnx_GraphProto, [Range<Int>]) {
        var proto = Onnx_GraphProto()
        proto.name = graph.name
        proto.input = graph.inputs.map(valueInfoProto)
        proto.output = graph.outputs.map(valueInfoProto)
        proto.initializer = graph.initializers.keys.sorted().map { tensorProto(graph.initializers[$0]!, name: $0) }
        var taken = Set(graph.inputs.map(\.name)).union(graph.outputs.map(\.name)).union(graph.initializers.keys)
        for node in graph.nodes { taken.formUnion(node.inputs); taken.formUnion(node.outputs) }
        /// A fresh tensor name derived from `base`.
        func fresh(_ base: String) -> String {
            var name = base, k = 1
            while taken.contains(name) { name = "\(base)_\(k)"; k += 1 }
            taken.insert(name)
            return name
        }
        var spans: [Range<Int>] = []
        for node in graph.nodes {
            let start = proto.node.count
            defer { spans.append(start..<proto.node.count) }
            switch node.op {
            case .gelu:
                proto.node += geluNodes(node, fresh: fresh, initializers: &proto.initializer)
                continue
            case .layerNormalization(let norm) where norm.span != nil:
                proto.node += channelNormalizationNodes(node, norm, fresh: fresh)
                continue
            default: break
            }
            var n = Onnx_NodeProto()
            n.name = node.name
            n.opType = node.op.onnxName
            n.input = node.inputs
            n.output = node.outputs
            switch node.op {
            case .conv(let p):
                n.attribute = windowAttributes(p.window, pooling: false) + [attribute("group", int: p.groups)]
            case .batchNormalization(let epsilon):
                n.attribute = [attribute("epsilon", float: epsilon)]
            case .clip(let low, let high):
                // From opset 11 the bounds are optional inputs; an infinite bound is simply left out.
                var inputs = [node.inputs[0]]
                if low != -.infinity {
                    let name = fresh("\(node.name)/min")
                    proto.initializer.append(tensorProto(Tensor(scalar: low), name: name))
                    inputs.append(name)
                }
                if high != .infinity {
                    if inputs.count == 1 { inputs.append("") }
                    let name = fresh("\(node.name)/max")
                    proto.initializer.append(tensorProto(Tensor(scalar: high), name: name))
                    inputs.append(name)
                }
                n.input = inputs
            case .hardSigmoid(let alpha, let beta):
                n.attribute = [attribute("alpha", float: alpha), attribute("beta", float: beta)]
            case .maxPool(let w):
                n.attribute = windowAttributes(w, pooling: true)
            case .averagePool(let w, let includePad):
                n.attribute = windowAttributes(w, pooling: true) + [attribute("count_include_pad", int: includePad ? 1 : 0)]
            case .flatten(let axis):
                n.attribute = [attribute("axis", int: axis)]
            case .reshape(let shape, let allowZero):
                let name = fresh("\(node.name)/shape")
                proto.initializer.append(tensorProto(int64: shape.map(Int64.init), shape: [shape.count], name: name))
                n.input = [node.inputs[0], name]
                if allowZero { n.attribute = [attribute("allowzero", int: 1)] }
            case .gemm(let alpha, let beta, let transA, let transB):
                n.attribute = [attribute("alpha", float: alpha), attribute("beta", float: beta),
                               attribute("transA", int: transA ? 1 : 0), attribute("transB", int: transB ? 1 : 0)]
            case .concat(let axis):
                n.attribute = [attribute("axis", int: axis)]
            case .transpose(let permutation):
                n.attribute = [attribute("perm", ints: permutation)]
            case .softmax(let axis):
                n.attribute = [attribute("axis", int: axis)]
            case .localResponseNormalization(let lrn):
                n.attribute = [attribute("size", int: lrn.size), attribute("alpha", float: lrn.alpha), attribute("beta", float: lrn.beta),
                               attribute("bias", float: lrn.bias)]
            case .slice(let axis, let start, let end):
                let name = fresh("\(node.name)/bounds")
                proto.initializer.append(tensorProto(int64: [Int64(start)], shape: [1], name: name + "/starts"))
                proto.initializer.append(tensorProto(int64: [Int64(end)], shape: [1], name: name + "/ends"))
                proto.initializer.append(tensorProto(int64: [Int64(axis)], shape: [1], name: name + "/axes"))
                n.input = [node.inputs[0], name + "/starts", name + "/ends", name + "/axes"]
            case .layerNormalization(let norm):
                n.attribute = [attribute("axis", int: norm.axis), attribute("epsilon", float: norm.epsilon)]
            case .relu, .add, .mul, .sigmoid, .hardSwish, .erf, .globalAveragePool, .matMul, .identity, .gelu:
                break
            }
            proto.node.append(n)
        }
        return (proto, spans)
    }

    /// GELU as the five nodes exporters write for it (opset 20's `Gelu` is too new for most runtimes):
    /// `Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5)`. The last node keeps the IR node's name and output, so the
    /// importer fuses them back into the same node.
    private static func geluNodes(_ node: Node, fresh: (String) -> String, initializers: inout [Onnx_TensorProto]) -> [Onnx_NodeProto] {
        let x = node.inputs[0]
        let constants = [("sqrt2", Float(2.0.squareRoot())), ("one", 1), ("half", 0.5)].map { label, value in
            let name = fresh("\(node.name)/\(label)")
            initializers.append(tensorProto(Tensor(scalar: value), name: name))
            return name
        }
        let scaled = fresh("\(node.name)/scaled"), erf = fresh("\(node.name)/erf"), shifted = fresh("\(node.name)/shifted"),
            product = fresh("\(node.name)/product")
        return [
            plainNode(fresh("\(node.name)/div"), "Div", [x, constants[0]], [scaled]),
            plainNode(fresh("\(node.name)/erf"), "Erf", [scaled], [erf]),
            plainNode(fresh("\(node.name)/add"), "Add", [erf, constants[1]], [shifted]),
            plainNode(fresh("\(node.name)/mul"), "Mul", [x, shifted], [product]),
            plainNode(node.name, "Mul", [product, constants[2]], node.outputs),
        ]
    }

    /// A normalization over some axes that does not reach the last (the channel normalization of an NCHW
    /// tensor) as ONNX writes it: the block moved last by a Transpose, LayerNormalization over the last axes,
    /// and the inverse Transpose. The importer turns the three back into the same node.
    private static func channelNormalizationNodes(_ node: Node, _ norm: LayerNormalization, fresh: (String) -> String) -> [Onnx_NodeProto] {
        // The importer creates this form for 4-D NCHW tensors only: the channel axis alone.
        precondition(norm.axis == 1 && norm.span == 1, "only the channel normalization of NCHW tensors is exported with transposes")
        let moved = fresh("\(node.name)/channels_last"), normalized = fresh("\(node.name)/normalized")
        var inner = plainNode(node.name, "LayerNormalization", [moved] + node.inputs.dropFirst(), [normalized])
        inner.attribute = [attribute("axis", int: -1), attribute("epsilon", float: norm.epsilon)]
        var before = plainNode(fresh("\(node.name)/to_channels_last"), "Transpose", [node.inputs[0]], [moved])
        before.attribute = [attribute("perm", ints: [0, 2, 3, 1])]
        var after = plainNode(fresh("\(node.name)/to_channels_first"), "Transpose", [normalized], node.outputs)
        after.attribute = [attribute("perm", ints: [0, 3, 1, 2])]
        return [before, inner, after]
    }

    private static func plainNode(_ name: String, _ op: String, _ inputs: [String], _ outputs: [String]) -> Onnx_NodeProto {
        var n = Onnx_NodeProto()
        n.name = name
        n.opType = op
        n.input = inputs
        n.output = outputs
        return n
    }

    /// kernel_shape, strides, dilations, pads (or auto_pad) and, for pooling, ceil_mode.
    private static func windowAttributes(_ w: WindowGeometry, pooling: Bool) -> [Onnx_AttributeProto] {
        var attributes = [
            attribute("kernel_shape", ints: [w.kernel.h, w.kernel.w]),
            attribute("strides", ints: [w.strides.h, w.strides.w]),
        ]
        // AveragePool has dilations only from opset 19: leave the default out so older opsets stay valid.
        if !pooling || w.dilations != (1, 1) {
            attributes.append(attribute("dilations", ints: [w.dilations.h, w.dilations.w]))
        }
        if w.autoPad == .notSet {
            attributes.append(attribute("pads", ints: [w.pads.top, w.pads.left, w.pads.bottom, w.pads.right]))
        } else {
            attributes.append(attribute("auto_pad", string: w.autoPad.rawValue))
        }
        if pooling { attributes.append(attribute("ceil_mode", int: w.ceilMode ? 1 : 0)) }
        return attributes
    }

    private static func valueInfoProto(_ info: ValueInfo) -> Onnx_ValueInfoProto {
        var tensor = Onnx_TypeProto.Tensor()
        tensor.elemType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        var shape = Onnx_TensorShapeProto()
        shape.dim = info.dimensions.enumerated().map { index, d in
            var dim = Onnx_TensorShapeProto.Dimension()
            if let d { dim.dimValue = Int64(d) } else { dim.dimParam = index == 0 ? "N" : "\(info.name)_d\(index)" }
            return dim
        }
        tensor.shape = shape
        var proto = Onnx_ValueInfoProto()
        proto.name = info.name
        proto.type.tensorType = tensor
        return proto
    }

    private static func attribute(_ name: String, int: Int) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .int
        a.i = Int64(int)
        return a
    }

    private static func attribute(_ name: String, ints: [Int]) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .ints
        a.ints = ints.map(Int64.init)
        return a
    }

    private static func attribute(_ name: String, float: Float) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .float
        a.f = float
        return a
    }

    private static func attribute(_ name: String, string: String) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .string
        a.s = Data(string.utf8)
        return a
    }
}
