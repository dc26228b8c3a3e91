extension Tensor {
    /// The samples at `indices` along the first dimension, in that order (mini-batch gathering).
    public func rows(_ indices: [Int]) -> Tensor {
        let per = shape.isEmpty || shape[0] == 0 ? 0 : count / shape[0]
        var out = [Float](repeating: 0, count: indices.count * per)
        data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for (r, i) in indices.enumerated() {
                    precondition(i >= 0 && i < shape[0], "row \(i) out of range")
                    dst.baseAddress!.advanced(by: r * per).update(from: src.baseAddress!.advanced(by: i * per), count: per)
                }
            }
        }
        return Tensor(shape: [indices.count] + shape.dropFirst(), data: out)
    }

    /// The samples `range` along the first dimension.
    public func rows(_ range: Range<Int>) -> Tensor {
        let per = shape.isEmpty || shape[0] == 0 ? 0 : count / shape[0]
        return Tensor(shape: [range.count] + shape.dropFirst(), data: Array(data[range.lowerBound * per..<range.upperBound * per]))
    }

    /// Consecutive slices of at most `batchSize` samples along the first dimension, in order.
    public func batches(of batchSize: Int) -> [Tensor] {
        precondition(batchSize > 0, "batch size must be positive")
        let n = shape.first ?? 0
        return stride(from: 0, to: n, by: batchSize).map { rows($0..<Swift.min(n, $0 + batchSize)) }
    }

    /// The results of `body` on each batch of `batchSize` samples, concatenated along the first dimension.
    /// `progress` is told the samples done and the total after each batch.
    public func mapBatches(of batchSize: Int, progress: ((_ done: Int, _ total: Int) -> Void)? = nil,
                           _ body: (Tensor) throws -> Tensor) rethrows -> Tensor {
        let total = shape.first ?? 0
        var done = 0
        let parts = try batches(of: batchSize).map { batch in
            let result = try body(batch)
            done += batch.shape.first ?? 0
            progress?(done, total)
            return result
        }
        guard let first = parts.first else { return try body(self) }
        return parts.count == 1 ? first : Shaping.concat(parts, axis: 0)
    }
}

extension Tensor {
    /// `mapBatches`, with the batches run concurrently over the machine's cores. The result does not
    /// depend on the thread count: batch boundaries depend on `batchSize` alone and each batch's result is
    /// placed by its index. When several batches fail, the error of the first failing batch is thrown.
    public func concurrentMapBatches(of batchSize: Int, _ body: (Tensor) throws -> Tensor) throws -> Tensor {
        let inputs = batches(of: batchSize)
        guard inputs.count > 1 else { return try mapBatches(of: batchSize, body) }
        // One slot per batch, each written by its own task only.
        var results = [Result<Tensor, any Error>?](repeating: nil, count: inputs.count)
        results.withUnsafeMutableBufferPointer { slots in
            let slot = slots.baseAddress!
            Parallel.forEach(inputs.count) { i in slot[i] = Result { try body(inputs[i]) } }
        }
        return Shaping.concat(try results.map { try $0!.get() }, axis: 0)
    }
}

extension Tensor {
    /// Samples per slice for `concurrentMapSlices`: about 512 KB of input per slice, at least one sample.
    /// Large inputs (a 224x224 image) then run one sample per core at a time, so that each layer's tensors
    /// stay in the caches instead of streaming a whole batch through memory once per layer; small inputs
    /// (28x28) keep whole batches, where per-layer overhead would dominate. Depends on shapes only.
    public var cacheSizedSlice: Int {
        let samples = Swift.max(1, shape.first ?? 1), perSample = Swift.max(1, count / samples)
        return Swift.min(samples, Swift.max(1, (1 << 17) / perSample))
    }

    /// `concurrentMapBatches` with slices of `cacheSizedSlice` samples.
    public func concurrentMapSlices(_ body: (Tensor) throws -> Tensor) throws -> Tensor {
        try concurrentMapBatches(of: cacheSizedSlice, body)
    }
}
