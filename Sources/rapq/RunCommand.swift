import ArgumentParser
import Foundation
import RAPQ

/// `rapq run`: FP32 inference of an ONNX model on a NumPy array.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a model in FP32 on a .npy input or images and write its first output to a .npy file."
    )

    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(name: .shortAndLong, help: "Input: an array (.npy, float32/float64/uint8/int64, batch first), a folder of JPEG/PNG images (recursively, sorted by path) or one image; images need --preset or explicit flags.")
    var input: String

    @Option(name: .shortAndLong, help: "Where to write the output array (.npy, float32); with images, the same name with .txt lists the file of each row.")
    var output: String

    @Option(help: "Images per forward pass (memory versus speed).")
    var batch: Int = 32

    @OptionGroup(title: "Images")
    var images: ImageOptions

    @OptionGroup var progress: ProgressOptions

    func run() throws {
        guard batch > 0 else { throw ValidationError("--batch must be at least 1") }
        let inputs: [OutputConflict.Input] = [.init("the model", model), .init("-i", input)]
        try OutputConflict.check(output: output, role: "-o", against: inputs)
        // With images the row list goes next to the output; it must not replace an input either, and is
        // checked before any work so a refusal never follows a written output.
        let names = Self.namesURL(for: URL(fileURLWithPath: output))
        let readsImages = URL(fileURLWithPath: input).pathExtension.lowercased() != "npy"
        if readsImages {
            guard names.standardizedFileURL != URL(fileURLWithPath: output).standardizedFileURL else {
                throw ValidationError("-o \(output) would be replaced by the list of image files written next to it (the output's name with .txt); name the output .npy")
            }
            try OutputConflict.check(output: names.path, role: "the row list of -o (\(names.lastPathComponent))", against: inputs)
        }
        Interruption.install(outputs: readsImages ? [output, names.path] : [output])
        progress.apply()
        let network = try FloatModel(contentsOf: URL(fileURLWithPath: model))
        let samples = try Samples(path: input, options: images)
        let y = try network.predict(samples.tensor, batchSize: batch, progress: ProgressLine("running", unit: "samples").update)
        if let bad = y.data.firstIndex(where: { !$0.isFinite }) {
            throw CommandFailure("the model computed \(y.data[bad]) at output index \(bad) (float32 overflows above 3.4e38: the input or the weights are out of range); \(output) was not written")
        }
        try NumpyFile.write(y, to: URL(fileURLWithPath: output))
        print("wrote \(output): shape \(y.shape.map(String.init).joined(separator: "x"))")
        if let files = samples.files {
            try AtomicFile.write(Data(files.map { $0 + "\n" }.joined().utf8), to: names)
            print("wrote \(names.path): the image of each output row, in order")
        }
    }

    /// The file listing the images row by row: the output's path with `.txt` for its extension.
    static func namesURL(for output: URL) -> URL {
        output.pathExtension.isEmpty ? output.appendingPathExtension("txt") : output.deletingPathExtension().appendingPathExtension("txt")
    }
}
