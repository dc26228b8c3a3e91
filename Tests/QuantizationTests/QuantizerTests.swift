import XCTest
@testable import Quantization
import TensorKernels

/// Hand-computed quantizer values: ties, clamping at both ends, 2-bit signed and unsigned ranges.
final class QuantizerTests: XCTestCase {
    func testGridRanges() {
        XCTAssertEqual(QuantizationGrid(bits: 2, signed: true).qmin, -2)
        XCTAssertEqual(QuantizationGrid(bits: 2, signed: true).qmax, 1)
        XCTAssertEqual(QuantizationGrid(bits: 2, signed: false).qmin, 0)
        XCTAssertEqual(QuantizationGrid(bits: 2, signed: false).qmax, 3)
        XCTAssertEqual(QuantizationGrid(bits: 8, signed: true).qmin, -128)
        XCTAssertEqual(QuantizationGrid(bits: 4, signed: false).qmax, 15)
    }

    func testRoundHalfToEvenAndClamp() {
        let g = QuantizationGrid(bits: 4, signed: false)
        // x / s = 2.5 -> 2 (even), 3.5 -> 4, then + z.
        XCTAssertEqual(UniformQuantization.code(1.25, scale: 0.5, zeroPoint: 3, grid: g), 5)
        XCTAssertEqual(UniformQuantization.code(1.75, scale: 0.5, zeroPoint: 3, grid: g), 7)
        XCTAssertEqual(UniformQuantization.code(-0.25, scale: 0.5, zeroPoint: 3, grid: g), 3)   // -0.5 -> -0
        XCTAssertEqual(UniformQuantization.code(-0.75, scale: 0.5, zeroPoint: 3, grid: g), 1)   // -1.5 -> -2
        XCTAssertEqual(UniformQuantization.code(100, scale: 0.5, zeroPoint: 3, grid: g), 15)    // clamp high
        XCTAssertEqual(UniformQuantization.code(-100, scale: 0.5, zeroPoint: 3, grid: g), 0)    // clamp low
        XCTAssertEqual(UniformQuantization.fakeQuantize(1.3, scale: 0.5, zeroPoint: 3, grid: g), 1.5)
        XCTAssertEqual(UniformQuantization.fakeQuantize(-100, scale: 0.5, zeroPoint: 3, grid: g), -1.5)
    }

    /// The tensor kernel and its straight-through gradient against the scalar definition, bit for bit: exact
    /// ties on both sides of zero, huge and tiny magnitudes, fractional zero points, signed and unsigned grids.
    func testTensorFakeQuantizeMatchesTheScalarDefinition() {
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        func uniform() -> Float { state = state &* 6364136223846793005 &+ 1442695040888963407; return Float(state >> 40) / Float(1 << 24) }
        let cases: [(QuantizationGrid, Float, Float)] = [(QuantizationGrid(bits: 4, signed: false), 0.25, 3), (QuantizationGrid(bits: 8, signed: true), 0.37, 0),
                                                         (QuantizationGrid(bits: 2, signed: false), 1, 1.4), (QuantizationGrid(bits: 8, signed: false), 0.011, -2.5)]
        for (grid, s, z) in cases {
            var values: [Float] = (-300...300).map { (Float($0) + 0.5) * s }          // every tie
            values += (0..<80_000).map { _ in (uniform() - 0.5) * 80 * s }         // above 64K: the parallel split
            values += [1e30, -1e30, 5e6 * s, -5e6 * s, 1e-30, -1e-30, 0, -0.0, .greatestFiniteMagnitude, -.greatestFiniteMagnitude]
            let q = QuantizerParameters(grid: grid, scales: [s], zeroPoints: [z])
            var tensor = Tensor(shape: [values.count], data: values)
            fakeQuantize(&tensor, with: q)
            let expected = values.map { UniformQuantization.fakeQuantize($0, scale: s, zeroPoint: z, grid: grid) }
            XCTAssertEqual(tensor.data.map(\.bitPattern), expected.map(\.bitPattern), "grid \(grid) s \(s) z \(z)")
            XCTAssertEqual(fakeQuantized(Tensor(shape: [values.count], data: values), with: q).data.map(\.bitPattern),
                           expected.map(\.bitPattern), "out of place: grid \(grid) s \(s) z \(z)")

            var gradient = Tensor(shape: [values.count], data: values.indices.map { Float($0 % 7) + 1 })
            fakeQuantizeBackward(Tensor(shape: [values.count], data: values), with: q, gradient: &gradient)
            for (i, x) in values.enumerated() {
                let raw = (x / s).rounded(.toNearestOrEven) + z
                let inside = raw >= Float(grid.qmin) && raw <= Float(grid.qmax)
                XCTAssertEqual(gradient.data[i], inside ? Float(i % 7) + 1 : 0, "x \(x) grid \(grid) s \(s) z \(z)")
            }
        }
    }

