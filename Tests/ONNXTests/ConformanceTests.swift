import Foundation
import Graph
import ONNX
import TensorKernels
import XCTest

/// Runs the ONNX operator conformance cases (onnx 1.22.0, see Resources/node/ORIGIN.md) through the importer
/// and the executor, and checks that every case RAPQ does not support is rejected with a clear error.
///
/// Every case directory is either run and compared (rtol 1e-4, atol 1e-5) or listed in
/// `expectedUnsupported` with the reason; a case in neither place fails `testEveryCaseIsClassified`.
///
/// The node tests pass constant operands (Clip's `min`/`max`, Reshape's `shape`, Split's `split`) as graph inputs with their
/// values in `test_data_set_0`. RAPQ needs those as constants, as exporters write them, so the harness moves
/// such inputs into the initializers, with the values from the test data, before importing. Nothing else of
/// the model is changed.
final class ConformanceTests: XCTestCase {
    /// Cases RAPQ rejects on purpose: case name -> (reason, a phrase the error's description must contain).
    static let expectedUnsupported: [String: (reason: String, phrase: String)] = {
        var cases: [String: (String, String)] = [:]
        let oneD = ("1-D pooling window; RAPQ supports 2-D NCHW only", "1-D")
        let threeD = ("3-D pooling window; RAPQ supports 2-D NCHW only", "3-D")
        cases["test_averagepool_1d_default"] = oneD
        cases["test_maxpool_1d_default"] = oneD
        for name in [
            "test_averagepool_3d_default",
            "test_averagepool_3d_dilations_large_count_include_pad_is_0_ceil_mode_is_False",
            "test_averagepool_3d_dilations_large_count_include_pad_is_0_ceil_mode_is_True",
            "test_averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_False",
            "test_averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_True",
            "test_averagepool_3d_dilations_small",
            "test_maxpool_3d_default",
            "test_maxpool_3d_dilations",
            "test_maxpool_3d_dilations_use_ref_impl",
            "test_maxpool_3d_dilations_use_ref_impl_large",
        ] { cases[name] = threeD }
        let argmax = ("MaxPool's second output (argmax indices) is not computed", "indices")
        cases["test_maxpool_with_argmax_2d_precomputed_pads"] = argmax
        cases["test_maxpool_with_argmax_2d_precomputed_strides"] =
            ("MaxPool's argmax output with column-major storage_order = 1", "storage_order")
        let training = ("BatchNormalization in training mode; RAPQ runs inference only", "training_mode")
        cases["test_batchnorm_epsilon_training_mode"] = training
        cases["test_batchnorm_example_training_mode"] = training
        return cases
    }()

    static let relativeTolerance: Float = 1e-4

    /// Cases whose reference data is less precise than float32, with the absolute tolerance that data allows.
    static let absoluteToleranceOverrides: [String: (atol: Float, reason: String)] = [
        // The expected output is stored rounded to 4 decimals (0.1511 for the exact mean 0.15105554).
        "test_averagepool_2d_ceil_last_window_starts_on_pad": (5e-5, "reference rounded to 4 decimals"),
    ]
    static let absoluteTolerance: Float = 1e-5

    static var nodeDirectory: URL {
        Bundle.module.url(forResource: "Resources", withExtension: nil)!.appendingPathComponent("node")
    }

