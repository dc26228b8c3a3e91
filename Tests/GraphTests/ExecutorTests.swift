import DataIO
import Foundation
import Graph
import ONNX
import TensorKernels
import XCTest

/// The executor on a real model slice against onnxruntime, and its errors.
final class ExecutorTests: XCTestCase {
    static let resources = Bundle.module.url(forResource: "Resources", withExtension: nil)!

    /// The first blocks of EfficientNet-Lite0 (real ImageNet weights, SAME_UPPER padding, depthwise convs,
    /// BN as nodes) on two real photos: equal to onnxruntime's outputs (tools/make_lite0_slice.py) to 1e-3.
    func testLite0SliceMatchesOnnxRuntime() throws {
        let graph = try ONNXImporter.load(contentsOf: Self.resources.appendingPathComponent("lite0-slice.onnx"))
        let input = try NumpyFile.readTensor(contentsOf: Self.resources.appendingPathComponent("lite0-slice-input.npy"))
        let expected = try NumpyFile.readTensor(contentsOf: Self.resources.appendingPathComponent("lite0-slice-expected.npy"))
        let output = try Executor(graph: graph).run([graph.inputs[0].name: input])[graph.outputs[0].name]!
        XCTAssertEqual(output.shape, expected.shape)
        let diff = zip(output.data, expected.data).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(diff, 1e-3)
        XCTAssertGreaterThan(expected.data.map(abs).max()!, 0.1, "the reference is not trivially zero")
    }

    /// Running one image at a time gives the same bits as the batch (kernels split work by shape only).
    func testBatchIndependence() throws {
        let graph = try ONNXImporter.load(contentsOf: Self.resources.appendingPathComponent("lite0-slice.onnx"))
        let input = try NumpyFile.readTensor(contentsOf: Self.resources.appendingPathComponent("lite0-slice-input.npy"))
        let executor = try Executor(graph: graph)
        let name = graph.inputs[0].name, out = graph.outputs[0].name
        let whole = try executor.run([name: input])[out]!
        let first = try executor.run([name: input.rows(0..<1)])[out]!
        XCTAssertEqual(Array(whole.data[0..<first.count]), first.data)
    }

    func testWrongInputShapeIsAClearError() throws {
        let graph = try ONNXImporter.load(contentsOf: Self.resources.appendingPathComponent("lite0-slice.onnx"))
        let executor = try Executor(graph: graph)
        XCTAssertThrowsError(try executor.run([graph.inputs[0].name: Tensor(shape: [1, 3, 100, 100])])) { error in
            XCTAssertTrue("\(error)".contains("has shape 1x3x100x100 but the model expects"), "\(error)")
        }
        XCTAssertThrowsError(try executor.run([:])) { error in
            XCTAssertEqual(error as? ExecutionError, .missingInput(name: graph.inputs[0].name))
        }
    }

    /// A sub-graph program's forward equals the executor's, and its backward matches finite differences
    /// of a scalar loss with respect to a weight.
    func testSubgraphProgramAgreesWithExecutorAndDifferentiates() throws {
        var graph = Graph(name: "t", inputs: [ValueInfo(name: "x", dimensions: [nil, 2, 5, 5])], outputs: [ValueInfo(name: "y", dimensions: [nil, 3, 1, 1])],
                          nodes: [], initializers: [:])
        var rng = TestGenerator(state: 12345)
        func random(_ shape: [Int]) -> Tensor { Tensor(shape: shape, data: (0..<shape.shapeProduct).map { _ in Float.random(in: -1...1, using: &rng) }) }
        graph.initializers = ["w1": random([3, 2, 3, 3]), "b1": random([3]), "w2": random([3, 1, 3, 3])]
        let conv = Conv2DParameters(window: WindowGeometry(kernel: (3, 3), strides: (2, 2), pads: (1, 1, 1, 1)))
        let depthwise = Conv2DParameters(window: WindowGeometry(kernel: (3, 3), pads: (1, 1, 1, 1)), groups: 3)
        graph.nodes = [
            Node(name: "c1", op: .conv(conv), inputs: ["x", "w1", "b1"], outputs: ["a"]),
            Node(name: "r", op: .clip(min: 0, max: 6), inputs: ["a"], outputs: ["b"]),
            Node(name: "c2", op: .conv(depthwise), inputs: ["b", "w2"], outputs: ["c"]),
            Node(name: "s", op: .add, inputs: ["c", "b"], outputs: ["d"]),
            Node(name: "g", op: .globalAveragePool, inputs: ["d"], outputs: ["y"]),
        ]
        let x = random([2, 2, 5, 5])
        let program = try SubgraphProgram(graph: graph, nodeNames: graph.nodes.map(\.name), output: "y")
        let trace = try program.forward(["x": x])
        XCTAssertEqual(trace.output, try Executor(graph: graph).run(["x": x])["y"]!)
        XCTAssertEqual(program.inputs, ["x"])
        // L = sum(y^2) / 2, dL/dy = y.
        let grads = program.backward(trace, outputGradient: trace.output, inputGradientsFor: ["x"])
        func loss(_ w1: Tensor) throws -> Double {
            try program.forward(["x": x], parameters: ["w1": w1]).output.data.reduce(0) { $0 + Double($1) * Double($1) } / 2
        }
        let w1 = graph.initializers["w1"]!
        for i in [0, 7, 20, 53] {
            var plus = w1, minus = w1
            plus.data[i] += 1e-2; minus.data[i] -= 1e-2
            let fd = (try loss(plus) - loss(minus)) / 2e-2
            XCTAssertEqual(Double(grads.parameters["w1"]!.data[i]), fd, accuracy: 2e-3 + 2e-2 * abs(fd), "w1[\(i)]")
        }
        XCTAssertEqual(grads.inputs["x"]?.shape, x.shape)
    }
}

