import TensorKernels

extension IntegerLayerKernel {
    /// The sizes of one convolution call, resolved once (auto-padding resolved, `ceilMode` ignored as the
    /// float `Conv2D` does).
    struct Geometry {
        let batch: Int, channels: Int, height: Int, width: Int
        let outputH: Int, outputW: Int
        let strideH: Int, strideW: Int, dilationH: Int, dilationW: Int
        let padTop: Int, padLeft: Int
        var inputPlane: Int { height * width }
        var outputPlane: Int { outputH * outputW }

        init(input: [Int], window: WindowGeometry) {
            batch = input[0]; channels = input[1]; height = input[2]; width = input[3]
            let pads = window.resolvedPads(height: height, width: width)
            var plain = window
            plain.ceilMode = false
            let out = plain.outputSize(height: height, width: width)
            outputH = out.h; outputW = out.w
            strideH = window.strides.h; strideW = window.strides.w
            dilationH = window.dilations.h; dilationW = window.dilations.w
            padTop = pads.top; padLeft = pads.left
        }

        /// Output positions `o` whose tap `o * stride - pad + offset` lands inside `0..<size`.
        static func validRange(offset: Int, pad: Int, stride: Int, size: Int, outputs: Int) -> Range<Int> {
            func floorDivide(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : -((-a + b - 1) / b) }
            func ceilDivide(_ a: Int, _ b: Int) -> Int { a >= 0 ? (a + b - 1) / b : -((-a) / b) }
            let lo = Swift.min(Swift.max(ceilDivide(pad - offset, stride), 0), outputs)
            let hi = Swift.min(Swift.max(floorDivide(size - 1 + pad - offset, stride) + 1, 0), outputs)
            return lo..<Swift.max(lo, hi)
        }
    }

    func convolve(_ x: CodeTensor, parameters: Conv2DParameters) -> IntegerValue {
        let g = Geometry(input: x.shape, window: parameters.window)
        let shape = [g.batch, outputChannels, g.outputH, g.outputW]
        if g.outputPlane == 0 || g.batch == 0 {
            return makeOutputShape(shape)
        }
        return x.codes.withUnsafeBufferPointer { xs in
            let X = xs.baseAddress!
            return makeOutputBuffers(shape: shape, inner: g.outputPlane) { codes, wide in
                if isDepthwise {
                    depthwise(X, geometry: g, codes: codes, wide: wide)
                } else {
                    patchConvolution(X, geometry: g, codes: codes, wide: wide)
                }
            }
        }
    }

    private func makeOutputShape(_ shape: [Int]) -> IntegerValue {
        makeOutputBuffers(shape: shape, inner: Swift.max(1, shape.dropFirst(2).reduce(1, *))) { _, _ in }
    }

    /// Im2col of 16-bit centered codes into packed panels, then `IntegerGEMM`, per image and group.
    /// Images run in parallel when there are at least as many as threads; otherwise the weight row
    /// blocks of each image do.
    private func patchConvolution(_ X: UnsafePointer<Int32>, geometry g: Geometry,
                                  codes: UnsafeMutablePointer<Int32>?, wide: UnsafeMutablePointer<Int64>?) {
        let p = g.outputPlane, groupM = outputChannels / groups
        let patchCount = IntegerGEMM.packedColumnsCount(columns: p, depth: depth)
        let blockCount = IntegerGEMM.blocks(groupM)

        func run(image: Int, group: Int, patches: UnsafeMutablePointer<Int16>, sums: UnsafeMutablePointer<Int32>,
                 parallelRows: Bool) {
            pack(X + (image * g.channels + group * groupInputChannels) * g.inputPlane, geometry: g, into: patches)
            packedWeights[group].withUnsafeBufferPointer { a in
                let body = { (blocks: Range<Int>) in
                    IntegerGEMM.multiply(a: a.baseAddress!, rowBlocks: blocks, rows: groupM, b: UnsafePointer(patches),
                                         columns: p, depth: depth, c: sums, ldc: p)
                    for r in (blocks.lowerBound * IntegerGEMM.rowBlock)..<Swift.min(groupM, blocks.upperBound * IntegerGEMM.rowBlock) {
                        let m = group * groupM + r, offset = (image * outputChannels + m) * p
                        finish(sums + r * p, count: p, channel: m, codes: codes.map { $0 + offset },
                               wide: wide.map { $0 + offset }, stride: 1)
                    }
                }
                if parallelRows {
                    Parallel.forEachChunk(blockCount, maxChunks: 4 * Parallel.threadCount, body)
                } else {
                    body(0..<blockCount)
                }
            }
        }

        if g.batch >= Parallel.threadCount {
            Parallel.forEach(g.batch) { image in
                let patches = UnsafeMutablePointer<Int16>.allocate(capacity: patchCount)
                let sums = UnsafeMutablePointer<Int32>.allocate(capacity: groupM * p)
                defer { patches.deallocate(); sums.deallocate() }
                patches.initialize(repeating: 0, count: patchCount)
                for group in 0..<groups { run(image: image, group: group, patches: patches, sums: sums, parallelRows: false) }
            }
        } else {
            let patches = UnsafeMutablePointer<Int16>.allocate(capacity: patchCount)
            let sums = UnsafeMutablePointer<Int32>.allocate(capacity: groupM * p)
            defer { patches.deallocate(); sums.deallocate() }
            patches.initialize(repeating: 0, count: patchCount)
            for image in 0..<g.batch {
                for group in 0..<groups { run(image: image, group: group, patches: patches, sums: sums, parallelRows: true) }
            }
        }
    }

