extension Conv2D {
    /// Depthwise convolution (`groups == C == M`): each plane is convolved with its own `kH × kW` filter
    /// directly, row by row, without a patch matrix. For each output row and tap `(kh, kw)` the valid
    /// output columns are computed once, so the inner loop is a branch-free multiply-add over a row.
    static func depthwiseForward(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvolutionGeometry) -> Tensor {
        let taps = g.kernelH * g.kernelW
        let columnRanges = (0..<g.kernelW).map {
            ConvolutionGeometry.validRange(offset: $0 * g.dilationW, pad: g.padLeft, stride: g.strideW, size: g.width,
                                           outputs: g.outputW)
        }
        let biasData = bias?.data ?? [Float](repeating: 0, count: g.outputChannels)
        return Tensor(shape: g.outputShape) { output in
            if output.isEmpty { return }
            x.withUnsafeBufferPointer { xBuffer in
                weight.withUnsafeBufferPointer { wBuffer in
                    let X = xBuffer.base, W = wBuffer.base, Y = output.base
                    Parallel.forEachChunk(g.batch * g.channels) { planes in
                        for plane in planes {
                            let c = plane % g.channels
                            let input = X + plane * g.inputPlane, filter = W + c * taps
                            let out = Y + plane * g.outputPlane
                            let b = biasData[c]
                            for oh in 0..<g.outputH {
                                let y = out + oh * g.outputW
                                y.update(repeating: b, count: g.outputW)
                                for kh in 0..<g.kernelH {
                                    let ih = oh * g.strideH - g.padTop + kh * g.dilationH
                                    if ih < 0 || ih >= g.height { continue }
                                    let row = input + ih * g.width - g.padLeft
                                    for kw in 0..<g.kernelW {
                                        let w = filter[kh * g.kernelW + kw], valid = columnRanges[kw]
                                        let source = row + kw * g.dilationW
                                        if g.strideW == 1 {
                                            for o in valid { y[o] += w * source[o] }
                                        } else {
                                            let s = g.strideW
                                            for o in valid { y[o] += w * source[o * s] }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Input and weight gradients of `depthwiseForward`. Work is split by channel; each channel's
    /// filter gradient sums over images, rows and columns in a fixed order.
    static func depthwiseBackward(_ x: Tensor, weight: Tensor, outputGradient: Tensor, geometry g: ConvolutionGeometry,
                                  needInputGradient: Bool) -> (Tensor?, Tensor) {
        let taps = g.kernelH * g.kernelW
        let columnRanges = (0..<g.kernelW).map {
            ConvolutionGeometry.validRange(offset: $0 * g.dilationW, pad: g.padLeft, stride: g.strideW, size: g.width,
                                           outputs: g.outputW)
        }
        var inputGradient = needInputGradient ? [Float](repeating: 0, count: x.count) : []
        var weightGradient = [Float](repeating: 0, count: weight.count)
        x.withUnsafeBufferPointer { xBuffer in
            weight.withUnsafeBufferPointer { wBuffer in
                outputGradient.withUnsafeBufferPointer { dyBuffer in
                    inputGradient.withUnsafeMutableBufferPointer { dxBuffer in
                        weightGradient.withUnsafeMutableBufferPointer { dwBuffer in
                            let X = xBuffer.base, W = wBuffer.base, DY = dyBuffer.base, DX = dxBuffer.base, DW = dwBuffer.base
                            Parallel.forEachChunk(g.channels) { channels in
                                var sums = [Double](repeating: 0, count: taps)
                                var gathered = [Float](repeating: 0, count: g.outputW)
                                for c in channels {
                                    let filter = W + c * taps
                                    for i in 0..<taps { sums[i] = 0 }
                                    for n in 0..<g.batch {
                                        let plane = n * g.channels + c
                                        let input = X + plane * g.inputPlane, dx = DX + plane * g.inputPlane
                                        let dyPlane = DY + plane * g.outputPlane
                                        for oh in 0..<g.outputH {
                                            let dy = dyPlane + oh * g.outputW
                                            for kh in 0..<g.kernelH {
                                                let ih = oh * g.strideH - g.padTop + kh * g.dilationH
                                                if ih < 0 || ih >= g.height { continue }
                                                let offset = ih * g.width - g.padLeft
                                                for kw in 0..<g.kernelW {
                                                    let valid = columnRanges[kw]
                                                    if valid.isEmpty { continue }
                                                    let tap = kh * g.kernelW + kw
                                                    let source = input + offset + kw * g.dilationW
                                                    if g.strideW == 1 {
                                                        sums[tap] += Reduction.dot(dy + valid.lowerBound, source + valid.lowerBound,
                                                                                   count: valid.count)
                                                    } else {
                                                        let s = g.strideW
                                                        gathered.withUnsafeMutableBufferPointer { gBuffer in
                                                            let t = gBuffer.base
                                                            for o in valid { t[o] = source[o * s] }
                                                            sums[tap] += Reduction.dot(dy + valid.lowerBound, t + valid.lowerBound,
                                                                                       count: valid.count)
                                                        }
                                                    }
                                                    if !needInputGradient { continue }
                                                    let w = filter[tap], target = dx + offset + kw * g.dilationW
                                                    if g.strideW == 1 {
                                                        for o in valid { target[o] += w * dy[o] }
                                                    } else {
                                                        let s = g.strideW
                                                        for o in valid { target[o * s] += w * dy[o] }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                    for i in 0..<taps { DW[c * taps + i] = Float(sums[i]) }
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
