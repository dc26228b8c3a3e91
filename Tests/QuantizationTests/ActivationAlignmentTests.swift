import DataIO
import Foundation
import Graph
import ONNX
import TensorKernels
import XCTest
@testable import Quantization

/// `ActivationAlignment`: the rescaled FP32 network computes the same function, each rescaled site's float range
/// sits on a power of two, and residual streams get the one factor that brings their ranges closest to them.
final class ActivationAlignmentTests: XCTestCase {
    /// The factor puts a scale on the nearest power of two in the log domain (hand-computed values).
    func testFactor() {
        XCTAssertEqual(ActivationAlignment.factor(forScale: 0.396) * 0.396, 0.5, accuracy: 1e-7)
        XCTAssertEqual(ActivationAlignment.factor(forScale: 0.3), 0.25 / 0.3, accuracy: 1e-7)
        XCTAssertEqual(ActivationAlignment.factor(forScale: 3), 4.0 / 3.0, accuracy: 1e-7)
        XCTAssertEqual(ActivationAlignment.factor(forScale: 2.8), 2 / 2.8, accuracy: 1e-7)
        XCTAssertEqual(ActivationAlignment.factor(forScale: 0.125), 1)
    }

    private static func sites(_ prepared: PreparedNetwork) -> [ActivationSite] {
        placeActivationQuantizers(in: prepared.graph, units: prepared.units, bits: BitWidths(weights: 4, activations: 4))
    }

    /// Hand-computed factors for several scales joined by Adds: the shift `t` (factor `2^t`) that minimises the
    /// sum of squared log2 distances to the nearest powers of two.
    func testFactorOfSeveralScales() {
        func t(_ logs: [Double]) -> Double { log2(Double(ActivationAlignment.factor(forScales: logs.map { Float(exp2($0)) }))) }
        XCTAssertEqual(t([0.2, 0.4]), -0.3, accuracy: 1e-6)           // both down to 2^0: distances 0.1 and 0.1
        XCTAssertEqual(t([0.1, 0.9]), 0, accuracy: 1e-6)              // straddling 2^0.5: no shift helps
        XCTAssertEqual(t([0.45, -0.4]), 0.475, accuracy: 1e-6)        // 0.925 -> 1 and 0.075 -> 0
        XCTAssertEqual(t([1.7268, 1.8399, 1.7268]), 2 - (1.7268 * 2 + 1.8399) / 3, accuracy: 1e-6)
        XCTAssertEqual(ActivationAlignment.factor(forScales: [0.396]), ActivationAlignment.factor(forScale: 0.396))
    }

    /// Against a brute-force search over shifts in steps of 1e-4: the chosen factor is never worse.
    func testFactorOfSeveralScalesAgainstGridSearch() {
        var r = ExportTests.Random(state: 5)
        func cost(_ logs: [Double], _ t: Double) -> Double {
            logs.reduce(0) { let d = $1 + t - ($1 + t).rounded(); return $0 + d * d }
        }
        for count in [2, 3, 5, 8] {
            for _ in 0..<50 {
                let scales = (0..<count).map { _ in Float(exp2(2 * Double(r.uniform()))) }
                let logs = scales.map { log2(Double($0)) }
                let chosen = log2(Double(ActivationAlignment.factor(forScales: scales)))
                XCTAssertLessThanOrEqual(abs(chosen), 0.5 + 1e-6)
                let grid = stride(from: -0.5, through: 0.5, by: 1e-4).map { cost(logs, $0) }.min()!
                XCTAssertLessThanOrEqual(cost(logs, chosen), grid + 1e-6, "\(logs)")
            }
        }
    }

