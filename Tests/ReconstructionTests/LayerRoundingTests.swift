import XCTest
import Quantization
import Reconstruction

final class LayerRoundingTests: XCTestCase {
    let grid = QuantizationGrid(bits: 4, signed: false)
    let shape = [6, 3, 3, 3]

    /// Float-scale weights of a conv with varied channel ranges, and its round-to-nearest layer.
    private func layer(policy: ScalePolicy = .float, seed: UInt64 = 11) -> (weights: [Float], layer: QuantizedLayer) {
        var data = TestData(seed: seed)
        let per = 27
        var w = [Float]()
        for c in 0..<shape[0] { w += data.normals(per, std: 0.05 * Float(c + 1)).map { $0 + (c.isMultiple(of: 2) ? 0.02 : -0.01) } }
        let params = ScaleSearch.searchPerChannel(w, channels: shape[0], grid: grid, policy: policy)
        return (w, QuantizedLayer.quantize(node: "conv", weights: w, shape: shape, bias: [Float](repeating: 0, count: shape[0]),
                                           input: "x", parameters: params))
    }

    func testSoftWeightsEqualWeightsInsideTheGridAtInit() {
        let (w, layer) = layer()
        let rounding = LayerRounding(layer: layer, weights: w, learnExponent: false)
        let soft = rounding.softWeights()
        var inside = 0
        for c in 0..<layer.channels {
            let s = layer.weight.scales[c], z = layer.weight.zeroPoints[c]
            for j in c * 27..<(c + 1) * 27 {
                let q = w[j] / s + z
                if q > Float(grid.qmin) + 1e-3 && q < Float(grid.qmax) - 1e-3 {
                    XCTAssertEqual(soft[j], w[j], accuracy: 1e-5 * s, "weight \(j)")
                    inside += 1
                } else {
                    // Outside the grid the soft weight is the clamped end of the range.
                    let end = q <= Float(grid.qmin) + 1e-3 ? Float(grid.qmin) : Float(grid.qmax)
                    XCTAssertEqual(soft[j], (end - z) * s, accuracy: 1e-3 * s, "weight \(j)")
                }
            }
        }
        XCTAssertGreaterThan(inside, w.count / 2)
    }

    func testHardenedCodesAtInitAreFloorPlusRoundingBit() {
        let (w, layer) = layer()
        let rounding = LayerRounding(layer: layer, weights: w, learnExponent: false)
        let hard = rounding.hardened(from: layer)
        XCTAssertEqual(hard.weight, layer.weight)
        var ties = 0
        for c in 0..<layer.channels {
            let s = layer.weight.scales[c], z = layer.weight.zeroPoints[c]
            for j in c * 27..<(c + 1) * 27 {
                let x = w[j] / s, f = x - x.rounded(.down)
                let bit: Float = rounding.rounding[j] >= 0 ? 1 : 0
                let expected = min(max(x.rounded(.down) + bit + z, Float(grid.qmin)), Float(grid.qmax))
                XCTAssertEqual(Float(hard.codes[j]), expected, "weight \(j)")
                // a >= 0 <=> h(a) >= 0.5 <=> frac(W/s) >= 0.5: round to nearest, away from ties.
                if abs(f - 0.5) > 1e-4 {
                    XCTAssertEqual(bit, f > 0.5 ? 1 : 0, "weight \(j)")
                    XCTAssertEqual(hard.codes[j], layer.codes[j], "weight \(j): round-to-nearest code")
                } else {
                    ties += 1
                }
            }
        }
        XCTAssertLessThan(ties, 3)
        XCTAssertEqual(hard.dequantizedWeights, layer.dequantizedWeights)
    }

    func testLearnedExponentStartsAtTheFloatScales() {
        let (w, layer) = layer()
        let rounding = LayerRounding(layer: layer, weights: w, learnExponent: true)
        XCTAssertEqual(rounding.exponentVariables?.count, layer.channels)
        for c in 0..<layer.channels {
            let s0 = layer.weight.scales[c]
            XCTAssertEqual(rounding.scales[c], s0, accuracy: 1e-6 * s0)
            XCTAssertEqual(rounding.zeroPoints[c], layer.weight.zeroPoints[c], accuracy: 1e-5)
            // h(v) = frac(log2 s0): 2^(floor(log2 s0) + h(v)) reproduces s0.
            let l = log2(Double(s0))
            let h = Double(RectifiedSigmoid.value(rounding.exponentVariables![c]))
            XCTAssertEqual(h, l - l.rounded(.down), accuracy: 1e-6)
            XCTAssertEqual(exp2(l.rounded(.down) + h), Double(s0), accuracy: 1e-6 * Double(s0))
        }
    }

