import Foundation
import Graph
import Quantization
import TensorKernels

/// BRECQ-style block reconstruction with RAPQ's additions (METHOD §4-§5): units in network order, each
/// unit's weights (and, for RAPQ, its per-channel exponents) learned so that its output on the partly
/// quantized model's inputs matches the FP32 model's; then, with all weights fixed, the activation
/// quantizers of each unit learned the same way.
public struct Reconstructor {
    /// The prepared FP32 network (BN folded).
    public let prepared: PreparedNetwork
    /// Calibration samples, batch first.
    public let calibration: Tensor
    /// Options.
    public let options: ReconstructionOptions
    /// Where each unit's cached inputs and FP32 targets (the streams' tensors at unit boundaries) are kept:
    /// in memory within its budget, spilled to files beyond it. Placement never changes a result.
    public let cache: SampleCache
    private let nodeIndex: [String: Int]
    private let start = Date()

    /// A reconstructor for `prepared` on `calibration`, caching in `cache` (default: all in memory).
    public init(prepared: PreparedNetwork, calibration: Tensor, options: ReconstructionOptions, cache: SampleCache = SampleCache()) throws {
        guard options.iterations > 0 else { throw QuantizationError.badCalibration("--iters must be at least 1") }
        guard calibration.shape[0] >= options.batchSize else {
            throw QuantizationError.badCalibration("\(calibration.shape[0]) calibration samples are fewer than the mini-batch of \(options.batchSize); give more samples or a smaller --batch-size")
        }
        self.prepared = prepared
        self.calibration = calibration
        self.options = options
        self.cache = cache
        nodeIndex = Dictionary(uniqueKeysWithValues: prepared.graph.nodes.enumerated().map { ($1.name, $0) })
    }

    /// The loss exponent of `unit`.
    public func lossExponent(of unit: ReconstructionUnit) -> Float {
        switch options.lossExponent {
        case .fixed(let p): return p
        case .batchNorm(let c): return ReconstructionLoss.exponent(gammas: unit.lossLayer.flatMap { prepared.gammas[$0] }, c: c)
        }
    }

    private var inputName: String { prepared.graph.inputs[0].name }

    private func span(of unit: ReconstructionUnit) -> (first: Int, last: Int) {
        let indices = unit.nodes.compactMap { nodeIndex[$0] }
        return (indices.min()!, indices.max()!)
    }

    /// The mini-batch generator of unit `k` in a phase: seeded per unit, so a resumed run draws exactly
    /// the batches an uninterrupted one would.
    private func generator(phase: UInt64, unit k: Int) -> SeededGenerator {
        SeededGenerator(seed: seed(phase: phase, unit: k))
    }

    private func seed(phase: UInt64, unit k: Int) -> UInt64 {
        options.seed ^ (phase &* 0xD1B5_4A32_D192_ED03) ^ (UInt64(k + 1) &* 0x9E37_79B9_7F4A_7C15)
    }

