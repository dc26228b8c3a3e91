import XCTest
import Graph
import TensorKernels
@testable import Quantization

/// The integer engine against hand-computed rounding and against the float simulation it must reproduce.
final class IntegerEngineTests: XCTestCase {
    // MARK: Hand-computed rounding

    func testShiftRoundsHalfToEven() {
        let cases: [(Int64, Int, Int64)] = [
            (5, 1, 2), (7, 1, 4), (-5, 1, -2), (-7, 1, -4), (6, 2, 2), (10, 2, 2), (14, 2, 4),
            (3, 1, 2), (-3, 1, -2), (9, 2, 2), (11, 2, 3), (-9, 2, -2), (-11, 2, -3), (-10, 2, -2), (-14, 2, -4),
            (1, 1, 0), (-1, 1, 0), (0, 5, 0), (1_000_000, 100, 0),
        ]
        for (v, n, expected) in cases {
            XCTAssertEqual(IntegerRounding.shift(v, right: n), expected, "\(v) >> \(n)")
        }
        // Left shifts (negative right shifts) are exact multiplications, saturated far out.
        XCTAssertEqual(IntegerRounding.shift(3, right: 0), 3)
        XCTAssertEqual(IntegerRounding.shift(3, right: -2), 12)
        XCTAssertEqual(IntegerRounding.shift(-5, right: -3), -40)
        XCTAssertEqual(IntegerRounding.shift(1, right: -70), IntegerRounding.saturation)
        XCTAssertEqual(IntegerRounding.shift(-(1 << 40), right: -30), -IntegerRounding.saturation)
    }

    func testBranchFreeShiftEqualsShift() {
        var rng = IntegerTestRandom(seed: 11)
        for n in 1...40 {
            for _ in 0..<500 {
                let v = Int64.random(in: -(1 << 40)...(1 << 40), using: &rng)
                XCTAssertEqual(IntegerRounding.shiftBranchFree(v, right: Int64(n)), IntegerRounding.shift(v, right: n), "\(v) >> \(n)")
            }
            // The exact ties either side of zero.
            for k in Int64(-5)...5 {
                let tie = k << n + (1 << (n - 1))
                XCTAssertEqual(IntegerRounding.shiftBranchFree(tie, right: Int64(n)), IntegerRounding.shift(tie, right: n))
            }
        }
    }

    func testAverageDividesExactlyWithTiesToEven() {
        XCTAssertEqual(IntegerRounding.divide(7, by: 2), 4)    // 3.5
        XCTAssertEqual(IntegerRounding.divide(5, by: 2), 2)    // 2.5
        XCTAssertEqual(IntegerRounding.divide(-5, by: 2), -2)  // -2.5
        XCTAssertEqual(IntegerRounding.divide(-7, by: 2), -4)  // -3.5
        XCTAssertEqual(IntegerRounding.divide(11, by: 4), 3)   // 2.75
        XCTAssertEqual(IntegerRounding.divide(-11, by: 4), -3) // -2.75
        // A 2x2 window of centered codes 3, 4, 4, 4 at e_in = -3 onto a site at e_out = -2:
        // sum 15, 15 * 2^-1 / 4 = 1.875 -> 2.
        XCTAssertEqual(IntegerRounding.average(15, count: 4, inputExponent: -3, outputExponent: -2), 2)
        // Sum 10 over 4 taps, same exponents: 2.5 -> 2 (tie to even); sum 14: 3.5 -> 4.
        XCTAssertEqual(IntegerRounding.average(10, count: 4, inputExponent: -2, outputExponent: -2), 2)
        XCTAssertEqual(IntegerRounding.average(14, count: 4, inputExponent: -2, outputExponent: -2), 4)
        // Finer output grid: sum 5 over 4 taps at e_in = -1 onto e_out = -3: 5 * 4 / 4 = 5 exactly.
        XCTAssertEqual(IntegerRounding.average(5, count: 4, inputExponent: -1, outputExponent: -3), 5)
        // 3x3 global pool, sum 27 at e_in = -4 onto e_out = -3: 27 / 2 / 9 = 1.5 -> 2; sum 9: 0.5 -> 0.
        XCTAssertEqual(IntegerRounding.average(27, count: 9, inputExponent: -4, outputExponent: -3), 2)
        XCTAssertEqual(IntegerRounding.average(9, count: 9, inputExponent: -4, outputExponent: -3), 0)
        XCTAssertEqual(IntegerRounding.average(-27, count: 9, inputExponent: -4, outputExponent: -3), -2)
    }