    func testHardFreezeGivesPowersOfTwoAndIntegerZeroPoints() {
        let (w, layer) = layer()
        var rounding = LayerRounding(layer: layer, weights: w, learnExponent: true)
        let h = rounding.exponentVariables!.map(RectifiedSigmoid.value)
        rounding.freezeExponents(.hard)
        XCTAssertNil(rounding.exponentVariables)
        for c in 0..<layer.channels {
            let s0 = layer.weight.scales[c], e0 = Int(log2(Double(s0)).rounded(.down))
            guard let e = PowerOfTwo.exactExponent(rounding.scales[c]) else { return XCTFail("channel \(c) scale \(rounding.scales[c]) is not a power of two") }
            XCTAssertTrue(e == e0 || e == e0 + 1, "channel \(c): exponent \(e) from log2 s0 = \(log2(s0))")
            XCTAssertEqual(e, e0 + (h[c] >= 0.5 ? 1 : 0))
            let z = rounding.zeroPoints[c]
            XCTAssertEqual(z, ScaleSearch.rescaledZeroPoint(layer.weight.zeroPoints[c], from: s0, to: rounding.scales[c], grid: grid))
        }
        let hard = rounding.hardened(from: layer)
        XCTAssertNotNil(hard.weight.exponents)
        XCTAssertNotNil(hard.weight.integerZeroPoints)
        XCTAssertTrue(hard.codes.allSatisfy { (Int32(grid.qmin)...Int32(grid.qmax)).contains($0) })
        // Learning stopped: further steps leave the scales alone.
        let scales = rounding.scales
        rounding.step(weightGradient: [Float](repeating: 1, count: w.count), iteration: 0, rounding: RoundingRegularizer(iterations: 10),
                      exponent: RoundingRegularizer(weight: 0.1, iterations: 10))
        XCTAssertEqual(rounding.scales, scales)
    }

    /// `.fitted` takes, per channel, the floor or ceiling exponent whose grid (with its rounded zero point)
    /// has the smaller L2.4 error on the soft weights at the freeze, computed here independently in float64.
    func testFittedFreezePicksTheGridThatFitsTheSoftWeights() {
        var decided = 0, unlikeThreshold = 0
        for seed: UInt64 in 1...6 {
            let (w, layer) = layer(seed: seed)
            var rounding = LayerRounding(layer: layer, weights: w, learnExponent: true, learningRate: 0.05)
            var data = TestData(seed: seed)
            for t in 0..<5 {
                rounding.step(weightGradient: data.normals(w.count), iteration: t, rounding: RoundingRegularizer(iterations: 100),
                              exponent: RoundingRegularizer(weight: 0.1, iterations: 100))
            }
            let soft = rounding.softWeights()
            let h = rounding.exponentVariables!.map(RectifiedSigmoid.value)
            rounding.freezeExponents(.fitted)
            XCTAssertNil(rounding.exponentVariables)
            for c in 0..<layer.channels {
                let s0 = layer.weight.scales[c], e0 = Int(log2(Double(s0)).rounded(.down))
                func error(_ e: Int) -> Double {
                    let s = Double(PowerOfTwo.value(e))
                    let z = Double(ScaleSearch.rescaledZeroPoint(layer.weight.zeroPoints[c], from: s0, to: Float(s), grid: grid))
                    return soft[c * 27..<(c + 1) * 27].reduce(0.0) { total, x in
                        let q = min(max((Double(x) / s).rounded(.toNearestOrEven) + z, Double(grid.qmin)), Double(grid.qmax))
                        return total + pow(abs(Double(x) - (q - z) * s), 2.4)
                    }
                }
                guard let e = PowerOfTwo.exactExponent(rounding.scales[c]) else { return XCTFail("channel \(c) is not a power of two") }
                XCTAssertTrue(e == e0 || e == e0 + 1, "channel \(c): exponent \(e), floor \(e0)")
                let (floorError, ceilingError) = (error(e0), error(e0 + 1))
                guard abs(floorError - ceilingError) > 1e-3 * max(floorError, ceilingError) else { continue }
                XCTAssertEqual(e, floorError < ceilingError ? e0 : e0 + 1, "channel \(c): errors \(floorError) (floor), \(ceilingError) (ceiling)")
                XCTAssertEqual(rounding.zeroPoints[c], ScaleSearch.rescaledZeroPoint(layer.weight.zeroPoints[c], from: s0, to: rounding.scales[c], grid: grid))
                decided += 1
                if e != e0 + (h[c] >= 0.5 ? 1 : 0) { unlikeThreshold += 1 }
            }
        }
        XCTAssertGreaterThan(decided, 18)
        // The cases include channels where the fit overrules the h(v) >= 0.5 rule.
        XCTAssertGreaterThan(unlikeThreshold, 0)
    }

