import CBLAS

/// A thin typed wrapper over the system BLAS (OpenBLAS on Linux): row-major single-precision GEMM.
///
/// Kernels in this module call BLAS from inside `Parallel` workers, one matrix product per worker, and
/// expect BLAS itself to run on one thread (see `setThreadCount`). Each output element is then produced
/// by one BLAS call accumulating over `k` in a fixed order, whatever the number of workers.
public enum BLAS {
    /// `C = alpha * op(A) * op(B) + beta * C` in row-major storage, where `op(X)` is `X` or `Xᵀ`.
    ///
    /// `op(A)` is `m × k`, `op(B)` is `k × n`, `C` is `m × n`; `lda`, `ldb`, `ldc` are the row strides of
    /// the matrices as stored (before transposition). With `beta == 0`, `C` need not be initialised.
    @inlinable
    public static func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                             a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float,
                             c: UnsafeMutablePointer<Float>, ldc: Int) {
        _ = oneThreadByDefault
        if m == 0 || n == 0 { return }
        if k == 0 {
            // BLAS leaves C untouched only when beta == 1; make the empty product explicit.
            for i in 0..<m {
                let row = c + i * ldc
                for j in 0..<n { row[j] = beta == 0 ? 0 : beta * row[j] }
            }
            return
        }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Puts OpenBLAS at one thread the first time BLAS is used, unless `setThreadCount` is called first.
    ///
    /// OpenBLAS's own threads spin while waiting for work; with the kernels' workers also running on
    /// every core, a two-core machine measured a conv backward five times slower with OpenBLAS at two
    /// threads than at one.
    @usableFromInline
    static let oneThreadByDefault: Void = {
        #if !canImport(Darwin)
        openblas_set_num_threads(1)
        #endif
    }()

    /// The kernel family OpenBLAS chose for this CPU (`openblas_get_corename`, e.g. "Haswell", "SkylakeX";
    /// `OPENBLAS_CORETYPE` overrides its choice), or nil for another BLAS.
    public static let coreName: String? = {
        #if canImport(Darwin)
        return nil
        #else
        guard let name = openblas_get_corename() else { return nil }
        return String(cString: name)
        #endif
    }()

    /// A one-line advice when OpenBLAS runs its generic SSE3-era kernels on a CPU with AVX2: it does that
    /// when it does not recognise the CPU model (as on virtual machines that report "Intel Xeon Processor"),
    /// and its matrix products then run slower. Nil when there is nothing to advise.
    public static var slowKernelAdvice: String? {
        coreName.flatMap { slowKernelAdvice(core: $0, machineRunsAVX2: VectorUnit.machineRunsAVX2) }
    }

    /// `slowKernelAdvice` for OpenBLAS core `core` on a machine with or without AVX2.
    public static func slowKernelAdvice(core: String, machineRunsAVX2: Bool) -> String? {
        let generic = ["Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Katmai", "Coppermine", "Northwood", "Banias"]
        guard machineRunsAVX2, generic.contains(core) else { return nil }
        return "note: OpenBLAS runs its generic \(core) kernels on this AVX2 CPU (it did not recognise the model); "
            + "OPENBLAS_CORETYPE=Haswell (or SkylakeX on AVX-512 CPUs) makes its matrix products faster. Results may differ in the last bits."
    }

    /// Sets the number of threads BLAS uses inside one call (`openblas_set_num_threads`).
    ///
    /// The kernels of this module parallelise over images and tiles themselves and are fastest, and
    /// bit-reproducible, with BLAS at one thread; a larger value only helps code that calls `sgemm`
    /// directly on one large product from a single thread.
    public static func setThreadCount(_ n: Int) {
        _ = oneThreadByDefault
        #if canImport(Darwin)
        _ = n
        #else
        openblas_set_num_threads(Int32(Swift.max(1, n)))
        #endif
    }
}
