import XCTest
import TensorKernels

final class BLASTests: XCTestCase {
    /// OpenBLAS names the kernel family it chose; the advice appears only for a generic family on an AVX2
    /// machine, and names the override to use.
    func testKernelAdvice() throws {
        #if os(Linux)
        let core = try XCTUnwrap(BLAS.coreName)
        XCTAssertFalse(core.isEmpty)
        #endif
        let advice = try XCTUnwrap(BLAS.slowKernelAdvice(core: "Prescott", machineRunsAVX2: true))
        XCTAssertTrue(advice.contains("Prescott") && advice.contains("OPENBLAS_CORETYPE=Haswell"), advice)
        XCTAssertNil(BLAS.slowKernelAdvice(core: "Prescott", machineRunsAVX2: false))
        XCTAssertNil(BLAS.slowKernelAdvice(core: "Haswell", machineRunsAVX2: true))
        XCTAssertNil(BLAS.slowKernelAdvice(core: "SkylakeX", machineRunsAVX2: true))
    }

    func testSgemmAllTranspositionsWithStrides() {
        var rng = SeededGenerator(seed: 40)
        let (m, n, k) = (5, 7, 6)
        for transA in [false, true] {
            for transB in [false, true] {
                // Stored matrices with padded rows (leading dimension larger than the row).
                let aRows = transA ? k : m, aColumns = transA ? m : k, lda = aColumns + 2
                let bRows = transB ? n : k, bColumns = transB ? k : n, ldb = bColumns + 3
                let a = (0..<(aRows * lda)).map { _ in Float.random(in: -1...1, using: &rng) }
                let b = (0..<(bRows * ldb)).map { _ in Float.random(in: -1...1, using: &rng) }
                var c = (0..<(m * (n + 1))).map { _ in Float.random(in: -1...1, using: &rng) }
                let c0 = c
                c.withUnsafeMutableBufferPointer { cp in
                    BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb,
                               beta: 2, c: cp.baseAddress!, ldc: n + 1)
                }
                for i in 0..<m {
                    for j in 0..<n {
                        var s = 0.0
                        for t in 0..<k {
                            s += Double(transA ? a[t * lda + i] : a[i * lda + t]) * Double(transB ? b[j * ldb + t] : b[t * ldb + j])
                        }
                        XCTAssertEqual(Double(c[i * (n + 1) + j]), 0.5 * s + 2 * Double(c0[i * (n + 1) + j]), accuracy: 1e-5)
                    }
                    XCTAssertEqual(c[i * (n + 1) + n], c0[i * (n + 1) + n], "the padding column is untouched")
                }
            }
        }
    }
}
