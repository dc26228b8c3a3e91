import XCTest
import Graph
import Quantization
import Reconstruction
import TensorKernels

/// A small end-to-end weight phase on a ResNet-style graph built in code: stem conv + relu, one residual block
/// (conv-relu-conv-add-relu), global average pool, flatten, gemm.
final class ReconstructorTests: XCTestCase {
    static let bits = BitWidths(weights: 2, activations: 4)

    private func network() -> (PreparedNetwork, Tensor) {
        var data = TestData(seed: 31)
        func he(_ shape: [Int]) -> Tensor { data.tensor(shape, std: (2 / Float(shape.dropFirst().reduce(1, *))).squareRoot()) }
        let initializers: [String: Tensor] = [
            "w0": he([8, 3, 3, 3]), "b0": data.tensor([8], std: 0.1),
            "w1": he([8, 8, 3, 3]), "b1": data.tensor([8], std: 0.1),
            "w2": he([8, 8, 3, 3]), "b2": data.tensor([8], std: 0.1),
            "wfc": he([10, 8]), "bfc": data.tensor([10], std: 0.1),
        ]
        let nodes = [
            convNode("conv0", "x", "w0", "b0", "s0", kernel: 3, pad: 1),
            Node(name: "relu0", op: .relu, inputs: ["s0"], outputs: ["a0"]),
            convNode("conv1", "a0", "w1", "b1", "c1", kernel: 3, pad: 1),
            Node(name: "relu1", op: .relu, inputs: ["c1"], outputs: ["r1"]),
            convNode("conv2", "r1", "w2", "b2", "c2", kernel: 3, pad: 1),
            Node(name: "add", op: .add, inputs: ["c2", "a0"], outputs: ["sum"]),
            Node(name: "relu2", op: .relu, inputs: ["sum"], outputs: ["a2"]),
            Node(name: "gap", op: .globalAveragePool, inputs: ["a2"], outputs: ["g"]),
            Node(name: "flatten", op: .flatten(axis: 1), inputs: ["g"], outputs: ["f"]),
            Node(name: "fc", op: .gemm(alpha: 1, beta: 1, transA: false, transB: true), inputs: ["f", "wfc", "bfc"], outputs: ["logits"]),
        ]
        let graph = Graph(name: "tiny-resnet", inputs: [ValueInfo(name: "x", dimensions: [nil, 3, 8, 8])],
                          outputs: [ValueInfo(name: "logits", dimensions: [nil, 10])], nodes: nodes, initializers: initializers)
        return (PreparedNetwork(graph), data.tensor([64, 3, 8, 8]))
    }

    private func options(iterations: Int = 150) -> ReconstructionOptions {
        var o = ReconstructionOptions()
        o.iterations = iterations
        o.activationIterations = 0
        o.batchSize = 32
        o.learningRate = 1e-2
        o.seed = 5
        return o
    }

