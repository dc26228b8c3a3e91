import Foundation
import RAPQ
import TestSupport
import XCTest

/// The graph patterns of the standard CNNs (squeeze-excitation, HardSwish, SiLU, inception and dense
/// Concats, channel shuffle with shape arithmetic, shared biases, fixed-batch exports, older opsets), built
/// by `tools/make_graph_patterns.py` with onnxruntime's outputs: each imports, runs like onnxruntime,
/// quantizes, reads back from `.rapq`, and runs on the integer engine with the simulation's codes.
final class GraphPatternTests: XCTestCase {
    /// The generated patterns, once per run (nil with the reason when Python is missing).
    static let patterns: Result<URL, XCTSkip> = {
        let (found, missing) = ReferencePython.find(importing: "onnx, onnxruntime, numpy")
        guard let python = found else { return .failure(XCTSkip(missing)) }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rapq-patterns-\(UUID().uuidString)")
        let script = PipelineTests.root.appendingPathComponent("tools/make_graph_patterns.py").path
        let (status, output) = ReferencePython.run(python, [script, folder.path])
        guard status == 0 else { return .failure(XCTSkip("make_graph_patterns.py failed: \(output)")) }
        return .success(folder)
    }()

    override class func tearDown() {
        if case .success(let folder) = patterns { try? FileManager.default.removeItem(at: folder) }
    }

    /// Imports pattern `name`, compares its FP32 outputs with onnxruntime's, quantizes it with power-of-two
    /// scales at `bits`, writes and reads the `.rapq` file, and requires the integer engine to reproduce the
    /// simulation's codes at every site.
    func check(_ name: String, bits: (weights: Int, activations: Int) = (8, 8), file: StaticString = #filePath, line: UInt = #line) throws {
        let folder = try Self.patterns.get()
        let model = try FloatModel(contentsOf: folder.appendingPathComponent("\(name).onnx"))
        let x = try NumpyFile.readTensor(contentsOf: folder.appendingPathComponent("\(name)-input.npy"))
        let reference = try NumpyFile.readTensor(contentsOf: folder.appendingPathComponent("\(name)-ort.npy"))
        let y = try model.predict(x)
        XCTAssertEqual(y.shape, reference.shape, name, file: file, line: line)
        let scale = reference.data.map(abs).max() ?? 1
        let difference = zip(y.data, reference.data).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(difference / scale, 1e-5, "\(name): relative difference to onnxruntime", file: file, line: line)
        XCTAssertEqual(try ClassificationMetrics(logits: y, reference: reference).agreement, 1, name, file: file, line: line)

        let configuration = QuantizationConfiguration(method: .potMse, weightBits: bits.weights, activationBits: bits.activations)
        let network = try quantize(model: model.graph, calibration: x, configuration: configuration)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("rapq-pattern-\(UUID().uuidString).rapq")
        defer { try? FileManager.default.removeItem(at: url) }
        try RAPQFile.write(network, to: url)
        let readBack = try RAPQFile.read(contentsOf: url)
        let report = VerificationReport(network: readBack, data: x, batchSize: 4)
        XCTAssertTrue(report.passed, "\(name):\n\(report.text)", file: file, line: line)
        var reported: [[Int]] = []
        let comparison = try EngineComparison(network: readBack, data: x, batchSize: 4) { reported.append([$0, $1]) }
        XCTAssertEqual(reported, [[4, 6], [6, 6]], "\(name): progress after each batch", file: file, line: line)
        XCTAssertEqual(comparison.identicalFraction, 1, "\(name): every activation code identical", file: file, line: line)
        XCTAssertEqual(comparison.top1Mismatches, 0, name, file: file, line: line)
    }

    func testSqueezeExcitation() throws { try check("se_block") }
    func testSqueezeExcitationAt4Bits() throws { try check("se_block", bits: (4, 4)) }
    func testHardSwishInvertedResidual() throws { try check("hardswish_block") }
    func testSiLU() throws { try check("silu_block") }
    func testSiLUAt4Bits() throws { try check("silu_block", bits: (4, 4)) }
    func testInceptionConcatOfDifferentGrids() throws { try check("inception") }
    func testDenseConcatThenBatchNormalization() throws { try check("dense_bn") }
    func testChannelShuffleWithShapeArithmetic() throws { try check("channel_shuffle") }
    func testBiasSharedThroughIdentity() throws { try check("identity_bias") }
    func testBatchOneExportRunsAnyBatch() throws { try check("batch1_reshape") }
    func testReduceMeanOverHeightAndWidth() throws { try check("reduce_mean") }
    func testOpset9() throws { try check("opset9") }
    func testSoftmaxOutput() throws { try check("softmax_output") }
    func testLogitsFromGlobalAveragePool() throws { try check("gap_logits") }
    func testConvNeXtBlock() throws { try check("convnext_block") }
    func testConvNeXtBlockAt4Bits() throws { try check("convnext_block", bits: (4, 4)) }
    func testConvNeXtBlockWithLayerNormDecomposedAtOpset13() throws { try check("convnext_block_opset13") }
    func testStridedViewOfBatchOneExportRunsAnyBatch() throws { try check("strided_view") }

