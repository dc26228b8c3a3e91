import Foundation
@_exported import Quantization
@_exported import Reconstruction

/// Everything `quantize` needs to know besides the model and the data.
public struct QuantizationConfiguration: Equatable, Sendable {
    /// The method.
    public var method: QuantizationMethod
    /// Bit widths by position (first/last layer 8-bit by default).
    public var bits: BitWidths
    /// Symmetric weights (zero point 0).
    public var symmetricWeights: Bool
    /// Samples used to initialise activation quantizers.
    public var activationSamples: Int
    /// Seed of every random choice (stored once, in the reconstruction settings, so setting either sets both).
    public var seed: UInt64 {
        get { reconstruction.seed }
        set { reconstruction.seed = newValue }
    }
    /// Reconstruction settings (iterations, batch size, learning rates); the method sets the rest.
    public var reconstruction = ReconstructionOptions()
    /// RAPQ's exponent-learning iterations K (nil: the method's `defaultExponentIterations`).
    public var exponentIterations: Int?
    /// RAPQ: how each weight channel's exponent is hardened to floor or ceiling (`ExponentHardening`: `.fitted`,
    /// the default, `.output` or METHOD §5.1's `.hard`). `rapq-reference` always keeps the release's fractional
    /// exponents.
    public var exponentHardening: ExponentHardening = .fitted
    /// `rapq`: rescale the FP32 network first so activation ranges sit on powers of two where a layer's output
    /// reaches only layers, directly or through Clip (and Relu with `.all`), and with `.streams` or `.all` as close
    /// to them as one factor allows along residual streams (`ActivationAlignment`; the network computes the same
    /// function).
    public var activationAlignment: AlignmentScope = .streams
    /// Whether the weight phase sees quantized activations (`ReconstructionOptions.quantizedActivationsInWeightPhase`;
    /// nil: the method's default, `QuantizationMethod.quantizedActivationsByDefault`: quantized below 4 activation bits).
    public var quantizedActivationsInWeightPhase: Bool?
    /// QDrop's drop probability in that case (`ReconstructionOptions.activationDropProbability`).
    public var activationDropProbability: Float = 0
    /// The coefficient c of the BN-derived loss exponent (nil: the method's default).
    public var lossCoefficient: Float?
    /// A fixed loss exponent for every unit (`--lp 2` turns RAPQ's BN-derived exponent off).
    public var fixedLossExponent: Float?
    /// Bits of a quantizer on each convolution output that feeds a residual Add (0: none, METHOD §2's
    /// default; 8 lets onnxruntime fuse every convolution of a QDQ export into `QLinearConv`).
    public var residualInputBits = 0
    /// Folder for a checkpoint after each reconstructed unit (nil: none).
    public var checkpointFolder: URL?
    /// Continue from the checkpoint in `checkpointFolder` (it must exist and match this run).
    public var resume = false
    /// Memory budget of reconstruction in bytes: the calibration samples plus the cached unit inputs and
    /// FP32 targets (the tensors alive at unit boundaries of the FP32 and quantized passes). Cached tensors
    /// beyond it are spilled to files in `cacheFolder` and read back per slice and per mini-batch; the
    /// output bytes do not depend on it. Not counted: the working memory of one 64-sample slice of the
    /// passes, one mini-batch step of a unit, the model and the runtime. nil: half of the physical memory.
    public var maxMemory: Int?
    /// Folder in which a private spill folder is created (removed at the end, also on error; its files are
    /// unlinked when opened, so an interrupted process leaves no data behind);
    /// nil: the system's temporary folder (`TMPDIR`, else /tmp; it should not be a RAM disk).
    public var cacheFolder: URL?

    /// A configuration; defaults follow METHOD.md.
    public init(method: QuantizationMethod = .rapq, weightBits: Int = 4, activationBits: Int = 4, firstLastBits: Int = 8,
                symmetricWeights: Bool = false, activationSamples: Int = 64, seed: UInt64 = 0) {
        self.method = method
        self.bits = BitWidths(weights: weightBits, activations: activationBits, firstLast: firstLastBits)
        self.symmetricWeights = symmetricWeights
        self.activationSamples = activationSamples
        self.reconstruction.seed = seed
    }
}

/// A stage of a quantization run, reported as it happens.
public enum QuantizationProgress: Sendable {
    /// Free-form status line.
    case status(String)
    /// A reconstruction step report.
    case reconstruction(ReconstructionEvent)
}

