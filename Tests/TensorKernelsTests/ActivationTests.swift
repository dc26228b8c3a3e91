import XCTest
import Foundation
import TensorKernels

final class ActivationTests: XCTestCase {
    /// Checks a point-wise function against a float64 reference, and its backward against central
    /// differences of that reference. Inputs stay `gap` away from the kinks listed in `kinks`.
    func check(_ name: String, kinks: [Double], forward: (Tensor) -> Tensor, backward: (Tensor, Tensor) -> Tensor,
               reference: @escaping (Double) -> Double, file: StaticString = #filePath, line: UInt = #line) {
        var rng = SeededGenerator(seed: UInt64(name.utf8.reduce(0) { $0 &* 31 &+ UInt64($1) }))
        // Large enough to take the parallel path; values in [-8, 8] away from the kinks.
        let count = 70_000
        var values = [Float]()
        while values.count < count {
            let v = Float.random(in: -8...8, using: &rng)
            if kinks.allSatisfy({ abs(Double(v) - $0) > 1e-2 }) { values.append(v) }
        }
        let x = Tensor(shape: [7, 10_000], data: values)
        let y = forward(x)
        XCTAssertEqual(y.shape, x.shape, name, file: file, line: line)
        assertClose(y.data, x.doubles.map(reference), tolerance: 1e-6, name, file: file, line: line)
        let dy = Tensor.random(x.shape, using: &rng)
        let dx = backward(x, dy)
        let h = 1e-6
        let numeric = zip(x.doubles, dy.doubles).map { v, g in g * (reference(v + h) - reference(v - h)) / (2 * h) }
        assertClose(dx.data, numeric, tolerance: 1e-5, "\(name) backward", file: file, line: line)
    }

    func testRelu() {
        check("relu", kinks: [0], forward: Activation.relu, backward: { Activation.reluBackward($0, outputGradient: $1) },
              reference: { max($0, 0) })
    }

    func testClip() {
        check("clip", kinks: [0, 6], forward: { Activation.clip($0, min: 0, max: 6) },
              backward: { Activation.clipBackward($0, min: 0, max: 6, outputGradient: $1) }, reference: { min(max($0, 0), 6) })
        check("clip asymmetric", kinks: [-1.5, 2.25], forward: { Activation.clip($0, min: -1.5, max: 2.25) },
              backward: { Activation.clipBackward($0, min: -1.5, max: 2.25, outputGradient: $1) }, reference: { min(max($0, -1.5), 2.25) })
    }

    func testClipGradientIsZeroAtTheBounds() {
        let x = Tensor(shape: [4], data: [0, 6, 3, -1])
        let dx = Activation.clipBackward(x, min: 0, max: 6, outputGradient: Tensor(shape: [4], repeating: 1))
        XCTAssertEqual(dx.data, [0, 0, 1, 0])
        // The same bounds in the vector path (8 lanes) and its scalar tail.
        let wide = Tensor(shape: [11], data: [0, 6, 3, -1, 6.5, 0.001, 5.999, .nan, 0, 6, 2])
        let dWide = Activation.clipBackward(wide, min: 0, max: 6, outputGradient: Tensor(shape: [11], repeating: 2))
        XCTAssertEqual(dWide.data, [0, 0, 2, 0, 0, 2, 2, 0, 0, 0, 2])
    }

    func testSigmoid() {
        check("sigmoid", kinks: [], forward: Activation.sigmoid,
              backward: { Activation.sigmoidBackward(output: Activation.sigmoid($0), outputGradient: $1) },
              reference: { 1 / (1 + Foundation.exp(-$0)) })
        let extreme = Activation.sigmoid(Tensor(shape: [2], data: [-200, 200]))
        XCTAssertEqual(extreme.data, [0, 1])
    }

    func testHardSigmoid() {
        check("hardSigmoid", kinks: [-2.5, 2.5], forward: { Activation.hardSigmoid($0, alpha: 0.2, beta: 0.5) },
              backward: { Activation.hardSigmoidBackward($0, alpha: 0.2, beta: 0.5, outputGradient: $1) },
              reference: { max(0, min(1, 0.2 * $0 + 0.5)) })
    }

    func testHardSwish() {
        check("hardSwish", kinks: [-3, 3], forward: Activation.hardSwish,
              backward: { Activation.hardSwishBackward($0, outputGradient: $1) },
              reference: { $0 * max(0, min(1, $0 / 6 + 0.5)) })
    }
}
