/// A row-major matrix in memory seen as a GEMM operand, possibly transposed: `rows × columns` is its
/// logical (post-transposition) size and `leadingDimension` the row stride of the stored matrix.
struct MatrixOperand {
    let base: UnsafePointer<Float>
    let rows: Int
    let columns: Int
    let transposed: Bool
    let leadingDimension: Int

    /// The stored `storedRows × storedColumns` matrix at `base`, transposed when `transposed`.
    init(_ base: UnsafePointer<Float>, storedRows: Int, storedColumns: Int, transposed: Bool = false) {
        self.init(base: base, rows: transposed ? storedColumns : storedRows, columns: transposed ? storedRows : storedColumns,
                  transposed: transposed, leadingDimension: storedColumns)
    }

    private init(base: UnsafePointer<Float>, rows: Int, columns: Int, transposed: Bool, leadingDimension: Int) {
        self.base = base; self.rows = rows; self.columns = columns
        self.transposed = transposed; self.leadingDimension = leadingDimension
    }

    /// The same memory seen transposed.
    var transpose: MatrixOperand {
        MatrixOperand(base: base, rows: columns, columns: rows, transposed: !transposed, leadingDimension: leadingDimension)
    }

    /// Logical rows `range` of this operand.
    func rows(_ range: Range<Int>) -> MatrixOperand {
        MatrixOperand(base: base + (transposed ? range.lowerBound : range.lowerBound * leadingDimension), rows: range.count,
                      columns: columns, transposed: transposed, leadingDimension: leadingDimension)
    }

    /// `c = alpha · a · b + beta · c` for an `a.rows × b.columns` matrix `c` with row stride `ldc`.
    ///
    /// Large products are split into row blocks run in parallel; the split depends only on the sizes,
    /// and each element is still one BLAS dot product over the whole inner dimension.
    static func multiply(_ a: MatrixOperand, _ b: MatrixOperand, alpha: Float = 1, beta: Float,
                         into c: UnsafeMutablePointer<Float>, ldc: Int, parallel: Bool = true) {
        precondition(a.columns == b.rows, "inner dimensions \(a.columns) and \(b.rows) differ")
        let work = a.rows * b.columns * a.columns
        let blocks = parallel && work >= 1 << 22 ? Swift.min(8, a.rows / 16) : 1
        Parallel.forEachChunk(a.rows, maxChunks: Swift.max(1, blocks)) { range in
            let part = a.rows(range)
            BLAS.sgemm(transA: part.transposed, transB: b.transposed, m: part.rows, n: b.columns, k: a.columns, alpha: alpha,
                       a: part.base, lda: part.leadingDimension, b: b.base, ldb: b.leadingDimension, beta: beta,
                       c: c + range.lowerBound * ldc, ldc: ldc)
        }
    }
}
