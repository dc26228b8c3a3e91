import ArgumentParser
import Foundation
import RAPQ

/// `rapq eval`: accuracy of an FP32 ONNX model or a quantized .rapq model.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Top-1/top-5 of a model on labelled data, and agreement with an FP32 reference."
    )

    @Argument(help: "An FP32 .onnx model or a quantized .rapq model.")
    var model: String

    @Option(help: "Samples: a .npy array (batch first), a folder of JPEG/PNG images (recursively, sorted by path) or one image; images need --preset or explicit flags.")
    var data: String

    @Option(help: "Labels: a .npy (integer class per sample), or a text/CSV file of 'FILE,INDEX' lines naming the images. Without it, images in class folders (ImageNet layout, as torchvision's ImageFolder) are labelled by the folder's index in sorted order.")
    var labels: String?

    @Option(help: "FP32 ONNX model whose predictions to compare with.")
    var reference: String?

    @Flag(help: "Run a .rapq model on the integer-only engine instead of the simulation.")
    var integer = false

    @Option(help: "Samples per forward pass.")
    var batch: Int = 32

    @Option(help: "Also write the logits to this .npy file.")
    var saveLogits: String?

    @OptionGroup(title: "Images")
    var images: ImageOptions

    @OptionGroup var progress: ProgressOptions

    @Flag(help: "Print one JSON document (samples, top-1, top-5, agreement and mean KL to the reference) instead of text (docs/json.md).")
    var json = false

    @Option(help: "With --integer: write each activation site's codes to DIR/SITE.npy ('/' in a name becomes '_'), to compare with another runtime tensor by tensor.")
    var saveCodes: String?

    func run() throws {
        guard batch > 0 else { throw ValidationError("--batch must be at least 1") }
        let inputs = [OutputConflict.Input("the model", model), .init("--data", data)]
            + [labels.map { OutputConflict.Input("--labels", $0) }, reference.map { OutputConflict.Input("--reference", $0) }].compactMap { $0 }
        if let saveLogits { try OutputConflict.check(output: saveLogits, role: "--save-logits", against: inputs) }
        if let saveCodes { try OutputConflict.check(folder: saveCodes, role: "--save-codes", against: inputs) }
        Interruption.install(outputs: [saveLogits].compactMap { $0 }, outputFolders: [saveCodes].compactMap { $0 })
        if json { JSONOutput.reserveStandardOutput() }
        progress.apply()
        let samples = try Samples(path: data, options: images)
        let x = samples.tensor
        guard x.rank >= 1, x.shape[0] > 0 else { throw CommandFailure("--data holds 0 samples (shape \(x.shape)); give at least one") }
        let labelValues = try samples.labels(from: labels)
        let loaded = try LoadedModel(path: model)
        if let saveCodes {
            guard integer, case .quantized(let network) = loaded else { throw ValidationError("--save-codes needs --integer and a quantized .rapq model") }
            try Self.writeCodes(of: IntegerEngine(network), on: x, batchSize: batch, to: URL(fileURLWithPath: saveCodes))
        }
        let logits = try loaded.predict(x, integer: integer, batchSize: batch, progress: ProgressLine("evaluating", unit: "samples").update)
        if let bad = logits.data.firstIndex(where: { !$0.isFinite }) {
            throw CommandFailure("the model computed \(logits.data[bad]) at logit index \(bad) (float32 overflow: the data or the weights are out of range); nothing was scored")
        }
        if let saveLogits { try NumpyFile.write(logits, to: URL(fileURLWithPath: saveLogits)) }
        let referenceLogits = try reference.map {
            try FloatModel(contentsOf: URL(fileURLWithPath: $0)).predict(x, batchSize: batch, progress: ProgressLine("running the reference", unit: "samples").update)
        }
        let metrics = try ClassificationMetrics(logits: logits, labels: labelValues, reference: referenceLogits)
        if json {
            let engine: String
            switch loaded {
            case .float: engine = "float"
            case .quantized: engine = integer ? "integer" : "simulation"
            }
            try JSONOutput.write(JSONOutput.Evaluation(model: model, engine: engine, metrics: metrics))
        } else {
            print(metrics.summary)
        }
    }
}

extension EvalCommand {
    /// Runs `engine` over `x` batch by batch and writes the codes of every activation site, as float32
    /// (exact for codes of at most 8 bits), one `.npy` per site.
    static func writeCodes(of engine: IntegerEngine, on x: Tensor, batchSize: Int, to folder: URL) throws {
        try checkInput(x, of: engine.network.graph, batchSize: batchSize)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var codes: [String: [Float]] = [:], shapes: [String: [Int]] = [:]
        for slice in x.batches(of: batchSize) {
            let run = try engine.run(slice)
            for (name, values) in run.codes {
                codes[name, default: []].append(contentsOf: values.map(Float.init))
                shapes[name] = run.shapes[name]
            }
        }
        for (name, values) in codes {
            let shape = [x.shape[0]] + shapes[name]!.dropFirst()
            let file = name.replacingOccurrences(of: "/", with: "_") + ".npy"
            try NumpyFile.write(Tensor(shape: shape, data: values), to: folder.appendingPathComponent(file))
        }
    }
}

/// A model file as the CLI reads it: FP32 ONNX, or a quantized .rapq network.
enum LoadedModel {
    case float(FloatModel)
    case quantized(QuantizedNetwork)

    init(path: String) throws {
        let url = URL(fileURLWithPath: path)
        if path.hasSuffix(".rapq") {
            self = .quantized(try RAPQFile.read(contentsOf: url))
        } else {
            self = .float(try FloatModel(contentsOf: url))
        }
    }

    func predict(_ x: Tensor, integer: Bool, batchSize: Int, progress: ((Int, Int) -> Void)? = nil) throws -> Tensor {
        switch self {
        case .float(let model):
            if integer { throw ValidationError("--integer needs a quantized .rapq model") }
            return try model.predict(x, batchSize: batchSize, progress: progress)
        case .quantized(let network):
            return integer ? try IntegerEngine(network).predict(x, batchSize: batchSize, progress: progress)
                           : try Simulation(network).predict(x, batchSize: batchSize, progress: progress)
        }
    }
}