extension ExecutorTests {
    /// Activation fusion: each Relu/Clip that alone reads a conv output runs inside the conv, with the
    /// same bits as the unfused graph; a conv output with two readers, or one that is a graph output, is
    /// left alone; and the fused-away tensors can no longer be kept.
    func testFusedActivationsGiveTheSameBits() throws {
        var rng = TestGenerator(state: 99)
        func random(_ shape: [Int]) -> Tensor { Tensor(shape: shape, data: (0..<shape.shapeProduct).map { _ in Float.random(in: -1...1, using: &rng) }) }
        var graph = Graph(name: "t", inputs: [ValueInfo(name: "x", dimensions: [nil, 3, 9, 20])],
                          outputs: [ValueInfo(name: "y", dimensions: [nil, 6, 5, 10]), ValueInfo(name: "e", dimensions: [nil, 6, 5, 10])], nodes: [], initializers: [:])
        graph.initializers = ["w1": random([6, 3, 3, 3]), "b1": random([6]), "w2": random([6, 1, 3, 3]), "b2": random([6]),
                              "w3": random([6, 6, 1, 1]), "w4": random([6, 6, 1, 1])]
        let conv = Conv2DParameters(window: WindowGeometry(kernel: (3, 3), pads: (1, 1, 1, 1)))
        let depthwise = Conv2DParameters(window: WindowGeometry(kernel: (3, 3), strides: (2, 2), pads: (1, 1, 1, 1)), groups: 6)
        let pointwise = Conv2DParameters(window: WindowGeometry(kernel: (1, 1)))
        graph.nodes = [
            Node(name: "c1", op: .conv(conv), inputs: ["x", "w1", "b1"], outputs: ["a"]),
            Node(name: "r1", op: .relu, inputs: ["a"], outputs: ["b"]),
            Node(name: "c2", op: .conv(depthwise), inputs: ["b", "w2", "b2"], outputs: ["c"]),
            Node(name: "r2", op: .clip(min: 0, max: 0.5), inputs: ["c"], outputs: ["d"]),
            Node(name: "c3", op: .conv(pointwise), inputs: ["d", "w3"], outputs: ["e"]),   // graph output: not fused
            Node(name: "r3", op: .relu, inputs: ["e"], outputs: ["f"]),
            Node(name: "c4", op: .conv(pointwise), inputs: ["f", "w4"], outputs: ["g"]),   // two readers: not fused
            Node(name: "r4", op: .relu, inputs: ["g"], outputs: ["h"]),
            Node(name: "s", op: .add, inputs: ["g", "h"], outputs: ["y"]),
        ]
        let x = random([2, 3, 9, 20])
        let plain = try Executor(graph: graph).run(["x": x], keep: ["b", "d"])
        let fusedExecutor = try Executor(graph: graph, fuseActivations: true)
        XCTAssertEqual(fusedExecutor.graph.nodes.map(\.name), ["c1", "c2", "c3", "r3", "c4", "r4", "s"])
        let fused = try fusedExecutor.run(["x": x])
        XCTAssertEqual(fused["y"], plain["y"])
        XCTAssertEqual(fused["e"], plain["e"])
        XCTAssertGreaterThan(plain["b"]!.data.filter { $0 == 0 }.count, 0, "the fused Relu clips something")
        XCTAssertGreaterThan(plain["d"]!.data.filter { $0 == 0.5 }.count, 0, "the fused Clip clips something")
        XCTAssertThrowsError(try fusedExecutor.run(["x": x], keep: ["a"]))
    }
}

/// A fixed-seed generator so test inputs (and any finite-difference kinks) are the same on every run.
struct TestGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state ^ (state >> 29)
    }
}
