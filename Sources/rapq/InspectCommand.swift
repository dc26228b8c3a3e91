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

    @Flag(help: "Show the reconstruction units found after BN folding (residual blocks, inverted residuals, single layers).")
    var units = false

    @Flag(help: "Print one JSON document (interface, operators, parameters, FLOPs, every layer; or every unsupported operator) instead of text (docs/json.md).")
    var json = false

    func run() throws {
        guard batch > 0 else { throw ValidationError("--batch must be at least 1") }
        Interruption.install()
        if json { JSONOutput.reserveStandardOutput() }
        if model.hasSuffix(".rapq") || (try? RegularFile.contents(of: URL(fileURLWithPath: model), offset: 0, length: RAPQFile.magic.count))
            == Data(RAPQFile.magic) {
            throw CommandFailure("'\(model)' is a quantized .rapq model; inspect reads ONNX models (use `rapq verify \(model)` or `rapq eval` for .rapq)")
        }
        if json && units { throw ValidationError("--units has no JSON form yet; use one of --json and --units") }
        let report: ModelInspection
        do {
            report = try ModelInspection(contentsOf: URL(fileURLWithPath: model), batch: batch)
        } catch ONNXError.unsupportedOperators(let list, let supported) where json {
            // The unsupported operators are a finding about the model: they go in the document, and the
            // status is 1 as without --json.
            try JSONOutput.write(JSONOutput.Inspection(model: model, batch: batch, unsupported: list))
            throw CommandFailure(ONNXError.unsupportedOperators(list, supported: supported).description)
        }
        if json { return try JSONOutput.write(JSONOutput.Inspection(model: model, inspection: report)) }
        print(report.text(showLayers: layers))
        if units {
            let prepared = PreparedNetwork(report.graph)
            print("\nreconstruction units (\(prepared.units.count)), after folding \(prepared.gammas.count) BatchNormalization nodes:")
            for (i, unit) in prepared.units.enumerated() {
                let p = ReconstructionLoss.exponent(gammas: unit.lossLayer.flatMap { prepared.gammas[$0] }, c: 0.9)
                print(String(format: "%3d  %-17@ layers %@  in %@ -> out %@  (p %.1f at c 0.9)", i + 1, unit.kind.rawValue as NSString,
                             unit.layers.joined(separator: ", "), unit.inputs.joined(separator: ", "), unit.output, p))
            }
            let sites = placeActivationQuantizers(in: prepared.graph, units: prepared.units, bits: BitWidths(weights: 4, activations: 4))
            print("activation quantizers (\(sites.count)): " + sites.map { "\($0.tensor)\($0.nonNegative ? "" : " (signed)")" }.joined(separator: ", "))
        }
    }
}
