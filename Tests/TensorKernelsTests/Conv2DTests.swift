import XCTest
@testable import TensorKernels

final class Conv2DTests: XCTestCase {
    /// One convolution to check: input shape, weight shape and parameters.
    struct Case {
        let input: [Int], weight: [Int], parameters: Conv2DParameters, bias: Bool
        init(_ input: [Int], _ weight: [Int], kernel: (Int, Int), strides: (Int, Int) = (1, 1), dilations: (Int, Int) = (1, 1),
             pads: (Int, Int, Int, Int) = (0, 0, 0, 0), autoPad: AutoPad = .notSet, groups: Int = 1, bias: Bool = true) {
            self.input = input; self.weight = weight; self.bias = bias
            parameters = Conv2DParameters(window: WindowGeometry(kernel: kernel, strides: strides, dilations: dilations,
                                                                 pads: pads, autoPad: autoPad), groups: groups)
        }
    }

    static let cases: [Case] = [
        Case([2, 3, 7, 9], [4, 3, 3, 3], kernel: (3, 3), pads: (1, 1, 1, 1)),
        Case([1, 4, 8, 7], [6, 2, 3, 2], kernel: (3, 2), strides: (2, 2), pads: (0, 1, 2, 0), groups: 2),
        Case([2, 3, 9, 10], [5, 3, 3, 3], kernel: (3, 3), dilations: (2, 2), pads: (2, 2, 2, 2), bias: false),
        Case([1, 5, 11, 6], [5, 1, 5, 5], kernel: (5, 5), strides: (2, 2), autoPad: .sameUpper, groups: 5),
        Case([2, 4, 7, 7], [4, 1, 3, 3], kernel: (3, 3), strides: (2, 2), autoPad: .sameLower, groups: 4),
        Case([1, 4, 9, 9], [4, 1, 3, 3], kernel: (3, 3), dilations: (2, 2), pads: (2, 1, 0, 3), groups: 4),
        Case([2, 3, 6, 5], [3, 1, 3, 3], kernel: (3, 3), strides: (1, 2), pads: (1, 1, 1, 1), groups: 3, bias: false),
        Case([2, 3, 6, 9], [3, 1, 3, 3], kernel: (3, 3), pads: (1, 1, 1, 1), groups: 3),
        Case([1, 2, 9, 12], [2, 1, 5, 5], kernel: (5, 5), pads: (2, 2, 2, 2), groups: 2),
        Case([1, 2, 9, 12], [2, 1, 5, 3], kernel: (5, 3), dilations: (1, 2), pads: (0, 1, 3, 2), groups: 2),
        Case([1, 6, 5, 5], [4, 6, 1, 1], kernel: (1, 1)),
        Case([2, 6, 6, 5], [8, 3, 1, 1], kernel: (1, 1), groups: 2),
        Case([1, 3, 9, 8], [6, 3, 1, 1], kernel: (1, 1), strides: (2, 2)),
        Case([2, 2, 6, 7], [4, 2, 3, 3], kernel: (3, 3), strides: (2, 1), autoPad: .sameUpper),
        Case([1, 2, 8, 8], [3, 2, 4, 4], kernel: (4, 4), strides: (3, 3), autoPad: .sameLower),
        Case([1, 3, 6, 6], [2, 3, 2, 3], kernel: (2, 3), autoPad: .valid),
    ]

    func testForwardMatchesReference() {
        var rng = SeededGenerator(seed: 1)
        for (index, c) in Self.cases.enumerated() {
            let x = Tensor.random(c.input, using: &rng), w = Tensor.random(c.weight, using: &rng)
            let b = c.bias ? Tensor.random([c.weight[0]], using: &rng) : nil
            let y = Conv2D.forward(x, weight: w, bias: b, parameters: c.parameters)
            let (expected, shape) = Reference.conv(x.doubles, x.shape, w.doubles, w.shape, b?.doubles, c.parameters)
            XCTAssertEqual(y.shape, shape, "case \(index)")
            assertClose(y.data, expected, tolerance: 1e-5, "case \(index)")
        }
    }

