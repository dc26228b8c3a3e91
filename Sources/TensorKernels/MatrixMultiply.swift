/// Matrix products (ONNX `Gemm` and `MatMul`) and their gradients, on BLAS.
public enum MatrixMultiply {
    /// ONNX Gemm: `alpha · op(A) · op(B) + beta · C`, where `op` transposes when asked and `C` (any shape
    /// that broadcasts one-way to `[M, N]`, or nil) is broadcast.
    public static func gemm(_ a: Tensor, _ b: Tensor, c: Tensor?, alpha: Float, beta: Float, transA: Bool, transB: Bool) -> Tensor {
        precondition(a.rank == 2 && b.rank == 2, "Gemm expects matrices, got \(a.shape) and \(b.shape)")
        let m = transA ? a.shape[1] : a.shape[0], n = transB ? b.shape[0] : b.shape[1]
        let addend = beta != 0 ? c : nil
        return Tensor(shape: [m, n]) { out in
            if let addend { broadcastScaled(addend, beta, rows: m, columns: n, into: out.base) }
            a.withUnsafeBufferPointer { aBuffer in
                b.withUnsafeBufferPointer { bBuffer in
                    let opA = MatrixOperand(aBuffer.base, storedRows: a.shape[0], storedColumns: a.shape[1], transposed: transA)
                    let opB = MatrixOperand(bBuffer.base, storedRows: b.shape[0], storedColumns: b.shape[1], transposed: transB)
                    MatrixOperand.multiply(opA, opB, alpha: alpha, beta: addend == nil ? 0 : 1, into: out.base, ldc: n)
                }
            }
        }
    }

