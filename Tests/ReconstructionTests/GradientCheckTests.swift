import XCTest
import Graph
import Quantization
import Reconstruction
import TensorKernels

/// The whole reconstruction loss (Lp of a Conv 3->4 3x3 + Relu + Conv 4->4 1x1 unit, plus the rounding and
/// exponent regularisers) differentiated w.r.t. the AdaRound and exponent variables, against central finite
/// differences of a float64 re-implementation of the soft weights and of the unit.
final class GradientCheckTests: XCTestCase {
    struct Unit {
        var graph: Graph
        var program: SubgraphProgram
        var input: Tensor
        var weights: [[Float]]
        var shapes: [[Int]]
        var biases: [[Float]]
        var layers: [QuantizedLayer]
        var target: Tensor
    }

    static let weightNames = ["w1", "w2"]

    private func makeUnit() throws -> Unit {
        var data = TestData(seed: 2024)
        let shapes = [[4, 3, 3, 3], [4, 4, 1, 1]]
        let weights = [data.normals(108, std: 0.3), data.normals(16, std: 0.5)]
        let biases = [data.normals(4, std: 0.1), data.normals(4, std: 0.1)]
        let input = data.tensor([2, 3, 5, 5])
        let graph = convReluConvGraph(inputShape: input.shape, shapes: shapes, weights: weights, biases: biases)
        let program = try SubgraphProgram(graph: graph, nodeNames: ["conv1", "relu1", "conv2"], output: "y")
        let grid = QuantizationGrid(bits: 4, signed: false)
        let layers = (0..<2).map { i in
            QuantizedLayer.quantize(node: "conv\(i + 1)", weights: weights[i], shape: shapes[i], bias: biases[i], input: i == 0 ? "x" : "r1",
                                    parameters: ScaleSearch.searchPerChannel(weights[i], channels: 4, grid: grid, policy: .float))
        }
        // The FP32 output, perturbed so that the loss is not at its minimum for any single variable.
        var target = try program.forward(["x": input]).output
        for i in target.data.indices { target.data[i] += 0.05 * data.normal() }
        return Unit(graph: graph, program: program, input: input, weights: weights, shapes: shapes, biases: biases, layers: layers, target: target)
    }

    /// Soft weights in float64 for rounding variables `a`, exponent variables `v` (nil: fixed scales).
    private func softWeights(_ layer: QuantizedLayer, _ w: [Float], a: [Double], v: [Double]?, fixed: (scales: [Float], zeros: [Float])) -> [Double] {
        let per = w.count / layer.channels, lo = Double(layer.weight.grid.qmin), hi = Double(layer.weight.grid.qmax)
        var out = [Double](repeating: 0, count: w.count)
        for c in 0..<layer.channels {
            var s = Double(fixed.scales[c]), z = Double(fixed.zeros[c])
            if let v {
                let s0 = Double(layer.weight.scales[c]), z0 = Double(layer.weight.zeroPoints[c])
                s = exp2(log2(s0).rounded(.down) + hDouble(v[c]))
                z = z0 * s0 / s
            }
            for j in c * per..<(c + 1) * per {
                let q = (Double(w[j]) / s).rounded(.down) + hDouble(a[j]) + z
                out[j] = (min(max(q, lo), hi) - z) * s
            }
        }
        return out
    }

    private func forwardDouble(_ unit: Unit, _ w: [[Double]]) -> [Double] {
        let x = unit.input.data.map(Double.init)
        let c1 = conv2dDouble(x, unit.input.shape, w[0], unit.shapes[0], unit.biases[0].map(Double.init), pad: 1)
        let r1 = c1.values.map { max($0, 0) }
        return conv2dDouble(r1, c1.shape, w[1], unit.shapes[1], unit.biases[1].map(Double.init), pad: 0).values
    }

