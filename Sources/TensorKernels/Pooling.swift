/// Max, average and global average pooling over NCHW tensors (ONNX `MaxPool`, `AveragePool`,
/// `GlobalAveragePool`, opsets 11–21), forward and backward. Work is split over `(n, c)` planes.
public enum Pooling {
    /// The maximum of each window; padded cells are ignored (a window with no input cell gives 0).
    public static func maxPool(_ x: Tensor, window: WindowGeometry) -> Tensor {
        let g = PoolingGeometry(input: x.shape, window: window)
        return Tensor(shape: [x.shape[0], x.shape[1], g.outputH, g.outputW]) { out in
            x.withUnsafeBufferPointer { input in
                let X = input.base, Y = out.base
                Parallel.forEachChunk(g.planes) { planes in
                    for plane in planes {
                        let x = X + plane * g.inputPlane, y = Y + plane * g.outputPlane
                        for oh in 0..<g.outputH {
                            let rows = g.rowTaps[oh].valid
                            for ow in 0..<g.outputW {
                                let columns = g.columnTaps[ow].valid
                                var best = -Float.infinity
                                for kh in rows {
                                    let row = x + g.inputRow(oh, kh) * g.width
                                    for kw in columns { best = Swift.max(best, row[g.inputColumn(ow, kw)]) }
                                }
                                y[oh * g.outputW + ow] = rows.isEmpty || columns.isEmpty ? 0 : best
                            }
                        }
                    }
                }
            }
        }
    }

    /// Routes each window's gradient to the first cell (in row-major tap order) holding its maximum.
    public static func maxPoolBackward(_ x: Tensor, window: WindowGeometry, outputGradient: Tensor) -> Tensor {
        let g = PoolingGeometry(input: x.shape, window: window)
        precondition(outputGradient.count == g.planes * g.outputPlane, "output gradient \(outputGradient.shape) does not match")
        return Tensor(zeros: x.shape) { out in
            x.withUnsafeBufferPointer { input in
                outputGradient.withUnsafeBufferPointer { gradient in
                    let X = input.base, G = gradient.base, DX = out.base
                    Parallel.forEachChunk(g.planes) { planes in
                        for plane in planes {
                            let x = X + plane * g.inputPlane, dx = DX + plane * g.inputPlane, dy = G + plane * g.outputPlane
                            for oh in 0..<g.outputH {
                                let rows = g.rowTaps[oh].valid
                                for ow in 0..<g.outputW {
                                    let columns = g.columnTaps[ow].valid
                                    var best = -Float.infinity, at = -1
                                    for kh in rows {
                                        let rowStart = g.inputRow(oh, kh) * g.width
                                        for kw in columns {
                                            let i = rowStart + g.inputColumn(ow, kw)
                                            if x[i] > best || at < 0 { best = x[i]; at = i }
                                        }
                                    }
                                    if at >= 0 { dx[at] += dy[oh * g.outputW + ow] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The mean of each window: divided by the taps inside the padded input when `countIncludePad`,
    /// otherwise by the taps inside the input.
    public static func averagePool(_ x: Tensor, window: WindowGeometry, countIncludePad: Bool) -> Tensor {
        let g = PoolingGeometry(input: x.shape, window: window)
        return Tensor(shape: [x.shape[0], x.shape[1], g.outputH, g.outputW]) { out in
            x.withUnsafeBufferPointer { input in
                let X = input.base, Y = out.base
                Parallel.forEachChunk(g.planes) { planes in
                    for plane in planes {
                        let x = X + plane * g.inputPlane, y = Y + plane * g.outputPlane
                        for oh in 0..<g.outputH {
                            let rows = g.rowTaps[oh]
                            for ow in 0..<g.outputW {
                                let columns = g.columnTaps[ow]
                                var sum: Float = 0
                                for kh in rows.valid {
                                    let row = x + g.inputRow(oh, kh) * g.width
                                    for kw in columns.valid { sum += row[g.inputColumn(ow, kw)] }
                                }
                                let divisor = divisor(rows, columns, g, countIncludePad)
                                y[oh * g.outputW + ow] = divisor > 0 ? sum / Float(divisor) : 0
                            }
                        }
                    }
                }
            }
        }
    }

    /// Spreads each window's gradient, divided like the forward mean, over the window's input cells.
    public static func averagePoolBackward(inputShape: [Int], window: WindowGeometry, countIncludePad: Bool,
                                           outputGradient: Tensor) -> Tensor {
        let g = PoolingGeometry(input: inputShape, window: window)
        precondition(outputGradient.count == g.planes * g.outputPlane, "output gradient \(outputGradient.shape) does not match")
        return Tensor(zeros: inputShape) { out in
            outputGradient.withUnsafeBufferPointer { gradient in
                let G = gradient.base, DX = out.base
                Parallel.forEachChunk(g.planes) { planes in
                    for plane in planes {
                        let dx = DX + plane * g.inputPlane, dy = G + plane * g.outputPlane
                        for oh in 0..<g.outputH {
                            let rows = g.rowTaps[oh]
                            for ow in 0..<g.outputW {
                                let columns = g.columnTaps[ow]
                                let divisor = divisor(rows, columns, g, countIncludePad)
                                if divisor == 0 { continue }
                                let share = dy[oh * g.outputW + ow] / Float(divisor)
                                for kh in rows.valid {
                                    let row = dx + g.inputRow(oh, kh) * g.width
                                    for kw in columns.valid { row[g.inputColumn(ow, kw)] += share }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The mean of each `H × W` plane: `[N, C, H, W] → [N, C, 1, 1]`.
    public static func globalAveragePool(_ x: Tensor) -> Tensor {
        precondition(x.rank >= 3, "global pooling expects [N, C, spatial...], got \(x.shape)")
        let planes = x.shape[0] * x.shape[1], size = x.shape.dropFirst(2).reduce(1, *)
        return Tensor(shape: [x.shape[0], x.shape[1]] + [Int](repeating: 1, count: x.rank - 2)) { out in
            x.withUnsafeBufferPointer { input in
                let X = input.base, Y = out.base
                Parallel.forEachChunk(planes, maxChunks: x.count < ElementMap.parallelThreshold ? 1 : 64) { range in
                    for p in range { Y[p] = size == 0 ? 0 : Float(Reduction.sum(X + p * size, count: size) / Double(size)) }
                }
            }
        }
    }

    /// Each plane's gradient spread evenly over its cells.
    public static func globalAveragePoolBackward(inputShape: [Int], outputGradient: Tensor) -> Tensor {
        let planes = inputShape[0] * inputShape[1], size = inputShape.dropFirst(2).reduce(1, *)
        precondition(outputGradient.count == planes, "output gradient \(outputGradient.shape) does not match \(inputShape)")
        return Tensor(shape: inputShape) { out in
            outputGradient.withUnsafeBufferPointer { gradient in
                let G = gradient.base, DX = out.base
                Parallel.forEachChunk(planes, maxChunks: out.count < ElementMap.parallelThreshold ? 1 : 64) { range in
                    for p in range { (DX + p * size).update(repeating: G[p] / Float(size), count: size) }
                }
            }
        }
    }

    /// Taps a window's mean divides by (the in-bounds taps of a dimension form one contiguous range of
    /// kernel indices, dilated or not, so counts multiply).
    private static func divisor(_ rows: (valid: Range<Int>, padded: Int), _ columns: (valid: Range<Int>, padded: Int),
                                _ g: PoolingGeometry, _ countIncludePad: Bool) -> Int {
        countIncludePad ? rows.padded * columns.padded : rows.valid.count * columns.valid.count
    }
}
