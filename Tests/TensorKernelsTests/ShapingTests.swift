import XCTest
import TensorKernels

final class ShapingTests: XCTestCase {
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
}
