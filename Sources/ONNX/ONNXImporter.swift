import DataIO
import Foundation
import Graph
import SwiftProtobuf
import TensorKernels

/// Reads ONNX models into the Graph IR.
///
/// The importer accepts float32 CNNs in the default ONNX domain: it resolves constant operands (Clip's
/// bounds, Reshape's shape, `Constant` nodes) into typed attributes or initializers, orders the nodes
/// topologically, and rejects anything it cannot represent exactly with an `ONNXError` that says what to do.
public enum ONNXImporter {
    /// The default-domain opsets the importer accepts.
    ///
    /// Opsets 7 to 10 are read with their own conventions where they differ for these operators (Clip's
    /// bounds, Slice's bounds, Unsqueeze/Squeeze/ReduceMean axes as attributes; BatchNormalization's
    /// `spatial`). Opsets 22 to 25 changed the supported operators only by admitting new element types
    /// (bfloat16, float8, int4...), which the importer rejects on its own; attributes, inputs and semantics
    /// are those of opset 21 (checked against the onnx 1.22 operator schemas).
    public static let supportedOpsets: ClosedRange<Int> = 7...25

    /// The ONNX operators the importer maps to the Graph IR (`Constant` becomes an initializer, `Dropout`
    /// an identity, `Sum` a chain of Adds, `ReduceMean` over H and W a global average pool, `Unsqueeze` and
    /// `Squeeze` reshapes, `Div` by a constant a product with its reciprocal). Shape arithmetic is evaluated at
    /// import (`foldOnlyOperators`). The patterns exporters write for GELU and for channels-last layers between
    /// Transposes (ConvNeXt) are rewritten into IR nodes after conversion (`GraphRewrites.swift`); LayerNormalization
    /// written out before opset 17 is fused before it (`LayerNormDecomposition.swift`).
    public static let supportedOperators: [String] = [
        "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "ConstantOfShape", "Conv",
        "Div", "Dropout", "Erf", "Flatten", "Gather", "Gelu", "Gemm", "GlobalAveragePool", "HardSigmoid", "HardSwish", "Identity",
        "LayerNormalization", "LRN", "MatMul", "MaxPool", "Mul", "ReduceMean", "Relu", "Reshape", "Shape", "Sigmoid", "Slice", "Softmax", "Split", "Squeeze", "Sub", "Sum",
        "Transpose", "Unsqueeze",
    ]

    /// Operators the importer only evaluates on values it knows at import time (constants and tensor shapes),
    /// never on run-time tensors; Gather of a run-time tensor is imported only as a view of it
    /// (`gatherViewNode`).
    public static let foldOnlyOperators: Set<String> = ["Cast", "ConstantOfShape", "Gather", "Shape", "Sub"]

    /// Loads the model at `url`; external tensor data is looked up next to it.
    public static func load(contentsOf url: URL) throws -> Graph {
        let data: Data
        do {
            data = try RegularFile.contents(of: url)
        } catch let error as DataError {
            switch error {
            case .notARegularFile(_, let kind): throw ONNXError.unreadableFile(path: url.path, reason: "it is \(kind), not a model file")
            case .unreadable(_, let reason): throw ONNXError.unreadableFile(path: url.path, reason: reason)
            default: throw ONNXError.unreadableFile(path: url.path, reason: error.description)
            }
        }
        guard !data.isEmpty else { throw ONNXError.unreadableFile(path: url.path, reason: "the file is empty (0 bytes), not an ONNX model") }
        return try load(data: data, externalDataDirectory: url.deletingLastPathComponent())
    }

    /// Loads a serialized model; `externalDataDirectory` resolves external tensor data (`nil`: none allowed).
    public static func load(data: Data, externalDataDirectory: URL?) throws -> Graph {
        try graph(from: modelProto(from: data), externalDataDirectory: externalDataDirectory)
    }

    /// Parses a serialized `ModelProto`, turning decoding failures into `ONNXError.malformedProtobuf`.
    public static func modelProto(from data: Data) throws -> Onnx_ModelProto {
        do {
            return try Onnx_ModelProto(serializedBytes: data)
        } catch {
            throw ONNXError.malformedProtobuf(reason: "\(error)")
        }
    }

    /// The float32 tensor a `TensorProto` holds (e.g. a conformance case's `input_0.pb`), with the same
    /// size checks as model initializers.
    public static func tensor(from proto: Onnx_TensorProto, externalDataDirectory: URL? = nil) throws -> Tensor {
        try TensorDecoder(externalDataDirectory: externalDataDirectory).floatTensor(proto)
    }

    /// Converts a parsed model to the Graph IR.
    public static func graph(from model: Onnx_ModelProto, externalDataDirectory: URL?) throws -> Graph {
        let defaults = model.opsetImport.filter { $0.domain.isEmpty || $0.domain == "ai.onnx" }
        guard let opset = defaults.last else {
            throw ONNXError.unsupportedOpset(domain: "", version: nil, supported: supportedOpsets)
        }
        guard let version = Int(exactly: opset.version), supportedOpsets.contains(version) else {
            throw ONNXError.unsupportedOpset(domain: "", version: Int(clamping: opset.version), supported: supportedOpsets)
        }
        guard model.hasGraph else { throw ONNXError.missingGraph }
        var proto = model.graph
        LayerNormDecomposition.fuse(&proto)
        var converter = try GraphConverter(proto, opset: version,
                                           decoder: TensorDecoder(externalDataDirectory: externalDataDirectory))
        return try converter.convert()
    }
}

