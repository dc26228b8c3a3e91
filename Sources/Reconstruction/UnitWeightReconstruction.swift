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
        var parameters: [String: Tensor] = [:]
        for (i, name) in weightNames.enumerated() {
            parameters[name] = Tensor(shape: weightShapes[i], data: roundings[i].softWeights())
        }
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

    /// Ends exponent learning in every layer (see `LayerRounding.freezeExponents`).
    public mutating func freezeExponents(_ hardening: ExponentHardening) {
        for i in roundings.indices { roundings[i].freezeExponents(hardening) }
    }
}