    func testTwoBitSignedAndUnsigned() {
        let signed = QuantizationGrid(bits: 2, signed: true)
        let values: [Float] = [-3, -1.1, -0.4, 0.2, 0.6, 2]
        XCTAssertEqual(values.map { UniformQuantization.fakeQuantize($0, scale: 1, zeroPoint: 0, grid: signed) }, [-2, -1, 0, 0, 1, 1])
        let unsigned = QuantizationGrid(bits: 2, signed: false)
        XCTAssertEqual(values.map { UniformQuantization.fakeQuantize($0, scale: 1, zeroPoint: 1, grid: unsigned) }, [-1, -1, 0, 0, 1, 2])
    }

    func testPowerOfTwoIsABitLevelCheck() {
        XCTAssertEqual(PowerOfTwo.exactExponent(0.25), -2)
        XCTAssertEqual(PowerOfTwo.exactExponent(1), 0)
        XCTAssertEqual(PowerOfTwo.exactExponent(1024), 10)
        XCTAssertNil(PowerOfTwo.exactExponent(Float(0.25).nextUp))
        XCTAssertNil(PowerOfTwo.exactExponent(0.3))
        XCTAssertNil(PowerOfTwo.exactExponent(0))
        XCTAssertNil(PowerOfTwo.exactExponent(-0.5))
        XCTAssertEqual(PowerOfTwo.value(-7), 0.0078125)
        let q = QuantizerParameters(grid: QuantizationGrid(bits: 4, signed: false), exponents: [-3, 2], zeroPoints: [0, 7])
        XCTAssertEqual(q.exponents, [-3, 2])
        XCTAssertEqual(q.integerZeroPoints, [0, 7])
        let off = QuantizerParameters(grid: q.grid, scales: [0.125, 3], zeroPoints: [0, 7.5])
        XCTAssertNil(off.exponents)
        XCTAssertNil(off.integerZeroPoints)
    }

    /// The range search on a fixed tensor: values 0..15 on a 4-bit unsigned grid fit exactly with scale 1.
    func testRangeSearchFindsExactFit() {
        let values = (0..<16).map(Float.init)
        let (s, z) = values.withUnsafeBufferPointer { ScaleSearch.searchFloat($0, grid: QuantizationGrid(bits: 4, signed: false)) }
        XCTAssertEqual(s, 1)
        XCTAssertEqual(z, 0)
    }

    /// An outlier makes the search shrink the range: the L2.4 error at the chosen step must not exceed
    /// the full-range error, and the chosen step is one of the 80 candidates.
    func testRangeSearchShrinksForOutliers() {
        var values = (0..<200).map { Float($0 % 20) / 10 - 1 }
        values.append(12)
        let grid = QuantizationGrid(bits: 3, signed: false)
        let (s, z) = values.withUnsafeBufferPointer { ScaleSearch.searchFloat($0, grid: grid) }
        let full = (Float(12) - -1) / 7
        XCTAssertLessThan(s, full)
        let chosen = values.withUnsafeBufferPointer { UniformQuantization.error($0, scale: s, zeroPoint: z, grid: grid) }
        let fullError = values.withUnsafeBufferPointer { UniformQuantization.error($0, scale: full, zeroPoint: (1 / full).rounded(.toNearestOrEven), grid: grid) }
        XCTAssertLessThanOrEqual(chosen, fullError)
        let step = (1 - s / full) / 0.01
        XCTAssertEqual(step, step.rounded(), accuracy: 1e-3)
    }