/// The state of one graph's conversion: constants found so far and the initializers decoded from them.
struct GraphConverter {
    let proto: Onnx_GraphProto
    /// The default-domain opset the model imports.
    let opset: Int
    let decoder: TensorDecoder
    /// Constant tensors by name: initializers and the values of `Constant` nodes.
    var constants: [String: Onnx_TensorProto] = [:]
    /// Graph inputs that are not initializers.
    var inputs: [ValueInfo] = []
    /// Float constants read as data, decoded once.
    var initializers: [String: Tensor] = [:]
    /// Display names of the nodes (the file's names, or invented ones), unique.
    var nodeNames: [String] = []
    /// Every tensor name some node reads or the graph returns.
    var consumed: Set<String> = []

    /// Values known at import time that are not plain constants (shape arithmetic), one per batch probe.
    var known: [String: [KnownValue]] = [:]
    /// The shape of each run-time tensor for each batch probe, where shape inference could tell.
    var probeShapes: [[String: [Int]]] = []
    /// The batch size the file declares for its first input, when it declares a number (export batch).
    var exportBatch: Int?

    init(_ proto: Onnx_GraphProto, opset: Int, decoder: TensorDecoder) throws {
        self.proto = proto
        self.opset = opset
        self.decoder = decoder
        var producers: [String: String] = [:]
        for tensor in proto.initializer where !tensor.name.isEmpty {
            if constants[tensor.name] != nil {
                throw ONNXError.duplicateOutput(tensor: tensor.name, producers: ["initializer", "initializer"])
            }
            constants[tensor.name] = tensor
            producers[tensor.name] = "initializer"
        }
        for value in proto.input where constants[value.name] == nil {
            // IR < 4 lists initializers among the inputs as overridable defaults: those stay constants.
            if let previous = producers[value.name] {
                throw ONNXError.duplicateOutput(tensor: value.name, producers: [previous, "graph input"])
            }
            producers[value.name] = "graph input"
            inputs.append(try Self.valueInfo(value, role: "graph input"))
        }
        var used = Set<String>()
        nodeNames.reserveCapacity(proto.node.count)
        for (index, node) in proto.node.enumerated() {
            var name = node.name.isEmpty ? "\(node.opType)_\(index)" : node.name
            if used.contains(name) {
                var k = 1
                while used.contains("\(name)_\(k)") { k += 1 }
                name = "\(name)_\(k)"
            }
            used.insert(name)
            nodeNames.append(name)
            for input in node.input where !input.isEmpty { consumed.insert(input) }
            for output in node.output where !output.isEmpty {
                if let previous = producers[output] {
                    throw ONNXError.duplicateOutput(tensor: output, producers: [previous, "node '\(name)' (\(node.opType))"])
                }
                producers[output] = "node '\(name)' (\(node.opType))"
            }
        }
        for output in proto.output { consumed.insert(output.name) }
    }

    /// A graph input or output's name and dimensions; symbolic or unknown dimensions become `nil`.
    static func valueInfo(_ value: Onnx_ValueInfoProto, role: String) throws -> ValueInfo {
        guard !value.name.isEmpty else { throw ONNXError.invalidValueInfo(tensor: "", reason: "a \(role) has no name") }
        guard case .tensorType(let tensor)? = value.type.value else {
            if value.hasType && value.type.value != nil {
                throw ONNXError.invalidValueInfo(tensor: value.name, reason: "\(role) is not a tensor (sequence, map...); RAPQ reads tensors only")
            }
            guard role != "graph input" else {
                throw ONNXError.invalidValueInfo(tensor: value.name, reason: "the graph input declares no tensor type; re-export the model with input shapes")
            }
            return ValueInfo(name: value.name, dimensions: [])
        }
        guard tensor.hasShape || role != "graph input" else {
            throw ONNXError.invalidValueInfo(
                tensor: value.name, reason: "the graph input declares no shape, so its rank is unknown; re-export the "
                    + "model with input shapes (dynamic sizes such as the batch may stay symbolic)")
        }
        let float = Int32(Onnx_TensorProto.DataType.float.rawValue)
        guard tensor.elemType == float || tensor.elemType == 0 else {
            throw ONNXError.unsupportedDataType(tensor: value.name, dataType: tensor.elemType, expected: "FLOAT (float32) for a \(role)")
        }
        let dims: [Int?] = try tensor.shape.dim.map { dim in
            guard case .dimValue(let v)? = dim.value else { return nil }
            guard v >= 0, v <= Int64(TensorDecoder.maxElementCount) else {
                throw ONNXError.invalidDimensions(
                    tensor: value.name, dims: tensor.shape.dim.map(\.dimValue),
                    reason: v < 0 ? "dimension \(v) is negative" : "dimension \(v) exceeds the limit of 2^31")
            }
            return Int(v)
        }
        return ValueInfo(name: value.name, dimensions: dims)
    }

    /// The batch sizes at which the importer evaluates shape arithmetic: a value that differs between them
    /// depends on the batch. Neither is 1, so a size-1 dimension is never mistaken for the batch.
    static let batchProbes = [2, 3]

