import ArgumentParser

/// The `rapq` command line: power-of-two post-training quantization of ONNX CNNs.
@main
struct RAPQCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rapq",
        abstract: "Power-of-two low-bit post-training quantization (RAPQ, IJCAI 2022) for ONNX CNNs.",
        discussion: """
        Every scale of a quantized model is an exact power of two, so requantization is a bit shift.
        Start with `rapq demo`, or `rapq inspect MODEL.onnx` to see what a model contains.
        """,
        subcommands: [DemoCommand.self, InspectCommand.self, RunCommand.self, QuantizeCommand.self, EvalCommand.self, VerifyCommand.self]
    )
}