    func testGlobalAveragePoolOnCodes() {
        // One plane of four codes with z = 2 at e = -2: centered 1, 2, 2, 1 -> sum 6; to e_out = -1: 6 / 2 / 4 = 0.75 -> 1.
        let grid = QuantizationGrid(bits: 4, signed: false)
        let input = CodeTensor(shape: [1, 1, 2, 2], codes: [3, 4, 4, 3],
                               quantizer: SiteQuantizer(QuantizerParameters(grid: grid, exponents: [-2], zeroPoints: [2]))!)
        let q = SiteQuantizer(QuantizerParameters(grid: grid, exponents: [-1], zeroPoints: [5]))!
        let out = IntegerPooling.globalAveragePool(.codes(input), site: OutputSite(tensor: "y", quantizer: q, range: q.fullRange))
        XCTAssertEqual(out.codes, [6])
        XCTAssertEqual(out.shape, [1, 1, 1, 1])
    }

    // MARK: Against the simulation

    func testMatchesSimulationAtW8A8() throws {
        try checkAgainstSimulation(bits: BitWidths(weights: 8, activations: 8), seed: 1)
    }

    func testMatchesSimulationAtW4A4() throws {
        try checkAgainstSimulation(bits: BitWidths(weights: 4, activations: 4), seed: 2)
    }

    func testMatchesSimulationAtW2A4WithSymmetricWeights() throws {
        try checkAgainstSimulation(bits: BitWidths(weights: 2, activations: 4), seed: 3, symmetric: true)
    }

    func testBatchOfOneAndPredictAgree() throws {
        var rng = IntegerTestRandom(seed: 9)
        let graph = Self.testGraph(using: &rng)
        let calibration = Self.uniform([32, 3, 16, 16], using: &rng)
        let network = try calibrate(PreparedNetwork(graph), calibration: calibration,
                                    options: CalibrationOptions(bits: BitWidths(weights: 8, activations: 8), scalePolicy: .bestPowerOfTwo),
                                    method: "pot-mse")
        let engine = try IntegerEngine(network)
        let x = Self.uniform([5, 3, 16, 16], using: &rng)
        let whole = try engine.run(x).logits
        let sliced = try engine.predict(x, batchSize: 2)
        XCTAssertEqual(whole.shape, [5, 10])
        XCTAssertEqual(whole.data, sliced.data, "integer results do not depend on batching")
        let one = try engine.run(Tensor(shape: [1, 3, 16, 16], data: Array(x.data[0..<768]))).logits
        XCTAssertEqual(one.data, Array(whole.data[0..<10]))
    }

    // MARK: Rejections

    func testFloatScalesAreRejected() throws {
        var rng = IntegerTestRandom(seed: 4)
        let graph = Self.testGraph(using: &rng)
        let network = try calibrate(PreparedNetwork(graph), calibration: Self.uniform([16, 3, 16, 16], using: &rng),
                                    options: CalibrationOptions(bits: BitWidths(weights: 4, activations: 4), scalePolicy: .float),
                                    method: "rtn")
        XCTAssertThrowsError(try IntegerEngine(network)) { error in
            guard let e = error as? IntegerEngineError, case .notPowerOfTwo(let method, _) = e else {
                return XCTFail("expected notPowerOfTwo, got \(error)")
            }
            XCTAssertEqual(method, "rtn")
            XCTAssertTrue(e.description.contains("non-power-of-two"), e.description)
        }
    }

