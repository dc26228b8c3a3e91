import Foundation
import Graph
import ONNX
import TensorKernels
import XCTest

/// Export followed by import gives back the same graph, for every IR operator.
final class RoundTripTests: XCTestCase {
    /// A graph that uses every operator of the IR with non-default attributes.
    static func everyOperator() -> Graph {
        func t(_ shape: [Int], _ seed: Float) -> Tensor {
            Tensor(shape: shape, data: (0..<shape.shapeProduct).map { sin(Float($0) * 0.37 + seed) })
        }
        let conv = Conv2DParameters(window: WindowGeometry(kernel: (3, 3), strides: (2, 1), dilations: (1, 2), pads: (1, 2, 0, 2)), groups: 2)
        let depthwise = Conv2DParameters(window: WindowGeometry(kernel: (3, 3), autoPad: .sameUpper), groups: 4)
        let nodes: [Node] = [
            Node(name: "conv", op: .conv(conv), inputs: ["x", "w1", "b1"], outputs: ["c1"]),
            Node(name: "bn", op: .batchNormalization(epsilon: 1e-3), inputs: ["c1", "s", "bb", "m", "v"], outputs: ["n1"]),
            Node(name: "relu6", op: .clip(min: 0, max: 6), inputs: ["n1"], outputs: ["r1"]),
            Node(name: "dw", op: .conv(depthwise), inputs: ["r1", "w2"], outputs: ["c2"]),
            Node(name: "hswish", op: .hardSwish, inputs: ["c2"], outputs: ["h"]),
            Node(name: "lowclip", op: .clip(min: -.infinity, max: 3), inputs: ["h"], outputs: ["h2"]),
            Node(name: "hsig", op: .hardSigmoid(alpha: 0.25, beta: 0.4), inputs: ["h2"], outputs: ["g"]),
            Node(name: "mul", op: .mul, inputs: ["h2", "g"], outputs: ["p"]),
            Node(name: "sig", op: .sigmoid, inputs: ["p"], outputs: ["q"]),
            Node(name: "add", op: .add, inputs: ["q", "r1"], outputs: ["a"]),
            Node(name: "relu", op: .relu, inputs: ["a"], outputs: ["a2"]),
            Node(name: "max", op: .maxPool(WindowGeometry(kernel: (2, 2), strides: (2, 2), pads: (0, 0, 1, 1), ceilMode: true)),
                 inputs: ["a2"], outputs: ["mp"]),
            Node(name: "avg", op: .averagePool(WindowGeometry(kernel: (3, 3), pads: (1, 1, 1, 1)), countIncludePad: true),
                 inputs: ["a2"], outputs: ["ap"]),
            Node(name: "avg_dilated", op: .averagePool(WindowGeometry(kernel: (2, 2), dilations: (2, 2)), countIncludePad: false),
                 inputs: ["ap"], outputs: ["ap2"]),
            Node(name: "gap", op: .globalAveragePool, inputs: ["mp"], outputs: ["gp"]),
            Node(name: "gap2", op: .globalAveragePool, inputs: ["ap2"], outputs: ["gp2"]),
            Node(name: "cat", op: .concat(axis: -3), inputs: ["gp", "gp2"], outputs: ["cat"]),
            Node(name: "flat", op: .flatten(axis: 1), inputs: ["cat"], outputs: ["f"]),
            Node(name: "reshape", op: .reshape(shape: [0, -1], allowZero: false), inputs: ["f"], outputs: ["f2"]),
            Node(name: "fc", op: .gemm(alpha: 0.5, beta: 2, transA: false, transB: true), inputs: ["f2", "fw", "fb"], outputs: ["fc"]),
            Node(name: "mm", op: .matMul, inputs: ["fc", "mw"], outputs: ["mm"]),
            Node(name: "id", op: .identity, inputs: ["mm"], outputs: ["y"]),
            Node(name: "keep_zero", op: .reshape(shape: [-1, 5], allowZero: true), inputs: ["y"], outputs: ["z"]),
        ]
        return Graph(
            name: "every-operator",
            inputs: [ValueInfo(name: "x", dimensions: [nil, 2, 9, 9])],
            outputs: [ValueInfo(name: "y", dimensions: [nil, 5]), ValueInfo(name: "z", dimensions: [nil, 5])],
            nodes: nodes,
            initializers: [
                "w1": t([4, 1, 3, 3], 0), "b1": t([4], 1), "s": t([4], 2), "bb": t([4], 3), "m": t([4], 4),
                "v": Tensor(shape: [4], data: [1, 2, 3, 4]), "w2": t([4, 1, 3, 3], 5), "fw": t([7, 8], 6),
                "fb": t([7], 7), "mw": t([7, 5], 8),
            ])
    }