    /// The weight phase over every unit: returns `network` with hard-rounded (and, for RAPQ, power-of-two) weights.
    /// Units before `firstUnit` are taken as already done in `network` (resume); `unitDone(network, k)` is
    /// called after each unit with the units `0..<k` finished (for checkpoints).
    public func reconstructWeights(_ network: QuantizedNetwork, firstUnit: Int = 0,
                                   unitDone: (QuantizedNetwork, Int) throws -> Void = { _, _ in },
                                   progress: (ReconstructionEvent) throws -> Void) throws -> QuantizedNetwork {
        var net = network
        let graph = prepared.graph
        var fp = GraphStream(graph: graph, inputs: [inputName: calibration], cache: cache)
        let activations = options.quantizedActivationsInWeightPhase ? net.activations : [:]
        var qs = GraphStream(graph: graph, cachedInputs: [inputName: try quantizedInput(activations[inputName])], cache: cache)
        var overrides: [String: Tensor] = [:]
        let nodes = Dictionary(uniqueKeysWithValues: graph.nodes.map { ($0.name, $0) })
        let schedule = RoundingRegularizer(weight: options.roundingWeight, iterations: options.iterations, warmup: options.warmup)
        let exponentSchedule = RoundingRegularizer(weight: 10 * options.roundingWeight, iterations: options.iterations, warmup: options.warmup)

        for (k, unit) in net.units.enumerated() {
            let (first, last) = span(of: unit)
            if k < firstUnit {
                for name in unit.layers {
                    let layer = net.layers[name]!
                    overrides[nodes[name]!.inputs[1]] = Tensor(shape: layer.weightShape, data: layer.dequantizedWeights)
                }
                continue
            }
            var rng = generator(phase: 1, unit: k)
            try fp.advance(to: first)
            try qs.advance(to: first, parameters: overrides, observe: fakeQuantizing(activations))
            let inputs = Dictionary(uniqueKeysWithValues: unit.inputs.map { ($0, qs.cached[$0]!) })
            try fp.advance(to: last + 1)
            guard let target = fp.cached[unit.output] else { throw ExecutionError.unknownTensor(name: unit.output) }
            let program = try SubgraphProgram(graph: graph, nodeNames: unit.nodes, output: unit.output)
            let learnExponent = options.learnExponents
            let freezeAt = Swift.min(options.exponentIterations, options.iterations / 2)
            let roundings = unit.layers.map { name in
                LayerRounding(layer: net.layers[name]!, weights: graph.initializers[nodes[name]!.inputs[1]]!.data,
                              learnExponent: learnExponent, learningRate: options.learningRate,
                              exponentLearningRate: options.exponentLearningRate)
            }
            let weightNames = unit.layers.map { nodes[$0]!.inputs[1] }
            let p = lossExponent(of: unit)
            let produced = Set(program.nodes.flatMap(\.outputs))
            var phase = UnitWeightReconstruction(program: program, roundings: roundings, weightNames: weightNames,
                                                 weightShapes: unit.layers.map { net.layers[$0]!.weightShape }, lossExponent: p,
                                                 roundingSchedule: schedule, exponentSchedule: exponentSchedule,
                                                 activations: activations.isEmpty ? nil : WeightPhaseActivations(
                                                    quantizers: activations.filter { produced.contains($0.key) },
                                                    dropProbability: options.activationDropProbability, seed: seed(phase: 3, unit: k)))
            // The samples `.output` hardening measures layer outputs on: two mini-batches spread evenly over
            // the calibration set (the same for every unit and run).
            func evaluation() throws -> [[String: Tensor]] {
                let n = calibration.shape[0], count = Swift.min(n, 2 * options.batchSize)
                let rows = (0..<count).map { $0 * n / count }
                return try stride(from: 0, to: count, by: options.batchSize).map { start in
                    let batch = Array(rows[start..<Swift.min(start + options.batchSize, count)])
                    return try inputs.mapValues { try $0.rows(batch) }
                }
            }
            var meter = LossMeter()
            var stopper = EarlyStopping(patience: options.patience, warmup: Int(options.warmup * Float(options.iterations)))
            var iteration = 0
            while iteration < options.iterations {
                if learnExponent && iteration == freezeAt { try phase.freezeExponents(options.exponentHardening, samples: evaluation) }
                let batch = rng.sample(options.batchSize, from: calibration.shape[0])
                let losses = try phase.iterate(inputs: try inputs.mapValues { try $0.rows(batch) }, target: try target.rows(batch),
                                               iteration: iteration, learningExponents: learnExponent && iteration < freezeAt)
                let loss = losses.reconstruction
                meter.add(loss, losses.rounding, losses.exponent)
                iteration += 1
                if iteration % 50 == 0 || iteration == options.iterations {
                    try progress(event("weights", k, unit, iteration, options.iterations, meter.mean, p))
                    meter = LossMeter()
                }
                if stopper.shouldStop(iteration: iteration, loss: loss) { break }
            }
            try phase.freezeExponents(options.exponentHardening, samples: evaluation)
            for (i, rounding) in phase.roundings.enumerated() {
                let layer = rounding.hardened(from: net.layers[unit.layers[i]]!)
                net.layers[layer.node] = layer
                overrides[weightNames[i]] = Tensor(shape: layer.weightShape, data: layer.dequantizedWeights)
            }
            try unitDone(net, k + 1)
        }
        return net
    }

