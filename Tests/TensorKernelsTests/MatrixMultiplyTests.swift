import XCTest
import TensorKernels

final class MatrixMultiplyTests: XCTestCase {
    func testGemmAllTranspositionsAndBroadcasts() {
        var rng = SeededGenerator(seed: 60)
        let (m, n, k) = (5, 4, 3)
        let cShapes: [[Int]?] = [nil, [], [1], [n], [1, n], [m, 1], [m, n]]
        for transA in [false, true] {
            for transB in [false, true] {
                for cShape in cShapes {
                    let a = Tensor.random(transA ? [k, m] : [m, k], using: &rng)
                    let b = Tensor.random(transB ? [n, k] : [k, n], using: &rng)
                    let c = cShape.map { Tensor.random($0, using: &rng) }
                    let (alpha, beta): (Float, Float) = (0.75, -1.5)
                    func reference(_ a: [Double], _ b: [Double], _ c: [Double]?) -> [Double] {
                        let p = Reference.matrixProduct(a, b, m: m, k: k, n: n, transA: transA, transB: transB).map { Double(alpha) * $0 }
                        guard let c, let cShape else { return p }
                        return Reference.broadcast(p, [m, n], c, cShape) { $0 + Double(beta) * $1 }.0
                    }
                    let label = "transA \(transA) transB \(transB) C \(String(describing: cShape))"
                    let y = MatrixMultiply.gemm(a, b, c: c, alpha: alpha, beta: beta, transA: transA, transB: transB)
                    XCTAssertEqual(y.shape, [m, n], label)
                    assertClose(y.data, reference(a.doubles, b.doubles, c?.doubles), tolerance: 1e-5, label)

                    let dy = Tensor.random([m, n], using: &rng), r = dy.doubles
                    let grads = MatrixMultiply.gemmBackward(a, b, cShape: cShape, alpha: alpha, beta: beta, transA: transA,
                                                            transB: transB, outputGradient: dy)
                    XCTAssertEqual(grads.a.shape, a.shape, label)
                    XCTAssertEqual(grads.b.shape, b.shape, label)
                    checkGradient(grads.a.data, at: a.doubles, "A \(label)") { weightedSum(reference($0, b.doubles, c?.doubles), r) }
                    checkGradient(grads.b.data, at: b.doubles, "B \(label)") { weightedSum(reference(a.doubles, $0, c?.doubles), r) }
                    if let c, let cShape {
                        XCTAssertEqual(grads.c?.shape, cShape, label)
                        checkGradient(grads.c?.data ?? [], at: c.doubles, "C \(label)") { weightedSum(reference(a.doubles, b.doubles, $0), r) }
                    } else {
                        XCTAssertNil(grads.c, label)
                    }
                }
            }
        }
    }

    /// A product large enough to be split into parallel row blocks.
    func testLargeGemmMatchesReference() {
        var rng = SeededGenerator(seed: 61)
        let (m, n, k) = (96, 70, 640)
        let a = Tensor.random([m, k], using: &rng), b = Tensor.random([n, k], using: &rng)
        let y = MatrixMultiply.gemm(a, b, c: nil, alpha: 1, beta: 0, transA: false, transB: true)
        assertClose(y.data, Reference.matrixProduct(a.doubles, b.doubles, m: m, k: k, n: n, transB: true), tolerance: 1e-5)
    }

    /// NumPy matmul of a broadcast batch: reference by explicit batch indexing.
    func referenceMatMul(_ a: [Double], _ sa: [Int], _ b: [Double], _ sb: [Int]) -> [Double] {
        let pa = sa.count == 1 ? [1, sa[0]] : sa, pb = sb.count == 1 ? [sb[0], 1] : sb
        let (m, k, n) = (pa[pa.count - 2], pa[pa.count - 1], pb[pb.count - 1])
        let batchA = Array(pa.dropLast(2)), batchB = Array(pb.dropLast(2))
        let rank = max(batchA.count, batchB.count)
        let ba = Array(repeating: 1, count: rank - batchA.count) + batchA, bb = Array(repeating: 1, count: rank - batchB.count) + batchB
        let batch = (0..<rank).map { max(ba[$0], bb[$0]) }
        var result = [Double]()
        for item in 0..<batch.reduce(1, *) {
            var r = item, ia = 0, ib = 0, stepA = 1, stepB = 1
            for d in stride(from: rank - 1, through: 0, by: -1) {
                let idx = r % batch[d]; r /= batch[d]
                ia += (ba[d] == 1 ? 0 : idx) * stepA; stepA *= ba[d]
                ib += (bb[d] == 1 ? 0 : idx) * stepB; stepB *= bb[d]
            }
            result += Reference.matrixProduct(Array(a[(ia * m * k)..<((ia + 1) * m * k)]), Array(b[(ib * k * n)..<((ib + 1) * k * n)]),
                                              m: m, k: k, n: n)
        }
        return result
    }

    func testMatMulBatchedAndPromoted() {
        var rng = SeededGenerator(seed: 62)
        let cases: [([Int], [Int], [Int])] = [
            ([3, 4], [4, 5], [3, 5]),
            ([2, 3, 4], [4, 5], [2, 3, 5]),
            ([2, 3, 4], [2, 4, 5], [2, 3, 5]),
            ([3, 4], [2, 4, 5], [2, 3, 5]),
            ([2, 1, 3, 4], [1, 3, 4, 2], [2, 3, 3, 2]),
            ([4], [4, 5], [5]),
            ([2, 3, 4], [4], [2, 3]),
            ([4], [4], []),
            ([3, 4], [2, 1, 4, 5], [2, 1, 3, 5]),
        ]
        for (sa, sb, expectedShape) in cases {
            let a = Tensor.random(sa, using: &rng), b = Tensor.random(sb, using: &rng)
            let y = MatrixMultiply.matMul(a, b)
            XCTAssertEqual(y.shape, expectedShape, "\(sa) × \(sb)")
            assertClose(y.data, referenceMatMul(a.doubles, sa, b.doubles, sb), tolerance: 1e-5, "\(sa) × \(sb)")
            let dy = Tensor.random(expectedShape, using: &rng), r = dy.doubles
            let grads = MatrixMultiply.matMulBackward(a, b, outputGradient: dy)
            XCTAssertEqual(grads.a.shape, sa)
            XCTAssertEqual(grads.b.shape, sb)
            checkGradient(grads.a.data, at: a.doubles, "A \(sa) × \(sb)") { weightedSum(self.referenceMatMul($0, sa, b.doubles, sb), r) }
            checkGradient(grads.b.data, at: b.doubles, "B \(sa) × \(sb)") { weightedSum(self.referenceMatMul(a.doubles, sa, $0, sb), r) }
        }
    }
}