    /// Mean squared error of each unit's output against the FP32 model's, on all samples. The unit's inputs come
    /// from `context` (its earlier units' weights quantized); its own weights from each of `candidates`.
    private func unitErrors(_ prepared: PreparedNetwork, _ calibration: Tensor, context: QuantizedNetwork,
                            candidates: [QuantizedNetwork]) throws -> [[Double]] {
        let graph = prepared.graph
        let nodes = Dictionary(uniqueKeysWithValues: graph.nodes.map { ($0.name, $0) })
        let index = Dictionary(uniqueKeysWithValues: graph.nodes.enumerated().map { ($1.name, $0) })
        func overrides(_ net: QuantizedNetwork, _ layers: [String]) -> [String: Tensor] {
            Dictionary(uniqueKeysWithValues: layers.map { name in
                let layer = net.layers[name]!
                return (nodes[name]!.inputs[1], Tensor(shape: layer.weightShape, data: layer.dequantizedWeights))
            })
        }
        let contextWeights = overrides(context, prepared.layerNames)
        var fp = GraphStream(graph: graph, inputs: ["x": calibration])
        var qs = GraphStream(graph: graph, inputs: ["x": calibration])
        var result: [[Double]] = []
        for unit in prepared.units {
            let first = unit.nodes.map { index[$0]! }.min()!, last = unit.nodes.map { index[$0]! }.max()!
            try fp.advance(to: last + 1)
            try qs.advance(to: first, parameters: contextWeights)
            let target = try fp.values[unit.output]!
            let program = try SubgraphProgram(graph: graph, nodeNames: unit.nodes, output: unit.output)
            let values = try qs.values
            let inputs = Dictionary(uniqueKeysWithValues: unit.inputs.map { ($0, values[$0]!) })
            result.append(try candidates.map { net in
                let y = try program.forward(inputs, parameters: overrides(net, unit.layers)).output
                return zip(y.data, target.data).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } / Double(y.count)
            })
        }
        return result
    }

    func testUnitsAreFound() {
        let (prepared, _) = network()
        XCTAssertEqual(prepared.units.map(\.kind), [.layer, .residualBlock, .layer])
        XCTAssertEqual(prepared.units[1].layers, ["conv1", "conv2"])
    }

    func testReconstructionLowersEveryUnitsErrorFromNaivePowerOfTwo() throws {
        let (prepared, calibration) = network()
        let naive = try calibrate(prepared, calibration: calibration,
                                  options: CalibrationOptions(bits: Self.bits, scalePolicy: .nearestPowerOfTwo), method: "naive-pot+recon")
        let reconstructor = try Reconstructor(prepared: prepared, calibration: calibration, options: options())
        var events: [ReconstructionEvent] = []
        let start = Date()
        let reconstructed = try reconstructor.reconstructWeights(naive) { events.append($0) }
        print("weight phase, 3 units x 150 iterations: \(Date().timeIntervalSince(start)) s")
        XCTAssertEqual(events.filter { $0.iteration == 150 }.count, prepared.units.count)
        XCTAssertTrue(events.allSatisfy { $0.phase == "weights" && $0.reconstructionLoss.isFinite })

        for (name, layer) in reconstructed.layers {
            // Fixed (naive PoT) scales are kept; only the rounding moved.
            XCTAssertEqual(layer.weight, naive.layers[name]!.weight, name)
            XCTAssertTrue(layer.codes.allSatisfy { (Int32(layer.weight.grid.qmin)...Int32(layer.weight.grid.qmax)).contains($0) })
        }
        XCTAssertGreaterThan(zip(prepared.layerNames.map { reconstructed.layers[$0]!.codes }, prepared.layerNames.map { naive.layers[$0]!.codes })
            .map { zip($0, $1).filter { $0 != $1 }.count }.reduce(0, +), 0, "no rounding decision changed")

        let errors = try unitErrors(prepared, calibration, context: reconstructed, candidates: [naive, reconstructed])
        for (unit, e) in zip(prepared.units, errors) {
            print("\(unit.name): naive \(e[0]) -> reconstructed \(e[1])")
            XCTAssertLessThan(e[1], e[0], unit.name)
        }
        // The whole network's output error drops too.
        let whole = try unitErrors(prepared, calibration, context: naive, candidates: [naive]).last![0]
        let wholeAfter = try unitErrors(prepared, calibration, context: reconstructed, candidates: [reconstructed]).last![0]
        print("logits: naive \(whole) -> reconstructed \(wholeAfter)")
        XCTAssertLessThan(wholeAfter, whole)
    }

    func testLearnedExponentsEndAsPowersOfTwo() throws {
        let (prepared, calibration) = network()
        let float = try calibrate(prepared, calibration: calibration,
                                  options: CalibrationOptions(bits: Self.bits, scalePolicy: .float, activationPolicy: .nearestPowerOfTwo), method: "rapq")
        var o = options()
        o.learnExponents = true
        for (hardening, k) in [(ExponentHardening.hard, 50), (.fitted, 50), (.output, 50), (.output, 0)] {
            o.exponentHardening = hardening
            o.exponentIterations = k
            let rapq = try Reconstructor(prepared: prepared, calibration: calibration, options: o).reconstructWeights(float) { _ in }
            for name in prepared.layerNames {
                let layer = rapq.layers[name]!, s0 = float.layers[name]!.weight.scales
                guard let exponents = layer.weight.exponents else { return XCTFail("\(hardening) \(name): scales \(layer.weight.scales) are not all powers of two") }
                XCTAssertNotNil(layer.weight.integerZeroPoints, name)
                for (c, e) in exponents.enumerated() {
                    let floor = Int(log2(Double(s0[c])).rounded(.down))
                    XCTAssertTrue(e == floor || e == floor + 1, "\(name) channel \(c): 2^\(e) from \(s0[c])")
                }
                XCTAssertTrue(layer.codes.allSatisfy { (Int32(layer.weight.grid.qmin)...Int32(layer.weight.grid.qmax)).contains($0) })
            }
            let errors = try unitErrors(prepared, calibration, context: rapq, candidates: [rapq])
            XCTAssertTrue(errors.allSatisfy { $0[0].isFinite })
        }

        // The release's frozen fractional exponents leave (almost all) scales off powers of two.
        o.exponentHardening = .frozenFractional
        o.exponentIterations = 50
        let reference = try Reconstructor(prepared: prepared, calibration: calibration, options: o).reconstructWeights(float) { _ in }
        let nonPoT = prepared.layerNames.flatMap { reference.layers[$0]!.weight.scales }.filter { PowerOfTwo.exactExponent($0) == nil }.count
        XCTAssertGreaterThan(nonPoT, 0)
    }

    /// With quantized activations in the weight phase (always, and with QDrop's drop), the fully quantized
    /// model (weights and activations) ends closer to the FP32 logits than the naive start (without the drop,
    /// closer than after a weight phase on FP32 activations), and a second run gives the same result.
    func testWeightPhaseWithQuantizedActivationsLowersTheQuantizedModelsError() throws {
        let (prepared, calibration) = network()
        let naiveOptions = CalibrationOptions(bits: Self.bits, scalePolicy: .nearestPowerOfTwo, activationPolicy: .nearestPowerOfTwo)
        var naive = try calibrate(prepared, calibration: calibration, options: naiveOptions, method: "naive-pot+recon")
        let sites = placeActivationQuantizers(in: prepared.graph, units: prepared.units, bits: Self.bits)
        naive.activations = try initialiseActivations(of: naive, sites: sites, samples: calibration, count: 64, policy: .nearestPowerOfTwo,
                                                      floatWeights: true)
        XCTAssertFalse(naive.activations.isEmpty)
        let reference = try Executor(graph: prepared.graph).run(["x": calibration])["logits"]!
        func logitsError(_ net: QuantizedNetwork) throws -> Double {
            let y = try Simulation(net).run(calibration)["logits"]!
            return zip(y.data, reference.data).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } / Double(y.count)
        }
        let start = try logitsError(naive)
        let floatPhase = try logitsError(try Reconstructor(prepared: prepared, calibration: calibration, options: options()).reconstructWeights(naive) { _ in })
        print("quantized logits MSE: start \(start), after a weight phase on FP32 activations \(floatPhase)")
        for drop: Float in [0, 0.5] {
            var o = options()
            o.quantizedActivationsInWeightPhase = true
            o.activationDropProbability = drop
            let reconstructor = try Reconstructor(prepared: prepared, calibration: calibration, options: o)
            let a = try reconstructor.reconstructWeights(naive) { _ in }
            XCTAssertEqual(a.activations, naive.activations, "the weight phase must not move activation quantizers")
            let after = try logitsError(a)
            print("drop \(drop): quantized logits MSE \(start) -> \(after)")
            XCTAssertLessThan(after, 0.8 * start, "drop \(drop)")
            // Without the drop the weights learn around the activation error the FP32-activation phase ignores.
            if drop == 0 { XCTAssertLessThan(after, floatPhase) }
            XCTAssertEqual(try reconstructor.reconstructWeights(naive) { _ in }.layers, a.layers, "drop \(drop): not deterministic")
        }
    }

    func testSameSeedSameResult() throws {
        let (prepared, calibration) = network()
        let naive = try calibrate(prepared, calibration: calibration,
                                  options: CalibrationOptions(bits: Self.bits, scalePolicy: .nearestPowerOfTwo), method: "naive-pot+recon")
        let reconstructor = try Reconstructor(prepared: prepared, calibration: calibration, options: options(iterations: 20))
        let a = try reconstructor.reconstructWeights(naive) { _ in }, b = try reconstructor.reconstructWeights(naive) { _ in }
        XCTAssertEqual(a.layers, b.layers)
    }

    /// A budget of zero bytes spills every cached unit input and target to files: the same result, and the
    /// files and their folder are gone once the reconstructor is.
    func testSpilledCachesGiveTheSameResult() throws {
        let (prepared, calibration) = network()
        let naive = try calibrate(prepared, calibration: calibration,
                                  options: CalibrationOptions(bits: Self.bits, scalePolicy: .nearestPowerOfTwo), method: "naive-pot+recon")
        let inMemory = try Reconstructor(prepared: prepared, calibration: calibration, options: options(iterations: 20)).reconstructWeights(naive) { _ in }
        var folder: URL?
        do {
            let cache = try SampleCache(limit: 0, directory: FileManager.default.temporaryDirectory)
            folder = cache.folder
            let spilled = try Reconstructor(prepared: prepared, calibration: calibration, options: options(iterations: 20), cache: cache)
                .reconstructWeights(naive) { _ in }
            XCTAssertEqual(spilled.layers, inMemory.layers)
            XCTAssertGreaterThan(cache.statistics.bytesSpilled, 0)
            XCTAssertEqual(cache.statistics.peakBytesInMemory, 0)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: cache.folder!.path), [], "spill files outlive their tensors")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder!.path), "the spill folder outlives its cache")
    }

    func testRejectsTooFewSamplesAndZeroIterations() {
        let (prepared, calibration) = network()
        var o = options()
        o.batchSize = 65
        XCTAssertThrowsError(try Reconstructor(prepared: prepared, calibration: calibration, options: o))
        o = options(iterations: 0)
        XCTAssertThrowsError(try Reconstructor(prepared: prepared, calibration: calibration, options: o))
    }

    /// A checkpoint is checked before it is used: a position outside the run's units, an unknown phase, an
    /// edited state (checksum) and another run's fingerprint are refused; resuming never creates a folder.
    func testCheckpointIsValidatedBeforeResuming() throws {
        let (prepared, calibration) = network()
        let net = try calibrate(prepared, calibration: calibration, options: CalibrationOptions(bits: Self.bits, scalePolicy: .bestPowerOfTwo), method: "rapq")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rapq-checkpoint-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        XCTAssertThrowsError(try CheckpointStore(folder: folder, fingerprint: "f", create: false)) { error in
            XCTAssertEqual(error as? CheckpointError, .missing(folder: folder.path))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.path), "resuming must not create the folder")

        let store = try CheckpointStore(folder: folder, fingerprint: "f")
        XCTAssertNil(try store.load(units: 3))
        try store.save(net, at: ReconstructionPosition(phase: "weights", completedUnits: 2))
        XCTAssertEqual(try store.load(units: 3)?.position, ReconstructionPosition(phase: "weights", completedUnits: 2))
        XCTAssertThrowsError(try store.load(units: 1), "2 completed units of a 1-unit run") { error in
            XCTAssertTrue("\(error)".contains("records 2 completed units, but this run has 1"), "\(error)")
        }
        XCTAssertThrowsError(try CheckpointStore(folder: folder, fingerprint: "g").load(units: 3)) { error in
            XCTAssertEqual(error as? CheckpointError, .foreign(folder: folder.path))
        }
        for position in [ReconstructionPosition(phase: "bias", completedUnits: 0), ReconstructionPosition(phase: "weights", completedUnits: -1)] {
            try store.save(net, at: position)
            XCTAssertThrowsError(try store.load(units: 3), "\(position)") { error in
                guard case .corrupted? = error as? CheckpointError else { return XCTFail("\(error)") }
            }
        }
        try store.save(net, at: ReconstructionPosition(phase: "weights", completedUnits: 1))
        let stateURL = folder.appendingPathComponent("state.json")
        let edited = String(decoding: try Data(contentsOf: stateURL), as: UTF8.self).replacingOccurrences(of: "\"completedUnits\" : 1", with: "\"completedUnits\" : 3")
        XCTAssertTrue(edited.contains("\"completedUnits\" : 3"), edited)
        try Data(edited.utf8).write(to: stateURL)
        XCTAssertThrowsError(try store.load(units: 3)) { error in
            XCTAssertTrue("\(error)".contains("does not match its checksum"), "\(error)")
        }
    }
}