    /// The ConvNeXt pattern imports as NCHW layers: no Transpose, MatMul, Erf or layer-scale Mul is left,
    /// the MLP is two 1x1 convolutions with their biases, GELU is one node, the three LayerNorms normalize
    /// the channel axis; the quantized model keeps its LayerNorms as the only Float steps, and its QDQ export
    /// runs in onnxruntime. At opset 13 the LayerNorms are written out as ReduceMean/Sub/Pow (or Mul)/Sqrt/Div
    /// and the affine Mul/Add, and import as the same single nodes.
    func testConvNeXtBlockImportsAsChannelsFirstLayers() throws {
        let folder = try Self.patterns.get()
        for name in ["convnext_block_opset13", "convnext_block"] {
            let model = try FloatModel(contentsOf: folder.appendingPathComponent("\(name).onnx"))
            let ops = model.graph.nodes.map(\.op.onnxName)
            XCTAssertEqual(ops, ["Conv", "LayerNormalization", "Conv", "LayerNormalization", "Conv", "Gelu", "Conv", "Mul", "Add",
                                 "GlobalAveragePool", "LayerNormalization", "Flatten", "Gemm"], name)
            for node in model.graph.nodes {
                if case .layerNormalization(let norm) = node.op {
                    XCTAssertEqual(norm.axes(rank: 4), 1..<2, name)
                    XCTAssertEqual(norm.epsilon, 1e-6, name)
                }
                if case .conv = node.op, node.name == "fc1" { XCTAssertEqual(model.graph.initializers[node.inputs[1]]?.shape, [16, 8, 1, 1]) }
            }
        }
        let model = try FloatModel(contentsOf: folder.appendingPathComponent("convnext_block.onnx"))
        let x = try NumpyFile.readTensor(contentsOf: folder.appendingPathComponent("convnext_block-input.npy"))
        let network = try quantize(model: model.graph, calibration: x,
                                   configuration: QuantizationConfiguration(method: .potMse, weightBits: 8, activationBits: 8))
        XCTAssertFalse(network.graph.nodes.contains { $0.op == .mul }, "the layer scale is folded into the second 1x1 convolution")
        XCTAssertEqual(try IntegerEngine(network).floatSteps.count, 3)
        let report = VerificationReport(network: network, data: x, batchSize: 4)
        XCTAssertTrue(report.passed, report.text)
        XCTAssertEqual(report.integerOnly, false, "LayerNorm runs in Float: hybrid")
        XCTAssertEqual(report.floatSteps.count, 3)
        XCTAssertTrue(report.text.contains("integer-only: no: 3 node(s) run in Float"), report.text)
        XCTAssertTrue(report.text.hasSuffix("verified as a hybrid model: every check passed; 3 node(s) run in Float, so it is not integer-only"), report.text)
        XCTAssertFalse(report.text.contains("verified: every check passed"), report.text)
    }

