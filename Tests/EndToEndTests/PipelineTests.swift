import Foundation
import RAPQ
import XCTest

/// The public pipeline end to end on the bundled Fashion-MNIST models: methods, power-of-two proof,
/// determinism, checkpoints and resume.
final class PipelineTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func model(_ name: String) -> URL { root.appendingPathComponent("models/\(name)") }

    private func calibration(_ n: Int) throws -> Tensor {
        try NumpyFile.readTensor(contentsOf: Self.model("fmnist-calib-256.npy")).rows(0..<n)
    }

    private func quick(_ method: QuantizationMethod, wbits: Int = 2, abits: Int = 4) -> QuantizationConfiguration {
        var c = QuantizationConfiguration(method: method, weightBits: wbits, activationBits: abits, activationSamples: 32, seed: 7)
        c.reconstruction.iterations = 24
        c.reconstruction.activationIterations = 12
        c.exponentIterations = 12
        return c
    }

    /// `FloatModel` runs the graph with BatchNormalization folded and activations fused: on the real
    /// EfficientNet-Lite0 slice (BN as nodes, ReLU6, depthwise convs) it still equals onnxruntime's outputs
    /// (tools/make_lite0_slice.py) to 1e-3, and gives the same bits whatever the batch split.
    func testOptimisedFloatModelMatchesOnnxRuntime() throws {
        let resources = Self.root.appendingPathComponent("Tests/GraphTests/Resources")
        let model = try FloatModel(contentsOf: resources.appendingPathComponent("lite0-slice.onnx"))
        let input = try NumpyFile.readTensor(contentsOf: resources.appendingPathComponent("lite0-slice-input.npy"))
        let expected = try NumpyFile.readTensor(contentsOf: resources.appendingPathComponent("lite0-slice-expected.npy"))
        let output = try model.predict(input)
        XCTAssertEqual(output.shape, expected.shape)
        let diff = zip(output.data, expected.data).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(diff, 1e-3)
        XCTAssertEqual(try model.predict(input, batchSize: 1), output)
    }

    /// A classifier on large inputs runs its trunk in one-image slices and its head (after global pooling)
    /// on the whole batch; the result equals the plain executor's on the unoptimised graph.
    func testSlicedFloatModelWithBatchedHeadMatchesTheExecutor() throws {
        var state: UInt64 = 42
        func random(_ shape: [Int]) -> Tensor {
            Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return Float(Int64(bitPattern: state >> 11) & 0xFFFF) / 32768 - 1
            })
        }
        var graph = Graph(name: "t", inputs: [ValueInfo(name: "x", dimensions: [nil, 3, 224, 224])],
                          outputs: [ValueInfo(name: "y", dimensions: [nil, 5])], nodes: [], initializers: [:])
        graph.initializers = ["w": random([4, 3, 3, 3]), "b": random([4]), "fc": random([5, 4]), "fcb": random([5])]
        let conv = Conv2DParameters(window: WindowGeometry(kernel: (3, 3), strides: (4, 4), pads: (1, 1, 1, 1)))
        graph.nodes = [
            Node(name: "c", op: .conv(conv), inputs: ["x", "w", "b"], outputs: ["a"]),
            Node(name: "r", op: .relu, inputs: ["a"], outputs: ["h"]),
            Node(name: "p", op: .globalAveragePool, inputs: ["h"], outputs: ["g"]),
            Node(name: "f", op: .flatten(axis: 1), inputs: ["g"], outputs: ["v"]),
            Node(name: "fc", op: .gemm(alpha: 1, beta: 1, transA: false, transB: true), inputs: ["v", "fc", "fcb"], outputs: ["y"]),
        ]
        let x = random([3, 3, 224, 224])
        XCTAssertEqual(x.cacheSizedSlice, 1, "one image per slice, so the head runs apart from the trunk")
        let expected = try Executor(graph: graph).run(["x": x])["y"]!
        let y = try FloatModel(graph: graph).predict(x)
        XCTAssertEqual(y.shape, [3, 5])
        let diff = zip(y.data, expected.data).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(diff, 1e-5)
    }

    /// The README's library example, kept compiling and running here.
    func testReadmeLibraryExample() throws {
        let model = try ONNXImporter.load(contentsOf: Self.model("fmnist-resnet.onnx"))
        let calibration = try NumpyFile.readTensor(contentsOf: Self.model("fmnist-calib-256.npy"))
        var configuration = QuantizationConfiguration(method: .rapq, weightBits: 4, activationBits: 4)
        configuration.reconstruction.iterations = 20        // the CLI default is 1000
        configuration.reconstruction.activationIterations = 10
        configuration.exponentIterations = 10
        let network = try quantize(model: model, calibration: calibration.rows(0..<64), configuration: configuration)
        let report = VerificationReport(network: network, data: calibration.rows(0..<8))
        XCTAssertTrue(report.passed, report.text)
    }

    /// RAPQ produces a pure power-of-two model; the release's behaviour (rapq-reference) does not, and verify says so.
    func testRapqVerifiesAndReferenceDoesNot() throws {
        let model = try ONNXImporter.load(contentsOf: Self.model("fmnist-mobilenetv2.onnx"))
        let data = try calibration(64)
        let rapq = try quantize(model: model, calibration: data, configuration: quick(.rapq))
        let report = VerificationReport(network: rapq, data: data.rows(0..<16))
        XCTAssertTrue(report.passed, report.text)
        XCTAssertTrue(rapq.layers.values.allSatisfy { $0.weight.exponents != nil })

        let reference = try quantize(model: model, calibration: data, configuration: quick(.rapqReference))
        let referenceReport = VerificationReport(network: reference, data: nil)
        XCTAssertFalse(referenceReport.passed, "rapq-reference keeps fractional exponents and must fail verify")
        XCTAssertFalse(referenceReport.checks[0].passed, referenceReport.text)
        // Its classifier input is quantized at the low activation bit width.
        let prepared = PreparedNetwork(model)
        let lastInput = prepared.graph.nodes.first { $0.name == prepared.layerNames.last! }!.inputs[0]
        XCTAssertEqual(reference.activationQuantizer(for: lastInput)?.grid.bits, 4)
        XCTAssertEqual(rapq.activationQuantizer(for: lastInput)?.grid.bits, 8)
    }

    /// Reconstruction lowers the network's output error against FP32 compared with its starting point.
    func testReconstructionImprovesOnNaivePowerOfTwo() throws {
        let model = try ONNXImporter.load(contentsOf: Self.model("fmnist-resnet.onnx"))
        let data = try calibration(128)
        let fp32 = try FloatModel(graph: model).predict(data)
        func error(_ n: QuantizedNetwork) throws -> Double {
            let y = try Simulation(n).predict(data)
            return zip(y.data, fp32.data).reduce(0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }
        }
        var configuration = quick(.naivePotRecon)
        configuration.reconstruction.iterations = 80
        configuration.reconstruction.activationIterations = 0
        let before = try error(try quantize(model: model, calibration: data, configuration: quick(.naivePot)))
        let after = try error(try quantize(model: model, calibration: data, configuration: configuration))
        XCTAssertLessThan(after, before)
    }

    /// Same inputs and seed give the same bytes, wherever the reconstruction caches live: the second run's
    /// memory budget is far below its caches, so every cached unit input and target (both phases) is spilled
    /// to files, and none is left behind.
    func testDeterministicBytes() throws {
        let model = try ONNXImporter.load(contentsOf: Self.model("fmnist-resnet.onnx"))
        let data = try calibration(64)
        let a = try RAPQFile.encode(try quantize(model: model, calibration: data, configuration: quick(.rapq)))
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rapq-spill-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        var spilling = quick(.rapq)
        spilling.maxMemory = 1
        spilling.cacheFolder = folder
        var statuses: [String] = []
        let b = try RAPQFile.encode(try quantize(model: model, calibration: data, configuration: spilling) { event in
            if case .status(let line) = event { statuses.append(line) }
        })
        XCTAssertEqual(a, b)
        XCTAssertTrue(statuses.contains { $0.contains("at most 0 B in memory") && !$0.contains(" 0 B spilled") }, "\(statuses)")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [], "spill folder left behind")
        var other = quick(.rapq)
        other.seed = 8
        XCTAssertEqual(other.reconstruction.seed, 8, "the seed is set once, for every random choice")
        XCTAssertNotEqual(a, try RAPQFile.encode(try quantize(model: model, calibration: data, configuration: other)), "the seed must matter")
    }

    /// A cache folder that cannot be created stops the run before reconstruction, saying which folder.
    func testUnwritableCacheFolder() throws {
        let model = try ONNXImporter.load(contentsOf: Self.model("fmnist-resnet.onnx"))
        var configuration = quick(.rapq)
        configuration.cacheFolder = URL(fileURLWithPath: "/nonexistent-folder/cache")
        XCTAssertThrowsError(try quantize(model: model, calibration: try calibration(64), configuration: configuration)) {
            XCTAssertTrue("\($0)".contains("cannot write the reconstruction cache to '/nonexistent-folder/cache'"), "\($0)")
        }
    }

    /// The weight phase sees quantized activations by default below 4 activation bits (not for the release's
    /// reproduction), and an explicit choice wins.
    func testWeightPhaseActivationsDefault() {
        func quantized(_ method: QuantizationMethod, _ abits: Int, _ explicit: Bool? = nil) -> Bool {
            method.reconstructionOptions(ReconstructionOptions(), lossCoefficient: nil, fixedLossExponent: nil, exponentIterations: 10,
                                         quantizedActivations: explicit, activationBits: abits).quantizedActivationsInWeightPhase
        }
        for method in [QuantizationMethod.rapq, .naivePotRecon, .brecq] {
            XCTAssertTrue(quantized(method, 2) && quantized(method, 3), "\(method)")
            XCTAssertFalse(quantized(method, 4) || quantized(method, 8), "\(method)")
            XCTAssertTrue(quantized(method, 4, true), "\(method)")
            XCTAssertFalse(quantized(method, 3, false), "\(method)")
        }
        XCTAssertFalse(quantized(.rapqReference, 3))
    }

    /// RAPQ's exponent phase: `rapq` chooses exponents before learning the rounding (K = 0) with the L2.4 fit,
    /// `rapq-reference` learns them for the release's K = 500 and never hardens; explicit values win.
    func testExponentDefaults() {
        func options(_ method: QuantizationMethod, _ k: Int? = nil, _ hardening: ExponentHardening = .fitted) -> ReconstructionOptions {
            method.reconstructionOptions(ReconstructionOptions(), lossCoefficient: nil, fixedLossExponent: nil, exponentIterations: k,
                                         exponentHardening: hardening)
        }
        XCTAssertEqual(QuantizationConfiguration().method, .rapq, "the library's default method is the CLI's")
        XCTAssertEqual(options(.rapq).exponentIterations, 0)
        XCTAssertEqual(options(.rapq).exponentHardening, .fitted)
        XCTAssertEqual(QuantizationConfiguration(method: .rapq, weightBits: 2, activationBits: 4).exponentHardening, .fitted)
        XCTAssertEqual(options(.rapq, 300, .output).exponentIterations, 300)
        XCTAssertEqual(options(.rapq, 300, .output).exponentHardening, .output)
        XCTAssertEqual(options(.rapqReference).exponentIterations, 500)
        XCTAssertEqual(options(.rapqReference, 100, .output).exponentHardening, .frozenFractional)
        XCTAssertFalse(options(.brecq).learnExponents || options(.naivePotRecon).learnExponents)
    }

    /// Memory sizes in decimal and binary units; anything else is refused with the accepted forms.
    func testMemorySizes() throws {
        XCTAssertEqual(try MemorySize(parsing: "2GB").bytes, 2_000_000_000)
        XCTAssertEqual(try MemorySize(parsing: "512 MB").bytes, 512_000_000)
        XCTAssertEqual(try MemorySize(parsing: "1.5GiB").bytes, 1_610_612_736)
        XCTAssertEqual(try MemorySize(parsing: "64kib").bytes, 65_536)
        XCTAssertEqual(MemorySize(bytes: 1_640_000_000).description, "1.64 GB")
        for bad in ["2", "GB", "2XB", "-1GB", "1.2.3GB", ""] {
            XCTAssertThrowsError(try MemorySize(parsing: bad), bad) { XCTAssertTrue("\($0)".contains("not a memory size"), "\($0)") }
        }
        XCTAssertThrowsError(try MemorySize(parsing: "0GB")) { XCTAssertTrue("\($0)".contains("out of range"), "\($0)") }
    }

    /// An interrupted run resumed from its checkpoint writes the same bytes as an uninterrupted one, with the
    /// weight phase on FP32 activations (the default) and on quantized ones with QDrop's random drop.
    func testResumeGivesTheSameBytes() throws {
        let model = try ONNXImporter.load(contentsOf: Self.model("fmnist-resnet.onnx"))
        let data = try calibration(64)
        for quantizedActivations in [false, true] {
            var base = quick(.rapq)
            if quantizedActivations {
                base.quantizedActivationsInWeightPhase = true
                base.activationDropProbability = 0.25
            }
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rapq-resume-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: folder) }
            let straight = try RAPQFile.encode(try quantize(model: model, calibration: data, configuration: base))

            struct Interrupt: Error {}
            var configuration = base
            configuration.checkpointFolder = folder
            for stopAt in [(phase: "weights", unit: 3), (phase: "activations", unit: 2)] {
                // Thrown from inside the unit's loop, as a crash would stop it: the checkpoint holds the units before it.
                XCTAssertThrowsError(try quantize(model: model, calibration: data, configuration: configuration) { event in
                    if case .reconstruction(let e) = event, e.phase == stopAt.phase, e.unit == stopAt.unit, e.iteration == e.iterations {
                        throw Interrupt()
                    }
                }) { XCTAssertTrue($0 is Interrupt, "\($0)") }
                configuration.resume = true
            }
            let resumed = try RAPQFile.encode(try quantize(model: model, calibration: data, configuration: configuration))
            XCTAssertEqual(resumed, straight, "quantized weight-phase activations: \(quantizedActivations)")
        }
    }

    /// A checkpoint whose position was edited and its checksum recomputed (so every checksum holds) is refused
    /// when the network does not agree with it: a unit claimed done that was not (its weight scales are not
    /// yet powers of two), a unit claimed not done that was (its layers are no longer as calibrated), or the
    /// activation phase claimed in the middle of the weight phase. The true position still resumes.
    func testForgedCheckpointPositionIsRefused() throws {
        let model = try ONNXImporter.load(contentsOf: Self.model("fmnist-resnet.onnx"))
        let data = try calibration(32)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rapq-forged-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        var configuration = quick(.rapq)
        configuration.reconstruction.iterations = 8
        configuration.exponentIterations = 4
        configuration.checkpointFolder = folder
        struct Interrupt: Error {}
        XCTAssertThrowsError(try quantize(model: model, calibration: data, configuration: configuration) { event in
            if case .reconstruction(let e) = event, e.phase == "weights", e.unit == 3, e.iteration == e.iterations { throw Interrupt() }
        }) { XCTAssertTrue($0 is Interrupt, "\($0)") }
        let stateURL = folder.appendingPathComponent("state.json")
        let original = try Data(contentsOf: stateURL)
        let state = try JSONSerialization.jsonObject(with: original) as! [String: Any]
        let done = (state["position"] as! [String: Any])["completedUnits"] as! Int
        XCTAssertGreaterThan(done, 1)
        configuration.resume = true
        for (phase, units) in [("weights", done + 1), ("weights", done - 1), ("weights", 0), ("activations", 0)] {
            var forged = state
            forged["position"] = ["phase": phase, "completedUnits": units]
            forged["stateCRC32"] = CheckpointStore.stateChecksum(format: state["format"] as! Int, fingerprint: state["fingerprint"] as! String,
                                                                 position: ReconstructionPosition(phase: phase, completedUnits: units),
                                                                 networkCRC32: UInt32(state["networkCRC32"] as! Int))
            try JSONSerialization.data(withJSONObject: forged).write(to: stateURL)
            XCTAssertThrowsError(try quantize(model: model, calibration: data, configuration: configuration), "\(phase) \(units)") { error in
                XCTAssertTrue("\(error)".contains("network.rapq does not match state.json"), "\(phase) \(units): \(error)")
            }
        }
        try original.write(to: stateURL)
        XCTAssertNoThrow(try quantize(model: model, calibration: data, configuration: configuration))
    }
}
