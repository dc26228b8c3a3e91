import ArgumentParser
import Foundation
import RAPQ

/// `rapq demo`: the whole job on the bundled Fashion-MNIST ResNet: quantize, evaluate, verify, export.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Quantize the bundled Fashion-MNIST ResNet to power-of-two W2A4 with RAPQ, compare with naive power-of-two rounding, verify and export it."
    )

    @Option(help: "Folder holding the bundled models and data (default: the repository's models/).")
    var models: String?

    @Option(help: "Folder to write the quantized models into.")
    var outputDir: String = "demo-output"

    @Option(help: "Method: \(QuantizationMethod.allCases.map(\.rawValue).joined(separator: ", ")).")
    var method: QuantizationMethod = .rapq

    @Option(help: "Weight bits.")
    var wbits: Int = 2

    @Option(help: "Activation bits.")
    var abits: Int = 4

    @Option(help: "Weight-reconstruction iterations per unit (the demo uses few, to finish in about a minute).")
    var iters: Int = 200

    @Option(help: "Activation-reconstruction iterations per unit.")
    var actIters: Int = 0

    func validate() throws {
        for (name, bits) in [("--wbits", wbits), ("--abits", abits)] where !(2...8).contains(bits) {
            throw ValidationError("\(name) must be 2 to 8, got \(bits)")
        }
        guard iters > 0, actIters >= 0 else { throw ValidationError("--iters must be at least 1 and --act-iters not negative") }
    }

    func run() throws {
        adviseOnBLASKernels()
        let folder = try Self.modelsFolder(models)
        let out = URL(fileURLWithPath: outputDir)
        func file(_ name: String) -> URL { folder.appendingPathComponent(name) }
        let inputs = ["fmnist-resnet.onnx", "fmnist-calib-256.npy", "fmnist-test-1k.npy", "fmnist-test-1k-labels.npy"]
            .map { OutputConflict.Input("the bundled '\($0)'", file($0).path) }
        let rapqFile = out.appendingPathComponent("fmnist-resnet.w\(wbits)a\(abits).rapq")
        let qdqFile = out.appendingPathComponent("fmnist-resnet.w\(wbits)a\(abits).qdq.onnx")
        try OutputConflict.check(folder: out.path, role: "--output-dir", against: [])
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        for output in [rapqFile, qdqFile] { try OutputConflict.check(output: output.path, role: "the output", against: inputs) }
        Interruption.install(outputs: [rapqFile.path, qdqFile.path])
        let fp32 = try FloatModel(contentsOf: file("fmnist-resnet.onnx"))
        let calibration = try NumpyFile.readTensor(contentsOf: file("fmnist-calib-256.npy"))
        let test = try NumpyFile.readTensor(contentsOf: file("fmnist-test-1k.npy"))
        let labels = try NumpyFile.readIntegers(contentsOf: file("fmnist-test-1k-labels.npy")).values

        print("model: fmnist-resnet.onnx (ResNet-style, Fashion-MNIST), \(test.shape[0]) test images, \(calibration.shape[0]) calibration images")
        let reference = try fp32.predict(test)
        try print("FP32:                 " + ClassificationMetrics(logits: reference, labels: labels).summary)

        let baseline = try quantize(model: fp32.graph, calibration: calibration,
                                    configuration: QuantizationConfiguration(method: .naivePot, weightBits: wbits, activationBits: abits))
        let naive = try Simulation(baseline).predict(test)
        try print(String(format: "naive-pot W%dA%d:       ", wbits, abits) + ClassificationMetrics(logits: naive, labels: labels, reference: reference).summary)

        var configuration = QuantizationConfiguration(method: method, weightBits: wbits, activationBits: abits)
        configuration.reconstruction.iterations = iters
        configuration.reconstruction.activationIterations = actIters
        let start = Date()
        let reporter = ProgressReporter()
        let network = try quantize(model: fp32.graph, calibration: calibration, configuration: configuration) { reporter.report($0) }
        print(String(format: "quantized with %@ W%dA%d in %.1f s", method.rawValue, wbits, abits, Date().timeIntervalSince(start)))
        let simulated = try Simulation(network).predict(test)
        try print(String(format: "%@ W%dA%d (simulated): ", method.rawValue, wbits, abits) + ClassificationMetrics(logits: simulated, labels: labels, reference: reference).summary)
        if method.isPowerOfTwo {
            let integer = try IntegerEngine(network).predict(test, batchSize: 32)
            try print(String(format: "%@ W%dA%d (integer):   ", method.rawValue, wbits, abits) + ClassificationMetrics(logits: integer, labels: labels, reference: reference).summary)
        }
        try RAPQFile.write(network, to: rapqFile)
        try QDQExporter.write(network, to: qdqFile)
        print("wrote \(rapqFile.path) and \(qdqFile.path)")
        let sample = Tensor(shape: [64] + test.shape.dropFirst(), data: Array(test.data[0..<(64 * test.count / test.shape[0])]))
        let report = VerificationReport(network: try RAPQFile.read(contentsOf: rapqFile), data: sample)
        print("verify (64 images):")
        print(report.text.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
    }

    /// The bundled models folder: the option (which must hold them), else `models/` next to this package's
    /// sources, else `./models`.
    static func modelsFolder(_ option: String?) throws -> URL {
        if let option {
            guard FileManager.default.fileExists(atPath: option + "/fmnist-resnet.onnx") else {
                throw ValidationError("--models '\(option)' does not hold the bundled models (fmnist-resnet.onnx); give the repository's models/ folder")
            }
            return URL(fileURLWithPath: option)
        }
        let candidates = [option,
                          URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                              .deletingLastPathComponent().appendingPathComponent("models").path,
                          "models"].compactMap { $0 }
        for path in candidates where FileManager.default.fileExists(atPath: path + "/fmnist-resnet.onnx") {
            return URL(fileURLWithPath: path)
        }
        throw ValidationError("cannot find the bundled models (fmnist-resnet.onnx); run from the repository root or pass --models DIR")
    }
}
