import TensorKernels

/// A forward pass of a whole graph over a large batch that advances node by node on request, so a caller
/// can stop before a unit, work on the tensors alive there, and continue. Tensors are freed after their
/// last reader, as in `Executor`.
///
/// Nodes are evaluated on slices of `chunkSize` samples, so the intermediate tensors of a span of nodes
/// cost `chunkSize` samples of memory; only the tensors still alive at the end of the span are kept for
/// the whole batch, in a `SampleCache` (in memory within its budget, in spill files beyond it), written
/// slice by slice and read back slice by slice.
public struct GraphStream: Sendable {
    /// The graph being run.
    public let graph: Graph
    /// Index of the next node to evaluate.
    public private(set) var position = 0
    /// Tensors alive at `position`, each holding every sample.
    public private(set) var cached: [String: CachedTensor]
    /// Samples per evaluation slice.
    public let chunkSize: Int
    /// Where the tensors alive between spans are kept.
    public let cache: SampleCache
    private let lastUse: [String: Int]
    private let samples: Int

    /// A stream over `graph` fed with `inputs` (all with the same number of samples; held by the caller,
    /// so not counted against `cache`'s budget). Tensors in `retain` are never freed.
    public init(graph: Graph, inputs: [String: Tensor], retain: Set<String> = [], chunkSize: Int = 64, cache: SampleCache = SampleCache()) {
        self.init(graph: graph, cachedInputs: inputs.mapValues { CachedTensor(external: $0) }, retain: retain, chunkSize: chunkSize, cache: cache)
    }

    /// A stream over `graph` fed with cached `inputs`.
    public init(graph: Graph, cachedInputs inputs: [String: CachedTensor], retain: Set<String> = [], chunkSize: Int = 64,
                cache: SampleCache = SampleCache()) {
        self.graph = graph
        cached = inputs
        self.chunkSize = Swift.max(1, chunkSize)
        self.cache = cache
        samples = inputs.values.first?.samples ?? 0
        var last: [String: Int] = [:]
        for (i, node) in graph.nodes.enumerated() { for name in node.inputs { last[name] = i } }
        for name in retain.union(graph.outputs.map(\.name)) { last[name] = Int.max }
        lastUse = last
    }

    /// Tensors alive at `position`, each holding every sample (spilled ones read back whole: for small
    /// batches and tests; reconstruction reads `cached` by mini-batch).
    public var values: [String: Tensor] {
        get throws { try cached.mapValues { try $0.tensor() } }
    }

    /// Evaluates nodes until `position == index`. `parameters` override initializers by name; `observe`
    /// may replace each produced tensor (fake quantization; it must act per sample).
    public mutating func advance(to index: Int, parameters: [String: Tensor] = [:],
                                 observe: ((String, Tensor) -> Tensor?)? = nil) throws {
        let end = Swift.min(index, graph.nodes.count)
        guard position < end else { return }
        let span = graph.nodes[position..<end]
        // Tensors alive now and read at or after `end` are carried over as they are; tensors produced in
        // the span and read at or after `end` are written to the cache slice by slice.
        var next = cached.filter { (lastUse[$0.key] ?? -1) >= end }
        let survivors = span.flatMap(\.outputs).filter { (lastUse[$0] ?? -1) >= end }
        let read = Set(span.flatMap(\.inputs)).filter { cached[$0] != nil }.sorted()
        var writers: [String: CachedTensorWriter] = [:]
        for start in stride(from: 0, to: samples, by: chunkSize) {
            let range = start..<Swift.min(samples, start + chunkSize)
            var local: [String: Tensor] = [:]
            for name in read { local[name] = try cached[name]!.rows(range) }
            var step = position
            for node in span {
                let operands = try node.inputs.map { name -> Tensor? in
                    if name.isEmpty { return nil }
                    if let v = local[name] ?? parameters[name] ?? graph.initializers[name] { return v }
                    throw ExecutionError.undefinedTensor(node: node.name, tensor: name)
                }
                for (name, result) in zip(node.outputs, try NodeEvaluator.forward(node, operands)) {
                    local[name] = observe?(name, result) ?? result
                }
                for name in node.inputs where (lastUse[name] ?? 0) <= step { local[name] = nil }
                step += 1
            }
            for name in survivors {
                guard let t = local[name] else { continue }
                if writers[name] == nil { writers[name] = try cache.writer(sampleShape: Array(t.shape.dropFirst()), samples: samples) }
                try writers[name]!.append(t)
            }
        }
        for name in survivors { if let writer = writers[name] { next[name] = try writer.finish() } }
        cached = next
        position = end
    }

    /// Replaces the value of an alive tensor (e.g. after quantizing it).
    public mutating func set(_ name: String, _ value: Tensor) throws { cached[name] = try cache.store(value) }
}
