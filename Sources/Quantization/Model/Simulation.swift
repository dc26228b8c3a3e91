import Graph
import ONNX
import TensorKernels

/// Runs a quantized network in FP32 with every quantizer applied (fake quantization): the reference the
/// integer engine must reproduce.
public struct Simulation: Sendable {
    /// The network being simulated.
    public let network: QuantizedNetwork
    private let executor: Executor

    /// Prepares the simulation of `network`.
    public init(_ network: QuantizedNetwork) throws {
        self.network = network
        self.executor = try Executor(graph: network.simulationGraph())
    }

    /// The network's first output for `input` (one batch), with `keep` tensors returned too.
    public func run(_ input: Tensor, keep: Set<String> = []) throws -> [String: Tensor] {
        let activations = network.activations
        return try executor.run([network.graph.inputs[0].name: input], keep: keep) { name, tensor in
            if let q = activations[name] { fakeQuantize(&tensor, with: q) }
        }
    }

    /// The network's first output over `input`, in slices of `batchSize`; `progress` is told the samples
    /// done and the total after each slice.
    public func predict(_ input: Tensor, batchSize: Int = 32, progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws -> Tensor {
        try checkInput(input, of: network.graph, batchSize: batchSize)
        let name = network.graph.outputs[0].name
        return try input.mapBatches(of: batchSize, progress: progress) { batch in try batch.concurrentMapSlices { try run($0)[name]! } }
    }
}