    /// Runs the check; returns the largest relative errors (rounding, exponent) over the variables checked.
    private func check(p: Float, iteration: Int, regularised: Bool, file: StaticString = #filePath, line: UInt = #line) throws -> (Double, Double, Int, Int) {
        let unit = try makeUnit()
        let schedule = RoundingRegularizer(weight: 0.01, iterations: 100)
        let exponentSchedule = RoundingRegularizer(weight: 0.1, iterations: 100)
        var roundings = (0..<2).map { LayerRounding(layer: unit.layers[$0], weights: unit.weights[$0], learnExponent: true, learningRate: 0.05, exponentLearningRate: 0.05) }
        // Move every variable off its initial value with a few Adam steps on random gradients.
        var data = TestData(seed: 99)
        for t in 0..<4 {
            for i in 0..<2 {
                roundings[i].step(weightGradient: data.normals(unit.weights[i].count), iteration: t, rounding: RoundingRegularizer(iterations: 1000),
                                  exponent: exponentSchedule)
            }
        }
        // Analytic: float32 forward and backward through the program, then LayerRounding.gradients.
        var parameters: [String: Tensor] = [:]
        for i in 0..<2 { parameters[Self.weightNames[i]] = Tensor(shape: unit.shapes[i], data: roundings[i].softWeights()) }
        let trace = try unit.program.forward(["x": unit.input], parameters: parameters)
        let (loss, outputGradient) = ReconstructionLoss.lp(trace.output, target: unit.target, p: p)
        let grads = unit.program.backward(trace, outputGradient: outputGradient, parameters: parameters)
        let analytic = (0..<2).map { i in
            roundings[i].gradients(weightGradient: grads.parameters[Self.weightNames[i]]!.data, iteration: iteration, rounding: schedule,
                                   exponent: regularised ? exponentSchedule : nil)
        }

        // Float64 objective.
        let a0 = roundings.map { $0.rounding.map(Double.init) }
        let v0 = roundings.map { $0.exponentVariables!.map(Double.init) }
        let fixed = roundings.map { ($0.scales, $0.zeroPoints) }
        let t = unit.target.data.map(Double.init)
        let beta = Double(schedule.beta(at: iteration))
        func regulariser(_ h: [Double], weight: Float) -> Double {
            Double(weight) * h.reduce(0) { $0 + 1 - pow(abs(2 * $1 - 1), beta) }
        }
        func objective(_ a: [[Double]], _ v: [[Double]]) -> Double {
            let w = (0..<2).map { softWeights(unit.layers[$0], unit.weights[$0], a: a[$0], v: v[$0], fixed: fixed[$0]) }
            var total = lpDouble(forwardDouble(unit, w), t, shape: unit.target.shape, p: Double(p))
            if schedule.isActive(at: iteration) { for i in 0..<2 { total += regulariser(a[i].map(hDouble), weight: schedule.weight) } }
            if regularised { for i in 0..<2 { total += regulariser(v[i].map(hDouble), weight: exponentSchedule.weight) } }
            return total
        }

        // The re-implementation agrees with the float32 path at the evaluation point.
        let w64 = (0..<2).map { softWeights(unit.layers[$0], unit.weights[$0], a: a0[$0], v: v0[$0], fixed: fixed[$0]) }
        for i in 0..<2 {
            let soft = roundings[i].softWeights()
            for j in soft.indices { XCTAssertEqual(Double(soft[j]), w64[i][j], accuracy: 1e-5, "soft weight \(i).\(j)", file: file, line: line) }
        }
        XCTAssertEqual(loss, lpDouble(forwardDouble(unit, w64), t, shape: unit.target.shape, p: Double(p)), accuracy: 1e-4 * loss, file: file, line: line)

        // Kinks: a variable is checked only when nothing it moves crosses a floor, clamp or ReLU boundary.
        let c1 = conv2dDouble(unit.input.data.map(Double.init), unit.input.shape, w64[0], unit.shapes[0], unit.biases[0].map(Double.init), pad: 1)
        let reluMargin = c1.values.map(abs).min()!
        XCTAssertGreaterThan(reluMargin, 1e-3, "a ReLU input sits on the kink; pick another seed", file: file, line: line)
        let gradientScale = analytic.flatMap { $0.rounding.map { Double(abs($0)) } }.max()!
        var worstA = 0.0, worstV = 0.0, checkedA = 0, checkedV = 0
        for i in 0..<2 {
            let per = unit.weights[i].count / 4
            let (lo, hi) = (Double(unit.layers[i].weight.grid.qmin), Double(unit.layers[i].weight.grid.qmax))
            for c in 0..<4 {
                let s = Double(fixed[i].0[c]), z = Double(fixed[i].1[c])
                var channelClear = true
                for j in c * per..<(c + 1) * per {
                    let x = Double(unit.weights[i][j]) / s
                    let q = x.rounded(.down) + hDouble(a0[i][j]) + z
                    let frac = x - x.rounded(.down)
                    if min(frac, 1 - frac) < 2e-3 || abs(q - lo) < 2e-3 || abs(q - hi) < 2e-3 { channelClear = false }
                    // Rounding variable: delta 1e-3 moves h by at most 3e-4.
                    let delta = 1e-3
                    let hLo = 1 / (1 + exp(-(a0[i][j] - delta))) * 1.2 - 0.1, hHi = 1 / (1 + exp(-(a0[i][j] + delta))) * 1.2 - 0.1
                    guard hLo > 0, hHi < 1, q - 1e-3 > lo, q + 1e-3 < hi else { continue }
                    var up = a0, down = a0
                    up[i][j] += delta
                    down[i][j] -= delta
                    let fd = (objective(up, v0) - objective(down, v0)) / (2 * delta)
                    worstA = max(worstA, relativeError(Double(analytic[i].rounding[j]), fd, floor: 1e-2 * gradientScale))
                    checkedA += 1
                }
                // Exponent variable: delta 1e-4 moves log2 s by at most 3e-5 (W/s by < 5e-4 here).
                let delta = 1e-4
                let hv = 1 / (1 + exp(-v0[i][c])) * 1.2 - 0.1
                guard channelClear, hv > 1e-3, hv < 1 - 1e-3 else { continue }
                var up = v0, down = v0
                up[i][c] += delta
                down[i][c] -= delta
                let fd = (objective(a0, up) - objective(a0, down)) / (2 * delta)
                worstV = max(worstV, relativeError(Double(analytic[i].exponent[c]), fd, floor: 1e-3 * max(abs(fd), 1e-6)))
                checkedV += 1
            }
        }
        return (worstA, worstV, checkedA, checkedV)
    }