    /// The Graph IR for the whole graph.
    ///
    /// The leading dimension of a network's input (of rank 2 or more) is the batch, whatever the file
    /// declares (exporters write a fixed batch of 1 by default): it becomes symbolic, and shape arithmetic
    /// and Reshape targets that encode the export batch are rewritten to follow the run's batch.
    mutating func convert() throws -> Graph {
        let order = try executionOrder()
        try checkOperatorsSupported()
        freeBatchDimension()
        var nodes: [Node] = []
        for index in order {
            let node = proto.node[index]
            if node.opType == "Constant" && (node.domain.isEmpty || node.domain == "ai.onnx") {
                try recordConstant(node, name: nodeNames[index])
                continue
            }
            if try fold(node, name: nodeNames[index]) { continue }
            for converted in try convert(node, name: nodeNames[index]) {
                recordShapes(of: converted)
                nodes.append(converted)
            }
        }
        let produced = Set(nodes.flatMap(\.outputs)).union(inputs.map(\.name))
        var outputs: [ValueInfo] = []
        guard !proto.output.isEmpty else {
            throw ONNXError.invalidValueInfo(tensor: "(none)", reason: "the graph declares no outputs, so running it computes nothing; re-export the model with its outputs")
        }
        for value in proto.output {
            var info = try Self.valueInfo(value, role: "graph output")
            if !produced.contains(info.name) {
                guard constants[info.name] != nil || known[info.name] != nil else { throw ONNXError.undefinedGraphOutput(tensor: info.name) }
                _ = try dataInput(info.name)
            }
            // An output whose leading dimension follows the batch is declared batch-free like the inputs.
            if !info.dimensions.isEmpty, let a = probeShapes[0][info.name], let b = probeShapes[1][info.name],
               a.first != b.first {
                info.dimensions[0] = nil
            }
            outputs.append(info)
        }
        var graph = Graph(name: proto.name, inputs: inputs, outputs: outputs, nodes: nodes, initializers: initializers)
        GraphRewrites.apply(&graph)
        return graph
    }

    /// Throws one error listing every node whose operator the importer cannot read, with counts per operator.
    private func checkOperatorsSupported() throws {
        var unsupported: [String: [String]] = [:]
        var order: [String] = []
        for (index, node) in proto.node.enumerated() {
            let isDefault = node.domain.isEmpty || node.domain == "ai.onnx"
            guard !isDefault || !ONNXImporter.supportedOperators.contains(node.opType) else { continue }
            let qualified = isDefault ? node.opType : "\(node.domain).\(node.opType)"
            if unsupported[qualified] == nil { order.append(qualified) }
            unsupported[qualified, default: []].append(nodeNames[index])
        }
        guard !order.isEmpty else { return }
        throw ONNXError.unsupportedOperators(order.map { UnsupportedOperator(op: $0, nodes: unsupported[$0]!) },
                                             supported: ONNXImporter.supportedOperators)
    }

    /// Makes the leading dimension of the graph's input symbolic when there is one input of rank 2 or more
    /// (a CNN's batch; with several inputs which one is the batch is not known, so their declarations stand),
    /// remembering the declared size, and sets up the per-probe shapes of the inputs.
    private mutating func freeBatchDimension() {
        let batchFree = inputs.count == 1 && inputs[0].dimensions.count >= 2
        if batchFree {
            exportBatch = inputs[0].dimensions[0]
            inputs[0].dimensions[0] = nil
        }
        probeShapes = Self.batchProbes.map { probe in
            var shapes: [String: [Int]] = [:]
            for input in inputs {
                let dims = input.dimensions.enumerated().map { $0.offset == 0 && batchFree ? probe : $0.element }
                if dims.allSatisfy({ $0 != nil }) { shapes[input.name] = dims.map { $0! } }
            }
            return shapes
        }
    }

    /// The shape of a tensor for batch probe `probe`: a run-time tensor's inferred shape, or a constant's.
    func shape(of tensor: String, probe: Int) -> [Int]? {
        if let shape = probeShapes[probe][tensor] { return shape }
        if let value = initializers[tensor] { return value.shape }
        if let value = known[tensor] { return value[probe].shape }
        if let proto = constants[tensor] { return try? TensorDecoder.checkedShape(proto.dims, tensor: tensor).shape }
        return nil
    }

    /// Records the output shape of a converted node for each probe, where its operands' shapes are known
    /// (a failure here is reported later, by shape inference at the run's batch).
    private mutating func recordShapes(of node: Node) {
        for probe in probeShapes.indices {
            var operands: [[Int]?] = []
            for name in node.inputs {
                if name.isEmpty { operands.append(nil); continue }
                guard let s = shape(of: name, probe: probe) else { return }
                operands.append(s)
            }
            guard let output = try? outputShape(of: node, operands: operands) else { return }
            for name in node.outputs { probeShapes[probe][name] = output }
        }
    }

    /// The node indices in an order where every producer precedes its readers.
    private func executionOrder() throws -> [Int] {
        var producer: [String: Int] = [:]
        for (index, node) in proto.node.enumerated() {
            for output in node.output where !output.isEmpty { producer[output] = index }
        }
        let known = Set(constants.keys).union(inputs.map(\.name))
        var dependencies: [[Int]] = []
        for (index, node) in proto.node.enumerated() {
            var deps: [Int] = []
            for input in node.input where !input.isEmpty {
                if let p = producer[input] {
                    deps.append(p)
                } else if !known.contains(input) {
                    throw ONNXError.missingInput(node: nodeNames[index], op: node.opType, tensor: input)
                }
            }
            dependencies.append(deps)
        }
        switch TopologicalOrder.sort(dependencies: dependencies) {
        case .success(let order): return order
        case .failure(let cycle):
            throw ONNXError.cycle(nodes: cycle.nodes.map { "'\(nodeNames[$0])' (\(proto.node[$0].opType))" })
        }
    }