    /// A per-channel product right after a convolution (ConvNeXt's layer scale) is folded into its weights and
    /// bias at preparation: the folded network computes what the graph does, and the integer engine runs it.
    func testLayerScaleAfterConvolutionIsFolded() throws {
        var rng = IntegerTestRandom(seed: 6)
        var b = IntegerTestGraph(input: "x", shape: [nil, 3, 8, 8])
        b.conv("c1", "x", out: "c1o", cin: 3, cout: 4, kernel: 3, pads: 1, using: &rng)
        b.initializers["gamma"] = Tensor(shape: [4, 1, 1], data: [0.5, -1, 2, 0.25])
        b.node("scale", .mul, ["gamma", "c1o"], "s1")
        b.node("gap", .globalAveragePool, ["s1"], "g")
        b.node("flat", .flatten(axis: 1), ["g"], "f")
        b.gemm("fc", "f", out: "y", k: 4, n: 3, using: &rng)
        let graph = b.graph(output: "y")
        let folded = foldBatchNormalization(graph).graph
        XCTAssertFalse(folded.nodes.contains { $0.op == .mul })
        let x = Self.uniform([2, 3, 8, 8], using: &rng)
        let expected = try Executor(graph: graph).run(["x": x])["y"]!
        let actual = try Executor(graph: folded).run(["x": x])["y"]!
        for (a, e) in zip(actual.data, expected.data) { XCTAssertEqual(a, e, accuracy: 1e-5 * max(1, abs(e))) }
        let network = try calibrate(PreparedNetwork(graph), calibration: x,
                                    options: CalibrationOptions(bits: BitWidths(weights: 8, activations: 8), scalePolicy: .bestPowerOfTwo),
                                    method: "pot-mse")
        XCTAssertNoThrow(try IntegerEngine(network))
    }

    func testOperatorWithoutIntegerKernelIsRejected() throws {
        var rng = IntegerTestRandom(seed: 5)
        var b = IntegerTestGraph(input: "x", shape: [nil, 3, 8, 8])
        b.conv("c1", "x", out: "c1o", cin: 3, cout: 4, kernel: 3, pads: 1, using: &rng)
        b.node("r1", .relu, ["c1o"], "r1o")
        // A product by a constant that cannot be folded into a convolution (it follows a Relu) has no integer
        // kernel: only products of two activations do.
        b.initializers["k"] = Tensor(shape: [1, 4, 1, 1], data: [0.5, 1, 2, 0.25])
        b.node("scale", .mul, ["r1o", "k"], "s1")
        b.conv("c2", "s1", out: "c2o", cin: 4, cout: 4, kernel: 1, using: &rng)
        b.node("gap", .globalAveragePool, ["c2o"], "g")
        b.node("flat", .flatten(axis: 1), ["g"], "f")
        b.gemm("fc", "f", out: "y", k: 4, n: 3, using: &rng)
        let network = try calibrate(PreparedNetwork(b.graph(output: "y")), calibration: Self.uniform([8, 3, 8, 8], using: &rng),
                                    options: CalibrationOptions(bits: BitWidths(weights: 8, activations: 8), scalePolicy: .bestPowerOfTwo),
                                    method: "pot-mse")
        XCTAssertThrowsError(try IntegerEngine(network)) { error in
            XCTAssertEqual(error as? QuantizationError, .noIntegerKernel(node: "scale", op: "Mul with a constant operand"))
        }
    }

    // MARK: Helpers