    /// Gradients of `gemm`: `d op(A) = alpha · dY · op(B)ᵀ`, `d op(B) = alpha · op(A)ᵀ · dY` (transposed back
    /// when the operand was transposed) and `dC = beta · dY` summed over C's broadcast dimensions.
    public static func gemmBackward(_ a: Tensor, _ b: Tensor, cShape: [Int]?, alpha: Float, beta: Float, transA: Bool,
                                    transB: Bool, outputGradient: Tensor) -> (a: Tensor, b: Tensor, c: Tensor?) {
        let m = transA ? a.shape[1] : a.shape[0], n = transB ? b.shape[0] : b.shape[1], k = transA ? a.shape[0] : a.shape[1]
        precondition(outputGradient.shape == [m, n], "output gradient \(outputGradient.shape) != [\(m), \(n)]")
        var gradientA = Tensor(shape: a.shape), gradientB = Tensor(shape: b.shape)
        a.withUnsafeBufferPointer { aBuffer in
            b.withUnsafeBufferPointer { bBuffer in
                outputGradient.withUnsafeBufferPointer { gBuffer in
                    let opA = MatrixOperand(aBuffer.base, storedRows: a.shape[0], storedColumns: a.shape[1], transposed: transA)
                    let opB = MatrixOperand(bBuffer.base, storedRows: b.shape[0], storedColumns: b.shape[1], transposed: transB)
                    let dY = MatrixOperand(gBuffer.base, storedRows: m, storedColumns: n)
                    gradientA.withUnsafeMutableBufferPointer { dA in
                        if transA {
                            MatrixOperand.multiply(opB, dY.transpose, alpha: alpha, beta: 0, into: dA.base, ldc: m)
                        } else {
                            MatrixOperand.multiply(dY, opB.transpose, alpha: alpha, beta: 0, into: dA.base, ldc: k)
                        }
                    }
                    gradientB.withUnsafeMutableBufferPointer { dB in
                        if transB {
                            MatrixOperand.multiply(dY.transpose, opA, alpha: alpha, beta: 0, into: dB.base, ldc: k)
                        } else {
                            MatrixOperand.multiply(opA.transpose, dY, alpha: alpha, beta: 0, into: dB.base, ldc: n)
                        }
                    }
                }
            }
        }
        var gradientC: Tensor? = nil
        if let cShape {
            var reduced = Elementwise.reduceGradient(outputGradient, to: cShape)
            reduced.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] *= beta } }
            gradientC = reduced
        }
        return (gradientA, gradientB, gradientC)
    }

    /// NumPy `matmul`: a 1-D operand is promoted to a matrix (`[K] → [1, K]` on the left, `[K, 1]` on the
    /// right) and the added dimension dropped from the result; leading dimensions broadcast as a batch.
    public static func matMul(_ a: Tensor, _ b: Tensor) -> Tensor {
        let p = MatMulShapes(a.shape, b.shape)
        return Tensor(shape: p.outputShape) { out in
            a.withUnsafeBufferPointer { aBuffer in
                b.withUnsafeBufferPointer { bBuffer in
                    let A = aBuffer.base, B = bBuffer.base, Y = out.base
                    if p.rightIsMatrix {
                        // One product over the stacked rows of every batch item of A.
                        let opA = MatrixOperand(A, storedRows: p.batchCount * p.m, storedColumns: p.k)
                        let opB = MatrixOperand(B, storedRows: p.k, storedColumns: p.n)
                        MatrixOperand.multiply(opA, opB, beta: 0, into: Y, ldc: p.n)
                        return
                    }
                    Parallel.forEach(p.batchCount) { item in
                        let opA = MatrixOperand(A + p.offsetA(item), storedRows: p.m, storedColumns: p.k)
                        let opB = MatrixOperand(B + p.offsetB(item), storedRows: p.k, storedColumns: p.n)
                        MatrixOperand.multiply(opA, opB, beta: 0, into: Y + item * p.m * p.n, ldc: p.n, parallel: p.batchCount == 1)
                    }
                }
            }
        }
    }

    /// Gradients of `matMul`: per batch item `dA = dY · Bᵀ`, `dB = Aᵀ · dY`, summed over the batch
    /// dimensions along which the operand was broadcast.
    public static func matMulBackward(_ a: Tensor, _ b: Tensor, outputGradient: Tensor) -> (a: Tensor, b: Tensor) {
        let p = MatMulShapes(a.shape, b.shape)
        precondition(outputGradient.count == p.batchCount * p.m * p.n, "output gradient \(outputGradient.shape) does not match")
        let fullA = p.batchShape + [p.m, p.k], fullB = p.batchShape + [p.k, p.n]
        var gradientA = Tensor(shape: fullA)
        var gradientB = Tensor(shape: p.rightIsMatrix ? [p.k, p.n] : fullB)
        a.withUnsafeBufferPointer { aBuffer in
            b.withUnsafeBufferPointer { bBuffer in
                outputGradient.withUnsafeBufferPointer { gBuffer in
                    gradientA.withUnsafeMutableBufferPointer { daBuffer in
                        gradientB.withUnsafeMutableBufferPointer { dbBuffer in
                            let A = aBuffer.base, B = bBuffer.base, G = gBuffer.base, DA = daBuffer.base, DB = dbBuffer.base
                            if p.rightIsMatrix {
                                let rows = p.batchCount * p.m
                                let opA = MatrixOperand(A, storedRows: rows, storedColumns: p.k)
                                let opB = MatrixOperand(B, storedRows: p.k, storedColumns: p.n)
                                let dY = MatrixOperand(G, storedRows: rows, storedColumns: p.n)
                                MatrixOperand.multiply(dY, opB.transpose, beta: 0, into: DA, ldc: p.k)
                                MatrixOperand.multiply(opA.transpose, dY, beta: 0, into: DB, ldc: p.n)
                                return
                            }
                            Parallel.forEach(p.batchCount) { item in
                                let opA = MatrixOperand(A + p.offsetA(item), storedRows: p.m, storedColumns: p.k)
                                let opB = MatrixOperand(B + p.offsetB(item), storedRows: p.k, storedColumns: p.n)
                                let dY = MatrixOperand(G + item * p.m * p.n, storedRows: p.m, storedColumns: p.n)
                                let single = p.batchCount == 1
                                MatrixOperand.multiply(dY, opB.transpose, beta: 0, into: DA + item * p.m * p.k, ldc: p.k, parallel: single)
                                MatrixOperand.multiply(opA.transpose, dY, beta: 0, into: DB + item * p.k * p.n, ldc: p.n, parallel: single)
                            }
                        }
                    }
                }
            }
        }
        let da = Elementwise.reduceGradient(gradientA, to: p.promotedA).reshaped(a.shape)
        let db = Elementwise.reduceGradient(gradientB, to: p.promotedB).reshaped(b.shape)
        return (da, db)
    }

    /// Writes `beta · C` broadcast to `rows × columns` into `y`.
    private static func broadcastScaled(_ c: Tensor, _ beta: Float, rows: Int, columns: Int, into y: UnsafeMutablePointer<Float>) {
        precondition(c.rank <= 2, "Gemm C must have rank <= 2, got \(c.shape)")
        let shape = [Int](repeating: 1, count: 2 - c.rank) + c.shape
        precondition((shape[0] == 1 || shape[0] == rows) && (shape[1] == 1 || shape[1] == columns),
                     "Gemm C \(c.shape) does not broadcast to [\(rows), \(columns)]")
        let rowStride = shape[0] == 1 ? 0 : shape[1], columnStride = shape[1] == 1 ? 0 : 1
        c.withUnsafeBufferPointer { cBuffer in
            let C = cBuffer.base
            for i in 0..<rows {
                let source = C + i * rowStride, target = y + i * columns
                for j in 0..<columns { target[j] = beta * source[j * columnStride] }
            }
        }
    }
}