    static let wideDepthwiseCases = [
        Case([2, 3, 7, 41], [3, 1, 3, 3], kernel: (3, 3), pads: (1, 1, 1, 1), groups: 3),
        Case([1, 2, 9, 70], [2, 1, 3, 3], kernel: (3, 3), strides: (2, 2), autoPad: .sameUpper, groups: 2),
        Case([1, 2, 12, 53], [2, 1, 5, 5], kernel: (5, 5), strides: (1, 3), dilations: (2, 2), pads: (4, 3, 1, 5), groups: 2),
        Case([1, 4, 6, 24], [4, 1, 3, 3], kernel: (3, 3), groups: 4, bias: false),
        Case([1, 2, 9, 20], [2, 1, 3, 3], kernel: (3, 3), strides: (2, 2), pads: (0, 0, 0, 0), groups: 2),
        // Stride 2 over rows of 16-column blocks and tails, with an odd and an even left pad.
        Case([1, 2, 8, 45], [2, 1, 3, 3], kernel: (3, 3), strides: (2, 2), pads: (1, 1, 1, 1), groups: 2),
        Case([2, 3, 10, 67], [3, 1, 5, 5], kernel: (5, 5), strides: (2, 2), pads: (2, 2, 2, 2), groups: 3),
    ]

    /// The depthwise backward on the wide cases: input and weight gradients against float64 finite
    /// differences at many positions (borders, vector tails, every phase of a stride).
    func testWideDepthwiseBackwardMatchesFiniteDifferences() {
        var rng = SeededGenerator(seed: 6)
        for (index, c) in Self.wideDepthwiseCases.enumerated() {
            let x = Tensor.random(c.input, using: &rng), w = Tensor.random(c.weight, using: &rng)
            let (_, outShape) = Reference.conv(x.doubles, x.shape, w.doubles, w.shape, nil, c.parameters)
            let dy = Tensor.random(outShape, using: &rng)
            let r = dy.doubles
            let grads = Conv2D.backward(x, weight: w, outputGradient: dy, parameters: c.parameters)
            checkGradient(grads.input!.data, at: x.doubles, samples: 200, "input, wide case \(index)") {
                weightedSum(Reference.conv($0, x.shape, w.doubles, w.shape, nil, c.parameters).0, r)
            }
            checkGradient(grads.weight.data, at: w.doubles, "weight, wide case \(index)") {
                weightedSum(Reference.conv(x.doubles, x.shape, $0, w.shape, nil, c.parameters).0, r)
            }
        }
    }

    /// Depthwise planes wide and tall enough for every path of the direct kernel: two rows of sixteen
    /// columns at a time, single rows, eight-column vectors and the partial last vector; and the fused
    /// clamp, which must equal clipping the unclamped output.
    func testWideDepthwiseAndFusedClampMatchReference() {
        let cases = Self.wideDepthwiseCases
        var rng = SeededGenerator(seed: 5)
        for (index, c) in cases.enumerated() {
            let x = Tensor.random(c.input, using: &rng), w = Tensor.random(c.weight, using: &rng)
            let b = c.bias ? Tensor.random([c.weight[0]], using: &rng) : nil
            let (expected, shape) = Reference.conv(x.doubles, x.shape, w.doubles, w.shape, b?.doubles, c.parameters)
            let y = Conv2D.forward(x, weight: w, bias: b, parameters: c.parameters)
            XCTAssertEqual(y.shape, shape, "case \(index)")
            assertClose(y.data, expected, tolerance: 1e-5, "case \(index)")
            for bounds: ClosedRange<Float> in [0...Float.infinity, -0.25...0.5] {
                let fused = Conv2D.forward(x, weight: w, bias: b, parameters: c.parameters, clamp: bounds)
                XCTAssertEqual(fused.data, Activation.clip(y, min: bounds.lowerBound, max: bounds.upperBound).data,
                               "case \(index) clamp \(bounds)")
            }
        }
        // The regular (im2col + GEMM) path with a fused clamp, with and without a bias.
        for (index, c) in Self.cases.enumerated() where c.parameters.groups == 1 {
            let x = Tensor.random(c.input, using: &rng), w = Tensor.random(c.weight, using: &rng)
            let b = c.bias ? Tensor.random([c.weight[0]], using: &rng) : nil
            let y = Conv2D.forward(x, weight: w, bias: b, parameters: c.parameters)
            let fused = Conv2D.forward(x, weight: w, bias: b, parameters: c.parameters, clamp: 0...0.3)
            XCTAssertEqual(fused.data, Activation.clip(y, min: 0, max: 0.3).data, "regular case \(index)")
        }
    }

