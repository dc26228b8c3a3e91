import DataIO
import Foundation
import Graph
import ONNX
import TensorKernels
import XCTest
@testable import Quantization

/// `ActivationAlignment`: the rescaled FP32 network computes the same function, and each rescaled site's float
/// range sits on a power of two.
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

    /// Aligns `graph` within `scope` and checks: FP32 outputs unchanged (to 1e-5 of their range), every rescaled
    /// site's float L2.4 scale on the new network a power of two (to 1e-4 in log2), nothing feeding an Add rescaled.
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

        let aligned = sites.filter { alignment.factors[$0.tensor] != nil }
        let scales = try ActivationAlignment.floatScales(of: after.graph, sites: aligned, calibration: input, count: input.shape[0])
        for site in aligned {
            let e = log2(Double(scales[site.tensor]!))
            XCTAssertEqual(e, e.rounded(), accuracy: 1e-4, "\(site.tensor): scale \(scales[site.tensor]!) is not a power of two", file: file, line: line)
        }
        for add in before.graph.nodes where add.op == .add {
            XCTAssertTrue(add.inputs.allSatisfy { alignment.factors[$0] == nil }, "\(add.name)'s inputs must keep their scale", file: file, line: line)
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

    /// Real models: the Fashion-MNIST MobileNetV2 (ReLU6, inverted residuals) and the first blocks of
    /// EfficientNet-Lite0.
    func testMobileNetV2AndLite0Slice() throws {
        let root = PreparationTests.root
        let x = try NumpyFile.readTensor(contentsOf: root.appendingPathComponent("models/fmnist-test-1k.npy")).rows(0..<16)
        try assertAligned(try ONNXImporter.load(contentsOf: PreparationTests.mobilenet), input: x)
        let slice = try NumpyFile.readTensor(contentsOf: root.appendingPathComponent("Tests/GraphTests/Resources/lite0-slice-input.npy"))
        let (_, _, alignment) = try assertAligned(try ONNXImporter.load(contentsOf: PreparationTests.lite0Slice), input: slice)
        XCTAssertGreaterThanOrEqual(alignment.factors.count, 5, "stem and every expansion and depthwise ReLU6 of the slice")
    }

    /// The Fashion-MNIST ResNet has Relu sites only: the default scope rescales none of them, `.all` its six
    /// in-block ones (the others feed residual Adds), and `.off` nothing.
    func testResNetScopes() throws {
        let x = try NumpyFile.readTensor(contentsOf: PreparationTests.root.appendingPathComponent("models/fmnist-test-1k.npy")).rows(0..<16)
        let graph = try ONNXImporter.load(contentsOf: PreparationTests.resnet)
        XCTAssertEqual(try assertAligned(graph, input: x, scope: .all).2.factors.count, 6)
        for scope in [AlignmentScope.clip, .off] {
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
