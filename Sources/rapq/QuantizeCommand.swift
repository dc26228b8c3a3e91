import ArgumentParser
import Foundation
import RAPQ

extension QuantizationMethod: ExpressibleByArgument {}

/// `rapq quantize`: FP32 ONNX + calibration samples -> power-of-two quantized model.
struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Quantize an FP32 ONNX model with power-of-two scales.",
        discussion: """
        Writes a QDQ ONNX file (onnxruntime runs it as integer QLinearConv) or a .rapq file (integer weights packed \
        at their bit width, exponents, zero points; read by `rapq eval` and `rapq verify`). The format follows the \
        output's extension unless --format is given.
        """
    )

    @Argument(help: "The FP32 ONNX model.")
    var model: String

    @Option(help: "Calibration samples: a .npy array (batch first, preprocessed like the model's input), a folder of JPEG/PNG images (recursively, sorted by path) or one image; images need --preset or explicit flags.")
    var calib: String

    @Option(help: "Weight bits (2-8).")
    var wbits: Int = 4

    @Option(help: "Activation bits (2-8).")
    var abits: Int = 4

    @Option(help: "Bits of the first and last layer's weights, the network input and the last layer's input (2-8).")
    var firstLastBits: Int = 8

    @Option(help: "Method: \(QuantizationMethod.allCases.map(\.rawValue).joined(separator: ", ")).")
    var method: QuantizationMethod = .rapq

    @Flag(help: "Symmetric weights (zero point 0) instead of asymmetric.")
    var symmetric = false

    @Option(help: ArgumentHelp("Quantize the convolution outputs that feed residual Adds at this many bits (0 = no, the paper's placement). Default: 8 when writing QDQ ONNX, so that onnxruntime runs every convolution as QLinearConv and every Add as QLinearAdd; 0 for .rapq.", valueName: "bits"))
    var residualInputBits: Int?

    @Option(help: "Calibration samples used to initialise activation quantizers.")
    var activationSamples: Int = 64

    @Option(help: "Seed for every random choice.")
    var seed: UInt64 = 0

    @OptionGroup(title: "Images")
    var images: ImageOptions

    @OptionGroup var progress: ProgressOptions

    @Option(help: "With images: add N random resized crops (torchvision's RandomResizedCrop, area 8-100%, aspect 3/4-4/3, to the crop size) with random horizontal flips of every image to the calibration samples, drawn from --seed.")
    var augment: Int = 0

    @OptionGroup(title: "Reconstruction (brecq, naive-pot+recon, rapq, rapq-reference)")
    var reconstruction: ReconstructionArguments

    @Option(name: .shortAndLong, help: "Output file (.onnx for QDQ, .rapq for the tool's own format).")
    var output: String

    @Option(help: "Output format: qdq or rapq (default: from the output's extension).")
    var format: ModelFormat?

    @Flag(help: "Print one JSON document (output, settings, wall time, whether the model runs integer-only and which nodes do not) on standard output; progress goes to standard error (docs/json.md).")
    var json = false

    func validate() throws {
        for (name, bits) in [("--wbits", wbits), ("--abits", abits), ("--first-last-bits", firstLastBits)] where !(2...8).contains(bits) {
            throw ValidationError("\(name) \(bits) is out of range; use 2 to 8")
        }
        guard (0...1000).contains(augment) else { throw ValidationError("--augment must be 0 to 1000 copies of each image") }
        guard activationSamples > 0 else { throw ValidationError("--activation-samples must be at least 1") }
        if let residualInputBits, residualInputBits != 0 && !(2...8).contains(residualInputBits) {
            throw ValidationError("--residual-input-bits must be 0 or 2 to 8")
        }
        try reconstruction.validate()
        if !method.reconstructs, let flag = reconstruction.resume != nil ? "--resume" : reconstruction.checkpointDir != nil ? "--checkpoint-dir" : nil {
            throw ValidationError("\(flag) applies to reconstructing methods (rapq, brecq, naive-pot+recon, rapq-reference); --method \(method.rawValue) calibrates in one pass and has nothing to resume")
        }
    }

    /// Calibration samples the self-check runs both engines on.
    static let selfCheckSamples = 8

    func run() throws {
        let outputURL = URL(fileURLWithPath: output)
        let inputs = [OutputConflict.Input("the model", model), OutputConflict.Input("--calib", calib)]
        try OutputConflict.check(output: output, role: "-o", against: inputs)
        guard let chosen = format ?? ModelFormat(path: output) else {
            throw ValidationError("-o '\(output)' has neither a .rapq nor an .onnx extension; name the file so, or give --format rapq|qdq")
        }
        try reconstruction.checkFolders(against: inputs)
        for folder in [reconstruction.checkpointDir, reconstruction.resume].compactMap({ $0 }) {
            let checkpoint = URL(fileURLWithPath: folder).standardizedFileURL.resolvingSymlinksInPath().path
            if checkpoint == outputURL.standardizedFileURL.resolvingSymlinksInPath().path {
                throw ValidationError("-o '\(output)' is also the checkpoint folder; give the model file another path")
            }
            // The checkpoint folder's files (state.json, network.rapq) are rewritten after every unit.
            if checkpoint == outputURL.deletingLastPathComponent().standardizedFileURL.resolvingSymlinksInPath().path {
                throw ValidationError("-o '\(output)' lies inside the checkpoint folder '\(folder)', whose files rapq rewrites during the run; write the model elsewhere")
            }
        }
        Interruption.install(outputs: [output], outputFolders: [reconstruction.resume ?? reconstruction.checkpointDir].compactMap { $0 },
                             cacheDirectory: reconstruction.cacheDir.map { URL(fileURLWithPath: $0) })
        if json { JSONOutput.reserveStandardOutput() }
        progress.apply()
        let graph = try ONNXImporter.load(contentsOf: URL(fileURLWithPath: model))
        let calibration = try Samples(path: calib, options: images, augmentedCopies: augment, seed: seed).tensor
        var configuration = QuantizationConfiguration(method: method, weightBits: wbits, activationBits: abits, firstLastBits: firstLastBits,
                                                      symmetricWeights: symmetric, activationSamples: activationSamples, seed: seed)
        configuration.residualInputBits = residualInputBits ?? (chosen == .qdq ? 8 : 0)
        reconstruction.apply(to: &configuration)
        adviseOnBLASKernels()
        let start = Date()
        let reporter = ProgressReporter()
        let network = try quantize(model: graph, calibration: calibration, configuration: configuration) { reporter.report($0) }
        try chosen.write(network, to: outputURL)
        let seconds = Date().timeIntervalSince(start)
        var document = JSONOutput.Quantization(output: output, format: chosen.rawValue, method: method.rawValue, weightBits: wbits,
                                               activationBits: abits, firstLastBits: firstLastBits, seconds: (seconds * 10).rounded() / 10,
                                               integerOnly: nil, floatNodes: [], floatOutputStep: nil, integerEngineError: nil)
        var failures: [VerificationCheck] = []
        let checked = Swift.min(Self.selfCheckSamples, calibration.shape[0])
        if method.isPowerOfTwo {
            // The self-check: `rapq verify` on the first calibration samples, so a model whose integer engine
            // disagrees with its simulation is never reported as a success.
            let samples = try calibration.rows(Array(0..<checked))
            let report = VerificationReport(network: network, data: samples, batchSize: Self.selfCheckSamples)
            document.integerOnly = report.integerOnly
            document.floatNodes = report.floatSteps
            document.floatOutputStep = report.floatOutputStep
            document.integerEngineError = report.integerEngineError
            // An engine that cannot run the model makes it not integer-only, which is reported, not a failure.
            failures = report.checks.filter { !$0.passed && $0.detail != report.integerEngineError }
            document.selfCheck = failures.isEmpty ? (report.integerEngineError == nil ? "passed" : "static checks passed; integer engine not run") : "failed"
            document.selfCheckFailures = failures.map { "\($0.name): \($0.detail)" }
        }
        let failed = CommandFailure("\(output) was written but fails the self-check on its first \(checked) calibration samples:\n"
            + failures.map { "  FAIL  \($0.name): \($0.detail)\n" }.joined()
            + "the model is kept for inspection (`rapq verify \(output) --data ...`); do not deploy it. An integer engine that differs from the simulation usually means weights or activations of extreme range.")
        if json {
            try JSONOutput.write(document)
            if !failures.isEmpty { throw failed }
            return
        }
        print(String(format: "wrote %@ (%@, %@ W%dA%d) in %.1f s", output, chosen.rawValue, method.rawValue, wbits, abits, seconds))
        if let error = document.integerEngineError {
            print("integer-only: no: \(error)")
        } else if !document.floatNodes.isEmpty {
            let islands = document.floatNodes, more = islands.count > 3 ? ", ..." : ""
            print("integer-only: no: \(islands.count) node(s) run in Float between quantized tensors (codes dequantized, "
                + "computed, requantized: \(islands.prefix(3).joined(separator: ", "))\(more)); every other node has an integer kernel")
        } else if let step = document.floatOutputStep {
            print("integer-only: yes up to the logits; \(step)")
        } else if document.integerOnly == true {
            print("integer-only: yes (every node has an integer kernel)")
        }
        if let check = document.selfCheck, failures.isEmpty, document.integerEngineError == nil {
            print("self-check: \(check): `rapq verify` on the first \(checked) calibration samples (static checks, integer engine equals simulation)")
        }
        if !failures.isEmpty { throw failed }
    }
}

/// The file formats a quantized network can be written in.
enum ModelFormat: String, ExpressibleByArgument {
    case qdq, rapq

    /// The format an output path's extension implies (`.rapq`, or `.onnx` for QDQ ONNX); nil for others.
    init?(path: String) {
        switch URL(fileURLWithPath: path).pathExtension.lowercased() {
        case "rapq": self = .rapq
        case "onnx": self = .qdq
        default: return nil
        }
    }

    func write(_ network: QuantizedNetwork, to url: URL) throws {
        switch self {
        case .qdq: try QDQExporter.write(network, to: url)
        case .rapq: try RAPQFile.write(network, to: url)
        }
    }
}