    /// Quantizes the test network, runs both engines, and checks every site's codes and the logits.
    private func checkAgainstSimulation(bits: BitWidths, seed: UInt64, symmetric: Bool = false) throws {
        var rng = IntegerTestRandom(seed: seed)
        let graph = Self.testGraph(using: &rng)
        let calibration = Self.uniform([64, 3, 16, 16], using: &rng)
        let options = CalibrationOptions(bits: bits, scalePolicy: .bestPowerOfTwo, symmetricWeights: symmetric)
        let network = try calibrate(PreparedNetwork(graph), calibration: calibration, options: options, method: "pot-mse")
        let engine = try IntegerEngine(network)
        let simulation = try Simulation(network)

        let x = Self.uniform([32, 3, 16, 16], using: &rng)
        let integer = try engine.run(x)
        let sites = Set(network.activations.keys)
        let reference = try simulation.run(x, keep: sites)
        XCTAssertEqual(Set(integer.codes.keys), sites, "every site is recorded")

        var total = 0, equal = 0, worst: Int32 = 0
        var report: [String] = []
        for site in sites.sorted() {
            let q = network.activations[site]!, s = q.scales[0], z = q.zeroPoints[0]
            let expected = reference[site]!.data.map { Int32(($0 / s).rounded(.toNearestOrEven) + z) }
            guard let got = integer.codes[site] else { XCTFail("no codes for \(site)"); continue }
            XCTAssertEqual(integer.shapes[site], reference[site]!.shape, site)
            XCTAssertEqual(got.count, expected.count, site)
            var siteEqual = 0, siteWorst: Int32 = 0
            for (a, b) in zip(got, expected) {
                if a == b { siteEqual += 1 }
                siteWorst = max(siteWorst, abs(a - b))
            }
            XCTAssertGreaterThan(Set(expected).count, 1, "site \(site) holds one code only: the comparison would say nothing")
            total += expected.count; equal += siteEqual; worst = max(worst, siteWorst)
            report.append("\(site): \(siteEqual)/\(expected.count) max \(siteWorst)")
        }
        let logits = reference[network.graph.outputs[0].name]!
        XCTAssertEqual(integer.logits.shape, logits.shape)
        let maxDiff = zip(integer.logits.data, logits.data).map { abs($0 - $1) }.max() ?? 0
        let range = logits.data.map(abs).max() ?? 1
        print("IntegerEngine vs Simulation \(bits.weights)/\(bits.activations)\(symmetric ? " sym" : ""): \(equal)/\(total) codes equal "
              + "(\(String(format: "%.4f", 100 * Double(equal) / Double(total)))%), max diff \(worst) LSB; logits max |diff| \(maxDiff) "
              + "(max |logit| \(range))\n  " + report.joined(separator: "\n  "))
        XCTAssertGreaterThanOrEqual(Double(equal), 0.999 * Double(total))
        XCTAssertLessThanOrEqual(worst, 1)
        XCTAssertLessThanOrEqual(maxDiff, 1e-4 * max(1, range))
    }

    /// Conv+Relu, MaxPool, a residual block with a strided shortcut conv, AveragePool, a depthwise conv
    /// with SAME_UPPER padding and Clip(0, 6), a grouped linear 1x1 projection, a dilated conv + Relu,
    /// GlobalAveragePool, Flatten and Gemm.
    static func testGraph(using rng: inout IntegerTestRandom) -> Graph {
        var b = IntegerTestGraph(input: "x", shape: [nil, 3, 16, 16])
        b.conv("c1", "x", out: "c1o", cin: 3, cout: 8, kernel: 3, pads: 1, using: &rng)
        b.node("relu1", .relu, ["c1o"], "r1")
        b.node("pool1", .maxPool(WindowGeometry(kernel: (2, 2), strides: (2, 2))), ["r1"], "m1")          // 8x8
        b.conv("c2", "m1", out: "c2o", cin: 8, cout: 8, kernel: 3, stride: 2, pads: 1, using: &rng)       // 4x4
        b.node("relu2", .relu, ["c2o"], "r2")
        b.conv("c3", "r2", out: "c3o", cin: 8, cout: 8, kernel: 3, pads: 1, using: &rng)
        b.conv("shortcut", "m1", out: "sco", cin: 8, cout: 8, kernel: 1, stride: 2, using: &rng)
        b.node("add", .add, ["c3o", "sco"], "a1")
        b.node("relu3", .relu, ["a1"], "r3")
        b.node("avg", .averagePool(WindowGeometry(kernel: (3, 3), pads: (1, 1, 1, 1)), countIncludePad: false), ["r3"], "ap")
        b.conv("dw", "ap", out: "dwo", cin: 8, cout: 8, kernel: 3, stride: 2, groups: 8, autoPad: .sameUpper, using: &rng) // 2x2
        b.node("relu6", .clip(min: 0, max: 6), ["dwo"], "d1")
        b.conv("pw", "d1", out: "pwo", cin: 8, cout: 16, kernel: 1, groups: 2, using: &rng)
        b.conv("dil", "pwo", out: "dlo", cin: 16, cout: 16, kernel: 3, pads: 2, dilation: 2, using: &rng)
        b.node("relu5", .relu, ["dlo"], "r5")
        b.node("gap", .globalAveragePool, ["r5"], "g")
        b.node("flatten", .flatten(axis: 1), ["g"], "f")
        b.gemm("fc", "f", out: "logits", k: 16, n: 10, using: &rng)
        return b.graph(output: "logits")
    }

