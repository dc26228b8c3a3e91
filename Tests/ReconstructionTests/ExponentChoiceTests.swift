import XCTest
import Graph
import Quantization
import Reconstruction
import TensorKernels

/// `.output` hardening: each channel's exponent is the floor or ceiling candidate whose weight error changes
/// the layer's output less on the samples, checked against a float64 re-computation of both candidates'
/// output errors (Conv 3->6 3x3 + Relu + Conv 6->4 1x1, input channels of very different magnitudes).
final class ExponentChoiceTests: XCTestCase {
    func testOutputHardeningPicksTheCandidateThatChangesTheLayerOutputLess() throws {
        var data = TestData(seed: 77)
        let shapes = [[6, 3, 3, 3], [4, 6, 1, 1]]
        // conv1's largest weights read the faint input channel: clipping them costs the output little.
        let weights = [data.normals(162, std: 1).enumerated().map { $1 * ((($0 / 9) % 3) == 1 ? 1 : 0.1) }, data.normals(24, std: 0.5)]
        let biases = [data.normals(6, std: 0.1), data.normals(4, std: 0.1)]
        // Input channel magnitudes 10, 0.1 and 1: a weight-space fit cannot see which weights matter.
        var input = data.tensor([3, 3, 6, 6])
        for i in input.data.indices { input.data[i] *= [10, 0.1, 1][(i / 36) % 3] }
        let graph = convReluConvGraph(inputShape: input.shape, shapes: shapes, weights: weights, biases: biases)
        let program = try SubgraphProgram(graph: graph, nodeNames: ["conv1", "relu1", "conv2"], output: "y")
        let grid = QuantizationGrid(bits: 3, signed: false)
        let layers = (0..<2).map { i in
            QuantizedLayer.quantize(node: "conv\(i + 1)", weights: weights[i], shape: shapes[i], bias: biases[i], input: i == 0 ? "x" : "r1",
                                    parameters: ScaleSearch.searchPerChannel(weights[i], channels: shapes[i][0], grid: grid, policy: .float))
        }
        let roundings = (0..<2).map { LayerRounding(layer: layers[$0], weights: weights[$0], learnExponent: true) }
        func phase() -> UnitWeightReconstruction {
            UnitWeightReconstruction(program: program, roundings: roundings, weightNames: ["w1", "w2"], weightShapes: shapes,
                                     lossExponent: 2, roundingSchedule: RoundingRegularizer(iterations: 10),
                                     exponentSchedule: RoundingRegularizer(weight: 0.1, iterations: 10))
        }
        var byOutput = phase(), byWeights = phase()
        try byOutput.freezeExponents(.output) { [["x": input]] }
        try byWeights.freezeExponents(.fitted)

        // Float64 reference: soft weights (the start), each candidate's nearest-rounded error, the layer's
        // output of that error (no bias) on the input the layer sees, summed squares per output channel.
        let soft = roundings.map { $0.softWeights().map(Double.init) }
        let x = input.data.map(Double.init)
        let c1 = conv2dDouble(x, input.shape, soft[0], shapes[0], biases[0].map(Double.init), pad: 1)
        let layerInputs = [(x, input.shape), (c1.values.map { max($0, 0) }, c1.shape)]
        var decided = 0, unlikeWeightFit = 0
        for l in 0..<2 {
            let channels = shapes[l][0], per = weights[l].count / channels
            func outputError(_ c: Int, _ e: Int) -> Double {
                let s = PowerOfTwo.value(e)
                let z = ScaleSearch.rescaledZeroPoint(layers[l].weight.zeroPoints[c], from: layers[l].weight.scales[c], to: s, grid: grid)
                var delta = [Double](repeating: 0, count: weights[l].count)
                for j in c * per..<(c + 1) * per {
                    let q = min(max((soft[l][j] / Double(s)).rounded(.toNearestOrEven) + Double(z), Double(grid.qmin)), Double(grid.qmax))
                    delta[j] = (q - Double(z)) * Double(s) - Double(weights[l][j])
                }
                let y = conv2dDouble(layerInputs[l].0, layerInputs[l].1, delta, shapes[l], [Double](repeating: 0, count: channels),
                                     pad: shapes[l][2] / 2)
                let positions = y.shape[2] * y.shape[3]
                return (0..<y.shape[0]).reduce(0.0) { total, n in
                    total + y.values[((n * channels + c) * positions)..<((n * channels + c + 1) * positions)].reduce(0) { $0 + $1 * $1 }
                }
            }
            for c in 0..<channels {
                let e0 = Int(log2(Double(layers[l].weight.scales[c])).rounded(.down))
                guard let e = PowerOfTwo.exactExponent(byOutput.roundings[l].scales[c]) else { return XCTFail("layer \(l) channel \(c) is not a power of two") }
                let (floorError, ceilingError) = (outputError(c, e0), outputError(c, e0 + 1))
                XCTAssertTrue(e == e0 || e == e0 + 1)
                guard abs(floorError - ceilingError) > 1e-4 * max(floorError, ceilingError) else { continue }
                XCTAssertEqual(e, floorError < ceilingError ? e0 : e0 + 1, "layer \(l) channel \(c): output errors \(floorError) (floor), \(ceilingError) (ceiling)")
                XCTAssertEqual(byOutput.roundings[l].zeroPoints[c], byOutput.roundings[l].zeroPoints[c].rounded())
                decided += 1
                if byOutput.roundings[l].scales[c] != byWeights.roundings[l].scales[c] { unlikeWeightFit += 1 }
            }
        }
        XCTAssertGreaterThan(decided, 7)
        // The output rule overrules the weight-space L2.4 fit somewhere in this unit.
        XCTAssertGreaterThan(unlikeWeightFit, 0)
    }
}
