import DataIO
import Foundation
import Graph
import ONNX
import TensorKernels
import XCTest
@testable import Quantization

/// BN folding, unit partition and activation placement on real ONNX models.
final class PreparationTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let resnet = root.appendingPathComponent("models/fmnist-resnet.onnx")
    static let mobilenet = root.appendingPathComponent("models/fmnist-mobilenetv2.onnx")
    static let lite0Slice = root.appendingPathComponent("Tests/GraphTests/Resources/lite0-slice.onnx")

    private func samples(_ n: Int) throws -> Tensor {
        try NumpyFile.readTensor(contentsOf: Self.root.appendingPathComponent("models/fmnist-test-1k.npy")).rows(0..<n)
    }

    /// The folded network computes what the unfolded one does (max abs difference 1e-4 relative to the output range).
    private func assertFoldingPreservesOutputs(_ url: URL, input: Tensor, file: StaticString = #filePath, line: UInt = #line) throws {
        let graph = try ONNXImporter.load(contentsOf: url)
        let prepared = PreparedNetwork(graph)
        let bnCount = graph.nodes.filter { if case .batchNormalization = $0.op { return true }; return false }.count
        XCTAssertGreaterThan(bnCount, 0, file: file, line: line)
        XCTAssertEqual(prepared.gammas.count, bnCount, "every BN follows a conv and must be folded", file: file, line: line)
        XCTAssertFalse(prepared.graph.nodes.contains { if case .batchNormalization = $0.op { return true }; return false }, file: file, line: line)
        let name = graph.inputs[0].name, out = graph.outputs[0].name
        let before = try Executor(graph: graph).run([name: input])[out]!
        let after = try Executor(graph: prepared.graph).run([name: input])[out]!
        let range = before.data.map(abs).max()!
        let diff = zip(before.data, after.data).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(diff, 1e-4 * Swift.max(1, range), "folding changed outputs by \(diff)", file: file, line: line)
    }

    func testBatchNormFoldingOnResNetAndMobileNet() throws {
        let x = try samples(8)
        try assertFoldingPreservesOutputs(Self.resnet, input: x)
        try assertFoldingPreservesOutputs(Self.mobilenet, input: x)
    }

    func testBatchNormFoldingOnEfficientNetLite0Slice() throws {
        let x = try NumpyFile.readTensor(contentsOf: Self.root.appendingPathComponent("Tests/GraphTests/Resources/lite0-slice-input.npy"))
        try assertFoldingPreservesOutputs(Self.lite0Slice, input: x)
    }

    /// Folding keeps each BN's gamma as it was before folding.
    func testFoldingRecordsGammas() throws {
        let graph = try ONNXImporter.load(contentsOf: Self.resnet)
        let prepared = PreparedNetwork(graph)
        let stemBN = graph.nodes.first { if case .batchNormalization = $0.op { return true }; return false }!
        let producer = graph.nodes.first { $0.outputs.contains(stemBN.inputs[0]) }!
        XCTAssertEqual(prepared.gammas[producer.name], graph.initializers[stemBN.inputs[1]]!.data)
    }

    /// ResNet-style: a stem layer, one residual block per Add (with the shortcut conv inside when the shape
    /// changes), a classifier layer; the main-branch conv's BN sets the loss exponent.
    func testResNetUnits() throws {
        let graph = try ONNXImporter.load(contentsOf: Self.resnet)
        let prepared = PreparedNetwork(graph)
        let units = prepared.units
        let adds = prepared.graph.nodes.filter { $0.op == .add }
        XCTAssertEqual(units.first?.kind, .layer)
        XCTAssertEqual(units.last?.kind, .layer)
        XCTAssertEqual(units.filter { $0.kind == .residualBlock }.count, adds.count)
        XCTAssertEqual(units.count, adds.count + 2)
        // Every layer belongs to exactly one unit.
        XCTAssertEqual(units.flatMap(\.layers).sorted(), prepared.layerNames.sorted())
        for unit in units where unit.kind == .residualBlock {
            XCTAssertEqual(unit.inputs.count, 1, "a block reads one tensor: \(unit.name)")
            XCTAssertTrue([2, 3].contains(unit.layers.count), "BasicBlock with or without downsample: \(unit.layers)")
            // The output is the Relu after the Add.
            let producer = prepared.graph.nodes.first { $0.outputs.contains(unit.output) }!
            XCTAssertEqual(producer.op, .relu)
            // The loss layer is the conv feeding the Add on the main branch, not the shortcut conv.
            let add = prepared.graph.nodes.first { $0.op == .add && unit.nodes.contains($0.name) }!
            let feeders = add.inputs.compactMap { t in prepared.graph.nodes.first { $0.outputs.contains(t) }?.name }
            XCTAssertTrue(feeders.contains(unit.lossLayer!), "\(unit.lossLayer!) must feed the Add")
            XCTAssertEqual(unit.lossLayer, unit.layers.filter { feeders.contains($0) }.first { name in
                unit.layers.firstIndex(of: name)! >= 1 && prepared.graph.nodes.first { $0.name == name }!.inputs[0] != unit.inputs[0]
            })
        }
        XCTAssertTrue(units.contains { $0.layers.count == 3 }, "the model has downsampling blocks")
    }

    /// MobileNetV2-style: stem layer, inverted residuals with and without the Add (expansion 1 has no expand
    /// conv), last 1x1 conv as a layer, classifier layer.
    func testMobileNetV2Units() throws {
        let prepared = PreparedNetwork(try ONNXImporter.load(contentsOf: Self.mobilenet))
        let units = prepared.units
        XCTAssertEqual(units.flatMap(\.layers).sorted(), prepared.layerNames.sorted())
        XCTAssertEqual(units.first?.kind, .layer)
        XCTAssertEqual(Array(units.suffix(2).map(\.kind)), [.layer, .layer])
        let middle = units.dropFirst().dropLast(2)
        XCTAssertTrue(middle.allSatisfy { $0.kind == .residualBlock || $0.kind == .invertedResidual })
        XCTAssertTrue(middle.contains { $0.kind == .invertedResidual }, "blocks without Add exist")
        XCTAssertTrue(middle.contains { $0.kind == .residualBlock }, "blocks with Add exist")
        XCTAssertTrue(middle.contains { $0.layers.count == 2 }, "an expansion-1 block has no expand conv")
        for unit in middle {
            XCTAssertTrue([2, 3].contains(unit.layers.count))
            let project = prepared.graph.nodes.first { $0.name == unit.layers.last! }!
            guard case .conv(let p) = project.op else { return XCTFail("project must be a conv") }
            XCTAssertEqual(p.window.kernel.h, 1)
            XCTAssertEqual(unit.lossLayer, project.name, "the project conv's BN is the block's last BN")
        }
        // Outputs of blocks without a ReLU are signed; ReLU6 outputs are not.
        let sites = placeActivationQuantizers(in: prepared.graph, units: units, bits: BitWidths(weights: 4, activations: 4))
        for unit in middle {
            let site = sites.first { $0.tensor == unit.output }
            XCTAssertNotNil(site, "unit output \(unit.output) is quantized")
            XCTAssertEqual(site?.nonNegative, false, "\(unit.output) has no ReLU after it")
        }
    }

    /// Quantizers sit on conv inputs and unit outputs; the conv feeding an Add and the shortcut conv get none.
    /// First-layer output, network input and classifier input are 8-bit by default.
    func testActivationPlacement() throws {
        let prepared = PreparedNetwork(try ONNXImporter.load(contentsOf: Self.resnet))
        let sites = placeActivationQuantizers(in: prepared.graph, units: prepared.units, bits: BitWidths(weights: 2, activations: 4))
        let names = Set(sites.map(\.tensor))
        for add in prepared.graph.nodes where add.op == .add {
            for input in add.inputs {
                let producer = prepared.graph.nodes.first { $0.outputs.contains(input) }
                if case .conv = producer?.op { XCTAssertFalse(names.contains(input), "\(input) feeds an Add and must not be quantized on its own") }
            }
        }
        for unit in prepared.units.dropLast() { XCTAssertTrue(names.contains(unit.output)) }
        XCTAssertFalse(names.contains(prepared.graph.outputs[0].name), "logits are not quantized")
        let byName = Dictionary(uniqueKeysWithValues: sites.map { ($0.tensor, $0) })
        XCTAssertEqual(byName[prepared.graph.inputs[0].name]?.bits, 8)
        XCTAssertEqual(byName[prepared.units[0].output]?.bits, 8)
        XCTAssertEqual(sites.filter { $0.bits == 4 }.count, sites.count - 3)
        XCTAssertTrue(sites.filter { $0.tensor != prepared.graph.inputs[0].name }.allSatisfy(\.nonNegative), "ResNet activations follow ReLUs")
    }

    /// The first blocks of EfficientNet-Lite0: stem, an expansion-1 block (depthwise + project), an
    /// inverted residual without Add (stride 2, 16 -> 24 channels), and one with the Add.
    func testEfficientNetLite0SliceUnits() throws {
        let prepared = PreparedNetwork(try ONNXImporter.load(contentsOf: Self.lite0Slice))
        XCTAssertEqual(prepared.units.map(\.kind), [.layer, .invertedResidual, .invertedResidual, .residualBlock])
        XCTAssertEqual(prepared.units.map(\.layers.count), [1, 2, 3, 3])
        XCTAssertEqual(prepared.units.flatMap(\.layers).sorted(), prepared.layerNames.sorted())
        XCTAssertEqual(prepared.units.last?.output, prepared.graph.outputs[0].name)
        for unit in prepared.units.dropFirst() { XCTAssertEqual(unit.lossLayer, unit.layers.last, "the project conv's BN sets p") }
    }
}
