import XCTest
import Reconstruction
import TensorKernels
import Quantization

final class RectifiedSigmoidTests: XCTestCase {
    func testValueAtZeroIsExactlyOneHalf() {
        XCTAssertEqual(RectifiedSigmoid.value(0), 0.5)
    }

    func testSaturatesAtZeroAndOne() {
        for a: Float in [3, 10, 50, 1000] { XCTAssertEqual(RectifiedSigmoid.value(a), 1, "a = \(a)") }
        for a: Float in [-3, -10, -50, -1000] { XCTAssertEqual(RectifiedSigmoid.value(a), 0, "a = \(a)") }
        // h = 1 from sigmoid(a) = 11/12, i.e. a = ln 11; h = 0 from a = -ln 11.
        XCTAssertLessThan(RectifiedSigmoid.value(Float(log(11.0)) - 0.01), 1)
        XCTAssertGreaterThan(RectifiedSigmoid.value(-Float(log(11.0)) + 0.01), 0)
    }

    func testInverseRoundTrip() {
        for h: Float in [0.01, 0.3, 0.5, 0.9] {
            let a = RectifiedSigmoid.inverse(h)
            XCTAssertTrue(a.isFinite)
            XCTAssertEqual(RectifiedSigmoid.value(a), h, accuracy: 1e-6, "h = \(h)")
        }
        XCTAssertEqual(RectifiedSigmoid.inverse(0.5), 0, accuracy: 1e-6)
    }

    func testInverseOfZeroIsFinite() {
        // gamma = -0.1 puts h = 0 inside the sigmoid's range: a = -log(1.2 / 0.1 - 1) = -ln 11.
        let a = RectifiedSigmoid.inverse(0)
        XCTAssertTrue(a.isFinite)
        XCTAssertEqual(Double(a), -log(11.0), accuracy: 1e-5)
        XCTAssertEqual(RectifiedSigmoid.value(a), 0, accuracy: 1e-6)
        XCTAssertTrue(RectifiedSigmoid.inverse(1).isFinite)
    }

    func testDerivativeMatchesFloat64CentralDifferences() {
        let delta = 1e-5
        for a: Float in [-2.2, -1.3, -0.5, 0, 0.25, 0.7, 1.5, 2.3] {
            let fd = (hDouble(Double(a) + delta) - hDouble(Double(a) - delta)) / (2 * delta)
            XCTAssertEqual(Double(RectifiedSigmoid.derivative(a)), fd, accuracy: 1e-6 + 1e-5 * abs(fd), "a = \(a)")
        }
        // Zero where the clamp is active.
        for a: Float in [-3, -10, 3, 10] { XCTAssertEqual(RectifiedSigmoid.derivative(a), 0, "a = \(a)") }
        XCTAssertEqual(Double(RectifiedSigmoid.derivative(0)), 0.25 * 1.2, accuracy: 1e-7)
    }
}

final class RoundingRegularizerTests: XCTestCase {
    let schedule = RoundingRegularizer(iterations: 1000)

    func testBetaSchedule() {
        XCTAssertEqual(schedule.beta(at: 0), 20)
        XCTAssertEqual(schedule.beta(at: 100), 20)
        XCTAssertEqual(schedule.beta(at: 200), 20)
        XCTAssertEqual(schedule.beta(at: 600), 11, accuracy: 1e-5)
        XCTAssertEqual(schedule.beta(at: 1000), 2, accuracy: 1e-6)
        XCTAssertEqual(schedule.beta(at: 5000), 2, accuracy: 1e-6)
        XCTAssertEqual(schedule.beta(at: 300), 20 - 18 * 0.125, accuracy: 1e-5)
        let odd = RoundingRegularizer(iterations: 150)
        XCTAssertEqual(odd.beta(at: 30), 20)
        XCTAssertEqual(odd.beta(at: 90), 11, accuracy: 1e-5)
        XCTAssertEqual(odd.beta(at: 150), 2, accuracy: 1e-5)
    }

    func testActiveAfterWarmup() {
        XCTAssertFalse(schedule.isActive(at: 0))
        XCTAssertFalse(schedule.isActive(at: 199))
        XCTAssertTrue(schedule.isActive(at: 200))
        XCTAssertTrue(schedule.isActive(at: 999))
        XCTAssertEqual(schedule.value([0.3, 0.5], at: 199), 0)
    }