    func testAllZeroChannelIsExactlyZero() {
        let zeros = [Float](repeating: 0, count: 9)
        for policy in ScalePolicy.allCases {
            let q = ScaleSearch.searchPerChannel(zeros, channels: 1, grid: QuantizationGrid(bits: 4, signed: false), policy: policy)
            XCTAssertEqual(q.zeroPoints, [0])
            XCTAssertGreaterThan(q.scales[0], 0)
            let layer = QuantizedLayer.quantize(node: "dead", weights: zeros, shape: [1, 9], bias: [0], input: "x", parameters: q)
            XCTAssertEqual(layer.dequantizedWeights, zeros, "an all-zero channel must dequantize to exactly zero (\(policy))")
        }
    }

    /// naive-pot rounds log2 s to the nearest integer; pot-mse picks the exponent with the least error.
    func testExponentPolicies() {
        let values = (0..<64).map { Float($0) / 63 * 0.7 - 0.35 }
        let grid = QuantizationGrid(bits: 4, signed: false)
        let (s0, _) = values.withUnsafeBufferPointer { ScaleSearch.searchFloat($0, grid: grid) }
        let naive = values.withUnsafeBufferPointer { ScaleSearch.search($0, grid: grid, policy: .nearestPowerOfTwo) }
        XCTAssertEqual(PowerOfTwo.exactExponent(naive.scale), Int(log2(Double(s0)).rounded()))
        let best = values.withUnsafeBufferPointer { ScaleSearch.search($0, grid: grid, policy: .bestPowerOfTwo) }
        XCTAssertNotNil(PowerOfTwo.exactExponent(best.scale))
        let errorOf = { (s: Float, z: Float) in values.withUnsafeBufferPointer { UniformQuantization.error($0, scale: s, zeroPoint: z, grid: grid) } }
        XCTAssertLessThanOrEqual(errorOf(best.scale, best.zeroPoint), errorOf(naive.scale, naive.zeroPoint))
        for e in -8...2 {
            let s = PowerOfTwo.value(e)
            let z = ScaleSearch.rescaledZeroPoint(values.withUnsafeBufferPointer { ScaleSearch.searchFloat($0, grid: grid) }.zeroPoint, from: s0, to: s, grid: grid)
            XCTAssertLessThanOrEqual(errorOf(best.scale, best.zeroPoint), errorOf(s, z) + 1e-12, "exponent \(e) beats pot-mse's choice")
        }
        XCTAssertEqual(best.zeroPoint, best.zeroPoint.rounded())
    }

    /// Values near the float32 limit and layers without channels give finite scales or empty parameters,
    /// never a trap: every candidate of the search may score infinite there.
    func testScaleSearchOnExtremeValuesAndNoChannels() {
        let extreme: [Float] = [3e38, -3e38, 1, 0, -2.5e38, Float.greatestFiniteMagnitude]
        for bits in [2, 4, 8] {
            for signed in [false, true] {
                let grid = QuantizationGrid(bits: bits, signed: signed)
                for policy in ScalePolicy.allCases {
                    let (s, z) = extreme.withUnsafeBufferPointer { ScaleSearch.search($0, grid: grid, policy: policy) }
                    XCTAssertTrue(s > 0 && s.isFinite, "\(bits) bits, signed \(signed), \(policy): scale \(s)")
                    XCTAssertTrue(z >= Float(grid.qmin) && z <= Float(grid.qmax), "zero point \(z)")
                }
            }
        }
        let none = ScaleSearch.searchPerChannel([], channels: 0, grid: QuantizationGrid(bits: 4, signed: false), policy: .bestPowerOfTwo)
        XCTAssertEqual(none.scales, [])
    }
}
