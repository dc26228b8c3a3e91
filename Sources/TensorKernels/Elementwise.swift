/// Binary element-wise arithmetic with NumPy multidirectional broadcasting (ONNX `Add`, `Mul`) and the
/// reduction that takes a broadcast result's gradient back to an operand's shape.
public enum Elementwise {
    /// The shape both operands broadcast to, or nil when they are incompatible: shapes are aligned on
    /// their last dimension and each pair of sizes must be equal or contain a 1.
    public static func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
        let rank = Swift.max(a.count, b.count)
        let pa = [Int](repeating: 1, count: rank - a.count) + a, pb = [Int](repeating: 1, count: rank - b.count) + b
        var result = [Int]()
        result.reserveCapacity(rank)
        for (x, y) in zip(pa, pb) {
            if x == y || y == 1 { result.append(x) } else if x == 1 { result.append(y) } else { return nil }
        }
        return result
    }

    /// `a + b`, broadcast.
    public static func add(_ a: Tensor, _ b: Tensor) -> Tensor { apply(a, b, Addition.self) }

    /// `a · b`, broadcast.
    public static func mul(_ a: Tensor, _ b: Tensor) -> Tensor { apply(a, b, Multiplication.self) }

    /// The gradient of an operand of shape `shape` from the gradient of the broadcast result: the sum
    /// over every dimension along which the operand was broadcast. Sums run in a fixed order, in double
    /// precision.
    public static func reduceGradient(_ outputGradient: Tensor, to shape: [Int]) -> Tensor {
        if outputGradient.shape == shape { return outputGradient }
        if shape.shapeProduct == outputGradient.count { return outputGradient.reshaped(shape) }
        let layout = BroadcastLayout(output: outputGradient.shape, operands: [outputGradient.shape, shape])
        var sums = [Double](repeating: 0, count: shape.shapeProduct)
        outputGradient.withUnsafeBufferPointer { gBuffer in
            sums.withUnsafeMutableBufferPointer { sBuffer in
                let G = gBuffer.base, S = sBuffer.baseAddress!
                let length = layout.rowLength, inner = layout.strides[1].last!
                for row in 0..<layout.rowCount {
                    let g = G + layout.rowOffset(row, operand: 0), s = S + layout.rowOffset(row, operand: 1)
                    if inner == 0 {
                        s[0] += Reduction.sum(g, count: length)
                    } else {
                        for i in 0..<length { s[i] += Double(g[i]) }
                    }
                }
            }
        }
        return Tensor(shape: shape, data: sums.map { Float($0) })
    }

    /// Gradients of `mul(a, b)`: `reduce(g · b)` to `a`'s shape and `reduce(g · a)` to `b`'s.
    public static func mulBackward(_ a: Tensor, _ b: Tensor, outputGradient: Tensor) -> (a: Tensor, b: Tensor) {
        (reduceGradient(mul(outputGradient, b), to: a.shape), reduceGradient(mul(outputGradient, a), to: b.shape))
    }

    /// `op(a, b)` over the broadcast shape; the inner loop is specialised for each operand being
    /// contiguous or constant along the innermost merged dimension.
    private static func apply<Op: BinaryFloatOperation>(_ a: Tensor, _ b: Tensor, _: Op.Type) -> Tensor {
        guard let shape = broadcastShape(a.shape, b.shape) else {
            preconditionFailure("shapes \(a.shape) and \(b.shape) do not broadcast")
        }
        let layout = BroadcastLayout(output: shape, operands: [shape, a.shape, b.shape])
        let length = layout.rowLength, strideA = layout.strides[1].last!, strideB = layout.strides[2].last!
        return Tensor(shape: shape) { out in
            a.withUnsafeBufferPointer { aBuffer in
                b.withUnsafeBufferPointer { bBuffer in
                    let A = aBuffer.base, B = bBuffer.base, Y = out.base
                    let rows = layout.rowCount
                    let chunks = out.count < ElementMap.parallelThreshold ? 1 : Swift.min(16, rows)
                    if rows == 1 && chunks > 1 {
                        // One long row: split it.
                        ElementMap.forEachChunk(length) { start, n in
                            Op.row(A + start * strideA, strideA, B + start * strideB, strideB, Y + start, n)
                        }
                        return
                    }
                    Parallel.forEachChunk(rows, maxChunks: chunks) { range in
                        for row in range {
                            Op.row(A + layout.rowOffset(row, operand: 1), strideA, B + layout.rowOffset(row, operand: 2), strideB,
                                   Y + layout.rowOffset(row, operand: 0), length)
                        }
                    }
                }
            }
        }
    }

    /// For each element of a tensor of shape `target`, the index of the element of a tensor of `shape` that
    /// NumPy broadcasting puts there (`shape` must broadcast to `target`). For small or integer tensors,
    /// where a gather through these indices is simplest.
    public static func sourceIndices(of shape: [Int], broadcastTo target: [Int]) -> [Int] {
        let padded = [Int](repeating: 1, count: target.count - shape.count) + shape
        let strides = Shaping.rowMajorStrides(padded).enumerated().map { padded[$0.offset] == 1 ? 0 : $0.element }
        return Shaping.offsets(shape: target, strides: strides)
    }
}

/// A binary float operation applied along rows whose operands have stride 0 or 1.
protocol BinaryFloatOperation {
    static func apply(_ a: Float, _ b: Float) -> Float
}

extension BinaryFloatOperation {
    /// `y[i] = apply(a[i·sa], b[i·sb])` for `i < n`, with a separate loop for each stride pattern so
    /// that each vectorises.
    @inline(__always)
    static func row(_ a: UnsafePointer<Float>, _ sa: Int, _ b: UnsafePointer<Float>, _ sb: Int,
                    _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        switch (sa, sb) {
        case (1, 1): for i in 0..<n { y[i] = apply(a[i], b[i]) }
        case (1, 0): let v = b[0]; for i in 0..<n { y[i] = apply(a[i], v) }
        case (0, 1): let v = a[0]; for i in 0..<n { y[i] = apply(v, b[i]) }
        default: for i in 0..<n { y[i] = apply(a[i * sa], b[i * sb]) }
        }
    }
}

/// `a + b`.
struct Addition: BinaryFloatOperation {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a + b }
}

/// `a · b`.
struct Multiplication: BinaryFloatOperation {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a * b }
}
