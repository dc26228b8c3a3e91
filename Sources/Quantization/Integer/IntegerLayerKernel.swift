import Graph
import TensorKernels

/// A Conv or Gemm on integer codes: `acc[c] = Σ (x_q - z_x) * (w_q - z_w[c]) + bias_int[c]`, at exponent
/// `e_x + e_w[c]`, then either requantized onto its output site or kept as a wide accumulator.
///
/// Range: the products are summed in `Int32`. At init every channel is checked against the bound
/// `Σ_k |w_q - z_w[c]| * max|x_q - z_x| <= 2^31 - 1` (for 8-bit codes this allows any `K` up to 33025 at
/// worst and far more in practice); the bias, which may be near `2^31` for dead channels, is added in
/// `Int64`. Padding contributes `x_q = z_x`, a real zero.
struct IntegerLayerKernel: Sendable {
    enum Form: Sendable {
        case convolution(Conv2DParameters)
        case fullyConnected
    }

    let node: String
    let form: Form
    let outputChannels: Int
    let groups: Int
    /// Input channels per group (Conv) or input features (Gemm).
    let groupInputChannels: Int
    let kernelH: Int, kernelW: Int
    /// `C/groups · kH · kW` (Conv) or `K` (Gemm).
    let depth: Int
    let isDepthwise: Bool
    /// Per group: centered weights packed in row blocks (empty for depthwise).
    let packedWeights: [[Int16]]
    /// Depthwise only: centered weights `[M, kH·kW]`.
    let depthwiseWeights: [Int16]
    /// `integerBias(inputScale: 2^e_x)` per output channel.
    let bias: [Int64]
    let input: SiteQuantizer
    /// `e_x + e_w[c]` per output channel.
    let exponents: [Int]
    /// Where the result goes; nil keeps the accumulator.
    let site: OutputSite?
    /// `e_y - e_x - e_w[c]`: the right shift of the requantization.
    let shifts: [Int]

    init(node: Node, layer: QuantizedLayer, input: SiteQuantizer, site: OutputSite?) throws {
        // Power-of-two scales and integer zero points are checked by `IntegerEngine.init` first.
        guard let we = layer.weight.exponents, let wz = layer.weight.integerZeroPoints else {
            preconditionFailure("layer '\(layer.node)' is not power-of-two; IntegerEngine checks this before")
        }
        self.node = node.name
        self.input = input
        self.site = site
        let m = layer.weightShape[0]
        outputChannels = m
        switch node.op {
        case .conv(let parameters):
            guard layer.weightShape.count == 4 else { throw QuantizationError.noIntegerKernel(node: node.name, op: "Conv with weight \(layer.weightShape)") }
            form = .convolution(parameters)
            groups = parameters.groups
            groupInputChannels = layer.weightShape[1]
            kernelH = layer.weightShape[2]; kernelW = layer.weightShape[3]
            isDepthwise = groups == m && groupInputChannels == 1
        case .gemm(let alpha, let beta, let transA, let transB):
            guard alpha == 1, beta == 1, !transA, transB, layer.weightShape.count == 2 else {
                throw QuantizationError.noIntegerKernel(node: node.name, op: "Gemm(alpha \(alpha), beta \(beta), transA \(transA), transB \(transB))")
            }
            form = .fullyConnected
            groups = 1
            groupInputChannels = layer.weightShape[1]
            kernelH = 1; kernelW = 1
            isDepthwise = false
        default:
            throw QuantizationError.noIntegerKernel(node: node.name, op: node.op.onnxName)
        }
        depth = groupInputChannels * kernelH * kernelW
        precondition(layer.codes.count == m * depth, "layer \(layer.node): \(layer.codes.count) codes for shape \(layer.weightShape)")

        // The Int32 bound, checked once per channel.
        let grid = input.grid
        let maxX = Int64(Swift.max(input.zeroPoint - grid.qmin, grid.qmax - input.zeroPoint))
        let codes = layer.codes
        for c in 0..<m {
            var total: Int64 = 0, widest: Int64 = 0
            for k in 0..<depth {
                let w = abs(Int64(codes[c * depth + k]) - Int64(wz[c]))
                total += w; widest = Swift.max(widest, w)
            }
            guard total * maxX <= Int64(Int32.max), widest <= Int64(Int16.max), maxX <= Int64(Int16.max) else {
                throw IntegerEngineError.accumulatorRange(layer: node.name, bound: total * maxX)
            }
        }

        let groupM = m / groups, depth = self.depth
        if isDepthwise {
            packedWeights = []
            depthwiseWeights = (0..<m * depth).map { Int16(Int32(codes[$0]) - Int32(wz[$0 / depth])) }
        } else {
            packedWeights = (0..<groups).map { g in
                IntegerGEMM.packRows(rows: groupM, depth: depth) { r, k in
                    let c = g * groupM + r
                    return Int16(Int32(codes[c * depth + k]) - Int32(wz[c]))
                }
            }
            depthwiseWeights = []
        }
        bias = layer.integerBias(inputScale: PowerOfTwo.value(input.exponent)).map(Int64.init)
        exponents = we.map { input.exponent + $0 }
        shifts = exponents.map { (site?.quantizer.exponent ?? 0) - $0 }
    }