    /// The depthwise loops compiled for AVX2 (`DepthwiseAVX2`) and for baseline x86-64 give the same bits,
    /// with and without a fused clamp, on every depthwise case, narrow (flat run) and wide; both against
    /// the float64 reference.
    func testDepthwiseAVX2AndBaselineLoopsAgreeBitForBit() throws {
        try XCTSkipUnless(VectorUnit.machineRunsAVX2, "this CPU has no AVX2")
        var rng = SeededGenerator(seed: 7)
        let depthwise = Self.cases.filter { $0.parameters.groups > 1 && $0.parameters.groups == $0.input[1] && $0.weight[0] == $0.input[1] }
        XCTAssertGreaterThan(depthwise.count, 2)
        for (index, c) in (depthwise + Self.wideDepthwiseCases).enumerated() {
            let x = Tensor.random(c.input, using: &rng), w = Tensor.random(c.weight, using: &rng)
            let b = c.bias ? Tensor.random([c.weight[0]], using: &rng) : nil
            let g = ConvolutionGeometry(input: x.shape, weight: w.shape, parameters: c.parameters)
            XCTAssertTrue(g.isDepthwise, "case \(index)")
            let (expected, _) = Reference.conv(x.doubles, x.shape, w.doubles, w.shape, b?.doubles, c.parameters)
            for clamp: ClosedRange<Float>? in [nil, -0.25...0.5] {
                let wide = Conv2D.depthwiseForward(x, weight: w, bias: b, geometry: g, clamp: clamp, vectorUnit: .avx2)
                let baseline = Conv2D.depthwiseForward(x, weight: w, bias: b, geometry: g, clamp: clamp, vectorUnit: .baseline)
                XCTAssertEqual(wide.data, baseline.data, "case \(index) clamp \(String(describing: clamp))")
                if clamp == nil { assertClose(wide.data, expected, tolerance: 1e-5, "case \(index)") }
            }
        }
    }

    func testBackwardMatchesFiniteDifferences() {
        var rng = SeededGenerator(seed: 2)
        for (index, c) in Self.cases.enumerated() {
            let x = Tensor.random(c.input, using: &rng), w = Tensor.random(c.weight, using: &rng)
            let b = Tensor.random([c.weight[0]], using: &rng)
            let (_, outShape) = Reference.conv(x.doubles, x.shape, w.doubles, w.shape, nil, c.parameters)
            let dy = Tensor.random(outShape, using: &rng)
            let r = dy.doubles
            let grads = Conv2D.backward(x, weight: w, outputGradient: dy, parameters: c.parameters)
            checkGradient(grads.input!.data, at: x.doubles, "input, case \(index)") {
                weightedSum(Reference.conv($0, x.shape, w.doubles, w.shape, b.doubles, c.parameters).0, r)
            }
            checkGradient(grads.weight.data, at: w.doubles, "weight, case \(index)") {
                weightedSum(Reference.conv(x.doubles, x.shape, $0, w.shape, b.doubles, c.parameters).0, r)
            }
            checkGradient(grads.bias.data, at: b.doubles, "bias, case \(index)") {
                weightedSum(Reference.conv(x.doubles, x.shape, w.doubles, w.shape, $0, c.parameters).0, r)
            }
            let withoutInput = Conv2D.backward(x, weight: w, outputGradient: dy, parameters: c.parameters, needInputGradient: false)
            XCTAssertNil(withoutInput.input)
            XCTAssertEqual(withoutInput.weight, grads.weight, "case \(index)")
            XCTAssertEqual(withoutInput.bias, grads.bias, "case \(index)")
        }
    }