/// The sizes of a NumPy `matmul`: operands promoted to rank ≥ 2, the broadcast batch shape, and where
/// each batch item of each operand starts.
struct MatMulShapes {
    let m: Int, k: Int, n: Int
    let batchShape: [Int]
    let batchCount: Int
    let outputShape: [Int]
    /// The operand shapes after 1-D promotion (what the gradients are reduced to before reshaping).
    let promotedA: [Int], promotedB: [Int]
    /// The right operand is a single matrix shared by all batch items and the left is not broadcast.
    let rightIsMatrix: Bool
    private let stridesA: [Int], stridesB: [Int]

    init(_ a: [Int], _ b: [Int]) {
        precondition(!a.isEmpty && !b.isEmpty, "MatMul operands must have rank >= 1, got \(a) and \(b)")
        promotedA = a.count == 1 ? [1, a[0]] : a
        promotedB = b.count == 1 ? [b[0], 1] : b
        m = promotedA[promotedA.count - 2]; k = promotedA[promotedA.count - 1]; n = promotedB[promotedB.count - 1]
        precondition(promotedB[promotedB.count - 2] == k, "MatMul inner dimensions differ: \(a) and \(b)")
        let batchA = Array(promotedA.dropLast(2)), batchB = Array(promotedB.dropLast(2))
        guard let batch = Elementwise.broadcastShape(batchA, batchB) else {
            preconditionFailure("MatMul batch dimensions \(batchA) and \(batchB) do not broadcast")
        }
        batchShape = batch
        batchCount = batch.shapeProduct
        var out = batch
        if a.count > 1 { out.append(m) }
        if b.count > 1 { out.append(n) }
        outputShape = out
        rightIsMatrix = batchB.shapeProduct == 1 && batchA == batch
        func strides(_ shape: [Int], matrix: Int) -> [Int] {
            let padded = [Int](repeating: 1, count: batch.count - shape.count) + shape
            var result = [Int](repeating: 0, count: batch.count), step = matrix
            for d in stride(from: batch.count - 1, through: 0, by: -1) {
                result[d] = padded[d] == 1 ? 0 : step
                step *= padded[d]
            }
            return result
        }
        stridesA = strides(batchA, matrix: m * k)
        stridesB = strides(batchB, matrix: k * n)
    }

    func offsetA(_ item: Int) -> Int { offset(item, stridesA) }
    func offsetB(_ item: Int) -> Int { offset(item, stridesB) }

    private func offset(_ item: Int, _ strides: [Int]) -> Int {
        var r = item, result = 0
        for d in stride(from: batchShape.count - 1, through: 0, by: -1) {
            result += (r % batchShape[d]) * strides[d]
            r /= batchShape[d]
        }
        return result
    }
}