    static func uniform(_ shape: [Int], using rng: inout IntegerTestRandom) -> Tensor {
        Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in Float.random(in: -1...1, using: &rng) })
    }
}

/// SeededGenerator, seeded, so the tests draw the same numbers on every run.
struct IntegerTestRandom: RandomNumberGenerator {
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

/// Builds small test graphs node by node, with random He-scaled weights.
struct IntegerTestGraph {
    var input: ValueInfo
    var nodes: [Node] = []
    var initializers: [String: Tensor] = [:]

    init(input: String, shape: [Int?]) { self.input = ValueInfo(name: input, dimensions: shape) }

    mutating func node(_ name: String, _ op: Operator, _ inputs: [String], _ output: String) {
        nodes.append(Node(name: name, op: op, inputs: inputs, outputs: [output]))
    }

    mutating func conv(_ name: String, _ x: String, out: String, cin: Int, cout: Int, kernel: Int, stride: Int = 1,
                       pads: Int = 0, dilation: Int = 1, groups: Int = 1, autoPad: AutoPad = .notSet,
                       using rng: inout IntegerTestRandom) {
        let fanIn = cin / groups * kernel * kernel, bound = Float(sqrt(6 / Double(fanIn)))
        initializers[name + ".w"] = Tensor(shape: [cout, cin / groups, kernel, kernel],
                                           data: (0..<cout * fanIn).map { _ in Float.random(in: -bound...bound, using: &rng) })
        initializers[name + ".b"] = Tensor(shape: [cout], data: (0..<cout).map { _ in Float.random(in: -0.2...0.2, using: &rng) })
        let window = WindowGeometry(kernel: (kernel, kernel), strides: (stride, stride), dilations: (dilation, dilation),
                                    pads: (pads, pads, pads, pads), autoPad: autoPad)
        node(name, .conv(Conv2DParameters(window: window, groups: groups)), [x, name + ".w", name + ".b"], out)
    }

    mutating func gemm(_ name: String, _ x: String, out: String, k: Int, n: Int, using rng: inout IntegerTestRandom) {
        let bound = Float(sqrt(6 / Double(k)))
        initializers[name + ".w"] = Tensor(shape: [n, k], data: (0..<n * k).map { _ in Float.random(in: -bound...bound, using: &rng) })
        initializers[name + ".b"] = Tensor(shape: [n], data: (0..<n).map { _ in Float.random(in: -0.2...0.2, using: &rng) })
        node(name, .gemm(alpha: 1, beta: 1, transA: false, transB: true), [x, name + ".w", name + ".b"], out)
    }

    func graph(output: String) -> Graph {
        Graph(name: "integer-test", inputs: [input], outputs: [ValueInfo(name: output, dimensions: [nil, nil])],
              nodes: nodes, initializers: initializers)
    }
}