    /// The layer applied to codes `x` (`[N, C, H, W]` for a Conv, `[N, K]` for a Gemm).
    func forward(_ x: CodeTensor) throws -> IntegerValue {
        guard x.quantizer == input else {
            throw IntegerEngineError.inconsistentInput(node: node, detail: "its input carries a different quantizer than the one its bias was computed for")
        }
        switch form {
        case .convolution(let parameters):
            guard x.shape.count == 4, x.shape[1] == groupInputChannels * groups else {
                throw IntegerEngineError.inconsistentInput(node: node, detail: "input shape \(x.shape) does not fit weight [\(outputChannels), \(groupInputChannels), \(kernelH), \(kernelW)] in \(groups) group(s)")
            }
            return convolve(x, parameters: parameters)
        case .fullyConnected:
            guard x.shape.count == 2, x.shape[1] == depth else {
                throw IntegerEngineError.inconsistentInput(node: node, detail: "input shape \(x.shape) does not fit weight [\(outputChannels), \(depth)]")
            }
            return fullyConnected(x)
        }
    }

    /// Writes one channel's sums `+ bias` to codes (requantized) or to wide accumulators, `count` values
    /// `stride` apart.
    @inline(__always)
    func finish(_ sums: UnsafePointer<Int32>, count: Int, channel m: Int,
                        codes: UnsafeMutablePointer<Int32>?, wide: UnsafeMutablePointer<Int64>?, stride: Int) {
        let b = bias[m]
        if let codes, let site {
            let shift = shifts[m]
            if shift >= 1 && shift <= 32 {
                // The common case, branch-free (`|v| < 2^33`, so nothing wraps).
                let n = Int64(shift), z = Int64(site.quantizer.zeroPoint)
                let lo = site.range.lowerBound, hi = site.range.upperBound
                for j in 0..<count {
                    let q = IntegerRounding.shiftBranchFree(Int64(sums[j]) &+ b, right: n) &+ z
                    codes[j &* stride] = Int32(truncatingIfNeeded: Swift.min(Swift.max(q, lo), hi))
                }
                return
            }
            for j in 0..<count { codes[j * stride] = site.code(Int64(sums[j]) &+ b, shift: shift) }
        } else if let wide {
            for j in 0..<count { wide[j * stride] = Int64(sums[j]) &+ b }
        }
    }

    /// The result tensor around the output buffers filled by `body(codes, wide)`.
    func makeOutputBuffers(shape: [Int], inner: Int,
                            _ body: (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Int64>?) -> Void) -> IntegerValue {
        let count = shape.shapeProduct
        if let site {
            var out = [Int32](repeating: 0, count: count)
            out.withUnsafeMutableBufferPointer { body($0.baseAddress, nil) }
            return .codes(CodeTensor(shape: shape, codes: out, quantizer: site.quantizer))
        }
        var out = [Int64](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { body(nil, $0.baseAddress) }
        return .accumulator(AccumulatorTensor(shape: shape, values: out, exponents: exponents, inner: inner))
    }

    private func fullyConnected(_ x: CodeTensor) -> IntegerValue {
        let n = x.shape[0], m = outputChannels, k = depth, z = Int32(input.zeroPoint)
        var patches = [Int16](repeating: 0, count: IntegerGEMM.packedColumnsCount(columns: n, depth: k))
        let depth = k
        x.codes.withUnsafeBufferPointer { xs in
            for row in 0..<n {
                for j in 0..<k { patches[IntegerGEMM.columnIndex(k: j, n: row, depth: depth)] = Int16(xs[row * k + j] - z) }
            }
        }
        var sums = [Int32](repeating: 0, count: m * n)
        return makeOutputBuffers(shape: [n, m], inner: 1) { codes, wide in
            packedWeights[0].withUnsafeBufferPointer { a in
                patches.withUnsafeBufferPointer { b in
                    sums.withUnsafeMutableBufferPointer { c in
                        let C = c.baseAddress!
                        Parallel.forEachChunk(IntegerGEMM.blocks(m), maxChunks: 4 * Parallel.threadCount) { blocks in
                            IntegerGEMM.multiply(a: a.baseAddress!, rowBlocks: blocks, rows: m, b: b.baseAddress!, columns: n,
                                                 depth: k, c: C, ldc: n)
                            for channel in (blocks.lowerBound * IntegerGEMM.rowBlock)..<Swift.min(m, blocks.upperBound * IntegerGEMM.rowBlock) {
                                finish(C + channel * n, count: n, channel: channel, codes: codes.map { $0 + channel },
                                       wide: wide.map { $0 + channel }, stride: m)
                            }
                        }
                    }
                }
            }
        }
    }
}