    /// Softmax over the channels of a 4-D tensor in opset 11 means over C, H and W together: imported as
    /// Flatten, Softmax over the rows and Reshape back, it runs like the file says at any batch.
    func testLegacySoftmaxOverSeveralAxes() throws {
        let x = Tensor(shape: [2, 2, 1, 2], data: [0, 1, 2, 3, -1, 0, 1, 2])
        func model(opset: Int64) -> Onnx_ModelProto {
            var m = Onnx_ModelProto()
            m.irVersion = 6
            var o = Onnx_OperatorSetIdProto()
            o.version = opset
            m.opsetImport = [o]
            var node = Onnx_NodeProto()
            node.opType = "Softmax"; node.name = "sm"; node.input = ["x"]; node.output = ["y"]
            m.graph.node = [node]
            func info(_ name: String) -> Onnx_ValueInfoProto {
                var v = Onnx_ValueInfoProto()
                v.name = name
                v.type.tensorType.elemType = 1
                v.type.tensorType.shape.dim = [1, 2, 1, 2].map { d in var dim = Onnx_TensorShapeProto.Dimension(); dim.dimValue = Int64(d); return dim }
                return v
            }
            m.graph.input = [info("x")]
            m.graph.output = [info("y")]
            return m
        }
        let legacy = try FloatModel(graph: ONNXImporter.graph(from: model(opset: 11), externalDataDirectory: nil)).predict(x)
        let exps = x.data.map { exp(Double($0)) }
        for sample in 0..<2 {
            let total = exps[sample * 4 ..< sample * 4 + 4].reduce(0, +)
            for k in 0..<4 { XCTAssertEqual(Double(legacy.data[sample * 4 + k]), exps[sample * 4 + k] / total, accuracy: 1e-6) }
        }
        let current = try FloatModel(graph: ONNXImporter.graph(from: model(opset: 13), externalDataDirectory: nil)).predict(x)
        XCTAssertEqual(Double(current.data[0]), exp(0) / (exp(0) + exp(1)), accuracy: 1e-6)
    }

    /// LRN runs like onnxruntime; it has no integer kernel, which quantize and the engine say by name.
    func testLocalResponseNormalizationRunsInFloat() throws {
        let folder = try Self.patterns.get()
        let model = try FloatModel(contentsOf: folder.appendingPathComponent("lrn.onnx"))
        let x = try NumpyFile.readTensor(contentsOf: folder.appendingPathComponent("lrn-input.npy"))
        let reference = try NumpyFile.readTensor(contentsOf: folder.appendingPathComponent("lrn-ort.npy"))
        let y = try model.predict(x)
        let scale = reference.data.map(abs).max() ?? 1
        XCTAssertLessThanOrEqual((zip(y.data, reference.data).map { abs($0 - $1) }.max() ?? 0) / scale, 1e-5)
        let network = try quantize(model: model.graph, calibration: x,
                                   configuration: QuantizationConfiguration(method: .potMse, weightBits: 8, activationBits: 8))
        XCTAssertThrowsError(try IntegerEngine(network)) { error in
            XCTAssertEqual(error as? QuantizationError, .noIntegerKernel(node: "norm", op: "LRN"))
        }
    }

    /// A Concat of Relu outputs, and the product of a Relu output and a HardSigmoid gate, are non-negative:
    /// their quantizers are unsigned (a signed grid would waste its negative half).
    func testNonNegativeConcatAndProductGetUnsignedGrids() throws {
        let folder = try Self.patterns.get()
        for (name, site) in [("inception", "cat"), ("se_block", "scaled")] {
            let model = try FloatModel(contentsOf: folder.appendingPathComponent("\(name).onnx"))
            let x = try NumpyFile.readTensor(contentsOf: folder.appendingPathComponent("\(name)-input.npy"))
            let network = try quantize(model: model.graph, calibration: x,
                                       configuration: QuantizationConfiguration(method: .potMse, weightBits: 4, activationBits: 4))
            let grid = try XCTUnwrap(network.activations[site]?.grid, "\(name): no quantizer on '\(site)'")
            XCTAssertFalse(grid.signed, "\(name): '\(site)'")
        }
    }

    /// The fixed-batch export's Reshape [1, -1] is rewritten to keep the batch, and the input declared batch-free.
    func testBatchOneReshapeIsRewritten() throws {
        let folder = try Self.patterns.get()
        let graph = try ONNXImporter.load(contentsOf: folder.appendingPathComponent("batch1_reshape.onnx"))
        XCTAssertEqual(graph.inputs[0].dimensions, [nil, 3, 8, 8])
        XCTAssertEqual(graph.nodes.first { $0.name == "flatten_b1" }?.op, .reshape(shape: [0, -1], allowZero: false))
        // The channel shuffle's computed targets become batch-relative constants.
        let shuffle = try ONNXImporter.load(contentsOf: folder.appendingPathComponent("channel_shuffle.onnx"))
        XCTAssertEqual(shuffle.nodes.first { $0.name == "group" }?.op, .reshape(shape: [0, 2, 4, 8, 8], allowZero: false))
        XCTAssertEqual(shuffle.nodes.first { $0.name == "ungroup" }?.op, .reshape(shape: [0, -1, 8, 8], allowZero: false))
        XCTAssertEqual(shuffle.nodes.first { $0.name == "slice_hi" }?.op, .slice(axis: 1, start: 4, end: 8))
    }
}