    /// Aligns `graph` within `scope` and checks: FP32 outputs unchanged (to 1e-5 of their range); the float L2.4
    /// scale of every rescaled site that no Add touches a power of two on the new network (to 1e-4 in log2); the
    /// quantized inputs and output of every Add rescaled by one factor or not at all, and each such group's
    /// scales no farther from powers of two than before.
    @discardableResult
    private func assertAligned(_ graph: Graph, input: Tensor, scope: AlignmentScope = .clip,
                               file: StaticString = #filePath, line: UInt = #line) throws -> (PreparedNetwork, PreparedNetwork, ActivationAlignment) {
        let before = PreparedNetwork(graph)
        var after = before
        let sites = Self.sites(before)
        let alignment = try ActivationAlignment.apply(to: &after, sites: sites, calibration: input, count: input.shape[0], scope: scope)
        XCTAssertFalse(alignment.factors.isEmpty, file: file, line: line)
        let name = graph.inputs[0].name, out = graph.outputs[0].name
        let y0 = try Executor(graph: before.graph).run([name: input])[out]!
        let y1 = try Executor(graph: after.graph).run([name: input])[out]!
        let range = y0.data.map(abs).max()!
        let diff = zip(y0.data, y1.data).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(diff, 1e-5 * Swift.max(1, range), "rescaling changed the outputs by \(diff)", file: file, line: line)

        let adds = before.graph.nodes.filter { $0.op == .add }
        let joined = Set(adds.flatMap { $0.inputs + $0.outputs })
        let aligned = sites.filter { alignment.factors[$0.tensor] != nil }, siteNames = Set(sites.map(\.tensor))
        let scales0 = try ActivationAlignment.floatScales(of: before.graph, sites: aligned, calibration: input, count: input.shape[0])
        let scales1 = try ActivationAlignment.floatScales(of: after.graph, sites: aligned, calibration: input, count: input.shape[0])
        func distance(_ s: Float) -> Double { let e = log2(Double(s)); return abs(e - e.rounded()) }
        for site in aligned where !joined.contains(site.tensor) {
            XCTAssertEqual(distance(scales1[site.tensor]!), 0, accuracy: 1e-4,
                           "\(site.tensor): scale \(scales1[site.tensor]!) is not a power of two", file: file, line: line)
        }
        for add in adds {
            let factors = Set((add.inputs + add.outputs).filter(siteNames.contains).map { alignment.factors[$0] })
            XCTAssertLessThanOrEqual(factors.count, 1, "\(add.name)'s inputs and output must be rescaled together", file: file, line: line)
        }
        let streams = Dictionary(grouping: aligned.filter { joined.contains($0.tensor) }) { alignment.factors[$0.tensor]! }
        for (_, group) in streams {
            let d0 = group.reduce(0) { $0 + pow(distance(scales0[$1.tensor]!), 2) }
            let d1 = group.reduce(0) { $0 + pow(distance(scales1[$1.tensor]!), 2) }
            XCTAssertLessThanOrEqual(d1, d0 + 1e-6, "\(group.map(\.tensor)) moved away from powers of two", file: file, line: line)
        }
        return (before, after, alignment)
    }

    /// The export test network: with `.all`, exactly the two sites whose producer and readers are all layers are
    /// rescaled (Relu output r2 inside the residual branch, ReLU6 output d6 before the bias-less projection); the
    /// weights, bias and Clip bound change by the factor as stated. The default scope leaves the Relu site alone.
    func testSmallNetwork() throws {
        let graph = ExportTests.makeGraph(), data = ExportTests.samples(32, seed: 7)
        XCTAssertEqual(Set(try assertAligned(graph, input: data).2.factors.keys), ["d6"])
        let (before, after, alignment) = try assertAligned(graph, input: data, scope: .all)
        XCTAssertEqual(Set(alignment.factors.keys), ["r2", "d6"])
        let a = alignment.factors["r2"]!, b = alignment.factors["d6"]!
        func weights(_ g: Graph, _ name: String) -> [Float] { g.initializers[name]!.data }
        XCTAssertEqual(weights(after.graph, "conv2.w"), weights(before.graph, "conv2.w").map { $0 * a })
        XCTAssertEqual(weights(after.graph, "conv2.b"), weights(before.graph, "conv2.b").map { $0 * a })
        XCTAssertEqual(weights(after.graph, "conv3.w"), weights(before.graph, "conv3.w").map { $0 * (1 / a) })
        XCTAssertEqual(weights(after.graph, "dw.w"), weights(before.graph, "dw.w").map { $0 * b })
        XCTAssertEqual(weights(after.graph, "project.w"), weights(before.graph, "project.w").map { $0 * (1 / b) })
        XCTAssertEqual(after.graph.nodes.first { $0.name == "relu6" }?.op, .clip(min: 0, max: 6 * b))
        XCTAssertEqual(weights(after.graph, "fc.w"), weights(before.graph, "fc.w"))
        XCTAssertEqual(after.gammas, before.gammas)
        XCTAssertEqual(after.units, before.units)
    }

