import XCTest
@testable import TensorKernels

/// A small seeded generator (SeededGenerator) so every test draws the same numbers on every run.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Tensor {
    /// Uniform values in `range`.
    static func random(_ shape: [Int], in range: ClosedRange<Float> = -1...1, using rng: inout SeededGenerator) -> Tensor {
        Tensor(shape: shape, data: (0..<shape.shapeProduct).map { _ in Float.random(in: range, using: &rng) })
    }

    /// Uniform values whose magnitude is at least `gap` (away from the kink of ReLU-like functions).
    static func randomAwayFromZero(_ shape: [Int], gap: Float, using rng: inout SeededGenerator) -> Tensor {
        Tensor(shape: shape, data: (0..<shape.shapeProduct).map { _ in
            let v = Float.random(in: gap...1, using: &rng)
            return Bool.random(using: &rng) ? v : -v
        })
    }

    /// The elements widened to Double.
    var doubles: [Double] { data.map(Double.init) }
}

/// Asserts `actual ≈ expected` element-wise: `|a − e| ≤ tolerance · max(1, max|e|)`.
func assertClose(_ actual: [Float], _ expected: [Double], tolerance: Double = 1e-5, _ message: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, "element count \(message)", file: file, line: line)
    guard actual.count == expected.count else { return }
    let scale = max(1, expected.map(abs).max() ?? 0)
    var worst = 0.0, worstIndex = -1
    for i in 0..<actual.count {
        let error = abs(Double(actual[i]) - expected[i])
        if !(error <= worst) || error.isNaN { worst = error; worstIndex = i }
    }
    XCTAssert(worst <= tolerance * scale,
              "max error \(worst) at \(worstIndex) (got \(worstIndex >= 0 ? actual[worstIndex] : 0), expected \(worstIndex >= 0 ? expected[worstIndex] : 0)) exceeds \(tolerance * scale) \(message)",
              file: file, line: line)
}

/// Central finite differences of a float64 scalar function at up to `samples` indices of `x`
/// (all of them when `x` is small), compared with the analytic gradient `analytic`.
func checkGradient(_ analytic: [Float], at x: [Double], samples: Int = 40, step: Double = 1e-5, tolerance: Double = 1e-4,
                   _ message: String = "", file: StaticString = #filePath, line: UInt = #line,
                   _ loss: ([Double]) -> Double) {
    XCTAssertEqual(analytic.count, x.count, "gradient size \(message)", file: file, line: line)
    guard analytic.count == x.count, !x.isEmpty else { return }
    var rng = SeededGenerator(seed: UInt64(x.count) &* 7919)
    let indices = x.count <= samples ? Array(0..<x.count) : (0..<samples).map { _ in Int.random(in: 0..<x.count, using: &rng) }
    var numeric = [Double](), got = [Float]()
    for i in indices {
        var plus = x, minus = x
        plus[i] += step
        minus[i] -= step
        numeric.append((loss(plus) - loss(minus)) / (2 * step))
        got.append(analytic[i])
    }
    assertClose(got, numeric, tolerance: tolerance, "gradient \(message) at \(indices.prefix(8))…", file: file, line: line)
}

/// `Σ y[i] · weights[i]`: the scalar whose gradient with respect to `y` is `weights`.
func weightedSum(_ y: [Double], _ weights: [Double]) -> Double {
    precondition(y.count == weights.count)
    var total = 0.0
    for i in 0..<y.count { total += y[i] * weights[i] }
    return total
}
