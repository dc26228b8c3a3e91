import XCTest
import Graph
import TensorKernels
@testable import Quantization

/// The integer engine's table functions, products and grid changes against float64 reference values.
final class IntegerOperatorTests: XCTestCase {
    private func quantizer(bits: Int, signed: Bool, exponent: Int, zeroPoint: Int) -> SiteQuantizer {
        SiteQuantizer(QuantizerParameters(grid: QuantizationGrid(bits: bits, signed: signed), exponents: [exponent], zeroPoints: [zeroPoint]))!
    }

    /// `clamp(round_half_even(y / 2^e) + z)` in float64.
    private func code(_ y: Double, _ q: SiteQuantizer) -> Int {
        let c = (y / PowerOfTwo.double(q.exponent)).rounded(.toNearestOrEven) + Double(q.zeroPoint)
        return Int(min(max(c, Double(q.grid.qmin)), Double(q.grid.qmax)))
    }

    /// Each table entry is the float64 function of the input code's value, quantized onto the output grid:
    /// identical except where float32 evaluation lands on the other side of a rounding tie (at most one step).
    func testTablesMatchFloat64Functions() throws {
        let functions: [(Operator, (Double) -> Double)] = [
            (.sigmoid, { 1 / (1 + exp(-$0)) }),
            (.hardSigmoid(alpha: 0.2, beta: 0.5), { max(0, min(1, 0.2 * $0 + 0.5)) }),
            (.hardSigmoid(alpha: 1.0 / 6, beta: 0.5), { max(0, min(1, $0 / 6 + 0.5)) }),
            (.hardSwish, { $0 * max(0, min(1, $0 / 6 + 0.5)) }),
        ]
        for (op, f) in functions {
            for (input, output) in [(quantizer(bits: 8, signed: true, exponent: -4, zeroPoint: 0), quantizer(bits: 8, signed: false, exponent: -7, zeroPoint: 0)),
                                    (quantizer(bits: 4, signed: false, exponent: -1, zeroPoint: 7), quantizer(bits: 4, signed: false, exponent: -3, zeroPoint: 2)),
                                    (quantizer(bits: 8, signed: false, exponent: -5, zeroPoint: 128), quantizer(bits: 8, signed: true, exponent: -4, zeroPoint: -3))] {
                let site = OutputSite(tensor: "y", quantizer: output, range: output.fullRange)
                let table = try IntegerEngine.table(for: Node(name: "f", op: op, inputs: ["x"], outputs: ["y"]), from: input, onto: site)
                XCTAssertEqual(table.count, input.grid.qmax - input.grid.qmin + 1)
                var differing = 0
                for (k, entry) in table.enumerated() {
                    let x = Double(input.grid.qmin + k - input.zeroPoint) * PowerOfTwo.double(input.exponent)
                    let expected = code(f(x), output)
                    XCTAssertLessThanOrEqual(abs(Int(entry) - expected), 1, "\(op) at x = \(x)")
                    if Int(entry) != expected { differing += 1 }
                }
                XCTAssertLessThanOrEqual(differing, table.count / 50, "\(op): \(differing) of \(table.count) entries off by one")
            }
        }
    }

    /// A fused Relu/Clip after the table narrows the codes it can produce.
    func testTableHonoursTheOutputRange() throws {
        let input = quantizer(bits: 8, signed: true, exponent: -4, zeroPoint: 0)
        let output = quantizer(bits: 8, signed: true, exponent: -5, zeroPoint: 0)
        let site = OutputSite(tensor: "y", quantizer: output, range: output.codeRange(lo: 0, hi: 1))
        let table = try IntegerEngine.table(for: Node(name: "f", op: .hardSwish, inputs: ["x"], outputs: ["y"]), from: input, onto: site)
        XCTAssertEqual(table.min(), 0)
        XCTAssertEqual(table.max(), 32)
    }

    /// Products of two code tensors (broadcast per channel, as squeeze-excitation does) equal the float64
    /// product of the dequantized values, quantized onto the output grid: exactly, since both are exact.
    func testProductMatchesFloat64() throws {
        var rng = IntegerTestRandom(seed: 11)
        let qa = quantizer(bits: 8, signed: false, exponent: -5, zeroPoint: 3)
        let qb = quantizer(bits: 4, signed: false, exponent: -4, zeroPoint: 0)
        let qy = quantizer(bits: 8, signed: true, exponent: -6, zeroPoint: -2)
        let a = CodeTensor(shape: [2, 3, 2, 2], codes: (0..<24).map { _ in Int32.random(in: 0...255, using: &rng) }, quantizer: qa)
        let b = CodeTensor(shape: [2, 3, 1, 1], codes: (0..<6).map { _ in Int32.random(in: 0...15, using: &rng) }, quantizer: qb)
        let site = OutputSite(tensor: "y", quantizer: qy, range: qy.fullRange)
        guard case .codes(let y) = try IntegerElementwise.multiply(a, b, site: site, node: "mul") else { return XCTFail("expected codes") }
        XCTAssertEqual(y.shape, [2, 3, 2, 2])
        for i in 0..<24 {
            let va = Double(Int(a.codes[i]) - qa.zeroPoint) * PowerOfTwo.double(qa.exponent)
            let vb = Double(Int(b.codes[i / 4]) - qb.zeroPoint) * PowerOfTwo.double(qb.exponent)
            XCTAssertEqual(Int(y.codes[i]), code(va * vb, qy), "element \(i)")
        }
        // Without an output site the exact product stays an accumulator at exponent e_a + e_b.
        guard case .accumulator(let acc) = try IntegerElementwise.multiply(a, b, site: nil, node: "mul") else { return XCTFail("expected an accumulator") }
        XCTAssertEqual(acc.exponents, [qa.exponent + qb.exponent])
        XCTAssertEqual(acc.values[5], (Int64(a.codes[5]) - 3) * Int64(b.codes[1]))
    }

