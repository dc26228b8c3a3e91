/// The patch matrix of a convolution ("image to columns") and its adjoint.
///
/// For one image and one channel group, row `(c·kH + kh)·kW + kw` of the matrix holds, for every output
/// position of the tile, the input value under tap `(kh, kw)` of channel `c` (zero in the padding). The
/// convolution is then one GEMM: `weight[M/g, C/g·kH·kW] · patches[C/g·kH·kW, OH·OW]`.
enum Im2Col {
    /// Writes the patch matrix of output rows `rows` into `patches` (`patchSize × rows.count·OW`, dense).
    ///
    /// `input` points at the first channel of the group in one image.
    static func gather(_ input: UnsafePointer<Float>, geometry g: ConvolutionGeometry, rows: Range<Int>,
                       into patches: UnsafeMutablePointer<Float>) {
        let ow = g.outputW, columns = rows.count * ow
        var row = 0
        for c in 0..<g.groupChannels {
            let plane = input + c * g.inputPlane
            for kh in 0..<g.kernelH {
                let hOffset = kh * g.dilationH
                for kw in 0..<g.kernelW {
                    let wOffset = kw * g.dilationW
                    let valid = ConvolutionGeometry.validRange(offset: wOffset, pad: g.padLeft, stride: g.strideW,
                                                               size: g.width, outputs: ow)
                    let destinationRow = patches + row * columns
                    for oh in rows {
                        let d = destinationRow + (oh - rows.lowerBound) * ow
                        let ih = oh * g.strideH - g.padTop + hOffset
                        if ih < 0 || ih >= g.height || valid.isEmpty {
                            d.update(repeating: 0, count: ow)
                            continue
                        }
                        let source = plane + ih * g.width + wOffset - g.padLeft
                        if valid.lowerBound > 0 { d.update(repeating: 0, count: valid.lowerBound) }
                        if g.strideW == 1 {
                            (d + valid.lowerBound).update(from: source + valid.lowerBound, count: valid.count)
                        } else {
                            let s = g.strideW
                            for o in valid { d[o] = source[o * s] }
                        }
                        if valid.upperBound < ow { (d + valid.upperBound).update(repeating: 0, count: ow - valid.upperBound) }
                    }
                    row += 1
                }
            }
        }
    }

    /// Adds the patch-matrix gradient of output rows `rows` back onto the input gradient (the adjoint of
    /// `gather`); taps in the padding are dropped. `inputGradient` points at the group's first channel.
    static func scatterAdd(_ patches: UnsafePointer<Float>, geometry g: ConvolutionGeometry, rows: Range<Int>,
                           into inputGradient: UnsafeMutablePointer<Float>) {
        let ow = g.outputW, columns = rows.count * ow
        var row = 0
        for c in 0..<g.groupChannels {
            let plane = inputGradient + c * g.inputPlane
            for kh in 0..<g.kernelH {
                let hOffset = kh * g.dilationH
                for kw in 0..<g.kernelW {
                    let wOffset = kw * g.dilationW
                    let valid = ConvolutionGeometry.validRange(offset: wOffset, pad: g.padLeft, stride: g.strideW,
                                                               size: g.width, outputs: ow)
                    let sourceRow = patches + row * columns
                    row += 1
                    if valid.isEmpty { continue }
                    for oh in rows {
                        let ih = oh * g.strideH - g.padTop + hOffset
                        if ih < 0 || ih >= g.height { continue }
                        let s = sourceRow + (oh - rows.lowerBound) * ow
                        let d = plane + ih * g.width + wOffset - g.padLeft
                        if g.strideW == 1 {
                            for o in valid { d[o] += s[o] }
                        } else {
                            let stride = g.strideW
                            for o in valid { d[o * stride] += s[o] }
                        }
                    }
                }
            }
        }
    }
}