    /// Enough output rows that the patch matrix is cut into several tiles; the gradient is checked
    /// against the exact adjoint (the convolution is linear in each argument, so the finite difference
    /// of a float64 reference is exact up to rounding: a few sampled entries suffice).
    func testTiledConvolution() {
        var rng = SeededGenerator(seed: 3)
        let c = Case([1, 16, 40, 64], [3, 16, 3, 3], kernel: (3, 3), strides: (1, 1), pads: (1, 0, 1, 2))
        let g = ConvolutionGeometry(input: c.input, weight: c.weight, parameters: c.parameters)
        XCTAssertGreaterThan((g.outputH + g.tileRows - 1) / g.tileRows, 1, "the case must use several tiles")
        let x = Tensor.random(c.input, using: &rng), w = Tensor.random(c.weight, using: &rng), b = Tensor.random([3], using: &rng)
        let y = Conv2D.forward(x, weight: w, bias: b, parameters: c.parameters)
        let (expected, shape) = Reference.conv(x.doubles, x.shape, w.doubles, w.shape, b.doubles, c.parameters)
        XCTAssertEqual(y.shape, shape)
        assertClose(y.data, expected, tolerance: 1e-5)
        let dy = Tensor.random(shape, using: &rng), r = dy.doubles
        let grads = Conv2D.backward(x, weight: w, outputGradient: dy, parameters: c.parameters)
        checkGradient(grads.input!.data, at: x.doubles, samples: 3, step: 0.5, tolerance: 1e-4, "input") {
            weightedSum(Reference.conv($0, x.shape, w.doubles, w.shape, b.doubles, c.parameters).0, r)
        }
        checkGradient(grads.weight.data, at: w.doubles, samples: 3, step: 0.5, tolerance: 1e-4, "weight") {
            weightedSum(Reference.conv(x.doubles, x.shape, $0, w.shape, b.doubles, c.parameters).0, r)
        }
    }

    /// The weight gradient is a reduction over images: it must not depend on how chunks are scheduled.
    func testWeightGradientIsDeterministic() {
        var rng = SeededGenerator(seed: 4)
        for c in [Case([9, 8, 10, 10], [8, 8, 3, 3], kernel: (3, 3), pads: (1, 1, 1, 1)),
                  Case([9, 8, 10, 10], [8, 2, 3, 3], kernel: (3, 3), strides: (2, 2), groups: 4),
                  Case([9, 8, 10, 10], [8, 1, 3, 3], kernel: (3, 3), pads: (1, 1, 1, 1), groups: 8)] {
            let x = Tensor.random(c.input, using: &rng), w = Tensor.random(c.weight, using: &rng)
            let (_, outShape) = Reference.conv([Double](repeating: 0, count: x.count), x.shape, w.doubles, w.shape, nil, c.parameters)
            let dy = Tensor.random(outShape, using: &rng)
            let concurrent = Conv2D.backward(x, weight: w, outputGradient: dy, parameters: c.parameters, needInputGradient: true,
                                             concurrent: true)
            let serial = Conv2D.backward(x, weight: w, outputGradient: dy, parameters: c.parameters, needInputGradient: true,
                                         concurrent: false)
            let again = Conv2D.backward(x, weight: w, outputGradient: dy, parameters: c.parameters)
            XCTAssertEqual(concurrent.weight.data.map(\.bitPattern), serial.weight.data.map(\.bitPattern))
            XCTAssertEqual(concurrent.weight.data.map(\.bitPattern), again.weight.data.map(\.bitPattern))
            XCTAssertEqual(concurrent.bias.data.map(\.bitPattern), serial.bias.data.map(\.bitPattern))
            XCTAssertEqual(concurrent.input!.data.map(\.bitPattern), serial.input!.data.map(\.bitPattern))
        }
    }

    func testGeometryFastPaths() {
        let pointwise = ConvolutionGeometry(input: [1, 4, 5, 5], weight: [2, 4, 1, 1],
                                            parameters: Conv2DParameters(window: WindowGeometry(kernel: (1, 1))))
        XCTAssertTrue(pointwise.isPointwise)
        let strided = ConvolutionGeometry(input: [1, 4, 5, 5], weight: [2, 4, 1, 1],
                                          parameters: Conv2DParameters(window: WindowGeometry(kernel: (1, 1), strides: (2, 2))))
        XCTAssertFalse(strided.isPointwise)
        let depthwise = ConvolutionGeometry(input: [1, 4, 5, 5], weight: [4, 1, 3, 3],
                                            parameters: Conv2DParameters(window: WindowGeometry(kernel: (3, 3)), groups: 4))
        XCTAssertTrue(depthwise.isDepthwise)
    }
}
