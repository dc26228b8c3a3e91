import XCTest
import TensorKernels

final class ElementwiseTests: XCTestCase {
    static let shapePairs: [([Int], [Int])] = [
        ([2, 3, 4, 5], [2, 3, 4, 5]),
        ([2, 3, 4, 5], [1, 3, 1, 1]),
        ([2, 3, 4, 5], [2, 3, 1, 1]),
        ([3, 1, 5], [4, 1]),
        ([5], [2, 3, 5]),
        ([2, 1, 4], [1, 3, 1]),
        ([], [3, 2]),
        ([2, 3], [1]),
        ([4, 1, 3, 1], [1, 5, 1, 2]),
        ([64, 40, 30], [64, 1, 1]),   // large: the parallel path
        ([1, 20_000], [3, 1]),        // broadcast along a long row
    ]

    func testBroadcastShape() {
        XCTAssertEqual(Elementwise.broadcastShape([2, 1, 4], [3, 1]), [2, 3, 4])
        XCTAssertEqual(Elementwise.broadcastShape([], [3]), [3])
        XCTAssertEqual(Elementwise.broadcastShape([0, 1], [1, 5]), [0, 5])
        XCTAssertNil(Elementwise.broadcastShape([2, 3], [3, 2]))
        XCTAssertNil(Elementwise.broadcastShape([4], [5]))
    }

    func testAddAndMulForwardAndBackward() {
        var rng = SeededGenerator(seed: 50)
        for (sa, sb) in Self.shapePairs {
            for swap in [false, true] {
                let (shapeA, shapeB) = swap ? (sb, sa) : (sa, sb)
                let a = Tensor.random(shapeA, using: &rng), b = Tensor.random(shapeB, using: &rng)
                let (sum, outShape) = Reference.broadcast(a.doubles, shapeA, b.doubles, shapeB, +)
                let (product, _) = Reference.broadcast(a.doubles, shapeA, b.doubles, shapeB, *)
                let y = Elementwise.add(a, b), z = Elementwise.mul(a, b)
                XCTAssertEqual(y.shape, outShape)
                XCTAssertEqual(z.shape, outShape)
                assertClose(y.data, sum, tolerance: 1e-6, "add \(shapeA) \(shapeB)")
                assertClose(z.data, product, tolerance: 1e-6, "mul \(shapeA) \(shapeB)")

                let dy = Tensor.random(outShape, using: &rng), r = dy.doubles
                // Add: each operand's gradient is the output gradient reduced to its shape.
                let da = Elementwise.reduceGradient(dy, to: shapeA), db = Elementwise.reduceGradient(dy, to: shapeB)
                XCTAssertEqual(da.shape, shapeA)
                XCTAssertEqual(db.shape, shapeB)
                let samples = outShape.reduce(1, *) > 10_000 ? 2 : 12
                checkGradient(da.data, at: a.doubles, samples: samples, "add a \(shapeA) \(shapeB)") {
                    weightedSum(Reference.broadcast($0, shapeA, b.doubles, shapeB, +).0, r)
                }
                checkGradient(db.data, at: b.doubles, samples: samples, "add b \(shapeA) \(shapeB)") {
                    weightedSum(Reference.broadcast(a.doubles, shapeA, $0, shapeB, +).0, r)
                }
                let grads = Elementwise.mulBackward(a, b, outputGradient: dy)
                XCTAssertEqual(grads.a.shape, shapeA)
                XCTAssertEqual(grads.b.shape, shapeB)
                checkGradient(grads.a.data, at: a.doubles, samples: samples, "mul a \(shapeA) \(shapeB)") {
                    weightedSum(Reference.broadcast($0, shapeA, b.doubles, shapeB, *).0, r)
                }
                checkGradient(grads.b.data, at: b.doubles, samples: samples, "mul b \(shapeA) \(shapeB)") {
                    weightedSum(Reference.broadcast(a.doubles, shapeA, $0, shapeB, *).0, r)
                }
            }
        }
    }
}