    func testValueOnHandComputedVectors() {
        // beta 2 at the end: 1 - |2h - 1|^2 = 0, 0, 1.
        XCTAssertEqual(schedule.value([0, 1, 0.5], at: 1000), 0.01 * 1, accuracy: 1e-9)
        // beta 11 at 60%: h = 0.25 -> 1 - 0.5^11; h = 0.75 the same.
        XCTAssertEqual(schedule.value([0.25, 0.75], at: 600), 0.01 * 2 * (1 - pow(0.5, 11)), accuracy: 1e-8)
        let heavy = RoundingRegularizer(weight: 0.1, iterations: 10, warmup: 0)
        XCTAssertEqual(heavy.value([0.5, 0.5, 0.5], at: 10), 0.3, accuracy: 1e-7)
        XCTAssertEqual(heavy.value([0.9], at: 10), 0.1 * (1 - 0.64), accuracy: 1e-7)
    }

    func testGradientMatchesFiniteDifferences() {
        let delta: Float = 1e-3
        for t in [200, 600, 1000] {
            let beta = schedule.beta(at: t)
            for h: Float in [0.05, 0.2, 0.45, 0.55, 0.7, 0.93] {
                let fd = (schedule.value([h + delta], at: t) - schedule.value([h - delta], at: t)) / Double(2 * delta)
                let g = Double(schedule.gradient(h, beta: beta))
                XCTAssertEqual(g, fd, accuracy: 2e-3 * abs(fd) + 1e-6, "t = \(t), h = \(h)")
            }
        }
        // Hand value: beta 2, h = 0.75: d/dh [-0.01 (2h - 1)^2] = -0.01 * 2 * 0.5 * 2 = -0.02.
        XCTAssertEqual(schedule.gradient(0.75, beta: 2), -0.02, accuracy: 1e-8)
        XCTAssertEqual(schedule.gradient(0.25, beta: 2), 0.02, accuracy: 1e-8)
        XCTAssertEqual(schedule.gradient(0.5, beta: 2), 0)
    }
}

final class ReconstructionLossTests: XCTestCase {
    let shape = [2, 3, 1, 2]
    let differences: [Float] = [1, -1, 2, 0, 0.5, -0.5, 3, 0, -2, 1, 0, 1]

    private func pair() -> (Tensor, Tensor) {
        let target = Tensor(shape: shape, data: (0..<12).map { Float($0) * 0.25 - 1 })
        let output = Tensor(shape: shape, data: zip(target.data, differences).map { $0 + $1 })
        return (output, target)
    }

    func testSingleDifferenceDividesByBatchAndPositionsOnly() {
        var data = [Float](repeating: 0, count: 12)
        data[7] = 2
        let (l2, g2) = ReconstructionLoss.lp(Tensor(shape: shape, data: data), target: Tensor(shape: shape), p: 2)
        XCTAssertEqual(l2, 1, accuracy: 1e-12)  // 2^2 / (2 samples * 2 positions)
        XCTAssertEqual(g2.data[7], 1, accuracy: 1e-7)  // 2 * 2 / 4
        XCTAssertEqual(g2.data.enumerated().filter { $0.offset != 7 }.map(\.element.magnitude).max(), 0)
        let (l24, _) = ReconstructionLoss.lp(Tensor(shape: shape, data: data), target: Tensor(shape: shape), p: 2.4)
        XCTAssertEqual(l24, 1.3195079107728942, accuracy: 1e-6)  // 2^2.4 / 4
    }

    func testHandComputedP2() {
        let (output, target) = pair()
        let (loss, gradient) = ReconstructionLoss.lp(output, target: target, p: 2)
        // sum d^2 = 21.5 over 2 samples x 2 positions.
        XCTAssertEqual(loss, 5.375, accuracy: 1e-6)
        for (g, d) in zip(gradient.data, differences) { XCTAssertEqual(g, d / 2, accuracy: 1e-6) }
        XCTAssertEqual(gradient.shape, shape)
    }

    func testHandComputedP24() {
        let (output, target) = pair()
        let (loss, gradient) = ReconstructionLoss.lp(output, target: target, p: 2.4)
        XCTAssertEqual(loss, 7.225400648262247, accuracy: 1e-5)
        for (g, d) in zip(gradient.data, differences) {
            let expected = d == 0 ? 0 : 2.4 * pow(Double(abs(d)), 1.4) * (d > 0 ? 1 : -1) / 4
            XCTAssertEqual(Double(g), expected, accuracy: 1e-5)
        }
    }

