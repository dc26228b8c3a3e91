import XCTest
import TensorKernels

final class BatchNormTests: XCTestCase {
    func testInferenceMatchesDefinition() {
        var rng = SeededGenerator(seed: 20)
        for shape in [[2, 3, 4, 5], [3, 4], [2, 6, 7]] {
            let c = shape[1]
            let x = Tensor.random(shape, using: &rng), scale = Tensor.random([c], using: &rng), bias = Tensor.random([c], using: &rng)
            let mean = Tensor.random([c], using: &rng), variance = Tensor.random([c], in: 0.1...2, using: &rng)
            let y = BatchNorm.inference(x, scale: scale, bias: bias, mean: mean, variance: variance, epsilon: 1e-3)
            let inner = shape.dropFirst(2).reduce(1, *)
            let expected = x.doubles.enumerated().map { i, v -> Double in
                let ch = (i / inner) % c
                return (v - Double(mean.data[ch])) / (Double(variance.data[ch]) + 1e-3).squareRoot() * Double(scale.data[ch])
                    + Double(bias.data[ch])
            }
            XCTAssertEqual(y.shape, shape)
            assertClose(y.data, expected, tolerance: 1e-5, "\(shape)")
        }
    }
}