    /// A linear residual stream (scope `.streams`): a projection `p` read by a ReLU6 branch and by the Add that
    /// sums it with the branch's projection `q`, and the sum `s` read by a layer. `p`, `q` and `s` are rescaled by one factor, the
    /// best one for the scales of the group's sites on the original network; the branch's own ReLU6 sites get
    /// their own.
    func testResidualStream() throws {
        var r = ExportTests.Random(state: 11)
        let same3 = Conv2DParameters(window: WindowGeometry(kernel: (3, 3), pads: (1, 1, 1, 1)))
        let pointwise = Conv2DParameters(window: WindowGeometry(kernel: (1, 1)))
        func conv(_ name: String, _ parameters: Conv2DParameters, _ input: String, _ output: String) -> Node {
            Node(name: name, op: .conv(parameters), inputs: [input, "\(name).w", "\(name).b"], outputs: [output])
        }
        let nodes = [
            conv("conv1", same3, "input", "c1"), Node(name: "clip1", op: .clip(min: 0, max: 6), inputs: ["c1"], outputs: ["a6"]),
            conv("conv2", pointwise, "a6", "p"),
            conv("conv3", same3, "p", "c3"), Node(name: "clip3", op: .clip(min: 0, max: 6), inputs: ["c3"], outputs: ["e6"]),
            conv("conv4", pointwise, "e6", "q"),
            Node(name: "add", op: .add, inputs: ["p", "q"], outputs: ["s"]),
            conv("conv5", pointwise, "s", "o"),
            Node(name: "gap", op: .globalAveragePool, inputs: ["o"], outputs: ["g"]),
            Node(name: "flatten", op: .flatten(axis: 1), inputs: ["g"], outputs: ["f"]),
            Node(name: "fc", op: .gemm(alpha: 1, beta: 1, transA: false, transB: true), inputs: ["f", "fc.w", "fc.b"], outputs: ["logits"]),
        ]
        let shapes: [String: [Int]] = ["conv1": [8, 3, 3, 3], "conv2": [8, 8, 1, 1], "conv3": [8, 8, 3, 3], "conv4": [8, 8, 1, 1],
                                       "conv5": [16, 8, 1, 1], "fc": [10, 16]]
        var initializers: [String: Tensor] = [:]
        for (name, shape) in shapes.sorted(by: { $0.key < $1.key }) {
            initializers["\(name).w"] = r.tensor(shape, scale: 0.6)
            initializers["\(name).b"] = r.tensor([shape[0]], scale: 0.3)
        }
        let graph = Graph(name: "stream", inputs: [ValueInfo(name: "input", dimensions: [nil, 3, 8, 8])],
                          outputs: [ValueInfo(name: "logits", dimensions: [nil, 10])], nodes: nodes, initializers: initializers)
        let data = ExportTests.samples(32, seed: 3)
        XCTAssertTrue(try assertAligned(graph, input: data).2.factors.keys.allSatisfy { ["a6", "e6"].contains($0) }, "clip: no stream")
        let (before, after, alignment) = try assertAligned(graph, input: data, scope: .streams)
        let sites = Self.sites(before).map(\.tensor)
        let stream = sites.filter { ["p", "q", "s"].contains($0) }
        XCTAssertTrue(stream.contains("p") && stream.contains("s"), "sites: \(sites)")
        let scales = try ActivationAlignment.floatScales(of: before.graph, sites: Self.sites(before).filter { stream.contains($0.tensor) },
                                                         calibration: data, count: 32)
        let g = ActivationAlignment.factor(forScales: stream.map { scales[$0]! })
        XCTAssertNotEqual(g, 1)
        for name in stream { XCTAssertEqual(alignment.factors[name], g, name) }
        let a = try XCTUnwrap(alignment.factors["a6"]), e = try XCTUnwrap(alignment.factors["e6"])
        func assertScaled(_ name: String, _ factor: Float, line: UInt = #line) {
            let old = before.graph.initializers[name]!.data, new = after.graph.initializers[name]!.data
            for (x, y) in zip(old, new) { XCTAssertEqual(y, x * factor, accuracy: 1e-6 * Swift.max(1, abs(x * factor)), name, line: line) }
        }
        assertScaled("conv1.w", a); assertScaled("conv1.b", a)
        assertScaled("conv2.w", g / a); assertScaled("conv2.b", g)             // reads a6, produces p
        assertScaled("conv3.w", e / g); assertScaled("conv3.b", e)             // reads p, produces e6
        assertScaled("conv4.w", g / e); assertScaled("conv4.b", g)             // reads e6, produces q
        assertScaled("conv5.w", 1 / g); assertScaled("conv5.b", 1)             // reads s
        assertScaled("fc.w", 1)
        XCTAssertEqual(after.graph.nodes.first { $0.name == "clip3" }?.op, .clip(min: 0, max: 6 * e))
    }

