import ArgumentParser
import Foundation
import RAPQ

/// `rapq verify`: proof that a quantized model is power-of-two and that its integer engine matches.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check that every scale is 2^e, zero points are integers, bias scales are products, and the integer engine equals the simulation.",
        discussion: "Exits with status 1 when a check fails."
    )

    @Argument(help: "A quantized .rapq model.")
    var model: String

    @Option(help: "Samples on which to compare the integer engine with the simulation: a .npy array, a folder of JPEG/PNG images or one image (images need --preset or explicit flags).")
    var data: String?

    @OptionGroup(title: "Images")
    var images: ImageOptions

    @OptionGroup var progress: ProgressOptions

    @Option(help: "Samples per forward pass.")
    var batch: Int = 16

    @Flag(help: "Print one JSON document (every check with its evidence, whether the integer engine was compared) instead of text (docs/json.md).")
    var json = false

    func run() throws {
        guard batch > 0 else { throw ValidationError("--batch must be at least 1") }
        Interruption.install()
        if json { JSONOutput.reserveStandardOutput() }
        progress.apply()
        guard model.hasSuffix(".rapq") else {
            throw ValidationError("verify reads the tool's .rapq format; quantize with `-o MODEL.rapq` (or `--format rapq`) and verify that file")
        }
        let network = try RAPQFile.read(contentsOf: URL(fileURLWithPath: model))
        let x = try data.map { try Samples(path: $0, options: images).tensor }
        if let x, x.rank == 0 || x.shape[0] == 0 { throw CommandFailure("--data holds 0 samples; give at least one") }
        // Data that does not fit the model is a usage error, not a failed check of the model.
        if let x { try checkInput(x, of: network.graph, batchSize: batch) }
        let report = VerificationReport(network: network, data: x, batchSize: batch,
                                        progress: ProgressLine("comparing the engines", unit: "samples").update)
        if json {
            try JSONOutput.write(JSONOutput.Verification(model: model, verified: report.passed,
                                                         integerEngineChecked: report.integerEngineChecked,
                                                         integerOnly: report.integerOnly,
                                                         floatNodes: report.floatSteps, checks: report.checks))
        } else {
            print(report.text)
        }
        if !report.passed {
            let failed = report.checks.filter { !$0.passed }.map(\.name)
            FileHandle.standardError.write(Data("Error: not verified: \(failed.count) check(s) failed: \(failed.joined(separator: "; "))\n".utf8))
            throw ExitCode(1)
        }
    }
}