    func testFrozenFractionalKeepsNonPowerOfTwoScales() {
        let (w, layer) = layer()
        var rounding = LayerRounding(layer: layer, weights: w, learnExponent: true)
        var data = TestData(seed: 3)
        for t in 0..<3 {
            rounding.step(weightGradient: data.normals(w.count), iteration: t, rounding: RoundingRegularizer(iterations: 100),
                          exponent: RoundingRegularizer(weight: 0.1, iterations: 100))
        }
        let h = rounding.exponentVariables!.map(RectifiedSigmoid.value)
        let before = rounding.scales
        let fractional = (0..<layer.channels).filter { h[$0] > 0 && h[$0] < 1 }
        XCTAssertFalse(fractional.isEmpty)
        rounding.freezeExponents(.frozenFractional)
        XCTAssertNil(rounding.exponentVariables)
        XCTAssertEqual(rounding.scales, before)
        for c in fractional {
            XCTAssertNil(PowerOfTwo.exactExponent(rounding.scales[c]), "channel \(c), h(v) = \(h[c])")
            let s0 = Double(layer.weight.scales[c])
            XCTAssertEqual(Double(rounding.scales[c]), exp2(log2(s0).rounded(.down) + Double(h[c])), accuracy: 1e-6 * s0)
        }
        XCTAssertNil(rounding.hardened(from: layer).weight.exponents)
    }

    /// The hardened layer's weights are the soft weights with each h(a) replaced by [a >= 0]: what the unit
    /// was reconstructed with is what the model keeps (with fixed, hardened and frozen-fractional exponents).
    func testHardenedWeightsMatchSoftFormulaWithHardRounding() {
        for mode in [ExponentHardening?.none, .hard, .fitted, .frozenFractional] {
            let (w, layer) = layer()
            var rounding = LayerRounding(layer: layer, weights: w, learnExponent: mode != nil, learningRate: 0.05)
            var data = TestData(seed: 21)
            for t in 0..<5 {
                rounding.step(weightGradient: data.normals(w.count), iteration: t, rounding: RoundingRegularizer(iterations: 100),
                              exponent: mode == nil ? nil : RoundingRegularizer(weight: 0.1, iterations: 100))
            }
            if let mode { rounding.freezeExponents(mode) }
            let hardLayer = rounding.hardened(from: layer)
            XCTAssertNotNil(hardLayer.weight.integerZeroPoints, "\(String(describing: mode))")
            let hard = hardLayer.dequantizedWeights
            var compared = 0
            for c in 0..<layer.channels {
                let s = rounding.scales[c], z = rounding.zeroPoints[c]
                for j in c * 27..<(c + 1) * 27 {
                    let q = (w[j] / s).rounded(.down) + (rounding.rounding[j] >= 0 ? 1 : 0) + z
                    // Away from the clamp (where only the grid's ends can differ by a fractional zero point).
                    guard q >= Float(grid.qmin) + 1, q <= Float(grid.qmax) - 1 else { continue }
                    XCTAssertEqual(hard[j], (q - z) * s, accuracy: 1e-5 * s, "\(String(describing: mode)) weight \(j)")
                    compared += 1
                }
            }
            XCTAssertGreaterThan(compared, w.count / 2)
        }
    }

    func testStepMovesRoundingVariablesAgainstTheGradient() {
        let (w, layer) = layer()
        var rounding = LayerRounding(layer: layer, weights: w, learnExponent: false, learningRate: 0.01)
        let before = rounding.rounding
        let schedule = RoundingRegularizer(iterations: 100)
        let g = (0..<w.count).map { Float($0 % 3) - 1 }
        let grads = rounding.gradients(weightGradient: g, iteration: 0, rounding: schedule, exponent: nil)
        XCTAssertTrue(grads.exponent.isEmpty)
        rounding.step(weightGradient: g, iteration: 0, rounding: schedule, exponent: nil)
        for j in w.indices where grads.rounding[j] != 0 {
            XCTAssertEqual(rounding.rounding[j] - before[j], grads.rounding[j] > 0 ? -0.01 : 0.01, accuracy: 1e-5, "variable \(j)")
        }
        for j in w.indices where grads.rounding[j] == 0 { XCTAssertEqual(rounding.rounding[j], before[j]) }
    }
}
