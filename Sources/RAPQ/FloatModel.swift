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

    /// Prepares an in-memory graph. It runs with each BatchNormalization that follows a convolution or
    /// Gemm folded into it and each Relu/Clip after a convolution fused into it, as onnxruntime does: the
    /// outputs agree with the unoptimised graph to float32 rounding (the folded weights are computed in
    /// float64 and rounded once).
    public init(graph: Graph) throws {
        self.graph = graph
        self.executor = try Executor(graph: foldBatchNormalization(graph).graph, fuseActivations: true)
    }

    /// Runs the model's single input through it in batches of `batchSize` along the first dimension and
    /// returns its first output, concatenated over the batches. Each batch runs as concurrent cache-sized
    /// slices (`Tensor.cacheSizedSlice`), whose size depends on the input shape only, never on the thread count.
    public func predict(_ input: Tensor, batchSize: Int = 32) throws -> Tensor {
        guard let inputInfo = graph.inputs.first, graph.inputs.count == 1 else {
            throw ExecutionError.missingInput(name: graph.inputs.map(\.name).joined(separator: ", "))
        }
        guard input.rank >= 1, input.shape[0] > 0 else {
            throw ExecutionError.inputShapeMismatch(name: inputInfo.name, expected: inputInfo.dimensions, got: input.shape)
        }
        let outputName = graph.outputs[0].name
        return try input.mapBatches(of: batchSize) { batch in
            try batch.concurrentMapSlices { try executor.run([inputInfo.name: $0])[outputName]! }
        }
    }
}