    func testGradientMatchesFloat64FiniteDifferences() {
        var data = TestData(seed: 7)
        let output = data.tensor([2, 4, 3, 3]), target = data.tensor([2, 4, 3, 3])
        let (y, t) = (output.data.map(Double.init), target.data.map(Double.init))
        for p: Float in [2, 2.4, 1.1, 1.6] {
            let (loss, gradient) = ReconstructionLoss.lp(output, target: target, p: p)
            XCTAssertEqual(loss, lpDouble(y, t, shape: output.shape, p: Double(p)), accuracy: 1e-5 * loss)
            var worst = 0.0
            for i in stride(from: 0, to: y.count, by: 1) {
                let delta = 1e-5
                var up = y, down = y
                up[i] += delta
                down[i] -= delta
                let fd = (lpDouble(up, t, shape: output.shape, p: Double(p)) - lpDouble(down, t, shape: output.shape, p: Double(p))) / (2 * delta)
                worst = max(worst, relativeError(Double(gradient.data[i]), fd, floor: 1e-3))
            }
            XCTAssertLessThan(worst, 1e-4, "p = \(p)")
        }
    }

    func testBatchNormExponent() {
        // The release's c = 0.1: p = 1 + 0.1 * sigmoid(u) rounds to 1.1 whenever u >= 0.
        XCTAssertEqual(ReconstructionLoss.exponent(gammas: [0.5, 0.5, 0.5, 0.5], c: 0.1), 1.1, accuracy: 1e-6)
        XCTAssertEqual(ReconstructionLoss.exponent(gammas: [2, 1.5, 0.3], c: 0.1), 1.1, accuracy: 1e-6)
        // c = 0.9, gammas 1: u = (4 - 1) / 4 = 0.75, 1 + 0.9 * sigmoid(0.75) = 1.6113 -> 1.6.
        XCTAssertEqual(ReconstructionLoss.exponent(gammas: [1, 1, 1, 1], c: 0.9), 1.6, accuracy: 1e-6)
        // c = 0.9, gammas 0.1: u = -0.15, 1.4163 -> 1.4.
        XCTAssertEqual(ReconstructionLoss.exponent(gammas: [0.1, 0.1, 0.1, 0.1], c: 0.9), 1.4, accuracy: 1e-6)
        XCTAssertEqual(ReconstructionLoss.exponent(gammas: nil, c: 0.9), 2)
        XCTAssertEqual(ReconstructionLoss.exponent(gammas: [], c: 0.9), 2)
    }
}

final class AdamTests: XCTestCase {
    func testFirstStepsMoveByLearningRateTimesSign() {
        var adam = Adam(count: 4, learningRate: 0.01)
        var x: [Float] = [1, -2, 0.5, 3]
        let g: [Float] = [0.3, -5, 1e-3, 0]
        adam.update(&x, gradient: g)
        // Bias-corrected first step: m_hat = g, v_hat = g^2, so the step is lr * g / (|g| + eps).
        XCTAssertEqual(x[0], 1 - 0.01, accuracy: 1e-7)
        XCTAssertEqual(x[1], -2 + 0.01, accuracy: 1e-7)
        XCTAssertEqual(x[2], 0.5 - 0.01, accuracy: 1e-7)
        XCTAssertEqual(x[3], 3)
        // A constant gradient keeps m_hat = g and v_hat = g^2: the same step again.
        adam.update(&x, gradient: g)
        XCTAssertEqual(x[0], 1 - 0.02, accuracy: 1e-6)
        XCTAssertEqual(x[1], -2 + 0.02, accuracy: 1e-6)
        XCTAssertEqual(x[3], 3)
    }

    func testSecondStepHandComputed() {
        var adam = Adam(count: 1, learningRate: 0.1)
        var x: [Float] = [0]
        adam.update(&x, gradient: [1])
        adam.update(&x, gradient: [-1])
        // m = 0.9 * 0.1 - 0.1 = -0.01, v = 0.999 * 0.001 + 0.001 = 0.001999;
        // m_hat = -0.01 / 0.19, v_hat = 0.001999 / 0.001999 = 1: step +0.1 * 0.0526316.
        XCTAssertEqual(Double(x[0]), -0.1 + 0.1 * 0.01 / 0.19, accuracy: 1e-6)
    }
}