    func testExportThenImportGivesTheSameGraph() throws {
        let graph = Self.everyOperator()
        let data = try ONNXExporter.serialize(graph)
        let back = try ONNXImporter.load(data: data, externalDataDirectory: nil)
        XCTAssertEqual(back.nodes, graph.nodes)
        XCTAssertEqual(back.initializers, graph.initializers)
        XCTAssertEqual(back, graph)
        // Declared opset: 19 because of the dilated AveragePool.
        let model = ONNXExporter.modelProto(for: graph)
        XCTAssertEqual(model.opsetImport.first?.version, 19)
        XCTAssertEqual(model.irVersion, 9)
    }

    func testExportedGraphRunsLikeTheOriginal() throws {
        let graph = Self.everyOperator()
        let back = try ONNXImporter.load(data: ONNXExporter.serialize(graph), externalDataDirectory: nil)
        let x = Tensor(shape: [2, 2, 9, 9], data: (0..<324).map { cos(Float($0) * 0.1) })
        let a = try Executor(graph: graph).run(["x": x])
        let b = try Executor(graph: back).run(["x": x])
        XCTAssertEqual(a, b)
        let shapes = try inferShapes(of: graph, batch: 2)
        XCTAssertEqual(shapes["y"], a["y"]?.shape)
        XCTAssertEqual(shapes["z"], [2, 5])
    }

    func testDefaultOpsetIs13AndHardSwishRaisesIt() {
        let plain = Graph(name: "g", inputs: [ValueInfo(name: "x", dimensions: [1, 3])],
                          outputs: [ValueInfo(name: "y", dimensions: [1, 3])],
                          nodes: [Node(name: "r", op: .clip(min: 0, max: 6), inputs: ["x"], outputs: ["y"])], initializers: [:])
        let model = ONNXExporter.modelProto(for: plain)
        XCTAssertEqual(model.opsetImport.map(\.version), [13])
        XCTAssertEqual(model.graph.node[0].input, ["x", "r/min", "r/max"])
        XCTAssertEqual(model.graph.initializer.map(\.name), ["r/min", "r/max"])
        var swish = plain
        swish.nodes[0].op = .hardSwish
        XCTAssertEqual(ONNXExporter.modelProto(for: swish).opsetImport.map(\.version), [14])
    }

    func testConformanceModelsRoundTrip() throws {
        var count = 0
        for name in try ConformanceTests.caseNames() where ConformanceTests.expectedUnsupported[name] == nil {
            let (model, _, _) = try ConformanceTests.prepare(name)
            let graph = try ONNXImporter.graph(from: model, externalDataDirectory: nil)
            let back = try ONNXImporter.load(data: ONNXExporter.serialize(graph), externalDataDirectory: nil)
            XCTAssertEqual(back, graph, name)
            count += 1
        }
        XCTAssertGreaterThan(count, 100)
    }

    func testAtomicWrite() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("onnx-write-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("model.onnx")
        try Data("old contents".utf8).write(to: url)
        let graph = Self.everyOperator()
        try ONNXExporter.write(graph, to: url)
        XCTAssertEqual(try ONNXImporter.load(contentsOf: url), graph)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["model.onnx"], "no temporary file left")

        let missing = directory.appendingPathComponent("no/such/dir/model.onnx")
        XCTAssertThrowsError(try ONNXExporter.write(graph, to: missing)) { error in
            guard case .writeFailed? = error as? ONNXError else { return XCTFail("\(error)") }
        }
    }
}