    /// Writes the patch matrix of one image and group (`depth × P`, row `k = (c·kH + kh)·kW + kw`) as
    /// `x_q - z_x` in 16 bits into column panels; taps in the padding are 0 (`x_q = z_x`). Columns past
    /// `P` in the last panel are never written and stay 0.
    private func pack(_ x: UnsafePointer<Int32>, geometry g: Geometry, into dest: UnsafeMutablePointer<Int16>) {
        let z = Int32(input.zeroPoint), depth = self.depth
        for c in 0..<groupInputChannels {
            let plane = x + c * g.inputPlane
            for kh in 0..<kernelH {
                for kw in 0..<kernelW {
                    let k = (c * kernelH + kh) * kernelW + kw
                    let columns = Geometry.validRange(offset: kw * g.dilationW, pad: g.padLeft, stride: g.strideW,
                                                      size: g.width, outputs: g.outputW)
                    for oh in 0..<g.outputH {
                        let ih = oh * g.strideH - g.padTop + kh * g.dilationH
                        let rowValid = ih >= 0 && ih < g.height
                        let source = plane + (rowValid ? ih * g.width : 0) - g.padLeft + kw * g.dilationW
                        var pIndex = oh * g.outputW
                        for ow in 0..<g.outputW {
                            let v: Int32 = rowValid && columns.contains(ow) ? source[ow * g.strideW] - z : 0
                            dest[IntegerGEMM.columnIndex(k: k, n: pIndex, depth: depth)] = Int16(truncatingIfNeeded: v)
                            pIndex += 1
                        }
                    }
                }
            }
        }
    }

    /// One filter per plane, applied directly: for each tap the valid output columns are found once and
    /// the inner loop is a multiply-add over a row.
    private func depthwise(_ X: UnsafePointer<Int32>, geometry g: Geometry,
                           codes: UnsafeMutablePointer<Int32>?, wide: UnsafeMutablePointer<Int64>?) {
        let taps = kernelH * kernelW, p = g.outputPlane, z = Int32(input.zeroPoint)
        let columnRanges = (0..<kernelW).map {
            Geometry.validRange(offset: $0 * g.dilationW, pad: g.padLeft, stride: g.strideW, size: g.width, outputs: g.outputW)
        }
        let rowRanges = (0..<kernelH).map {
            Geometry.validRange(offset: $0 * g.dilationH, pad: g.padTop, stride: g.strideH, size: g.height, outputs: g.outputH)
        }
        depthwiseWeights.withUnsafeBufferPointer { weights in
            let W = weights.baseAddress!
            Parallel.forEachChunk(g.batch * outputChannels) { planes in
                let sums = UnsafeMutablePointer<Int32>.allocate(capacity: p)
                let centered = UnsafeMutablePointer<Int16>.allocate(capacity: g.inputPlane)
                defer { sums.deallocate(); centered.deallocate() }
                for plane in planes {
                    let m = plane % outputChannels
                    let source = X + plane * g.inputPlane, filter = W + m * taps
                    // 16-bit centered codes: products of sign-extended 16-bit values vectorise well.
                    for i in 0..<g.inputPlane { centered[i] = Int16(truncatingIfNeeded: source[i] &- z) }
                    let input = UnsafePointer(centered)
                    sums.update(repeating: 0, count: p)
                    for kh in 0..<kernelH {
                        for oh in rowRanges[kh] {
                            let ih = oh * g.strideH - g.padTop + kh * g.dilationH
                            let row = input + ih * g.width - g.padLeft, y = sums + oh * g.outputW
                            for kw in 0..<kernelW {
                                let w = Int32(filter[kh * kernelW + kw]), source = row + kw * g.dilationW
                                if g.strideW == 1 {
                                    for o in columnRanges[kw] { y[o] &+= w &* Int32(source[o]) }
                                } else {
                                    let s = g.strideW
                                    for o in columnRanges[kw] { y[o] &+= w &* Int32(source[o * s]) }
                                }
                            }
                        }
                    }
                    finish(sums, count: p, channel: m, codes: codes.map { $0 + plane * p }, wide: wide.map { $0 + plane * p }, stride: 1)
                }
            }
        }
    }
}
