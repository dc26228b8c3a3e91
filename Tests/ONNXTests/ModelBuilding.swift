import Foundation
import ONNX

/// Small constructors for hand-built ONNX messages used by the tests.
enum ModelBuilding {
    static func node(_ op: String, _ inputs: [String], _ outputs: [String], name: String = "",
                     attributes: [Onnx_AttributeProto] = []) -> Onnx_NodeProto {
        var n = Onnx_NodeProto()
        n.opType = op
        n.input = inputs
        n.output = outputs
        n.name = name
        n.attribute = attributes
        return n
    }

    static func ints(_ name: String, _ values: [Int64]) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .ints
        a.ints = values
        return a
    }

    static func int(_ name: String, _ value: Int64) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .int
        a.i = value
        return a
    }

    static func float(_ name: String, _ value: Float) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .float
        a.f = value
        return a
    }

    static func value(_ name: String, _ dims: [Int64?]) -> Onnx_ValueInfoProto {
        var v = Onnx_ValueInfoProto()
        v.name = name
        var t = Onnx_TypeProto.Tensor()
        t.elemType = 1
        t.shape.dim = dims.map { d in
            var dim = Onnx_TensorShapeProto.Dimension()
            if let d { dim.dimValue = d } else { dim.dimParam = "N" }
            return dim
        }
        v.type.tensorType = t
        return v
    }

    static func floats(_ name: String, dims: [Int64], _ values: [Float]) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name
        t.dataType = 1
        t.dims = dims
        t.floatData = values
        return t
    }

    static func model(nodes: [Onnx_NodeProto], inputs: [Onnx_ValueInfoProto], outputs: [Onnx_ValueInfoProto],
                      initializers: [Onnx_TensorProto] = [], opset: Int64 = 13) -> Onnx_ModelProto {
        var m = Onnx_ModelProto()
        m.irVersion = 7
        var o = Onnx_OperatorSetIdProto()
        o.domain = ""
        o.version = opset
        m.opsetImport = [o]
        m.graph.name = "test"
        m.graph.node = nodes
        m.graph.input = inputs
        m.graph.output = outputs
        m.graph.initializer = initializers
        return m
    }

    /// x [N, 2, 4, 4] -> Conv(3x3, 3 filters, pad 1) -> Relu -> y.
    static func convRelu() -> Onnx_ModelProto {
        let weight = floats("W", dims: [3, 2, 3, 3], (0..<54).map { Float($0) / 54 })
        let bias = floats("B", dims: [3], [0.1, -0.2, 0.3])
        return model(
            nodes: [
                node("Conv", ["x", "W", "B"], ["c"], name: "conv", attributes: [ints("kernel_shape", [3, 3]), ints("pads", [1, 1, 1, 1])]),
                node("Relu", ["c"], ["y"], name: "relu"),
            ],
            inputs: [value("x", [nil, 2, 4, 4])], outputs: [value("y", [nil, 3, 4, 4])], initializers: [weight, bias])
    }

    /// Serialized bytes of a model.
    static func bytes(_ model: Onnx_ModelProto) throws -> Data {
        try model.serializedData()
    }
}
