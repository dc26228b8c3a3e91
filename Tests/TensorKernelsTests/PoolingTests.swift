import XCTest
import TensorKernels

final class PoolingTests: XCTestCase {
    static let windows: [([Int], WindowGeometry)] = [
        ([2, 3, 7, 9], WindowGeometry(kernel: (3, 3), strides: (2, 2), pads: (1, 1, 1, 1))),
        ([1, 2, 8, 7], WindowGeometry(kernel: (2, 3), strides: (2, 1), pads: (0, 1, 1, 0))),
        ([1, 2, 7, 8], WindowGeometry(kernel: (3, 3), strides: (2, 2), ceilMode: true)),
        ([1, 2, 6, 9], WindowGeometry(kernel: (3, 2), strides: (2, 3), pads: (1, 0, 1, 1), ceilMode: true)),
        ([2, 2, 9, 9], WindowGeometry(kernel: (3, 3), strides: (2, 2), dilations: (2, 2), pads: (1, 1, 2, 2))),
        ([1, 3, 7, 6], WindowGeometry(kernel: (3, 3), strides: (2, 2), autoPad: .sameUpper)),
        ([1, 3, 6, 7], WindowGeometry(kernel: (2, 2), strides: (1, 1), autoPad: .sameLower)),
        ([1, 1, 5, 5], WindowGeometry(kernel: (5, 5), autoPad: .valid)),
        ([1, 2, 10, 11], WindowGeometry(kernel: (4, 3), strides: (3, 3), dilations: (1, 2), pads: (2, 1, 2, 1), ceilMode: true)),
    ]

    /// Distinct values in random order with gaps of 0.01, so no window has a tie and a finite
    /// difference step never changes which cell is the maximum.
    func distinct(_ shape: [Int], using rng: inout SeededGenerator) -> Tensor {
        let n = shape.reduce(1, *)
        return Tensor(shape: shape, data: (0..<n).shuffled(using: &rng).map { Float($0) * 0.01 - Float(n) * 0.005 })
    }

    func testMaxPool() {
        var rng = SeededGenerator(seed: 10)
        for (index, (shape, window)) in Self.windows.enumerated() {
            let x = distinct(shape, using: &rng)
            let y = Pooling.maxPool(x, window: window)
            let (expected, outShape) = Reference.pool(x.doubles, shape, window, average: nil)
            XCTAssertEqual(y.shape, outShape, "case \(index)")
            assertClose(y.data, expected, tolerance: 0, "case \(index)")
            let dy = Tensor.random(outShape, using: &rng), r = dy.doubles
            let dx = Pooling.maxPoolBackward(x, window: window, outputGradient: dy)
            checkGradient(dx.data, at: x.doubles, samples: 60, step: 1e-3, "case \(index)") {
                weightedSum(Reference.pool($0, shape, window, average: nil).0, r)
            }
        }
    }

    func testAveragePool() {
        var rng = SeededGenerator(seed: 11)
        for (index, (shape, window)) in Self.windows.enumerated() {
            for include in [false, true] {
                let x = Tensor.random(shape, using: &rng)
                let y = Pooling.averagePool(x, window: window, countIncludePad: include)
                let (expected, outShape) = Reference.pool(x.doubles, shape, window, average: include)
                XCTAssertEqual(y.shape, outShape, "case \(index)")
                assertClose(y.data, expected, tolerance: 1e-6, "case \(index) include pad \(include)")
                let dy = Tensor.random(outShape, using: &rng), r = dy.doubles
                let dx = Pooling.averagePoolBackward(inputShape: shape, window: window, countIncludePad: include, outputGradient: dy)
                checkGradient(dx.data, at: x.doubles, samples: 60, "case \(index) include pad \(include)") {
                    weightedSum(Reference.pool($0, shape, window, average: include).0, r)
                }
            }
        }
    }

    /// ONNX's own example (`averagepool_2d_ceil`): 4×4 input 1…16, 3×3 kernel, stride 2, ceil mode.
    func testAveragePoolCeilModeMatchesONNXExample() {
        let x = Tensor(shape: [1, 1, 4, 4], data: (1...16).map(Float.init))
        let y = Pooling.averagePool(x, window: WindowGeometry(kernel: (3, 3), strides: (2, 2), ceilMode: true), countIncludePad: false)
        XCTAssertEqual(y.shape, [1, 1, 2, 2])
        XCTAssertEqual(y.data, [6, 7.5, 12, 13.5])
    }

    func testGlobalAveragePool() {
        var rng = SeededGenerator(seed: 12)
        let shape = [3, 4, 5, 7]
        let x = Tensor.random(shape, using: &rng)
        let y = Pooling.globalAveragePool(x)
        XCTAssertEqual(y.shape, [3, 4, 1, 1])
        let xd = x.doubles
        func reference(_ v: [Double]) -> [Double] {
            (0..<12).map { p in v[(p * 35)..<((p + 1) * 35)].reduce(0, +) / 35 }
        }
        assertClose(y.data, reference(xd), tolerance: 1e-6)
        let dy = Tensor.random([3, 4, 1, 1], using: &rng), r = dy.doubles
        let dx = Pooling.globalAveragePoolBackward(inputShape: shape, outputGradient: dy)
        XCTAssertEqual(dx.shape, shape)
        checkGradient(dx.data, at: xd, samples: 60) { weightedSum(reference($0), r) }
    }
}