/// Quantizes an FP32 `model` with unlabelled `calibration` samples (batch first, shaped like the model's input).
/// `progress` sees each stage and reconstruction step; an error it throws stops the run there (cancellation).
public func quantize(model: Graph, calibration: Tensor, configuration: QuantizationConfiguration,
                     progress: (QuantizationProgress) throws -> Void = { _ in }) throws -> QuantizedNetwork {
    guard let input = model.inputs.first, model.inputs.count == 1 else {
        throw QuantizationError.badCalibration("the model must have exactly one input, it has \(model.inputs.count)")
    }
    guard model.outputs.count == 1 else {
        throw QuantizationError.unsupportedModel("it has \(model.outputs.count) outputs (\(model.outputs.map(\.name).joined(separator: ", "))); "
            + "RAPQ quantizes networks with one output (the logits): re-export the model with that output alone")
    }
    let sampleShape = Array(calibration.shape.dropFirst())
    guard calibration.rank == input.dimensions.count,
          zip(sampleShape, input.dimensions.dropFirst()).allSatisfy({ $1 == nil || $0 == $1! }) else {
        throw QuantizationError.badCalibration("samples have shape \(calibration.shape) but the model input '\(input.name)' is \(input.dimensions.map { $0.map(String.init) ?? "N" })")
    }
    if configuration.resume {
        // Before any work: a run that cannot resume should fail at once, and never create the folder.
        guard let folder = configuration.checkpointFolder else { throw CheckpointError.missing(folder: "(no folder given)") }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.appendingPathComponent("state.json").path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw CheckpointError.missing(folder: folder.path)
        }
    }
    guard calibration.data.allSatisfy(\.isFinite) else { throw QuantizationError.badCalibration("samples contain NaN or infinite values") }
    guard calibration.shape[0] > 0 else { throw QuantizationError.badCalibration("there are 0 samples; give at least one") }
    // Shapes within ShapeLimits and no empty layer, before anything is allocated or divided by a channel count.
    try checkInput(calibration, of: model, batchSize: Swift.min(calibration.shape[0], 64))
    try progress(.status("preparing: folding BatchNorm, finding units"))
    var prepared = PreparedNetwork(model)
    try progress(.status("found \(prepared.units.count) reconstruction units, \(prepared.layerNames.count) layers"))
    let method = configuration.method
    var bits = configuration.bits
    if method == .rapqReference { bits.lowBitClassifierInput = true }
    bits.residualInputs = configuration.residualInputBits
    let options = CalibrationOptions(bits: bits, scalePolicy: method.weightPolicy, activationPolicy: method.activationPolicy,
                                     symmetricWeights: configuration.symmetricWeights, activationSamples: configuration.activationSamples)
    let reconstruction = method.reconstructionOptions(configuration.reconstruction, lossCoefficient: configuration.lossCoefficient,
                                                      fixedLossExponent: configuration.fixedLossExponent,
                                                      exponentIterations: configuration.exponentIterations,
                                                      exponentHardening: configuration.exponentHardening,
                                                      quantizedActivations: configuration.quantizedActivationsInWeightPhase,
                                                      activationBits: bits.activations,
                                                      dropProbability: configuration.activationDropProbability)
    try options.validate()
    // Where activation quantizers go depends on the graph's structure only, which alignment keeps.
    let sites = placeActivationQuantizers(in: prepared.graph, units: prepared.units, bits: bits)
    if method.alignsActivationRanges && configuration.activationAlignment != .off {
        let aligned = try ActivationAlignment.apply(to: &prepared, sites: sites, calibration: calibration, count: configuration.activationSamples,
                                                    scope: configuration.activationAlignment)
        let target = configuration.activationAlignment == .clip ? "on" : "on or, along residual streams, near"
        try progress(.status("rescaled the FP32 network at \(aligned.factors.count) of \(aligned.sites) activation sites so their ranges sit \(target) powers of two"))
    }
    // A weight phase on quantized activations learns with them in place, so they start from the FP32 weights
    // the reconstruction approaches and stay as they are afterwards.
    let activationsFirst = method.reconstructs && reconstruction.quantizedActivationsInWeightPhase
    let activationSamples = Swift.min(configuration.activationSamples, calibration.shape[0])
    try progress(.status(activationsFirst
        ? "calibrating weights, and activations on the FP32 weights for the weight phase (\(activationSamples) samples)"
        : "calibrating weights and activations (\(activationSamples) samples)"))
    var network = try calibrate(prepared, calibration: calibration, options: options, method: method.rawValue,
                                activationsOnFloatWeights: activationsFirst)
    guard method.reconstructs else { return network }

    let calibrationBytes = calibration.count * MemoryLayout<Float>.stride
    let budget = configuration.maxMemory ?? Int(ProcessInfo.processInfo.physicalMemory / 2)
    let cache = try SampleCache(limit: budget - calibrationBytes, directory: configuration.cacheFolder ?? FileManager.default.temporaryDirectory)
    try progress(.status("reconstruction memory budget \(MemorySize(bytes: budget)) (calibration samples \(MemorySize(bytes: calibrationBytes)) of it); cached tensors beyond it go to \(cache.folder!.path)"))
    let reconstructor = try Reconstructor(prepared: prepared, calibration: calibration, options: reconstruction, cache: cache)
    let store = try configuration.checkpointFolder.map {
        try CheckpointStore(folder: $0, fingerprint: fingerprint(of: prepared, calibration: calibration, configuration: configuration, options: reconstruction),
                            create: !configuration.resume)
    }
    var position = ReconstructionPosition(phase: "weights", completedUnits: 0)
    if configuration.resume {
        guard let store else { throw CheckpointError.missing(folder: "(no folder given)") }
        guard let saved = try store.load(units: prepared.units.count) else { throw CheckpointError.missing(folder: store.folder.path) }
        // The reconstruction indexes layers and sites by name: the saved network must have this run's.
        let same = Set(saved.network.layers.keys) == Set(network.layers.keys) && Set(saved.network.activations.keys) == Set(network.activations.keys)
            && network.layers.allSatisfy { name, layer in
                saved.network.layers[name].map { $0.weightShape == layer.weightShape && $0.weight.grid == layer.weight.grid } ?? false
            }
        guard same else {
            throw CheckpointError.corrupted(folder: store.folder.path, reason: "network.rapq does not have this run's layers, shapes and activation sites")
        }
        try checkConsistent(saved: saved.network, at: saved.position, calibrated: network, powerOfTwo: method.isPowerOfTwo, folder: store.folder)
        network = saved.network
        position = saved.position
        try progress(.status("resuming from \(store.folder.path): \(position.phase) phase, \(position.completedUnits) of \(prepared.units.count) units done"))
    }
    let units = prepared.units.count
    if position.phase == "weights" {
        if position.completedUnits < units {
            try progress(.status("reconstructing weights: \(units) units x \(reconstruction.iterations) iterations"))
        }
        network = try reconstructor.reconstructWeights(network, firstUnit: position.completedUnits, unitDone: { net, done in
            try store?.save(net, at: ReconstructionPosition(phase: "weights", completedUnits: done))
        }) { try progress(.reconstruction($0)) }
        if !reconstruction.quantizedActivationsInWeightPhase {
            network.activations = try initialiseActivations(of: network, sites: sites, samples: calibration, count: configuration.activationSamples,
                                                            policy: method.activationPolicy)
        }
        fitBiasesInInt32(&network)
        position = ReconstructionPosition(phase: "activations", completedUnits: 0)
        try store?.save(network, at: position)
    }
    if reconstruction.activationIterations > 0 {
        try progress(.status("reconstructing activations: \(units) units x \(reconstruction.activationIterations) iterations"))
        network = try reconstructor.reconstructActivations(network, firstUnit: position.completedUnits, unitDone: { net, done in
            try store?.save(net, at: ReconstructionPosition(phase: "activations", completedUnits: done))
        }) { try progress(.reconstruction($0)) }
        fitBiasesInInt32(&network)
    }
    let usage = cache.statistics
    try progress(.status("reconstruction caches: at most \(MemorySize(bytes: usage.peakBytesInMemory)) in memory, \(MemorySize(bytes: usage.bytesSpilled)) spilled to \(usage.filesWritten) files (deleted)"))
    return network
}