    /// Requantizing codes onto another power-of-two grid (what Concat does for inputs on other grids) is the
    /// float64 round-half-even of the value on the new grid; hand-computed ties included.
    func testGridChangeMatchesFloat64() {
        let from = quantizer(bits: 8, signed: false, exponent: -6, zeroPoint: 0)
        let onto = quantizer(bits: 8, signed: false, exponent: -4, zeroPoint: 0)
        let codes: [Int32] = [0, 1, 2, 3, 5, 6, 10, 14, 255]
        let value = IntegerValue.codes(CodeTensor(shape: [codes.count], codes: codes, quantizer: from))
        let y = IntegerElementwise.requantize(value, to: OutputSite(tensor: "y", quantizer: onto, range: onto.fullRange))
        // code / 4 with ties to even: 0, 0.25, 0.5, 0.75, 1.25, 1.5, 2.5, 3.5, 63.75.
        XCTAssertEqual(y.codes, [0, 0, 0, 1, 1, 2, 2, 4, 64])
        for (c, q) in zip(codes, y.codes) { XCTAssertEqual(Int(q), code(Double(c) * PowerOfTwo.double(from.exponent), onto)) }
    }

    /// A broadcasting Add (`[N,C,H,W] + [N,1,H,W]`, as a spatial-attention block has) of a per-channel
    /// accumulator and codes equals the float64 sum of the two values quantized onto the output grid:
    /// exactly, since aligning both on the smaller exponent is exact.
    func testBroadcastingAddMatchesFloat64() throws {
        var rng = IntegerTestRandom(seed: 5)
        let exponents = [-7, -5, -6]
        let a = AccumulatorTensor(shape: [2, 3, 2, 2], values: (0..<24).map { _ in Int64.random(in: -900...900, using: &rng) },
                                  exponents: exponents, inner: 4)
        let qb = quantizer(bits: 4, signed: false, exponent: -3, zeroPoint: 5)
        let b = CodeTensor(shape: [2, 1, 2, 2], codes: (0..<8).map { _ in Int32.random(in: 0...15, using: &rng) }, quantizer: qb)
        let qy = quantizer(bits: 8, signed: true, exponent: -4, zeroPoint: 1)
        let site = OutputSite(tensor: "y", quantizer: qy, range: qy.fullRange)
        for (x, z) in [(IntegerValue.accumulator(a), IntegerValue.codes(b)), (.codes(b), .accumulator(a))] {
            guard case .codes(let y) = try IntegerElementwise.add(x, z, site: site, node: "add") else { return XCTFail("expected codes") }
            XCTAssertEqual(y.shape, [2, 3, 2, 2])
            for i in 0..<24 {
                let (n, c, p) = (i / 12, (i / 4) % 3, i % 4)
                let va = Double(a.values[i]) * PowerOfTwo.double(exponents[c])
                let vb = Double(Int(b.codes[n * 4 + p]) - qb.zeroPoint) * PowerOfTwo.double(qb.exponent)
                XCTAssertEqual(Int(y.codes[i]), code(va + vb, qy), "element \(i)")
            }
        }
        // Kept as an accumulator, the broadcast sum keeps the channel layout of the per-channel operand.
        guard case .accumulator(let sum) = try IntegerElementwise.add(.codes(b), .accumulator(a), site: nil, node: "add") else {
            return XCTFail("expected an accumulator")
        }
        XCTAssertEqual(sum.inner, 4)
        for i in 0..<24 {
            let c = (i / 4) % 3
            let expected = Double(a.values[i]) * PowerOfTwo.double(exponents[c])
                + Double(Int(b.codes[(i / 12) * 4 + i % 4]) - qb.zeroPoint) * PowerOfTwo.double(qb.exponent)
            XCTAssertEqual(Double(sum.values[i]) * PowerOfTwo.double(sum.exponent(at: i)), expected, "element \(i)")
        }
        // Shapes that do not broadcast are refused with both shapes named.
        let c = CodeTensor(shape: [2, 2, 2, 2], codes: [Int32](repeating: 0, count: 16), quantizer: qb)
        XCTAssertThrowsError(try IntegerElementwise.add(.accumulator(a), .codes(c), site: site, node: "add")) { error in
            XCTAssertTrue("\(error)".contains("[2, 3, 2, 2] and [2, 2, 2, 2]"), "\(error)")
        }
    }
}
