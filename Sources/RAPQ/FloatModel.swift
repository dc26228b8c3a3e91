import Foundation

/// An FP32 network read from ONNX, ready to run on batches of inputs.
public struct FloatModel: Sendable {
    /// The imported graph.
    public let graph: Graph
    private let executor: Executor

    /// Reads and prepares the ONNX model at `url`.
    public init(contentsOf url: URL) throws {
        try self.init(graph: ONNXImporter.load(contentsOf: url))
    }

    /// Prepares an in-memory graph.
    public init(graph: Graph) throws {
        self.graph = graph
        self.executor = try Executor(graph: graph)
    }

    /// Runs the model's single input through it in slices of `batchSize` along the first dimension and
    /// returns its first output, concatenated over the slices.
    public func predict(_ input: Tensor, batchSize: Int = 32) throws -> Tensor {
        guard let inputInfo = graph.inputs.first, graph.inputs.count == 1 else {
            throw ExecutionError.missingInput(name: graph.inputs.map(\.name).joined(separator: ", "))
        }
        guard input.rank >= 1, input.shape[0] > 0 else {
            throw ExecutionError.inputShapeMismatch(name: inputInfo.name, expected: inputInfo.dimensions, got: input.shape)
        }
        let outputName = graph.outputs[0].name
        return try input.mapBatches(of: batchSize) { try executor.run([inputInfo.name: $0])[outputName]! }
    }
}
