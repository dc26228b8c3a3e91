import Foundation
import TensorKernels
import XCTest

/// LayerNormalization, GELU and Erf against float64 definitions written out here, and their gradients
/// against float64 central differences of those definitions.
final class NormalizationTests: XCTestCase {
    let x = Tensor(shape: [2, 3, 1, 2], data: [0.5, -1.2, 2.0, 0.3, -0.7, 1.1, 0.9, -0.4, 1.5, 0.0, -2.2, 0.8])
    let g = Tensor(shape: [2, 3, 1, 2], data: [0.3, -0.5, 1.0, 0.2, 0.7, -0.1, 0.4, 0.6, -0.9, 0.25, 0.1, -0.3])
    let scale = Tensor(shape: [3], data: [1.2, 0.7, -0.4])
    let bias = Tensor(shape: [3], data: [0.1, -0.2, 0.3])

    /// `y[n, c, 0, p]` of the channel normalization (axis 1 alone) in float64, from the definition.
    func channelNormalized(_ v: [Double], epsilon: Double) -> [Double] {
        var y = v
        for n in 0..<2 { for p in 0..<2 {
            let group = (0..<3).map { v[(n * 3 + $0) * 2 + p] }
            let mean = group.reduce(0, +) / 3
            let variance = group.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 3
            for c in 0..<3 {
                y[(n * 3 + c) * 2 + p] = (group[c] - mean) / (variance + epsilon).squareRoot() * Double(scale.data[c]) + Double(bias.data[c])
            }
        } }
        return y
    }

    func testChannelNormalizationMatchesDefinitionAndDifferences() {
        let norm = LayerNormalization(axis: 1, span: 1, epsilon: 1e-3)
        let y = norm.forward(x, scale: scale, bias: bias)
        let expected = channelNormalized(x.data.map(Double.init), epsilon: 1e-3)
        for i in 0..<x.count { XCTAssertEqual(Double(y.data[i]), expected[i], accuracy: 1e-6, "element \(i)") }

        let analytic = norm.backward(x, scale: scale, outputGradient: g)
        func loss(_ v: [Double]) -> Double {
            zip(channelNormalized(v, epsilon: 1e-3), g.data).map { $0 * Double($1) }.reduce(0, +)
        }
        let base = x.data.map(Double.init)
        for i in 0..<base.count {
            var up = base, down = base
            up[i] += 1e-6; down[i] -= 1e-6
            XCTAssertEqual(Double(analytic.data[i]), (loss(up) - loss(down)) / 2e-6, accuracy: 1e-4, "element \(i)")
        }
    }

    /// ONNX semantics (axis to the end): the last axis of a channels-last tensor, one scale per element of
    /// the block; the same numbers as the channel normalization of the transposed tensor.
    func testLastAxisNormalizationEqualsChannelNormalizationOfTheTranspose() {
        let channelsLast = Shaping.transpose(x, permutation: [0, 2, 3, 1])
        let a = LayerNormalization(axis: -1, epsilon: 1e-3).forward(channelsLast, scale: scale, bias: bias)
        let b = LayerNormalization(axis: 1, span: 1, epsilon: 1e-3).forward(x, scale: scale, bias: bias)
        XCTAssertEqual(Shaping.transpose(a, permutation: [0, 3, 1, 2]).data, b.data)
        XCTAssertEqual(LayerNormalization(axis: -1, epsilon: 0).axes(rank: 4), 3..<4)
        XCTAssertEqual(LayerNormalization(axis: 1, epsilon: 0).axes(rank: 4), 1..<4)
        XCTAssertNil(LayerNormalization(axis: 3, span: 2, epsilon: 0).axes(rank: 4))
    }

    func testGELUAndErfValuesAndGradients() {
        // Reference values: erf(0.5) and Φ(1), Φ(-2) from tables of the normal distribution.
        let values = Activation.erf(Tensor(shape: [1], data: [0.5]))
        XCTAssertEqual(Double(values.data[0]), 0.5204998778130465, accuracy: 1e-7)
        let gelu = Activation.gelu(Tensor(shape: [3], data: [1, -2, 0]))
        XCTAssertEqual(Double(gelu.data[0]), 0.8413447460685429, accuracy: 1e-7)
        XCTAssertEqual(Double(gelu.data[1]), -2 * 0.022750131948179195, accuracy: 1e-7)
        XCTAssertEqual(gelu.data[2], 0)

        let points: [Float] = [-2.5, -0.7, 0, 0.4, 1.9]
        let ones = Tensor(shape: [points.count], data: Array(repeating: 1, count: points.count))
        let geluGradient = Activation.geluBackward(Tensor(shape: [points.count], data: points), outputGradient: ones)
        let erfGradient = Activation.erfBackward(Tensor(shape: [points.count], data: points), outputGradient: ones)
        for (i, p) in points.enumerated() {
            let v = Double(p), h = 1e-6
            func gelu(_ t: Double) -> Double { 0.5 * t * (1 + erf(t / 2.squareRoot())) }
            XCTAssertEqual(Double(geluGradient.data[i]), (gelu(v + h) - gelu(v - h)) / (2 * h), accuracy: 1e-5, "GELU at \(p)")
            XCTAssertEqual(Double(erfGradient.data[i]), (erf(v + h) - erf(v - h)) / (2 * h), accuracy: 1e-5, "erf at \(p)")
        }
    }
}