/// Refuses a checkpoint whose network does not agree with its position, whatever its checksums say (a
/// hand-edited `state.json` with a recomputed checksum, for one). In the weight phase at unit k, units k and
/// later must still be exactly as calibration left them (so resuming redoes them as the uninterrupted run
/// would) and the activation quantizers unchanged; the finished units' (and, in the activation phase, all)
/// weight scales must be powers of two when the method's are.
private func checkConsistent(saved: QuantizedNetwork, at position: ReconstructionPosition, calibrated: QuantizedNetwork,
                             powerOfTwo: Bool, folder: URL) throws {
    func refuse(_ reason: String) -> CheckpointError {
        .corrupted(folder: folder.path, reason: "network.rapq does not match state.json (\(position.phase) phase, \(position.completedUnits) units done): \(reason)")
    }
    let finished = position.phase == "weights" ? position.completedUnits : calibrated.units.count
    for (k, unit) in calibrated.units.enumerated() {
        for name in unit.layers {
            guard let layer = saved.layers[name] else { throw refuse("layer '\(name)' is missing") }
            if k < finished {
                if powerOfTwo, let c = layer.weight.scales.firstIndex(where: { PowerOfTwo.exactExponent($0) == nil }) {
                    throw refuse("unit \(k + 1) is recorded as done, but layer '\(name)' channel \(c) has scale \(layer.weight.scales[c]), not a power of two")
                }
            } else if layer != calibrated.layers[name] {
                throw refuse("unit \(k + 1) is recorded as not done, but layer '\(name)' differs from its calibrated state")
            }
        }
    }
    if position.phase == "weights", saved.activations != calibrated.activations {
        throw refuse("the activation quantizers differ from their calibrated state before the activation phase")
    }
}

/// What a checkpoint must match to be resumed: the prepared model, the calibration data and every option.
private func fingerprint(of prepared: PreparedNetwork, calibration: Tensor, configuration: QuantizationConfiguration,
                         options: ReconstructionOptions) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    let optionText = (try? encoder.encode(options)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    let bitsText = (try? encoder.encode(configuration.bits)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    let names = prepared.graph.initializers.keys.sorted()
    return CheckpointStore.fingerprint(
        strings: [configuration.method.rawValue, bitsText, optionText, "\(configuration.symmetricWeights)", "\(configuration.activationSamples)",
                  "\(calibration.shape)"] + prepared.graph.nodes.map(\.name) + names,
        arrays: [calibration.data] + names.map { prepared.graph.initializers[$0]!.data })
}
