import Foundation

/// An FP32 network read from ONNX, ready to run on batches of inputs.
public struct FloatModel: Sendable {
    /// The imported graph.
    public let graph: Graph
    private let executor: Executor
    /// When the network narrows to one small tensor (after global pooling), the part from there on runs
    /// on whole batches: `head` computes `cut` in one-image slices, `tail` the outputs from it.
    private let split: (head: Executor, tail: Executor, cut: String)?

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
        let optimised = foldBatchNormalization(graph).graph
        self.executor = try Executor(graph: optimised, fuseActivations: true)
        self.split = try Self.narrowSplit(optimised)
    }

    /// The earliest point after which a single tensor of at most 4096 values per sample is all the rest of
    /// the network reads (a classifier head after global pooling), as two executors; nil if there is none.
    /// Sliced execution helps large feature maps stay in cache, but a classifier's matrix product on one
    /// sample at a time is a slow matrix-vector product.
    private static func narrowSplit(_ graph: Graph) throws -> (head: Executor, tail: Executor, cut: String)? {
        guard graph.inputs.count == 1, let shapes = try? inferShapes(of: graph, batch: 1) else { return nil }
        let outputNames = Set(graph.outputs.map(\.name))
        var before: Set<String> = [graph.inputs[0].name]  // tensors defined before node c
        for c in 1..<Swift.max(1, graph.nodes.count) {
            before.formUnion(graph.nodes[c - 1].outputs)
            var live = Set(graph.nodes[c...].flatMap(\.inputs).filter { before.contains($0) })
            live.formUnion(outputNames.intersection(before))
            guard live.count == 1, let cut = live.first, cut != graph.inputs[0].name, let shape = shapes[cut],
                  shape.reduce(1, *) <= 4096 else { continue }
            var head = graph, tail = graph
            head.nodes = Array(graph.nodes[..<c])
            head.outputs = [ValueInfo(name: cut, dimensions: shape.map { _ in nil })]
            tail.nodes = Array(graph.nodes[c...])
            tail.inputs = [ValueInfo(name: cut, dimensions: [nil] + shape.dropFirst().map { Optional($0) })]
            return (try Executor(graph: head, fuseActivations: true), try Executor(graph: tail, fuseActivations: true), cut)
        }
        return nil
    }

    /// Runs the model's single input through it in batches of `batchSize` along the first dimension and
    /// returns its first output, concatenated over the batches. Each batch runs as concurrent cache-sized
    /// slices (`Tensor.cacheSizedSlice`), whose size depends on the input shape only, never on the thread count.
    /// `progress` is told the samples done and the total after each batch.
    public func predict(_ input: Tensor, batchSize: Int = 32, progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws -> Tensor {
        try checkInput(input, of: graph, batchSize: batchSize)
        let inputInfo = graph.inputs[0]
        let outputName = graph.outputs[0].name
        return try input.mapBatches(of: batchSize, progress: progress) { batch in
            guard let split, batch.cacheSizedSlice < batch.shape[0] else {
                return try batch.concurrentMapSlices { try executor.run([inputInfo.name: $0])[outputName]! }
            }
            let narrow = try batch.concurrentMapSlices { try split.head.run([inputInfo.name: $0])[split.cut]! }
            return try split.tail.run([split.cut: narrow])[outputName]!
        }
    }
}