    /// The activation phase over every unit: each unit's activation quantizers learn their log2-scale
    /// (rounded to an integer exponent by a straight-through estimator when `powerOfTwoActivations`).
    /// `firstUnit` and `unitDone` work as in `reconstructWeights`.
    public func reconstructActivations(_ network: QuantizedNetwork, firstUnit: Int = 0,
                                       unitDone: (QuantizedNetwork, Int) throws -> Void = { _, _ in },
                                       progress: (ReconstructionEvent) throws -> Void) throws -> QuantizedNetwork {
        var net = network
        guard options.activationIterations > 0 else { return net }
        let graph = net.simulationGraph()
        var fp = GraphStream(graph: prepared.graph, inputs: [inputName: calibration], cache: cache)
        var qs = GraphStream(graph: graph, cachedInputs: [inputName: try quantizedInput(net.activations[inputName])], cache: cache)
        let schedule = options.activationIterations
        let evenSites = quantizedAddOutputs(in: graph, sites: Set(net.activations.keys))

        for (k, unit) in net.units.enumerated() where k >= firstUnit {
            var rng = generator(phase: 2, unit: k)
            let (first, last) = span(of: unit)
            let current = net.activations
            try fp.advance(to: first)
            try qs.advance(to: first, observe: fakeQuantizing(current))
            let inputs = Dictionary(uniqueKeysWithValues: unit.inputs.map { ($0, qs.cached[$0]!) })
            try fp.advance(to: last + 1)
            guard let target = fp.cached[unit.output] else { throw ExecutionError.unknownTensor(name: unit.output) }
            let produced = Set(unit.nodes.compactMap { nodeIndex[$0] }.flatMap { graph.nodes[$0].outputs })
            let sites = net.activations.keys.filter { produced.contains($0) }.sorted()
            if !sites.isEmpty {
                let program = try SubgraphProgram(graph: graph, nodeNames: unit.nodes, output: unit.output)
                var learner = ActivationScaleLearner(sites: sites.map { ($0, net.activations[$0]!) }, powerOfTwo: options.powerOfTwoActivations,
                                                     learningRate: options.activationLearningRate,
                                                     evenZeroPoints: evenSites)
                let p = lossExponent(of: unit)
                var meter = LossMeter()
                for iteration in 0..<schedule {
                    let batch = rng.sample(options.batchSize, from: calibration.shape[0])
                    let quantizers = learner.quantizers
                    let trace = try program.forward(try inputs.mapValues { try $0.rows(batch) }, observe: fakeQuantizing(quantizers))
                    let (loss, gradient) = ReconstructionLoss.lp(trace.output, target: try target.rows(batch), p: p)
                    var scaleGradients: [String: Float] = [:]
                    // The output site's gradient is mapped before backward starts; inner sites during it.
                    var outputGradient = gradient
                    if let q = quantizers[unit.output], let original = trace.unobserved[unit.output] {
                        scaleGradients[unit.output] = ActivationScaleLearner.straightThrough(original, q, &outputGradient)
                    }
                    _ = program.backward(trace, outputGradient: outputGradient) { name, original, g in
                        guard name != unit.output, let q = quantizers[name] else { return }
                        scaleGradients[name] = ActivationScaleLearner.straightThrough(original, q, &g)
                    }
                    learner.step(scaleGradients, iteration: iteration, of: schedule)
                    meter.add(loss, 0, 0)
                    if (iteration + 1) % 50 == 0 || iteration + 1 == schedule {
                        try progress(event("activations", k, unit, iteration + 1, schedule, meter.mean, p))
                        meter = LossMeter()
                    }
                }
                // Keep what was learned only if it reconstructs this unit at least as well as the start on
                // a fixed evaluation batch: power-of-two exponents move by whole octaves, and the
                // straight-through scale gradient can push one the wrong way.
                let evaluation = Array(0..<Swift.min(calibration.shape[0], 4 * options.batchSize))
                func unitLoss(_ quantizers: [String: QuantizerParameters]) throws -> Double {
                    let trace = try program.forward(try inputs.mapValues { try $0.rows(evaluation) }, observe: fakeQuantizing(quantizers))
                    return ReconstructionLoss.lp(trace.output, target: try target.rows(evaluation), p: p).loss
                }
                let start = Dictionary(uniqueKeysWithValues: sites.map { ($0, net.activations[$0]!) })
                let learned = learner.quantizers
                if try unitLoss(learned) <= unitLoss(start) {
                    for (name, q) in learned { net.activations[name] = q }
                }
            }
            let updated = net.activations
            try qs.advance(to: last + 1, observe: fakeQuantizing(updated))
            try unitDone(net, k + 1)
        }
        return net
    }