    // MARK: - Constants

    /// Records a `Constant` node's value as a constant tensor named after its output.
    private mutating func recordConstant(_ node: Onnx_NodeProto, name: String) throws {
        guard node.input.isEmpty, node.output.count == 1 else {
            throw ONNXError.wrongArity(node: name, op: "Constant", detail: "expected no inputs and one output")
        }
        let reader = try AttributeReader(node, name: name, allowed: [
            "value", "value_float", "value_floats", "value_int", "value_ints", "value_string", "value_strings", "sparse_value",
        ])
        guard reader.byName.count == 1, let (key, attribute) = reader.byName.first else {
            throw ONNXError.wrongArity(node: name, op: "Constant", detail: "expected exactly one value attribute")
        }
        var tensor = Onnx_TensorProto()
        switch key {
        case "value":
            guard attribute.hasT else { throw reader.unsupported(attribute, "expected a TENSOR") }
            tensor = attribute.t
        case "value_float":
            tensor.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
            tensor.floatData = [try reader.float(key, default: 0)]
        case "value_floats":
            tensor.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
            tensor.dims = [Int64(attribute.floats.count)]
            tensor.floatData = attribute.floats
        case "value_int":
            tensor.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
            tensor.int64Data = [attribute.i]
        case "value_ints":
            tensor.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
            tensor.dims = [Int64(attribute.ints.count)]
            tensor.int64Data = attribute.ints
        default:
            throw reader.unsupported(attribute, "RAPQ reads numeric constants only")
        }
        tensor.name = node.output[0]
        constants[node.output[0]] = tensor
    }

    /// Decodes the float constant `name` into the graph's initializers (once).
    private mutating func decodeInitializer(_ name: String) throws {
        guard initializers[name] == nil, let proto = constants[name] else { return }
        var named = proto
        named.name = name
        let tensor = try decoder.floatTensor(named)
        // NaN or infinite weights would run to all-NaN outputs (and break every scale search).
        if let bad = tensor.data.firstIndex(where: { !$0.isFinite }) {
            throw ONNXError.nonFiniteData(tensor: name, index: bad, value: tensor.data[bad])
        }
        initializers[name] = tensor
    }

    /// Resolves a data input: a float constant (or a float value computed at import) becomes an
    /// initializer; anything else is a run-time tensor.
    mutating func dataInput(_ name: String) throws -> String {
        guard !name.isEmpty else { return name }
        if constants[name] != nil {
            try decodeInitializer(name)
        } else if let values = known[name], initializers[name] == nil {
            guard values.allSatisfy({ $0 == values[0] }) else {
                throw ONNXError.batchDependent(node: name, op: "value", reason: "tensor '\(name)' is computed from the batch size "
                    + "and then used as data")
            }
            guard values[0].isFloat else {
                throw ONNXError.unsupportedDataType(tensor: name, dataType: Int32(Onnx_TensorProto.DataType.int64.rawValue),
                                                   expected: "FLOAT (float32) for data a layer reads")
            }
            let data = values[0].elements.map { Float($0) }
            if let bad = data.firstIndex(where: { !$0.isFinite }) {
                throw ONNXError.nonFiniteData(tensor: name, index: bad, value: data[bad])
            }
            initializers[name] = Tensor(shape: values[0].shape, data: data)
        }
        return name
    }

    /// The value of a tensor known at import (a constant, or shape arithmetic folded earlier) for each batch
    /// probe; `nil` for a run-time tensor.
    mutating func knownValues(_ name: String) throws -> [KnownValue]? {
        if let values = known[name] { return values }
        guard var proto = constants[name] else { return nil }
        proto.name = name
        let values = Array(repeating: try decoder.knownValue(proto), count: Self.batchProbes.count)
        known[name] = values
        return values
    }

    /// A constant operand the IR stores as an attribute (Reshape's shape, Clip's bounds, axes): the same
    /// for every batch probe, else an error naming the node.
    mutating func constantOperand(_ tensor: String, node: String, op: String, role: String) throws -> KnownValue {
        guard let values = try knownValues(tensor) else {
            throw ONNXError.nonConstantOperand(node: node, op: op, tensor: tensor, role: role)
        }
        guard values.allSatisfy({ $0 == values[0] }) else {
            throw ONNXError.batchDependent(node: node, op: op, reason: "its \(role) '\(tensor)' is computed from the batch size")
        }
        return values[0]
    }

    /// A one-element float constant (a Clip bound).
    private mutating func scalarOperand(_ tensor: String, node: String, op: String, role: String) throws -> Float {
        let value = try constantOperand(tensor, node: node, op: op, role: role)
        guard value.elements.count == 1 else {
            throw ONNXError.unsupportedAttribute(node: node, op: op, attribute: role, value: "a tensor of shape \(value.shape)",
                                                 reason: "expected a single value")
        }
        return Float(value.elements[0])
    }

    // MARK: - Operators

