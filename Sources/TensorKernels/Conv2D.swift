/// 2-D convolution over NCHW tensors (ONNX `Conv`): strides, dilations, explicit or automatic padding,
/// channel groups. Forward and backward.
///
/// A regular convolution is lowered, per image, group and tile of output rows, to one GEMM over the
/// tile's patch matrix (`Im2Col`); a 1×1 stride-1 unpadded convolution multiplies the input planes
/// directly. A depthwise convolution (`groups == C == M`) uses a direct kernel (`Conv2D+Depthwise`).
///
/// Work is spread over images, groups and tiles with `Parallel`; BLAS itself should run on one thread
/// (`BLAS.setThreadCount(1)`), which on two cores is as fast as letting BLAS thread and keeps every
/// result independent of the thread count.
public enum Conv2D {
    /// `y[n,m] = bias[m] + Σ_c Σ_kh,kw weight[m,c,kh,kw] · x[n, group(m)·C/g + c, oh·s − p + kh·d, …]`.
    ///
    /// `x` is `[N, C, H, W]`, `weight` is `[M, C/groups, kH, kW]`, `bias` is `[M]` or nil; the result is
    /// `[N, M, OH, OW]` with the output size of `parameters.window` (its `ceilMode` is ignored).
    /// `clamp`, when given, bounds every output as it is written (a fused ReLU, `0...∞`, or ReLU6, `0...6`):
    /// the result equals `Activation.clip` applied to the unclamped output.
    public static func forward(_ x: Tensor, weight: Tensor, bias: Tensor?, parameters: Conv2DParameters,
                               clamp: ClosedRange<Float>? = nil) -> Tensor {
        let g = ConvolutionGeometry(input: x.shape, weight: weight.shape, parameters: parameters)
        if let bias { precondition(bias.count == g.outputChannels, "bias \(bias.shape) does not match \(weight.shape)") }
        if g.isDepthwise { return depthwiseForward(x, weight: weight, bias: bias, geometry: g, clamp: clamp) }
        let tileRows = g.tileRows
        let tiles = (g.outputH + tileRows - 1) / tileRows
        let biasData = bias?.data
        return Tensor(shape: g.outputShape) { output in
            if output.isEmpty { return }
            x.withUnsafeBufferPointer { xBuffer in
                weight.withUnsafeBufferPointer { wBuffer in
                    let X = xBuffer.base, W = wBuffer.base, Y = output.base
                    Parallel.forEachChunk(g.batch * g.groups * tiles) { items in
                        var patches = [Float](repeating: 0, count: g.isPointwise ? 0 : g.patchSize * tileRows * g.outputW)
                        patches.withUnsafeMutableBufferPointer { patchBuffer in
                            for item in items {
                                let tile = item % tiles, image = item / tiles / g.groups, group = item / tiles % g.groups
                                let rows = (tile * tileRows)..<Swift.min(g.outputH, (tile + 1) * tileRows)
                                let columns = rows.count * g.outputW
                                let input = X + (image * g.channels + group * g.groupChannels) * g.inputPlane
                                let firstChannel = image * g.outputChannels + group * g.groupOutputChannels
                                let y = Y + firstChannel * g.outputPlane + rows.lowerBound * g.outputW
                                let (b, ldb) = patchMatrix(input, geometry: g, rows: rows, buffer: patchBuffer.base)
                                // With a bias, the output rows start as the bias and the product is added to them
                                // (beta 1), which spares BLAS zeroing them first.
                                if let biasData {
                                    for m in 0..<g.groupOutputChannels {
                                        (y + m * g.outputPlane).update(repeating: biasData[group * g.groupOutputChannels + m],
                                                                      count: columns)
                                    }
                                }
                                BLAS.sgemm(transA: false, transB: false, m: g.groupOutputChannels, n: columns, k: g.patchSize,
                                           alpha: 1, a: W + group * g.groupWeightCount, lda: g.patchSize, b: b, ldb: ldb,
                                           beta: biasData == nil ? 0 : 1, c: y, ldc: g.outputPlane)
                                if let clamp {
                                    let lo = clamp.lowerBound, hi = clamp.upperBound
                                    for m in 0..<g.groupOutputChannels {
                                        let row = y + m * g.outputPlane
                                        for j in 0..<columns { row[j] = Swift.min(Swift.max(row[j], lo), hi) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Gradients of `forward` with respect to the input (skipped when `needInputGradient` is false), the
    /// weight and the bias (`[M]`, returned whether or not the convolution had one).
    ///
    /// The weight gradient sums over images in a fixed order (one partial per fixed chunk of images,
    /// partials added in chunk order), so it has the same bits for any number of threads.
    public static func backward(_ x: Tensor, weight: Tensor, outputGradient: Tensor, parameters: Conv2DParameters,
                                needInputGradient: Bool = true) -> (input: Tensor?, weight: Tensor, bias: Tensor) {
        backward(x, weight: weight, outputGradient: outputGradient, parameters: parameters,
                 needInputGradient: needInputGradient, concurrent: true)
    }

    /// `backward`, optionally with its work chunks run one after another instead of concurrently.
    static func backward(_ x: Tensor, weight: Tensor, outputGradient: Tensor, parameters: Conv2DParameters,
                         needInputGradient: Bool, concurrent: Bool) -> (input: Tensor?, weight: Tensor, bias: Tensor) {
        let g = ConvolutionGeometry(input: x.shape, weight: weight.shape, parameters: parameters)
        precondition(outputGradient.shape == g.outputShape, "output gradient \(outputGradient.shape) != \(g.outputShape)")
        let biasGradient = biasGradient(outputGradient, geometry: g)
        if g.isDepthwise {
            let (input, weightGradient) = depthwiseBackward(x, weight: weight, outputGradient: outputGradient, geometry: g,
                                                            needInputGradient: needInputGradient)
            return (input, weightGradient, biasGradient)
        }
        let tileRows = g.tileRows
        let tiles = (g.outputH + tileRows - 1) / tileRows
        let weightCount = weight.count
        // One weight-gradient partial per chunk; the chunk count depends on the shapes only.
        let chunks = Parallel.chunks(g.batch * g.groups, maxChunks: Swift.max(1, Swift.min(8, (1 << 24) / Swift.max(1, weightCount))))
        var partials = [Float](repeating: 0, count: chunks.count * weightCount)
        var inputGradient = needInputGradient ? [Float](repeating: 0, count: x.count) : []
        let tileSize = g.isPointwise ? 0 : g.patchSize * tileRows * g.outputW
        x.withUnsafeBufferPointer { xBuffer in
            weight.withUnsafeBufferPointer { wBuffer in
                outputGradient.withUnsafeBufferPointer { dyBuffer in
                    partials.withUnsafeMutableBufferPointer { partialBuffer in
                        inputGradient.withUnsafeMutableBufferPointer { dxBuffer in
                            let X = xBuffer.base, W = wBuffer.base, DY = dyBuffer.base
                            let partialBase = partialBuffer.base, DX = dxBuffer.base
                            Parallel.forEach(chunks, concurrent: concurrent) { chunk, items in
                                let partial = partialBase + chunk * weightCount
                                var scratch = [Float](repeating: 0, count: tileSize * (needInputGradient ? 2 : 1))
                                scratch.withUnsafeMutableBufferPointer { scratchBuffer in
                                    let patches = scratchBuffer.base, patchGradient = scratchBuffer.base + tileSize
                                    for item in items {
                                        let image = item / g.groups, group = item % g.groups
                                        let inputOffset = (image * g.channels + group * g.groupChannels) * g.inputPlane
                                        let firstChannel = image * g.outputChannels + group * g.groupOutputChannels
                                        let groupWeight = W + group * g.groupWeightCount
                                        for tile in 0..<tiles {
                                            let rows = (tile * tileRows)..<Swift.min(g.outputH, (tile + 1) * tileRows)
                                            let columns = rows.count * g.outputW
                                            let dy = DY + firstChannel * g.outputPlane + rows.lowerBound * g.outputW
                                            let (b, ldb) = patchMatrix(X + inputOffset, geometry: g, rows: rows, buffer: patches)
                                            // dW_g += dY_tile · patchesᵀ
                                            BLAS.sgemm(transA: false, transB: true, m: g.groupOutputChannels, n: g.patchSize,
                                                       k: columns, alpha: 1, a: dy, lda: g.outputPlane, b: b, ldb: ldb,
                                                       beta: 1, c: partial + group * g.groupWeightCount, ldc: g.patchSize)
                                            if !needInputGradient { continue }
                                            // d(patches) = W_gᵀ · dY_tile, then back onto the input planes.
                                            if g.isPointwise {
                                                BLAS.sgemm(transA: true, transB: false, m: g.patchSize, n: columns,
                                                           k: g.groupOutputChannels, alpha: 1, a: groupWeight, lda: g.patchSize,
                                                           b: dy, ldb: g.outputPlane, beta: 0,
                                                           c: DX + inputOffset + rows.lowerBound * g.outputW, ldc: g.inputPlane)
                                            } else {
                                                BLAS.sgemm(transA: true, transB: false, m: g.patchSize, n: columns,
                                                           k: g.groupOutputChannels, alpha: 1, a: groupWeight, lda: g.patchSize,
                                                           b: dy, ldb: g.outputPlane, beta: 0, c: patchGradient, ldc: columns)
                                                Im2Col.scatterAdd(patchGradient, geometry: g, rows: rows, into: DX + inputOffset)
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
        let weightGradient = Tensor(shape: weight.shape) { out in
            partials.withUnsafeBufferPointer { p in
                let P = p.base, O = out.base
                Parallel.forEachChunk(weightCount, maxChunks: 16) { range in
                    for i in range {
                        var total = P[i]
                        for c in 1..<Swift.max(1, chunks.count) { total += P[c * weightCount + i] }
                        O[i] = total
                    }
                }
            }
        }
        let input = needInputGradient ? Tensor(shape: x.shape, data: inputGradient) : nil
        return (input, weightGradient, biasGradient)
    }

    /// The patch matrix of output rows `rows` as a GEMM operand `(pointer, row stride)`: the input planes
    /// themselves for a pointwise convolution, otherwise `buffer` after `Im2Col.gather`.
    private static func patchMatrix(_ input: UnsafePointer<Float>, geometry g: ConvolutionGeometry, rows: Range<Int>,
                                    buffer: UnsafeMutablePointer<Float>) -> (UnsafePointer<Float>, Int) {
        if g.isPointwise { return (input + rows.lowerBound * g.outputW, g.inputPlane) }
        Im2Col.gather(input, geometry: g, rows: rows, into: buffer)
        return (UnsafePointer(buffer), rows.count * g.outputW)
    }

    /// `Σ_n Σ_oh,ow dY[n, m, oh, ow]` for every output channel `m`, summed in image order.
    static func biasGradient(_ outputGradient: Tensor, geometry g: ConvolutionGeometry) -> Tensor {
        Tensor(shape: [g.outputChannels]) { out in
            outputGradient.withUnsafeBufferPointer { dyBuffer in
                let DY = dyBuffer.base, O = out.base
                Parallel.forEachChunk(g.outputChannels, maxChunks: 16) { channels in
                    for m in channels {
                        var total = 0.0
                        for n in 0..<g.batch {
                            total += Reduction.sum(DY + (n * g.outputChannels + m) * g.outputPlane, count: g.outputPlane)
                        }
                        O[m] = Float(total)
                    }
                }
            }
        }
    }
}