    /// Real models: the Fashion-MNIST MobileNetV2 (ReLU6, inverted residuals) and the first blocks of
    /// EfficientNet-Lite0.
    func testMobileNetV2AndLite0Slice() throws {
        let root = PreparationTests.root
        let x = try NumpyFile.readTensor(contentsOf: root.appendingPathComponent("models/fmnist-test-1k.npy")).rows(0..<16)
        let mobilenet = try ONNXImporter.load(contentsOf: PreparationTests.mobilenet)
        let sums = mobilenet.nodes.filter { $0.op == .add }.flatMap(\.outputs)
        XCTAssertTrue(try assertAligned(mobilenet, input: x).2.factors.keys.filter(sums.contains).isEmpty, "clip: no stream")
        let streams = try assertAligned(mobilenet, input: x, scope: .streams).2.factors.keys.filter(sums.contains)
        XCTAssertFalse(streams.isEmpty, "the residual streams of the inverted residuals")
        let slice = try NumpyFile.readTensor(contentsOf: root.appendingPathComponent("Tests/GraphTests/Resources/lite0-slice-input.npy"))
        let (_, _, alignment) = try assertAligned(try ONNXImporter.load(contentsOf: PreparationTests.lite0Slice), input: slice)
        XCTAssertGreaterThanOrEqual(alignment.factors.count, 5, "stem and every expansion and depthwise ReLU6 of the slice")
    }

    /// The Fashion-MNIST ResNet has Relu sites only, and a Relu after each Add: `.clip` and the default `.streams`
    /// rescale nothing, `.all` its six in-block Relu sites (the others feed residual Adds), and `.off` nothing.
    func testResNetScopes() throws {
        let x = try NumpyFile.readTensor(contentsOf: PreparationTests.root.appendingPathComponent("models/fmnist-test-1k.npy")).rows(0..<16)
        let graph = try ONNXImporter.load(contentsOf: PreparationTests.resnet)
        XCTAssertEqual(try assertAligned(graph, input: x, scope: .all).2.factors.count, 6)
        for scope in [AlignmentScope.clip, .streams, .off] {
            var prepared = PreparedNetwork(graph)
            let alignment = try ActivationAlignment.apply(to: &prepared, sites: Self.sites(prepared), calibration: x, count: 16, scope: scope)
            XCTAssertTrue(alignment.factors.isEmpty, "\(scope)")
            XCTAssertEqual(prepared.graph, PreparedNetwork(graph).graph, "\(scope)")
        }
    }

    /// A quantized network built on the aligned graph runs in the integer engine exactly as simulated
    /// (the Clip bound is no longer 6).
    func testAlignedNetworkRunsOnTheIntegerEngine() throws {
        let network = try ExportTests.alignedNetwork(ExportTests.settings[0].options)
        XCTAssertEqual(network.activations["d6"]?.scales.first.map { PowerOfTwo.exactExponent($0) != nil }, true)
        let x = ExportTests.samples(8, seed: 99)
        let simulated = try Simulation(network).predict(x)
        let integer = try IntegerEngine(network).predict(x, batchSize: 8)
        let scale = simulated.data.map(abs).max()!
        let worst = zip(simulated.data, integer.data).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(worst, 1e-4 * scale)
    }
}