    /// The calibration samples fake-quantized by `quantizer` (the samples themselves without one), built in
    /// slices straight into the cache.
    private func quantizedInput(_ quantizer: QuantizerParameters?) throws -> CachedTensor {
        guard let quantizer else { return CachedTensor(external: calibration) }
        let n = calibration.shape[0]
        let writer = try cache.writer(sampleShape: Array(calibration.shape.dropFirst()), samples: n)
        for start in stride(from: 0, to: n, by: 64) {
            var slice = calibration.rows(start..<Swift.min(n, start + 64))
            fakeQuantize(&slice, with: quantizer)
            try writer.append(slice)
        }
        return try writer.finish()
    }

    /// An observer that fake-quantizes the tensors that have a quantizer in `quantizers` and leaves the rest.
    private func fakeQuantizing(_ quantizers: [String: QuantizerParameters]) -> (String, Tensor) -> Tensor? {
        { name, t in quantizers[name].map { fakeQuantized(t, with: $0) } }
    }

    private func event(_ phase: String, _ k: Int, _ unit: ReconstructionUnit, _ iteration: Int, _ total: Int,
                       _ mean: (Double, Double, Double), _ p: Float) -> ReconstructionEvent {
        ReconstructionEvent(phase: phase, unit: k + 1, units: prepared.units.count, unitName: unit.name, iteration: iteration,
                            iterations: total, reconstructionLoss: mean.0, roundingLoss: mean.1, exponentLoss: mean.2, p: p,
                            elapsed: Date().timeIntervalSince(start))
    }
}

/// Running means of the loss terms between progress reports.
struct LossMeter {
    private var sums = (0.0, 0.0, 0.0), count = 0

    mutating func add(_ reconstruction: Double, _ rounding: Double, _ exponent: Double) {
        sums = (sums.0 + reconstruction, sums.1 + rounding, sums.2 + exponent)
        count += 1
    }

    var mean: (Double, Double, Double) {
        let n = Double(Swift.max(count, 1))
        return (sums.0 / n, sums.1 / n, sums.2 / n)
    }

}

/// Early stopping: true when, after the warm-up, the loss has not improved by 0.1% for `patience` iterations.
struct EarlyStopping {
    let patience: Int, warmup: Int
    private var best = Double.infinity, bestIteration = 0

    init(patience: Int, warmup: Int) {
        self.patience = patience
        self.warmup = warmup
    }

    mutating func shouldStop(iteration: Int, loss: Double) -> Bool {
        guard patience > 0, iteration > warmup else { return false }
        if loss < best * 0.999 { best = loss; bestIteration = iteration }
        return iteration - bestIteration >= patience
    }
}
