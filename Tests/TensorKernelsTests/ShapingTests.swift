import XCTest
import TensorKernels

final class ShapingTests: XCTestCase {
    /// mapBatches tells the samples done after each batch, and concatenates the batches' results in order.
    func testMapBatchesReportsProgress() {
        let x = Tensor(shape: [7, 2], data: (0..<14).map(Float.init))
        var reports: [[Int]] = []
        let y = x.mapBatches(of: 3, progress: { reports.append([$0, $1]) }) { batch in
            Tensor(shape: batch.shape, data: batch.data.map { $0 * 2 })
        }
        XCTAssertEqual(reports, [[3, 7], [6, 7], [7, 7]])
        XCTAssertEqual(y.data, (0..<14).map { Float($0 * 2) })
    }

    func testConcatAndBackward() {
        var rng = SeededGenerator(seed: 30)
        for axis in 0..<4 {
            var shapes = [[2, 3, 4, 5], [2, 3, 4, 5], [2, 3, 4, 5]]
            for (i, extent) in [1, 3, 2].enumerated() { shapes[i][axis] = extent }
            let parts = shapes.map { Tensor.random($0, using: &rng) }
            let y = Shaping.concat(parts, axis: axis)
            var outShape = shapes[0]
            outShape[axis] = 6
            XCTAssertEqual(y.shape, outShape)
            // Reference: each output index maps back to (part, index in part).
            func reference(_ inputs: [[Double]]) -> [Double] {
                var result = [Double](repeating: 0, count: outShape.reduce(1, *))
                for flat in 0..<result.count {
                    var index = [Int](repeating: 0, count: 4), r = flat
                    for d in stride(from: 3, through: 0, by: -1) { index[d] = r % outShape[d]; r /= outShape[d] }
                    var part = 0
                    while index[axis] >= shapes[part][axis] { index[axis] -= shapes[part][axis]; part += 1 }
                    let s = shapes[part]
                    result[flat] = inputs[part][((index[0] * s[1] + index[1]) * s[2] + index[2]) * s[3] + index[3]]
                }
                return result
            }
            assertClose(y.data, reference(parts.map(\.doubles)), tolerance: 0, "axis \(axis)")
            let dy = Tensor.random(outShape, using: &rng), r = dy.doubles
            let grads = Shaping.concatBackward(shapes: shapes, axis: axis, outputGradient: dy)
            XCTAssertEqual(grads.map(\.shape), shapes)
            for p in 0..<3 {
                checkGradient(grads[p].data, at: parts[p].doubles, samples: 20, "axis \(axis) part \(p)") { v in
                    var inputs = parts.map(\.doubles)
                    inputs[p] = v
                    return weightedSum(reference(inputs), r)
                }
            }
        }
    }

    /// Transpose against index arithmetic written out for a 3-D tensor, for every permutation; and back.
    func testTransposeMatchesIndexArithmetic() {
        let shape = [2, 3, 4]
        let x = Tensor(shape: shape, data: (0..<24).map(Float.init))
        for perm in [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]] {
            let y = Shaping.transpose(x, permutation: perm)
            XCTAssertEqual(y.shape, perm.map { shape[$0] })
            for i in 0..<y.shape[0] { for j in 0..<y.shape[1] { for k in 0..<y.shape[2] {
                var source = [0, 0, 0]
                source[perm[0]] = i; source[perm[1]] = j; source[perm[2]] = k
                XCTAssertEqual(y.data[(i * y.shape[1] + j) * y.shape[2] + k], x.data[(source[0] * 3 + source[1]) * 4 + source[2]], "\(perm)")
            } } }
            XCTAssertEqual(Shaping.transpose(y, permutation: Shaping.inversePermutation(perm)), x)
        }
    }

    /// Slice along an axis, and its gradient putting the slice back in place among zeros.
    func testSliceAndItsGradient() {
        let x = Tensor(shape: [2, 4, 1], data: (0..<8).map(Float.init))
        let y = Shaping.slice(x, axis: 1, range: 1..<3)
        XCTAssertEqual(y, Tensor(shape: [2, 2, 1], data: [1, 2, 5, 6]))
        XCTAssertEqual(Shaping.sliceBackward(inputShape: [2, 4, 1], axis: 1, range: 1..<3, outputGradient: y),
                       Tensor(shape: [2, 4, 1], data: [0, 1, 2, 0, 0, 5, 6, 0]))
    }

    /// Broadcast source indices: [3, 1] onto [2, 3, 4] repeats each row value along the last axis.
    func testBroadcastSourceIndices() {
        let indices = Elementwise.sourceIndices(of: [3, 1], broadcastTo: [2, 3, 4])
        XCTAssertEqual(indices, (0..<24).map { ($0 / 4) % 3 })
        XCTAssertEqual(Elementwise.sourceIndices(of: [4], broadcastTo: [2, 4]), [0, 1, 2, 3, 0, 1, 2, 3])
    }

    /// LRN's gradient against float64 central differences of its forward pass.
    func testLocalResponseNormalizationGradient() {
        let lrn = LocalResponseNormalization(size: 3, alpha: 0.4, beta: 0.75, bias: 1.5)
        let x = Tensor(shape: [1, 4, 1, 2], data: [0.5, -1.2, 2.0, 0.3, -0.7, 1.1, 0.9, -0.4])
        let g = Tensor(shape: x.shape, data: [0.3, -0.5, 1.0, 0.2, 0.7, -0.1, 0.4, 0.6])
        let analytic = lrn.backward(x, outputGradient: g)
        /// L = Σ g · y, with y computed in float64 from the definition.
        func loss(_ v: [Double]) -> Double {
            var total = 0.0
            for c in 0..<4 { for p in 0..<2 {
                var s = 0.0
                for k in max(0, c - 1)...min(3, c + 1) { s += v[k * 2 + p] * v[k * 2 + p] }
                total += Double(g.data[c * 2 + p]) * v[c * 2 + p] / pow(1.5 + 0.4 / 3 * s, 0.75)
            } }
            return total
        }
        let base = x.data.map(Double.init)
        for i in 0..<base.count {
            var up = base, down = base
            up[i] += 1e-6; down[i] -= 1e-6
            XCTAssertEqual(Double(analytic.data[i]), (loss(up) - loss(down)) / 2e-6, accuracy: 1e-4, "element \(i)")
        }
        // The forward pass is the same definition.
        let y = lrn.forward(x)
        XCTAssertEqual(Double(y.data[2]), 2.0 / pow(1.5 + 0.4 / 3 * (0.25 + 4.0 + 0.49), 0.75), accuracy: 1e-6)
    }
}
