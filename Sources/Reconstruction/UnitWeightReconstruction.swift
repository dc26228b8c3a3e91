import Graph
import Quantization
import TensorKernels

/// One unit's weight phase as a value (METHOD §4-§5.1): the unit's differentiable program, the rounding
/// state of each of its layers, and the iteration the phase repeats: soft weights, forward, L_p loss,
/// backward, one Adam step per layer.
///
/// `Reconstructor` draws the mini-batches and owns the schedule around it (exponent freeze, progress, early
/// stopping); this type is the part that runs once per iteration, so benchmarks time exactly that.
public struct UnitWeightReconstruction {
    /// The unit's nodes as a differentiable program.
    public let program: SubgraphProgram
    /// Rounding state per layer, in the order of `weightNames`.
    public private(set) var roundings: [LayerRounding]
    /// The weight initializer each layer's soft weights replace.
    public let weightNames: [String]
    /// Each weight tensor's shape.
    public let weightShapes: [[Int]]
    /// The loss exponent p.
    public let lossExponent: Float
    /// The rounding regulariser's schedule.
    public let roundingSchedule: RoundingRegularizer
    /// The exponent regulariser's schedule (used while exponents are learned).
    public let exponentSchedule: RoundingRegularizer
    /// Activation quantizers applied to tensors the unit produces (nil: FP32 activations).
    public let activations: WeightPhaseActivations?

    /// The weight phase of `program` whose layers read the weights `weightNames` (shapes `weightShapes`) and
    /// start from `roundings`, fake-quantizing the tensors `activations` names on the way.
    public init(program: SubgraphProgram, roundings: [LayerRounding], weightNames: [String], weightShapes: [[Int]],
                lossExponent: Float, roundingSchedule: RoundingRegularizer, exponentSchedule: RoundingRegularizer,
                activations: WeightPhaseActivations? = nil) {
        precondition(roundings.count == weightNames.count && weightShapes.count == weightNames.count)
        self.program = program
        self.roundings = roundings
        self.weightNames = weightNames
        self.weightShapes = weightShapes
        self.lossExponent = lossExponent
        self.roundingSchedule = roundingSchedule
        self.exponentSchedule = exponentSchedule
        self.activations = activations
    }

    /// The loss terms of one iteration.
    public struct Losses: Sendable {
        /// The reconstruction loss on the mini-batch.
        public var reconstruction: Double
        /// The rounding and exponent regularisers' values.
        public var rounding: Double, exponent: Double
    }

    /// One iteration at iteration index `t` on a mini-batch (`inputs` by the program's input names, `target`
    /// the FP32 output for the same samples). Exponent variables move only when `learningExponents`.
    public mutating func iterate(inputs: [String: Tensor], target: Tensor, iteration t: Int,
                                 learningExponents: Bool) throws -> Losses {
        let parameters = softParameters()
        let activations = self.activations
        let trace = try program.forward(inputs, parameters: parameters, observe: activations.map { a in { a.forward($0, $1, iteration: t) } })
        let (loss, gradient) = ReconstructionLoss.lp(trace.output, target: target, p: lossExponent)
        let grads = program.backward(trace, outputGradient: gradient, parameters: parameters,
                                     observeGradient: activations.map { a in { a.backward($0, $1, &$2, iteration: t) } })
        var losses = Losses(reconstruction: loss, rounding: 0, exponent: 0)
        for (i, name) in weightNames.enumerated() {
            let r = roundings[i].step(weightGradient: grads.parameters[name]!.data, iteration: t, rounding: roundingSchedule,
                                      exponent: learningExponents ? exponentSchedule : nil)
            losses.rounding += r.rounding
            losses.exponent += r.exponent
        }
        return losses
    }

    /// Each layer's soft weights by initializer name.
    private func softParameters() -> [String: Tensor] {
        var parameters: [String: Tensor] = [:]
        for (i, name) in weightNames.enumerated() {
            parameters[name] = Tensor(shape: weightShapes[i], data: roundings[i].softWeights())
        }
        return parameters
    }

    /// Ends exponent learning in every layer (see `LayerRounding.freezeExponents`).
    ///
    /// `.output` chooses each channel's exponent by the layer's output: the unit runs forward on `samples()`
    /// (mini-batches of unit inputs by name) with the current soft weights and the weight phase's activation
    /// quantizers (no drop), and for each layer the weight error of each candidate (`candidateWeightErrors`) is
    /// applied to the input that layer sees, without bias. The channel takes the candidate with the smaller
    /// summed squared output; a tie (a dead channel) takes the floor.
    public mutating func freezeExponents(_ hardening: ExponentHardening,
                                         samples: () throws -> [[String: Tensor]] = { [] }) throws {
        guard hardening == .output else {
            for i in roundings.indices { roundings[i].freezeExponents(hardening) }
            return
        }
        let errors = roundings.map { $0.candidateWeightErrors() }
        guard errors.contains(where: { $0 != nil }) else { return }
        let samples = try samples()
        precondition(!samples.isEmpty, "output hardening needs samples")
        let layerNodes = weightNames.map { name in program.nodes.first { $0.inputs.count > 1 && $0.inputs[1] == name }! }
        var squared = roundings.map { [[Double]](repeating: [Double](repeating: 0, count: $0.channels), count: 2) }
        let quantizers = activations?.quantizers ?? [:]
        let parameters = softParameters()
        for batch in samples {
            let trace = try program.forward(batch, parameters: parameters) { name, t in quantizers[name].map { fakeQuantized(t, with: $0) } }
            for (i, node) in layerNodes.enumerated() {
                guard let candidates = errors[i], let x = trace.values[node.inputs[0]] else { continue }
                for which in 0..<2 {
                    let y = try NodeEvaluator.forward(node, [x, Tensor(shape: weightShapes[i], data: candidates[which]), nil])[0]
                    Self.addChannelSquares(of: y, to: &squared[i][which])
                }
            }
        }
        for i in roundings.indices where errors[i] != nil {
            roundings[i].freezeExponents(.output, ceiling: zip(squared[i][0], squared[i][1]).map { $1 < $0 })
        }
    }

    /// Adds each channel's sum of squares of `y` (channels on axis 1) to `sums`.
    static func addChannelSquares(of y: Tensor, to sums: inout [Double]) {
        let channels = y.shape[1], per = y.count / (y.shape[0] * channels)
        precondition(sums.count == channels, "\(sums.count) sums for \(channels) channels")
        y.data.withUnsafeBufferPointer { y in
            for n in 0..<(y.count / (channels * per)) {
                for c in 0..<channels {
                    let base = (n * channels + c) * per
                    var total = 0.0
                    for k in base..<base + per { total += Double(y[k]) * Double(y[k]) }
                    sums[c] += total
                }
            }
        }
    }
}