    func testLossGradientP2WithoutRegularisers() throws {
        let (a, v, na, nv) = try check(p: 2, iteration: 0, regularised: false)
        print("gradient check p=2 (loss only): max rel error rounding \(a) over \(na), exponent \(v) over \(nv)")
        XCTAssertGreaterThan(na, 80)
        XCTAssertGreaterThanOrEqual(nv, 4)
        XCTAssertLessThan(a, 1e-3)
        XCTAssertLessThan(v, 1e-3)
    }

    func testLossGradientP24WithRegularisers() throws {
        // Iteration 60 of 100: rounding regulariser active with beta 11; exponent regulariser on.
        let (a, v, na, nv) = try check(p: 2.4, iteration: 60, regularised: true)
        print("gradient check p=2.4 (+ regularisers, beta 11): max rel error rounding \(a) over \(na), exponent \(v) over \(nv)")
        XCTAssertGreaterThan(na, 80)
        XCTAssertGreaterThanOrEqual(nv, 4)
        XCTAssertLessThan(a, 1e-3)
        XCTAssertLessThan(v, 1e-3)
    }

    func testLossGradientP11Beta2() throws {
        let (a, v, na, nv) = try check(p: 1.1, iteration: 100, regularised: true)
        print("gradient check p=1.1 (+ regularisers, beta 2): max rel error rounding \(a) over \(na), exponent \(v) over \(nv)")
        XCTAssertGreaterThan(na, 80)
        XCTAssertGreaterThanOrEqual(nv, 4)
        XCTAssertLessThan(a, 1e-3)
        XCTAssertLessThan(v, 1e-3)
    }
}