    /// The IR nodes for one ONNX node that computes on run-time tensors (other than `Constant`): usually one,
    /// none for nothing to compute, several where the IR needs a chain (Sum, ReduceMean without keepdims, Slice
    /// on several axes).
    private mutating func convert(_ node: Onnx_NodeProto, name: String) throws -> [Node] {
        let op = node.opType
        guard node.domain.isEmpty || node.domain == "ai.onnx", ONNXImporter.supportedOperators.contains(op) else {
            throw ONNXError.unsupportedOperator(node: name, op: op, domain: node.domain, supported: ONNXImporter.supportedOperators)
        }
        func arity(inputs: ClosedRange<Int>, outputs: ClosedRange<Int> = 1...1) throws {
            guard inputs.contains(node.input.count), outputs.contains(node.output.count) else {
                throw ONNXError.wrongArity(
                    node: name, op: op,
                    detail: "has \(node.input.count) inputs and \(node.output.count) outputs; expected \(inputs) inputs and \(outputs) outputs")
            }
            guard !node.input[0].isEmpty, !node.output[0].isEmpty else {
                throw ONNXError.wrongArity(node: name, op: op, detail: "its first input and first output must be named")
            }
        }
        func input(_ i: Int) -> String { i < node.input.count ? node.input[i] : "" }
        /// Extra outputs the IR does not compute are allowed only when nothing reads them.
        func onlyFirstOutputUsed(_ what: String) throws {
            for extra in node.output.dropFirst() where !extra.isEmpty && consumed.contains(extra) {
                throw ONNXError.unsupportedAttribute(
                    node: name, op: op, attribute: "output '\(extra)'", value: "used",
                    reason: "RAPQ computes only the first output of \(op) (\(what)); remove the use of '\(extra)'")
            }
        }
        var inputs: [String]
        let ir: Operator
        switch op {
        case "Conv":
            try arity(inputs: 2...3)
            let reader = try AttributeReader(node, name: name, allowed: ["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"])
            let weightDims = try weightShape(input(1))
            if let dims = weightDims, dims.count != 4 {
                throw reader.unsupported("kernel_shape", value: "\(Array(dims.dropFirst(2)))",
                                         (dims.count >= 3 ? "\(dims.count - 2)-D kernel (weight \(dims))" : "the weight has shape \(dims), not [M, C/groups, kH, kW]")
                                         + "; RAPQ supports only 2-D convolution over NCHW tensors")
            }
            let window = try reader.window(kernel: weightDims.map { Array($0.dropFirst(2)) }, allowCeilMode: false)
            let groups = try reader.int("group", default: 1)
            guard groups >= 1 else { throw reader.unsupported("group", value: "\(groups)", "must be at least 1") }
            ir = .conv(Conv2DParameters(window: window, groups: groups))
            inputs = [try dataInput(input(0)), try dataInput(input(1))]
            if !input(2).isEmpty { inputs.append(try dataInput(input(2))) }
        case "BatchNormalization":
            try arity(inputs: 5...5, outputs: 1...5)
            let reader = try AttributeReader(node, name: name, allowed: opset < 9 ? ["epsilon", "momentum", "spatial", "is_test"]
                                                                                  : ["epsilon", "momentum", "training_mode"])
            if try !reader.bool("spatial", default: true) {
                throw reader.unsupported("spatial", value: "0", "RAPQ normalizes per channel (spatial = 1)")
            }
            if try reader.bool("training_mode", default: false) {
                throw reader.unsupported("training_mode", value: "1", "RAPQ runs batch normalization in inference mode; export the model in eval mode (model.eval())")
            }
            try onlyFirstOutputUsed("the normalized tensor; running statistics are training outputs")
            ir = .batchNormalization(epsilon: try reader.float("epsilon", default: 1e-5))
            inputs = try (0..<5).map { try dataInput(input($0)) }
        case "Relu", "Sigmoid", "HardSwish", "GlobalAveragePool", "Identity", "Erf":
            try arity(inputs: 1...1)
            _ = try AttributeReader(node, name: name, allowed: [])
            ir = [
                "Relu": Operator.relu, "Sigmoid": .sigmoid, "HardSwish": .hardSwish,
                "GlobalAveragePool": .globalAveragePool, "Identity": .identity, "Erf": .erf,
            ][op]!
            inputs = [try dataInput(input(0))]
        case "Gelu":
            try arity(inputs: 1...1)
            let reader = try AttributeReader(node, name: name, allowed: ["approximate"])
            let approximate = try reader.string("approximate", default: "none")
            guard approximate == "none" else {
                throw reader.unsupported("approximate", value: approximate, "RAPQ computes the exact GELU (approximate = \"none\")")
            }
            ir = .gelu
            inputs = [try dataInput(input(0))]
        case "LayerNormalization":
            try arity(inputs: 2...3, outputs: 1...3)
            let reader = try AttributeReader(node, name: name, allowed: ["axis", "epsilon", "stash_type"])
            // The statistics are computed in Double whatever `stash_type` asks for (at least as precise).
            _ = try reader.int("stash_type", default: 1)
            try onlyFirstOutputUsed("the normalized tensor; the mean and inverse deviation are training outputs")
            let epsilon = try reader.float("epsilon", default: 1e-5)
            guard epsilon.isFinite, epsilon >= 0 else { throw reader.unsupported("epsilon", value: "\(epsilon)", "must be finite and not negative") }
            let axis = try reader.int("axis", default: -1)
            guard (-64...64).contains(axis) else { throw reader.unsupported("axis", value: "\(axis)", "is out of range") }
            ir = .layerNormalization(LayerNormalization(axis: axis, epsilon: epsilon))
            inputs = [try dataInput(input(0)), try dataInput(input(1))]
            if !input(2).isEmpty { inputs.append(try dataInput(input(2))) }
        case "Div":
            // Division of a run-time tensor by a constant (GELU's x/√2, a normalization): a product with the
            // reciprocal, which differs from the quotient by at most one rounding.
            try arity(inputs: 2...2)
            _ = try AttributeReader(node, name: name, allowed: [])
            let divisor = try constantOperand(input(1), node: name, op: op, role: "divisor")
            guard divisor.isFloat else {
                throw ONNXError.cannotFold(node: name, op: op, reason: "it divides a run-time tensor by integers; RAPQ divides run-time tensors only by float constants")
            }
            let reciprocal = input(1) + "/reciprocal", values = divisor.elements.map { Float(1 / $0) }
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw ONNXError.nonFiniteData(tensor: reciprocal, index: bad, value: values[bad])
            }
            initializers[reciprocal] = Tensor(shape: divisor.shape, data: values)
            ir = .mul
            inputs = [try dataInput(input(0)), reciprocal]
        case "HardSigmoid":
            try arity(inputs: 1...1)
            let reader = try AttributeReader(node, name: name, allowed: ["alpha", "beta"])
            ir = .hardSigmoid(alpha: try reader.float("alpha", default: 0.2), beta: try reader.float("beta", default: 0.5))
            inputs = [try dataInput(input(0))]
        case "Clip":
            try arity(inputs: 1...3)
            // Opset < 11 passed the bounds as attributes; from 11 on they are optional constant inputs.
            let reader = try AttributeReader(node, name: name, allowed: ["min", "max"])
            var low = try reader.float("min", default: -.infinity, allowInfinite: true)
            var high = try reader.float("max", default: .infinity, allowInfinite: true)
            if !input(1).isEmpty { low = try scalarOperand(input(1), node: name, op: op, role: "min") }
            if !input(2).isEmpty { high = try scalarOperand(input(2), node: name, op: op, role: "max") }
            guard !low.isNaN, !high.isNaN else {
                throw reader.unsupported("min/max", value: "\(low)/\(high)", "the bounds must be numbers")
            }
            // ONNX defines min > max as every value becoming max; a Clip to [max, max] computes exactly that.
            low = min(low, high)
            ir = .clip(min: low, max: high)
            inputs = [try dataInput(input(0))]
        case "Add", "Mul":
            try arity(inputs: 2...2)
            _ = try AttributeReader(node, name: name, allowed: [])
            ir = op == "Add" ? .add : .mul
            inputs = [try dataInput(input(0)), try dataInput(input(1))]
        case "MaxPool":
            try arity(inputs: 1...1, outputs: 1...2)
            let reader = try AttributeReader(node, name: name, allowed: ["auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"])
            let window = try reader.window(kernel: nil, allowCeilMode: true)
            let order = try reader.int("storage_order", default: 0)
            guard order == 0 else {
                throw reader.unsupported("storage_order", value: "\(order)", "only row-major (0) is supported")
            }
            if node.output.count == 2 && !node.output[1].isEmpty {
                throw reader.unsupported("output 'Indices'", value: "'\(node.output[1])'",
                                         "RAPQ computes MaxPool's values only, not the argmax indices; remove the second output")
            }
            ir = .maxPool(window)
            inputs = [try dataInput(input(0))]
        case "AveragePool":
            try arity(inputs: 1...1)
            let reader = try AttributeReader(node, name: name, allowed: ["auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads", "strides"])
            let window = try reader.window(kernel: nil, allowCeilMode: true)
            ir = .averagePool(window, countIncludePad: try reader.bool("count_include_pad", default: false))
            inputs = [try dataInput(input(0))]
        case "Flatten":
            try arity(inputs: 1...1)
            let reader = try AttributeReader(node, name: name, allowed: ["axis"])
            ir = .flatten(axis: try reader.int("axis", default: 1))
            inputs = [try dataInput(input(0))]
        case "Reshape":
            try arity(inputs: 2...2)
            let reader = try AttributeReader(node, name: name, allowed: ["allowzero"])
            let allowZero = try reader.bool("allowzero", default: false)
            guard let targets = try knownValues(input(1)) else {
                throw ONNXError.nonConstantOperand(node: name, op: op, tensor: input(1), role: "target shape")
            }
            for target in targets {
                guard target.shape.count == 1 else {
                    throw reader.unsupported("shape", value: "a tensor of dims \(target.shape)", "the target shape must be a 1-D tensor")
                }
                for v in target.elements where !(v >= -1 && v <= Double(TensorDecoder.maxElementCount)) {
                    throw reader.unsupported("shape", value: "\(target.integers)", "dimension \(v) is out of range (allowed: -1, 0 or a size up to 2^31)")
                }
            }
            let shape = try batchRelativeTarget(targets.map(\.integers), input: input(0), allowZero: allowZero, node: name, op: op)
            ir = .reshape(shape: shape, allowZero: allowZero)
            inputs = [try dataInput(input(0))]
        case "Unsqueeze", "Squeeze":
            // A reshape whose target follows the run's batch (axes: an attribute before opset 13, an input from it).
            try arity(inputs: opset < 13 ? 1...1 : 1...2)
            let reader = try AttributeReader(node, name: name, allowed: opset < 13 ? ["axes"] : [])
            var axes = try reader.ints("axes")
            if opset >= 13, !input(1).isEmpty { axes = try constantOperand(input(1), node: name, op: op, role: "axes").integers }
            if op == "Unsqueeze", axes == nil { throw ONNXError.missingAttribute(node: name, op: op, attribute: "axes") }
            let outputs = try Self.batchProbes.indices.map { probe -> [Int] in
                guard let x = shape(of: input(0), probe: probe) else {
                    throw ONNXError.cannotFold(node: name, op: op, reason: "the shape of its input '\(input(0))' is not known at import")
                }
                do {
                    return op == "Unsqueeze" ? try KnownValueArithmetic.unsqueezed(x, axes: axes!) : try KnownValueArithmetic.squeezed(x, axes: axes)
                } catch let failure as KnownValueArithmetic.Failure {
                    throw ONNXError.cannotFold(node: name, op: op, reason: failure.reason)
                }
            }
            ir = .reshape(shape: try batchRelativeTarget(outputs, input: input(0), allowZero: false, node: name, op: op), allowZero: false)
            inputs = [try dataInput(input(0))]
        case "Transpose":
            try arity(inputs: 1...1)
            let reader = try AttributeReader(node, name: name, allowed: ["perm"])
            let rank = shape(of: input(0), probe: 0)?.count
            guard let permutation = try reader.ints("perm") ?? rank.map({ Array((0..<$0).reversed()) }) else {
                throw ONNXError.cannotFold(node: name, op: op, reason: "it has no 'perm' and the rank of '\(input(0))' is not known at import")
            }
            if let rank, permutation.sorted() != Array(0..<rank) {
                throw reader.unsupported("perm", value: "\(permutation)", "not a permutation of the input's \(rank) dimensions")
            }
            if let rank, rank >= 1, permutation[0] != 0 {
                throw reader.unsupported("perm", value: "\(permutation)", "it moves the batch dimension; RAPQ keeps the batch first")
            }
            ir = .transpose(permutation: permutation)
            inputs = [try dataInput(input(0))]
        case "ReduceMean":
            // Only the mean over height and width (a global average pool, as torchvision's MNASNet and
            // ShuffleNetV2 write it); axes: an attribute before opset 18, an input from it.
            try arity(inputs: opset < 18 ? 1...1 : 1...2)
            let reader = try AttributeReader(node, name: name, allowed: opset < 18 ? ["axes", "keepdims"] : ["keepdims", "noop_with_empty_axes"])
            var axes = try reader.ints("axes")
            if opset >= 18, !input(1).isEmpty { axes = try constantOperand(input(1), node: name, op: op, role: "axes").integers }
            let keepDims = try reader.bool("keepdims", default: true)
            guard let rank = shape(of: input(0), probe: 0)?.count else {
                throw ONNXError.cannotFold(node: name, op: op, reason: "the rank of its input '\(input(0))' is not known at import")
            }
            let normalized = Set((axes ?? []).map { $0 < 0 ? $0 + rank : $0 })
            guard rank == 4, normalized == [2, 3] else {
                throw reader.unsupported("axes", value: "\(axes.map { "\($0)" } ?? "all")", "RAPQ computes ReduceMean only over the height and "
                    + "width of a 4-D NCHW tensor (axes [2, 3]: a global average pool)")
            }
            let pooled = keepDims ? node.output[0] : node.output[0] + "/pooled"
            let pool = Node(name: name, op: .globalAveragePool, inputs: [try dataInput(input(0))], outputs: [pooled])
            guard !keepDims else { return [pool] }
            return [pool, Node(name: name + "/flatten", op: .flatten(axis: 1), inputs: [pooled], outputs: [node.output[0]])]
        case "Sum":
            try arity(inputs: 1...Int.max)
            _ = try AttributeReader(node, name: name, allowed: [])
            let operands = try node.input.map { tensor in
                guard !tensor.isEmpty else { throw ONNXError.wrongArity(node: name, op: op, detail: "an input is unnamed") }
                return try dataInput(tensor)
            }
            guard operands.count > 1 else { return [Node(name: name, op: .identity, inputs: operands, outputs: [node.output[0]])] }
            var result: [Node] = []
            var running = operands[0]
            for (k, next) in operands.dropFirst().enumerated() {
                let last = k == operands.count - 2
                let out = last ? node.output[0] : "\(node.output[0])/sum\(k + 1)"
                result.append(Node(name: last ? name : "\(name)/\(k + 1)", op: .add, inputs: [running, next], outputs: [out]))
                running = out
            }
            return result
        case "Slice":
            return try sliceNodes(node, name: name)
        case "Split":
            return try splitNodes(node, name: name)
        case "Gather":
            // Gathers on constants and shapes were folded before; on a run-time tensor only a view is imported.
            return [try gatherViewNode(node, name: name)]
        case "LRN":
            try arity(inputs: 1...1)
            let reader = try AttributeReader(node, name: name, allowed: ["alpha", "beta", "bias", "size"])
            guard reader.has("size") else { throw ONNXError.missingAttribute(node: name, op: op, attribute: "size") }
            let size = try reader.int("size", default: 1)
            guard (1...4096).contains(size) else { throw reader.unsupported("size", value: "\(size)", "must be 1 to 4096 channels") }
            ir = .localResponseNormalization(LocalResponseNormalization(
                size: size, alpha: try reader.float("alpha", default: 1e-4), beta: try reader.float("beta", default: 0.75),
                bias: try reader.float("bias", default: 1)))
            inputs = [try dataInput(input(0))]
        case "Softmax":
            // Before opset 13 Softmax normalises over all dimensions from `axis` on (default 1); from 13 over
            // `axis` alone (default -1). The two agree when `axis` is the last dimension; otherwise the old
            // form is a Flatten, a Softmax over the rows and a Reshape back.
            try arity(inputs: 1...1)
            let reader = try AttributeReader(node, name: name, allowed: ["axis"])
            let axis = try reader.int("axis", default: opset < 13 ? 1 : -1)
            guard opset < 13 else { return [Node(name: name, op: .softmax(axis: axis), inputs: [try dataInput(input(0))], outputs: [node.output[0]])] }
            guard let rank = shape(of: input(0), probe: 0)?.count else {
                throw ONNXError.cannotFold(node: name, op: op, reason: "the rank of its input '\(input(0))' is not known at import")
            }
            let a = axis < 0 ? axis + rank : axis
            guard a >= 0, a < rank else { throw reader.unsupported("axis", value: "\(axis)", "out of range for rank \(rank)") }
            if a == rank - 1 { return [Node(name: name, op: .softmax(axis: a), inputs: [try dataInput(input(0))], outputs: [node.output[0]])] }
            let shapes = try Self.batchProbes.indices.map { probe in
                guard let s = shape(of: input(0), probe: probe) else {
                    throw ONNXError.cannotFold(node: name, op: op, reason: "the shape of its input '\(input(0))' is not known at import")
                }
                return s
            }
            let back = try batchRelativeTarget(shapes, input: node.output[0] + "/rows", allowZero: false, node: name, op: op)
            let rows = node.output[0] + "/rows", normalized = node.output[0] + "/normalized"
            return [Node(name: name + "/flatten", op: .flatten(axis: a), inputs: [try dataInput(input(0))], outputs: [rows]),
                    Node(name: name, op: .softmax(axis: 1), inputs: [rows], outputs: [normalized]),
                    Node(name: name + "/reshape", op: .reshape(shape: back, allowZero: false), inputs: [normalized], outputs: [node.output[0]])]
        case "Gemm":
            try arity(inputs: 2...3)
            let reader = try AttributeReader(node, name: name, allowed: ["alpha", "beta", "transA", "transB"])
            ir = .gemm(alpha: try reader.float("alpha", default: 1), beta: try reader.float("beta", default: 1),
                       transA: try reader.bool("transA", default: false), transB: try reader.bool("transB", default: false))
            inputs = [try dataInput(input(0)), try dataInput(input(1))]
            if !input(2).isEmpty { inputs.append(try dataInput(input(2))) }
        case "MatMul":
            try arity(inputs: 2...2)
            _ = try AttributeReader(node, name: name, allowed: [])
            ir = .matMul
            inputs = [try dataInput(input(0)), try dataInput(input(1))]
        case "Concat":
            try arity(inputs: 1...Int.max)
            let reader = try AttributeReader(node, name: name, allowed: ["axis"])
            guard reader.has("axis") else { throw ONNXError.missingAttribute(node: name, op: op, attribute: "axis") }
            ir = .concat(axis: try reader.int("axis", default: 0))
            inputs = try node.input.map { tensor in
                guard !tensor.isEmpty else { throw ONNXError.wrongArity(node: name, op: op, detail: "an input is unnamed") }
                return try dataInput(tensor)
            }
        case "Dropout":
            // At inference Dropout passes its input through; a training_mode input must be a constant false.
            try arity(inputs: 1...3, outputs: 1...2)
            let reader = try AttributeReader(node, name: name, allowed: opset < 7 ? ["seed", "ratio", "is_test"] : ["seed", "ratio"])
            if !input(2).isEmpty {
                let mode = try constantOperand(input(2), node: name, op: op, role: "training_mode")
                if mode.elements.contains(where: { $0 != 0 }) {
                    throw reader.unsupported("training_mode", value: "true", "RAPQ runs models in inference mode; export in eval mode")
                }
            }
            try onlyFirstOutputUsed("the data; the mask is a training output")
            ir = .identity
            inputs = [try dataInput(input(0))]
        default:
            if ONNXImporter.foldOnlyOperators.contains(op) {
                throw ONNXError.cannotFold(node: name, op: op, reason: "an input is computed at run time; RAPQ evaluates \(op) "
                    + "only on constants and tensor shapes")
            }
            // `supportedOperators` lists exactly the cases above, the folded operators and Constant.
            throw ONNXError.unsupportedOperator(node: name, op: op, domain: node.domain, supported: ONNXImporter.supportedOperators)
        }
        return [Node(name: name, op: ir, inputs: inputs, outputs: [node.output[0]])]
    }

    /// The declared dimensions of a convolution weight, from its constant or its graph-input declaration.
    private func weightShape(_ tensor: String) throws -> [Int]? {
        if let proto = constants[tensor] {
            return try TensorDecoder.checkedShape(proto.dims, tensor: tensor).shape
        }
        if let info = inputs.first(where: { $0.name == tensor }), !info.dimensions.isEmpty,
           info.dimensions.allSatisfy({ $0 != nil }) {
            return info.dimensions.map { $0! }
        }
        return nil
    }
}
