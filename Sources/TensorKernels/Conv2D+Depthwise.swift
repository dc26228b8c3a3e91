import DepthwiseAVX2

extension Conv2D {
    /// Depthwise convolution (`groups == C == M`): each plane is convolved with its own `kH × kW` filter
    /// directly, without a patch matrix.
    ///
    /// Each plane is first copied into a zero-padded scratch plane, split by column phase when the
    /// horizontal stride is above 1 (phase `r` holds the padded columns `j` with `j % strideW == r`), so
    /// that every tap of every output becomes an in-bounds, contiguous load. Each output is then summed in
    /// registers, eight or sixteen columns at a time: bias first, then the taps in row-major order (the
    /// same order for vector and scalar columns, so every output has the same bits however it was computed).
    /// `clamp`, when given, is applied to each output as it is stored (a fused ReLU or ReLU6).
    static func depthwiseForward(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvolutionGeometry,
                                 clamp: ClosedRange<Float>? = nil, vectorUnit: VectorUnit = .current) -> Tensor {
        let taps = g.kernelH * g.kernelW
        let layout = PaddedPlaneLayout(g)
        let biasData = bias?.data ?? [Float](repeating: 0, count: g.outputChannels)
        return Tensor(shape: g.outputShape) { output in
            if output.isEmpty { return }
            x.withUnsafeBufferPointer { xBuffer in
                weight.withUnsafeBufferPointer { wBuffer in
                    let X = xBuffer.base, W = wBuffer.base, Y = output.base
                    // Few chunks: each zeroes its own scratch plane, and planes are independent, so the
                    // chunk count changes only how the work is shared, never a result.
                    Parallel.forEachChunk(g.batch * g.channels, maxChunks: 8) { planes in
                        // Zeroed once: the padding positions are the same for every plane and never written.
                        // The padded plane, then (narrow planes) the flat output rows with a vector's slack.
                        let flatCount = layout.computesFlat ? g.outputH * layout.phaseWidth + 16 : 0
                        var scratch = [Float](repeating: 0, count: layout.count + flatCount)
                        var offsets = [Int](repeating: 0, count: taps)
                        for t in 0..<taps { offsets[t] = layout.tapOffset(kh: t / g.kernelW, kw: t % g.kernelW) }
                        scratch.withUnsafeMutableBufferPointer { scratchBuffer in
                            offsets.withUnsafeBufferPointer { offsetBuffer in
                                let P = scratchBuffer.base, tapOffsets = offsetBuffer.baseAddress!
                                let rowStep = g.strideH * layout.phaseWidth
                                // The same loops built for baseline x86-64 or for AVX2 (same bits).
                                let computePlane = vectorUnit == .avx2 ? DepthwiseAVX2.DepthwiseRows.computePlane
                                                                       : DepthwiseRows.computePlane
                                let flat = P + layout.count
                                for plane in planes {
                                    let c = plane % g.channels
                                    layout.fill(P, from: X + plane * g.inputPlane)
                                    computePlane(P, rowStep, W + c * taps, tapOffsets, taps, biasData[c], clamp,
                                                 Y + plane * g.outputPlane, g.outputH, g.outputW, layout.phaseWidth,
                                                 layout.computesFlat ? flat : nil)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Input and weight gradients of `depthwiseForward`, on the same padded, phase-split scratch plane.
    ///
    /// Work is split by channel. Each image's plane is copied into the scratch plane; every output-gradient
    /// vector then adds `dy · input` into one vector of partial sums per tap (the weight gradient, summed
    /// per plane in float and across planes in double, in a fixed order) and `w · dy` into a padded
    /// input-gradient plane, whose interior is finally copied out to the input's layout.
    static func depthwiseBackward(_ x: Tensor, weight: Tensor, outputGradient: Tensor, geometry g: ConvolutionGeometry,
                                  needInputGradient: Bool) -> (Tensor?, Tensor) {
        let taps = g.kernelH * g.kernelW
        let layout = PaddedPlaneLayout(g)
        let rowStep = g.strideH * layout.phaseWidth
        var inputGradient = needInputGradient ? [Float](repeating: 0, count: x.count) : []
        var weightGradient = [Float](repeating: 0, count: weight.count)
        x.withUnsafeBufferPointer { xBuffer in
            weight.withUnsafeBufferPointer { wBuffer in
                outputGradient.withUnsafeBufferPointer { dyBuffer in
                    inputGradient.withUnsafeMutableBufferPointer { dxBuffer in
                        weightGradient.withUnsafeMutableBufferPointer { dwBuffer in
                            let X = xBuffer.base, W = wBuffer.base, DY = dyBuffer.base, DX = dxBuffer.base, DW = dwBuffer.base
                            Parallel.forEachChunk(g.channels, maxChunks: 8) { channels in
                                // Input plane, then the input-gradient plane; zero padding never written.
                                let P = UnsafeMutablePointer<Float>.allocate(capacity: 2 * layout.count)
                                let dP = P + layout.count
                                // The output-gradient plane with rows padded by zeros to whole vectors.
                                let rowVectors = (g.outputW + 7) / 8
                                let D = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: g.outputH * rowVectors)
                                defer { P.deallocate(); D.deallocate() }
                                P.initialize(repeating: 0, count: 2 * layout.count)
                                D.initialize(repeating: .zero, count: g.outputH * rowVectors)
                                let offsets = (0..<taps).map { layout.tapOffset(kh: $0 / g.kernelW, kw: $0 % g.kernelW) }
                                for c in channels {
                                    let filter = W + c * taps
                                    var totals = [Double](repeating: 0, count: taps)
                                    for n in 0..<g.batch {
                                        let plane = n * g.channels + c
                                        layout.fill(P, from: X + plane * g.inputPlane)
                                        let dyPlane = DY + plane * g.outputPlane
                                        for oh in 0..<g.outputH {
                                            UnsafeMutableRawPointer(D + oh * rowVectors)
                                                .copyMemory(from: dyPlane + oh * g.outputW, byteCount: g.outputW * 4)
                                        }
                                        if needInputGradient { dP.update(repeating: 0, count: layout.count) }
                                        // One tap at a time over the whole plane: its sums stay in registers.
                                        // Lanes past a row's end carry zero gradients, so their products are zero.
                                        for t in 0..<taps {
                                            var a = SIMD8<Float>.zero, b = SIMD8<Float>.zero
                                            let w = SIMD8<Float>(repeating: filter[t])
                                            for oh in 0..<g.outputH {
                                                let source = P + oh * rowStep + offsets[t], d = D + oh * rowVectors
                                                let target = dP + oh * rowStep + offsets[t]
                                                var v = 0
                                                while v + 2 <= rowVectors {
                                                    a += d[v] * UnsafeRawPointer(source + 8 * v).loadUnaligned(as: SIMD8<Float>.self)
                                                    b += d[v + 1] * UnsafeRawPointer(source + 8 * v + 8).loadUnaligned(as: SIMD8<Float>.self)
                                                    v += 2
                                                }
                                                if v < rowVectors {
                                                    a += d[v] * UnsafeRawPointer(source + 8 * v).loadUnaligned(as: SIMD8<Float>.self)
                                                }
                                                if !needInputGradient { continue }
                                                for v in 0..<rowVectors {
                                                    let q = UnsafeMutableRawPointer(target + 8 * v)
                                                    q.storeBytes(of: q.loadUnaligned(as: SIMD8<Float>.self) + w * d[v], as: SIMD8<Float>.self)
                                                }
                                            }
                                            totals[t] += Double((a + b).sum())
                                        }
                                        if needInputGradient { layout.extract(dP, into: DX + plane * g.inputPlane) }
                                    }
                                    for t in 0..<taps { DW[c * taps + t] = Float(totals[t]) }
                                }
                            }
                        }
                    }
                }
            }
        }
        return (needInputGradient ? Tensor(shape: x.shape, data: inputGradient) : nil,
                Tensor(shape: weight.shape, data: weightGradient))
    }
}

/// Where a depthwise convolution's padded input plane lives in scratch memory: `strideW` column-phase
/// planes of `rows × phaseWidth` floats each, zero outside the copied input.
struct PaddedPlaneLayout {
    let g: ConvolutionGeometry
    /// Padded rows that any output reads, and padded columns per phase.
    let rows: Int, phaseWidth: Int

    init(_ g: ConvolutionGeometry) {
        self.g = g
        rows = (g.outputH - 1) * g.strideH + (g.kernelH - 1) * g.dilationH + 1
        let columns = (g.outputW - 1) * g.strideW + (g.kernelW - 1) * g.dilationW + 1
        phaseWidth = (columns + g.strideW - 1) / g.strideW
    }

    /// Scratch floats: the phase planes plus slack, so that the last columns of the last row can be read
    /// as whole vectors, also by the flat loop of narrow planes (`DepthwiseRows.computeFlat`).
    var count: Int { g.strideW * rows * phaseWidth + 24 + (g.kernelW - 1) * g.dilationW }

    /// Narrow stride-1 planes are computed as one flat run over padded rows (see `computeFlat`).
    var computesFlat: Bool { g.strideH == 1 && g.strideW == 1 && g.outputW < 32 }

    /// Scratch index of padded position `(kh·dilationH, kw·dilationW)`, the first tap of output `(0, 0)`.
    func tapOffset(kh: Int, kw: Int) -> Int {
        let column = kw * g.dilationW
        return (column % g.strideW) * rows * phaseWidth + kh * g.dilationH * phaseWidth + column / g.strideW
    }

    /// Copies input plane `input` into the padded positions of `P` that hold input values.
    func fill(_ P: UnsafeMutablePointer<Float>, from input: UnsafePointer<Float>) {
        let firstRow = Swift.max(0, g.padTop), lastRow = Swift.min(rows, g.padTop + g.height)
        let firstColumn = Swift.max(0, -g.padLeft), endColumn = Swift.min(g.width, rows == 0 ? 0 : g.strideW * phaseWidth - g.padLeft)
        if firstRow >= lastRow || firstColumn >= endColumn { return }
        for r in firstRow..<lastRow {
            let source = input + (r - g.padTop) * g.width
            if g.strideW == 1 {
                (P + r * phaseWidth + firstColumn + g.padLeft).update(from: source + firstColumn, count: endColumn - firstColumn)
            } else if g.strideW == 2 {
                splitTwoPhases(source, columns: firstColumn..<endColumn, into: P + r * phaseWidth)
            } else {
                // Phase p holds padded columns j·strideW + p, i.e. input columns j·strideW + p − padLeft.
                for p in 0..<g.strideW {
                    let shift = p - g.padLeft
                    let first = ceilDivide(firstColumn - shift, g.strideW), end = ceilDivide(endColumn - shift, g.strideW)
                    if first >= end { continue }
                    let target = P + p * rows * phaseWidth + r * phaseWidth
                    for j in first..<end { target[j] = source[j * g.strideW + shift] }
                }
            }
        }
    }
}

extension PaddedPlaneLayout {
    /// `fill`'s row copy for `strideW == 2`: input column `c` (padded column `j = c + padLeft`) goes to
    /// index `j / 2` of phase `j % 2`, whose row starts at `row` and `rows · phaseWidth` floats later.
    /// Sixteen columns at a time from an even `j`: their even lanes are eight consecutive floats of phase
    /// 0, their odd lanes the same eight positions of phase 1.
    private func splitTwoPhases(_ source: UnsafePointer<Float>, columns: Range<Int>, into row: UnsafeMutablePointer<Float>) {
        let odd = row + rows * phaseWidth
        @inline(__always) func place(_ c: Int) {
            let j = c + g.padLeft
            (j % 2 == 0 ? row : odd)[j / 2] = source[c]
        }
        var c = columns.lowerBound
        if c < columns.upperBound && (c + g.padLeft) % 2 != 0 { place(c); c += 1 }
        while c + 16 <= columns.upperBound {
            let v = UnsafeRawPointer(source + c).loadUnaligned(as: SIMD16<Float>.self)
            let j = (c + g.padLeft) / 2
            UnsafeMutableRawPointer(row + j).storeBytes(of: v.evenHalf, as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(odd + j).storeBytes(of: v.oddHalf, as: SIMD8<Float>.self)
            c += 16
        }
        while c < columns.upperBound { place(c); c += 1 }
    }

    /// The inverse of `fill`: copies the padded positions of `P` that hold input values out to `output`,
    /// an input-shaped plane (padding positions are dropped).
    func extract(_ P: UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>) {
        let firstRow = Swift.max(0, g.padTop), lastRow = Swift.min(rows, g.padTop + g.height)
        let firstColumn = Swift.max(0, -g.padLeft), endColumn = Swift.min(g.width, g.strideW * phaseWidth - g.padLeft)
        // Input rows and columns that no output reads get no gradient.
        output.update(repeating: 0, count: g.inputPlane)
        if firstRow >= lastRow || firstColumn >= endColumn { return }
        for r in firstRow..<lastRow {
            let target = output + (r - g.padTop) * g.width
            if g.strideW == 1 {
                (target + firstColumn).update(from: P + r * phaseWidth + firstColumn + g.padLeft, count: endColumn - firstColumn)
            } else {
                for p in 0..<g.strideW {
                    let shift = p - g.padLeft
                    let first = ceilDivide(firstColumn - shift, g.strideW), end = ceilDivide(endColumn - shift, g.strideW)
                    if first >= end { continue }
                    let source = P + p * rows * phaseWidth + r * phaseWidth
                    for j in first..<end { target[j * g.strideW + shift] = source[j] }
                }
            }
        }
    }
}
