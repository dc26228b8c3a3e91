import Graph
import ONNX
import TensorKernels
import XCTest

/// Shapes of every tensor, and clear errors for graphs whose shapes do not fit.
final class ShapeInferenceTests: XCTestCase {
    func graph(_ nodes: [Node], inputs: [ValueInfo], initializers: [String: Tensor] = [:]) -> Graph {
        Graph(name: "g", inputs: inputs, outputs: [], nodes: nodes, initializers: initializers)
    }

    func inconsistency(_ g: Graph, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try inferShapes(of: g, batch: 3)
            XCTFail("no error", file: file, line: line)
        } catch let error as ShapeInferenceError {
            guard case .inconsistentShapes = error else { XCTFail("\(error)", file: file, line: line); return "" }
            return error.description
        } catch {
            XCTFail("\(error)", file: file, line: line)
        }
        return ""
    }

    func testSymbolicBatchIsReplaced() throws {
        let conv = Conv2DParameters(window: WindowGeometry(kernel: (3, 3), strides: (2, 2), pads: (1, 1, 1, 1)))
        let g = graph([
            Node(name: "c", op: .conv(conv), inputs: ["x", "w"], outputs: ["c"]),
            Node(name: "p", op: .globalAveragePool, inputs: ["c"], outputs: ["p"]),
            Node(name: "f", op: .flatten(axis: 1), inputs: ["p"], outputs: ["f"]),
        ], inputs: [ValueInfo(name: "x", dimensions: [nil, 3, 32, 31])], initializers: ["w": Tensor(shape: [8, 3, 3, 3])])
        let shapes = try inferShapes(of: g, batch: 5)
        XCTAssertEqual(shapes["x"], [5, 3, 32, 31])
        XCTAssertEqual(shapes["c"], [5, 8, 16, 16])
        XCTAssertEqual(shapes["p"], [5, 8, 1, 1])
        XCTAssertEqual(shapes["f"], [5, 8])
        XCTAssertEqual(shapes["w"], [8, 3, 3, 3])
        XCTAssertThrowsError(try inferShapes(of: g, batch: 0))
    }

    func testConvChannelMismatch() {
        let conv = Conv2DParameters(window: WindowGeometry(kernel: (1, 1)))
        let text = inconsistency(graph([Node(name: "c", op: .conv(conv), inputs: ["x", "w"], outputs: ["y"])],
                                       inputs: [ValueInfo(name: "x", dimensions: [nil, 4, 8, 8])],
                                       initializers: ["w": Tensor(shape: [8, 3, 1, 1])]))
        XCTAssertTrue(text.contains("channel mismatch: the input has 4 channels"), text)
    }

    func testGemmInnerDimensionMismatch() {
        let text = inconsistency(graph([Node(name: "fc", op: .gemm(alpha: 1, beta: 1, transA: false, transB: true),
                                             inputs: ["x", "w"], outputs: ["y"])],
                                       inputs: [ValueInfo(name: "x", dimensions: [nil, 10])],
                                       initializers: ["w": Tensor(shape: [4, 12])]))
        XCTAssertTrue(text.contains("inner dimensions differ"), text)
    }

    func testBroadcastIncompatibility() {
        let text = inconsistency(graph([Node(name: "a", op: .add, inputs: ["x", "b"], outputs: ["y"])],
                                       inputs: [ValueInfo(name: "x", dimensions: [nil, 4, 2, 2])],
                                       initializers: ["b": Tensor(shape: [3, 1, 1])]))
        XCTAssertTrue(text.contains("cannot be broadcast"), text)
    }

    func testReshapeElementCountMismatch() {
        let text = inconsistency(graph([Node(name: "r", op: .reshape(shape: [-1, 7], allowZero: false), inputs: ["x"], outputs: ["y"])],
                                       inputs: [ValueInfo(name: "x", dimensions: [nil, 4, 2, 2])]))
        XCTAssertTrue(text.contains("element counts differ"), text)
    }

    func testUnknownTensor() {
        XCTAssertThrowsError(try inferShapes(of: graph([Node(name: "r", op: .relu, inputs: ["nope"], outputs: ["y"])], inputs: []), batch: 1)) { error in
            XCTAssertEqual(error as? ShapeInferenceError, .unknownTensor(node: "r", tensor: "nope"))
        }
    }

    /// Tensors beyond the element limit, or beyond the memory given, are refused before anything runs.
    func testLimitsAreCheckedBeforeRunning() throws {
        let graph = try ONNXImporter.load(data: ModelBuilding.bytes(ModelBuilding.convRelu()), externalDataDirectory: nil)
        let x = Tensor(shape: [4, 2, 4, 4], repeating: 1)
        XCTAssertNoThrow(try checkInput(x, of: graph, batchSize: 4))
        XCTAssertThrowsError(try checkInput(x, of: graph, batchSize: 4, memory: 100)) { error in
            guard case .beyondMemory(_, let shape, let bytes, 100)? = error as? ShapeInferenceError else { return XCTFail("\(error)") }
            XCTAssertEqual(bytes, shape.reduce(1, *) * 4)
        }
        XCTAssertThrowsError(try inferShapes(of: graph, batch: 1 << 40)) { error in
            XCTAssertEqual(error as? ShapeInferenceError, .tooLarge(tensor: "x", shape: [1 << 40, 2, 4, 4], limit: 1 << 31))
        }
        XCTAssertThrowsError(try checkInput(Tensor(shape: [0, 2, 4, 4], data: []), of: graph, batchSize: 4)) { error in
            XCTAssertEqual(error as? ExecutionError, .noSamples(name: "x"))
        }
        XCTAssertThrowsError(try checkInput(x, of: graph, batchSize: 0)) { error in
            XCTAssertEqual(error as? ExecutionError, .invalidBatchSize(0))
        }
    }
}