    static func caseNames() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: nodeDirectory.path)
            .filter { $0.hasPrefix("test_") }
            .sorted()
    }

    func testEveryCaseIsClassified() throws {
        let names = try Self.caseNames()
        XCTAssertGreaterThan(names.count, 100, "the conformance cases are missing; run tools/extract_onnx_node_tests.py")
        for name in Self.expectedUnsupported.keys {
            XCTAssertTrue(names.contains(name), "expected-unsupported case \(name) is not in Resources/node")
        }
    }

    func testSupportedCasesMatchReference() throws {
        var passed = 0
        for name in try Self.caseNames() where Self.expectedUnsupported[name] == nil {
            do {
                try runCase(name)
                passed += 1
            } catch {
                XCTFail("\(name): \(error)")
            }
        }
        print("ONNX conformance: \(passed) cases passed, \(Self.expectedUnsupported.count) expected-unsupported")
    }

    func testUnsupportedCasesFailWithClearError() throws {
        for (name, expectation) in Self.expectedUnsupported.sorted(by: { $0.key < $1.key }) {
            do {
                let (model, _, _) = try Self.prepare(name)
                _ = try ONNXImporter.graph(from: model, externalDataDirectory: Self.nodeDirectory.appendingPathComponent(name))
                XCTFail("\(name) (\(expectation.reason)) was imported; remove it from expectedUnsupported if it is now supported")
            } catch let error as ONNXError {
                XCTAssertTrue(error.description.contains(expectation.phrase),
                              "\(name): the error should mention '\(expectation.phrase)': \(error)")
            }
        }
    }

    // MARK: - Harness

    /// A case's model with constant operands moved into initializers, its float inputs and expected outputs.
    static func prepare(_ name: String) throws -> (Onnx_ModelProto, [String: Tensor], [(String, Onnx_TensorProto)]) {
        let directory = nodeDirectory.appendingPathComponent(name)
        var model = try ONNXImporter.modelProto(from: Data(contentsOf: directory.appendingPathComponent("model.onnx")))
        let data = directory.appendingPathComponent("test_data_set_0")
        func load(_ file: String) throws -> Onnx_TensorProto {
            try Onnx_TensorProto(serializedBytes: Data(contentsOf: data.appendingPathComponent(file)))
        }

        // Graph inputs in the positions the IR needs as constants.
        var constantOperands = Set<String>()
        for node in model.graph.node {
            let positions: [Int] = node.opType == "Clip" ? [1, 2] : ["Reshape", "Split"].contains(node.opType) ? [1] : []
            for i in positions where i < node.input.count && !node.input[i].isEmpty { constantOperands.insert(node.input[i]) }
        }
        let initializerNames = Set(model.graph.initializer.map(\.name))
        let runtimeInputs = model.graph.input.filter { !initializerNames.contains($0.name) }
        var feeds: [String: Tensor] = [:]
        var keptInputs: [Onnx_ValueInfoProto] = []
        for (index, input) in runtimeInputs.enumerated() {
            var proto = try load("input_\(index).pb")
            if constantOperands.contains(input.name) {
                proto.name = input.name
                model.graph.initializer.append(proto)
            } else {
                feeds[input.name] = try ONNXImporter.tensor(from: proto)
                keptInputs.append(input)
            }
        }
        model.graph.input = model.graph.input.filter { initializerNames.contains($0.name) } + keptInputs
        let expected = try model.graph.output.enumerated().map { index, output in
            (output.name, try load("output_\(index).pb"))
        }
        return (model, feeds, expected)
    }

    func runCase(_ name: String) throws {
        let (model, feeds, expected) = try Self.prepare(name)
        let graph = try ONNXImporter.graph(from: model, externalDataDirectory: Self.nodeDirectory.appendingPathComponent(name))
        let outputs = try Executor(graph: graph).run(feeds)
        let tolerance = Self.absoluteToleranceOverrides[name]?.atol ?? Self.absoluteTolerance
        for (output, proto) in expected {
            let reference = try ONNXImporter.tensor(from: proto)
            guard let actual = outputs[output] else {
                XCTFail("\(name): output \(output) missing")
                continue
            }
            XCTAssertEqual(actual.shape, reference.shape, "\(name): shape of \(output)")
            guard actual.shape == reference.shape else { continue }
            var worst = (index: -1, excess: Float(0))
            for (i, (a, b)) in zip(actual.data, reference.data).enumerated() {
                let excess = abs(a - b) - (tolerance + Self.relativeTolerance * abs(b))
                if excess > worst.excess || (a.isNaN != b.isNaN) { worst = (i, max(excess, .infinity)) }
            }
            if worst.index >= 0 {
                XCTFail("\(name): \(output)[\(worst.index)] = \(actual.data[worst.index]), expected \(reference.data[worst.index])")
            }
        }
        // The inferred shapes agree with what the executor produced (a single input's leading dimension is
        // the batch, so shapes are inferred at the batch the case feeds).
        let batch = graph.inputs.count == 1 ? feeds[graph.inputs[0].name]?.shape.first ?? 1 : 1
        guard batch > 0 else { return }   // an empty batch runs, but shape inference asks for a positive one
        let shapes = try inferShapes(of: graph, batch: batch)
        for (output, reference) in expected {
            XCTAssertEqual(shapes[output], reference.dims.map { Int($0) }, "\(name): inferred shape of \(output)")
        }
    }
}
