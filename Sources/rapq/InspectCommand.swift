import ArgumentParser
import Foundation
import RAPQ

/// `rapq inspect`: what a model contains, what is supported, and what it costs.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a model's inputs, outputs, operators, parameters and FLOPs per layer."
    )

    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(help: "Batch size used for shapes and FLOPs.")
    var batch: Int = 1

    @Flag(help: "Show every layer, not only the summary.")
    var layers = false

    func run() throws {
        guard batch > 0 else { throw ValidationError("--batch must be at least 1") }
        let report = try ModelInspection(contentsOf: URL(fileURLWithPath: model), batch: batch)
        print(report.text(showLayers: layers))
    }
}
