import Graph
import ONNX
import TensorKernels
import XCTest

/// LayerNormalization as exporters write it before opset 17 (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt,
/// Div, Mul, Add) imports as one node computing the same values; chains that are not exactly that are left
/// alone and reported.
final class LayerNormDecompositionTests: XCTestCase {
    typealias B = ModelBuilding

    /// x [N, 3, 4] normalized over its last axis, in the decomposed form; `square` is "Pow" or "Mul".
    func decomposed(square: String = "Pow", axes: [Int64] = [-1], beta: Bool = true, extraOutput: String? = nil,
                    axesAsInput: Bool = false) -> Onnx_ModelProto {
        func mean(_ input: String, _ output: String) -> Onnx_NodeProto {
            axesAsInput ? B.node("ReduceMean", [input, "axes"], [output], name: output)
                        : B.node("ReduceMean", [input], [output], name: output, attributes: [B.ints("axes", axes)])
        }
        var nodes = [
            mean("x", "mean"),
            B.node("Sub", ["x", "mean"], ["d"], name: "sub"),
            square == "Pow" ? B.node("Pow", ["d", "two"], ["sq"], name: "pow") : B.node("Mul", ["d", "d"], ["sq"], name: "square"),
            mean("sq", "var"),
            B.node("Add", ["var", "eps"], ["ve"], name: "add_eps"),
            B.node("Sqrt", ["ve"], ["std"], name: "sqrt"),
            B.node("Div", ["d", "std"], ["n"], name: "div"),
            B.node("Mul", ["n", "gamma"], [beta ? "scaled" : "y"], name: "scale"),
        ]
        if beta { nodes.append(B.node("Add", ["beta", "scaled"], ["y"], name: "shift")) }
        var initializers = [B.floats("two", dims: [], [2]), B.floats("eps", dims: [], [1e-3]),
                            B.floats("gamma", dims: [4], [1, 2, -1, 0.5]), B.floats("beta", dims: [4], [0.1, 0, -0.2, 3])]
        if axesAsInput {
            var t = Onnx_TensorProto()
            t.name = "axes"
            t.dataType = 7
            t.dims = [1]
            t.int64Data = axes
            initializers.append(t)
        }
        var outputs = [B.value("y", [nil, 3, 4])]
        if let extraOutput { outputs.append(B.value(extraOutput, [nil, 3, 4])) }
        return B.model(nodes: nodes, inputs: [B.value("x", [nil, 3, 4])], outputs: outputs, initializers: initializers,
                       opset: axesAsInput ? 18 : 13)
    }

    /// The layer norm computed in Double from its definition.
    func reference(_ x: Tensor, beta: Bool) -> [Float] {
        let gamma: [Double] = [1, 2, -1, 0.5], shift: [Double] = beta ? [0.1, 0, -0.2, 3] : [0, 0, 0, 0]
        var y: [Float] = []
        for row in stride(from: 0, to: x.count, by: 4) {
            let v = x.data[row..<row + 4].map(Double.init)
            let mean = v.reduce(0, +) / 4
            let variance = v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 4
            for k in 0..<4 { y.append(Float((v[k] - mean) / (variance + 1e-3).squareRoot() * gamma[k] + shift[k])) }
        }
        return y
    }

    func testDecompositionsImportAsOneLayerNormalization() throws {
        let x = Tensor(shape: [2, 3, 4], data: (0..<24).map { Float(($0 * 7) % 11) - 4.5 + Float($0) / 10 })
        // γ shared through an Identity node, as exporters de-duplicate equal parameters.
        var shared = decomposed()
        shared.graph.node[7].input = ["n", "gamma_shared"]
        shared.graph.node.insert(B.node("Identity", ["gamma"], ["gamma_shared"], name: "share"), at: 0)
        let cases: [(String, Onnx_ModelProto, Bool)] = [
            ("Pow", decomposed(), true), ("Mul", decomposed(square: "Mul"), true), ("no beta", decomposed(beta: false), false),
            ("opset 18 axes input", decomposed(axesAsInput: true), true), ("γ through Identity", shared, true),
        ]
        for (label, model, beta) in cases {
            let graph = try ONNXImporter.load(data: B.bytes(model), externalDataDirectory: nil)
            XCTAssertEqual(graph.nodes.count, 1, label)
            guard case .layerNormalization(let norm)? = graph.nodes.first?.op else { return XCTFail(label) }
            XCTAssertEqual(norm.axes(rank: 3), 2..<3, label)
            XCTAssertEqual(norm.epsilon, 1e-3, label)
            let y = try Executor(graph: graph).run(["x": x])["y"]!
            for (a, b) in zip(y.data, reference(x, beta: beta)) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b)), label) }
        }
    }

    /// The last two axes ([-2, -1]) normalize from axis -2 on.
    func testTrailingAxesNormalizeFromTheFirst() throws {
        var model = decomposed(axes: [-2, -1])
        model.graph.initializer[2] = B.floats("gamma", dims: [3, 4], Array(repeating: 1, count: 12))
        model.graph.initializer[3] = B.floats("beta", dims: [3, 4], Array(repeating: 0, count: 12))
        let graph = try ONNXImporter.load(data: B.bytes(model), externalDataDirectory: nil)
        guard case .layerNormalization(let norm)? = graph.nodes.first?.op, graph.nodes.count == 1 else { return XCTFail() }
        XCTAssertEqual(norm.axes(rank: 3), 1..<3)
    }

    /// An intermediate the graph also returns, or axes counted from the front (the rank is unknown), keep the
    /// chain as written, and its operators are reported together.
    func testChainsThatDifferAreNotFused() throws {
        for model in [decomposed(extraOutput: "d"), decomposed(axes: [2])] {
            do {
                _ = try ONNXImporter.load(data: B.bytes(model), externalDataDirectory: nil)
                XCTFail("imported")
            } catch let error as ONNXError {
                guard case .unsupportedOperators(let list, _) = error else { return XCTFail("\(error)") }
                XCTAssertTrue(Set(list.map(\.op)).isSuperset(of: ["Pow", "Sqrt"]), "\(list)")
            }
        }
    }
}