final class SeededGeneratorTests: XCTestCase {
    func testSameSeedSameSequence() {
        var a = SeededGenerator(seed: 1234), b = SeededGenerator(seed: 1234), c = SeededGenerator(seed: 1235)
        let sa = (0..<20).map { _ in a.next() }, sb = (0..<20).map { _ in b.next() }, sc = (0..<20).map { _ in c.next() }
        XCTAssertEqual(sa, sb)
        XCTAssertNotEqual(sa, sc)
        var d = SeededGenerator(seed: 9), e = SeededGenerator(seed: 9)
        XCTAssertEqual(d.sample(32, from: 1024), e.sample(32, from: 1024))
    }

    func testPinnedValues() {
        // The reference SeededGenerator outputs (Vigna) for seeds 0 and 42.
        var zero = SeededGenerator(seed: 0)
        XCTAssertEqual(zero.next(), 0xE220_A839_7B1D_CDAF)
        XCTAssertEqual(zero.next(), 0x6E78_9E6A_A1B9_65F4)
        XCTAssertEqual(zero.next(), 0x06C4_5D18_8009_454F)
        var fortyTwo = SeededGenerator(seed: 42)
        XCTAssertEqual(fortyTwo.next(), 0xBDD7_3226_2FEB_6E95)
        XCTAssertEqual(fortyTwo.next(), 0x28EF_E333_B266_F103)
        XCTAssertEqual(fortyTwo.next(), 0x4752_6757_130F_9F52)
    }

    func testSampleDistinctInRange() {
        var rng = SeededGenerator(seed: 5)
        for (count, population) in [(10, 20), (32, 64), (20, 20), (30, 20), (1, 1), (0, 5)] {
            let s = rng.sample(count, from: population)
            XCTAssertEqual(s.count, min(count, population))
            XCTAssertEqual(Set(s).count, s.count, "distinct")
            XCTAssertTrue(s.allSatisfy { (0..<population).contains($0) })
        }
        // Every index gets drawn over many draws (uniformity, coarse).
        var seen = Set<Int>()
        for _ in 0..<50 { seen.formUnion(rng.sample(4, from: 40)) }
        XCTAssertEqual(seen.count, 40)
    }

    func testPinnedSample() {
        var rng = SeededGenerator(seed: 0)
        let s = rng.sample(5, from: 100)
        // Partial Fisher-Yates with the pinned draws above: index i swaps with i + next() % (100 - i).
        var pool = Array(0..<100), ref = SeededGenerator(seed: 0)
        for i in 0..<5 { pool.swapAt(i, i + Int(ref.next() % UInt64(100 - i))) }
        XCTAssertEqual(s, Array(pool[0..<5]))
        XCTAssertEqual(s[0], Int(UInt64(0xE220_A839_7B1D_CDAF) % 100))
    }
}

final class ActivationScaleLearnerTests: XCTestCase {
    func testStraightThroughHandComputed() {
        let q = QuantizerParameters(grid: QuantizationGrid(bits: 4, signed: false), scales: [0.5], zeroPoints: [0])
        let x = Tensor(shape: [4], data: [0.26, 5, -1, 9])
        var g = Tensor(shape: [4], data: [1, 2, 1, 1])
        let ds = ActivationScaleLearner.straightThrough(x, q, &g)
        // Inside: round(x/s) - x/s = 1 - 0.52 and 10 - 10; below: qmin - z = 0; above: qmax - z = 15.
        XCTAssertEqual(ds, 0.48 + 0 + 0 + 15, accuracy: 1e-5)
        XCTAssertEqual(g.data, [1, 2, 0, 0])
    }

