import ArgumentParser
import Foundation
import RAPQ

/// `rapq run`: FP32 inference of an ONNX model on a NumPy array.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a model in FP32 on a .npy input and write its first output to a .npy file."
    )

    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(name: .shortAndLong, help: "Input array (.npy, float32/float64/uint8/int64), batch first.")
    var input: String

    @Option(name: .shortAndLong, help: "Where to write the output array (.npy, float32).")
    var output: String

    @Option(help: "Images per forward pass (memory versus speed).")
    var batch: Int = 32

    func run() throws {
        guard batch > 0 else { throw ValidationError("--batch must be at least 1") }
        try OutputConflict.check(output: output, role: "-o", against: [.init("the model", model), .init("-i", input)])
        Interruption.install(outputs: [output])
        let network = try FloatModel(contentsOf: URL(fileURLWithPath: model))
        let x = try NumpyFile.readTensor(contentsOf: URL(fileURLWithPath: input))
        let y = try network.predict(x, batchSize: batch)
        if let bad = y.data.firstIndex(where: { !$0.isFinite }) {
            throw CommandFailure("the model computed \(y.data[bad]) at output index \(bad) (float32 overflows above 3.4e38: the input or the weights are out of range); \(output) was not written")
        }
        try NumpyFile.write(y, to: URL(fileURLWithPath: output))
        print("wrote \(output): shape \(y.shape.map(String.init).joined(separator: "x"))")
    }
}
