import ArgumentParser
import Foundation
import RAPQ

/// The reconstruction options shared by `quantize` and `demo`.
struct ReconstructionArguments: ParsableArguments {
    @Option(help: "Weight-reconstruction iterations per unit.")
    var iters: Int = 1000

    @Option(help: "Activation-reconstruction iterations per unit (0, the default, keeps the initial activation exponents: learning them measured worse).")
    var actIters: Int = 0

    @Option(help: "RAPQ: iterations during which weight exponents are learned as a continuous log2-scale before they are hardened (K; default 0 for rapq, whose exponents are chosen before the rounding is learned, and 500 for rapq-reference, as the release).")
    var expIters: Int?

    @Option(help: ArgumentHelp("RAPQ: how each weight channel's exponent is hardened to floor or ceiling after K iterations: 'fit' (whichever represents the weights with the smaller L2.4 error; default), 'output' (whichever changes the layer's output less on calibration samples) or 'threshold' (METHOD 5.1: the ceiling when the learned fraction is at least 0.5).", valueName: "rule"))
    var exponentHardening: String = "fit"

    @Option(help: ArgumentHelp("rapq: first rescale the FP32 network (same function) so that activation ranges passed from a layer to layers sit on powers of two, which power-of-two activation scales then fit as well as float ones: 'clip' (ranges passed directly or through Clip/ReLU6), 'streams' (also residual streams joined by Adds, each rescaled by the one factor that brings all its ranges closest to powers of two; default), 'all' (streams, and ranges passed through Relu; measured worse on a Relu ResNet) or 'off'.", valueName: "scope"))
    var alignActivations: String = "streams"

    @Option(help: ArgumentHelp("Activations the weight phase sees: 'quantized' (each unit learns its weights with the activation quantizers applied) or 'float' (METHOD 4, BRECQ and the authors' release). Default: quantized below 4 activation bits, float otherwise (rapq-reference: always float, as the release).", valueName: "kind"))
    var weightPhaseActivations: String?

    @Option(help: ArgumentHelp("With quantized weight-phase activations: the probability that an activation element keeps its FP32 value in an iteration (QDrop; 0.5 measured no better than 0 on Fashion-MNIST MobileNetV2 and EfficientNet-Lite0).", valueName: "p"))
    var activationDrop: Float = 0

    @Option(help: "Adam step size of RAPQ's exponent variables.")
    var expLr: Float = 1e-2

    @Option(help: "Mini-batch size of reconstruction.")
    var batchSize: Int = 32

    @Option(help: "A fixed loss exponent p for every unit (2 turns RAPQ's BN-derived exponent off).")
    var lp: Float?

    @Option(help: "Coefficient c of RAPQ's BN-derived loss exponent (default 0.9; rapq-reference 0.1).")
    var lpCoefficient: Float?

    @Option(help: "Stop a unit early when its loss has not improved by 0.1% for this many iterations (0 = never).")
    var patience: Int = 0

    @Option(help: "Write a checkpoint to this folder after each reconstructed unit.")
    var checkpointDir: String?

    @Option(help: "Continue an interrupted run from the checkpoint in this folder (same command, same data); keeps checkpointing there.")
    var resume: String?

    @Option(help: ArgumentHelp("Memory budget of reconstruction: the calibration samples plus the cached unit inputs and FP32 targets; cached tensors beyond it are spilled to --cache-dir (same output bytes). E.g. 2GB, 512MB, 1.5GiB (default: half of the physical memory).", valueName: "size"))
    var maxMemory: String?

    @Option(help: ArgumentHelp("Folder for the cache files beyond --max-memory, in a private subfolder deleted at the end (default: the system temporary folder, TMPDIR or /tmp).", valueName: "dir"))
    var cacheDir: String?

    func validate() throws {
        guard iters > 0 else { throw ValidationError("--iters must be at least 1") }
        guard actIters >= 0, (expIters ?? 0) >= 0, patience >= 0 else { throw ValidationError("--act-iters, --exp-iters and --patience must not be negative") }
        guard Self.hardenings[exponentHardening] != nil else {
            throw ValidationError("--exponent-hardening must be 'output', 'fit' or 'threshold', got '\(exponentHardening)'")
        }
        guard AlignmentScope(rawValue: alignActivations) != nil else {
            throw ValidationError("--align-activations must be 'clip', 'streams', 'all' or 'off', got '\(alignActivations)'")
        }
        if let weightPhaseActivations, !["quantized", "float"].contains(weightPhaseActivations) {
            throw ValidationError("--weight-phase-activations must be 'quantized' or 'float', got '\(weightPhaseActivations)'")
        }
        if !(activationDrop >= 0 && activationDrop < 1) { throw ValidationError("--activation-drop must be in [0, 1)") }
        guard batchSize > 0 else { throw ValidationError("--batch-size must be at least 1") }
        guard expLr > 0, expLr <= 1 else { throw ValidationError("--exp-lr must be in (0, 1], got \(expLr)") }
        if let lp, !(lp > 0 && lp <= 8) { throw ValidationError("--lp must be in (0, 8]") }
        if let lpCoefficient, !(lpCoefficient >= 0 && lpCoefficient <= 7) {
            throw ValidationError("--lp-coefficient must be in [0, 7] (the exponent 1 + c·sigmoid(u) then stays within --lp's (0, 8]), got \(lpCoefficient)")
        }
        if let maxMemory {
            do { _ = try MemorySize(parsing: maxMemory) } catch { throw ValidationError("--max-memory: \(error)") }
        }
        if resume != nil && checkpointDir != nil && resume != checkpointDir {
            throw ValidationError("--resume continues checkpointing in its own folder; drop --checkpoint-dir or give the same folder")
        }
    }

    /// Refuses a checkpoint folder holding one of `inputs` (a checkpoint write would overwrite it).
    func checkFolders(against inputs: [OutputConflict.Input]) throws {
        if let resume { try OutputConflict.check(folder: resume, role: "--resume", against: inputs) }
        if let checkpointDir { try OutputConflict.check(folder: checkpointDir, role: "--checkpoint-dir", against: inputs) }
    }

    /// `--exponent-hardening` values.
    static let hardenings: [String: ExponentHardening] = ["output": .output, "fit": .fitted, "threshold": .hard]

    func apply(to configuration: inout QuantizationConfiguration) {
        configuration.reconstruction.iterations = iters
        configuration.reconstruction.activationIterations = actIters
        configuration.reconstruction.batchSize = batchSize
        configuration.reconstruction.patience = patience
        configuration.exponentIterations = expIters
        configuration.exponentHardening = Self.hardenings[exponentHardening]!
        configuration.activationAlignment = AlignmentScope(rawValue: alignActivations)!
        configuration.reconstruction.exponentLearningRate = expLr
        configuration.quantizedActivationsInWeightPhase = weightPhaseActivations.map { $0 == "quantized" }
        configuration.activationDropProbability = activationDrop
        configuration.fixedLossExponent = lp
        configuration.lossCoefficient = lpCoefficient
        if let folder = resume ?? checkpointDir { configuration.checkpointFolder = URL(fileURLWithPath: folder) }
        configuration.resume = resume != nil
        configuration.maxMemory = maxMemory.flatMap { try? MemorySize(parsing: $0).bytes }
        configuration.cacheFolder = cacheDir.map { URL(fileURLWithPath: $0) }
    }
}