    func testPowerOfTwoQuantizersRoundTheLogScale() {
        let grid = QuantizationGrid(bits: 4, signed: false)
        let learner = ActivationScaleLearner(sites: [("a", QuantizerParameters(grid: grid, scales: [0.3], zeroPoints: [0])),
                                                     ("b", QuantizerParameters(grid: grid, scales: [0.7], zeroPoints: [3]))],
                                             powerOfTwo: true, learningRate: 0.01)
        let q = learner.quantizers
        XCTAssertEqual(q["a"]!.scales, [0.25])  // log2 0.3 = -1.74 -> -2
        XCTAssertEqual(q["b"]!.scales, [0.5])  // log2 0.7 = -0.51 -> -1
        XCTAssertEqual(q["b"]!.zeroPoints, [4])  // round(3 * 0.7 / 0.5) = round(4.2)
        XCTAssertNotNil(q["a"]!.exponents)
    }

    /// A site that must keep an even zero point (a QLinearAdd output) gets the nearest even code after a
    /// scale change; the others the nearest code.
    func testEvenZeroPointsStayEvenWhenTheScaleMoves() {
        let grid = QuantizationGrid(bits: 4, signed: false)
        let initial = QuantizerParameters(grid: grid, scales: [0.625], zeroPoints: [7])
        let learner = ActivationScaleLearner(sites: [("free", initial), ("even", initial)], powerOfTwo: true, learningRate: 0.01,
                                             evenZeroPoints: ["even"])
        let q = learner.quantizers
        XCTAssertEqual(q["free"]!.scales, [0.5])
        XCTAssertEqual(q["free"]!.zeroPoints, [9])  // round(7 * 0.625 / 0.5) = round(8.75)
        XCTAssertEqual(q["even"]!.zeroPoints, [8])  // 2 * round(4.375)
    }
}

final class WeightPhaseActivationsTests: XCTestCase {
    /// Values all outside a 4-bit unsigned grid of scale 0.5 (codes -5..-1 and 16..20), so an element's
    /// quantized value always differs from it and its straight-through gradient is always zero.
    private let clamped: Tensor = {
        let values = (0..<80_000).map { (i: Int) -> Float in
            let step = Float(i % 5)
            return i % 2 == 0 ? -0.5 * (1 + step) : 0.5 * (16 + step)
        }
        return Tensor(shape: [4, 20_000], data: values)
    }()
    private let quantizer = QuantizerParameters(grid: QuantizationGrid(bits: 4, signed: false), scales: [0.5], zeroPoints: [0])

    func testWithoutDropEveryElementIsQuantized() {
        let a = WeightPhaseActivations(quantizers: ["t": quantizer], dropProbability: 0, seed: 1)
        var expected = clamped
        fakeQuantize(&expected, with: quantizer)
        XCTAssertEqual(a.forward("t", clamped, iteration: 3)?.data, expected.data)
        XCTAssertNil(a.forward("other", clamped, iteration: 3))
        var g = Tensor(shape: clamped.shape, data: [Float](repeating: 1, count: clamped.count))
        a.backward("t", clamped, &g, iteration: 3)
        XCTAssertTrue(g.data.allSatisfy { $0 == 0 })
    }

    /// With drop p each element keeps its FP32 value with probability p (applied in steps of 1/256: 77/256 for
    /// 0.3; binomial: 80,000 draws lie within 0.3 +- 0.015 with probability far above 0.9999), the backward pass passes the gradient exactly on
    /// those elements, draws repeat for the same iteration and change for another.
    func testDropKeepsFloatValuesAndTheirGradientsTogether() {
        let a = WeightPhaseActivations(quantizers: ["t": quantizer], dropProbability: 0.3, seed: 7)
        let y = a.forward("t", clamped, iteration: 5)!
        let kept = zip(y.data, clamped.data).map { $0 == $1 }
        let fraction = Double(kept.filter { $0 }.count) / Double(kept.count)
        XCTAssertEqual(fraction, 0.3, accuracy: 0.015)
        var quantized = clamped
        fakeQuantize(&quantized, with: quantizer)
        for i in kept.indices where !kept[i] { XCTAssertEqual(y.data[i], quantized.data[i]) }

        var g = Tensor(shape: clamped.shape, data: (0..<clamped.count).map { Float($0 % 9) + 1 })
        a.backward("t", clamped, &g, iteration: 5)
        for i in kept.indices { XCTAssertEqual(g.data[i], kept[i] ? Float(i % 9) + 1 : 0, "element \(i)") }

        XCTAssertEqual(a.forward("t", clamped, iteration: 5)?.data, y.data)
        let other = a.forward("t", clamped, iteration: 6)!
        XCTAssertNotEqual(other.data, y.data)
    }
}
