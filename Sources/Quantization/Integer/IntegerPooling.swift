import TensorKernels

/// Pooling on integer values. MaxPool works on codes and keeps their quantizer (a maximum of codes is a
/// code); an empty window gives `z` (real 0, as the float kernel gives 0).
///
/// AveragePool and GlobalAveragePool sum `q - z` (or an accumulator's `v`) over the window in `Int64` at
/// the input exponent `e_in`, then go straight to the output site:
/// `y = z_out + round_half_even(sum * 2^(e_in - e_out) / count)`, computed exactly with integer division
/// and remainder (`IntegerRounding.average`), and clamped to the site's range (a fused Relu/Clip narrows it).
enum IntegerPooling {
    /// For each output position along one axis: the kernel taps inside the input, and the number of taps
    /// inside the padded input (what `count_include_pad` divides by).
    struct Taps {
        var valid: Range<Int>
        var padded: Int
    }

    static func taps(outputs: Int, size: Int, before: Int, after: Int, kernel: Int, stride: Int, dilation: Int) -> [Taps] {
        (0..<outputs).map { o in
            let start = o * stride - before
            var lo = kernel, hi = 0, padded = 0
            for k in 0..<kernel {
                let i = start + k * dilation
                if i >= 0 && i < size { lo = Swift.min(lo, k); hi = Swift.max(hi, k + 1) }
                if i >= -before && i < size + after { padded += 1 }
            }
            return Taps(valid: lo < hi ? lo..<hi : 0..<0, padded: padded)
        }
    }

    /// Window geometry resolved for an input of `shape` (`[N, C, H, W]`).
    struct Geometry {
        let planes: Int, height: Int, width: Int, outputH: Int, outputW: Int
        let rows: [Taps], columns: [Taps]
        let strideH: Int, strideW: Int, dilationH: Int, dilationW: Int, padTop: Int, padLeft: Int

        init(shape: [Int], window: WindowGeometry) {
            planes = shape[0] * shape[1]; height = shape[2]; width = shape[3]
            let pads = window.resolvedPads(height: height, width: width)
            let out = window.outputSize(height: height, width: width)
            outputH = out.h; outputW = out.w
            strideH = window.strides.h; strideW = window.strides.w
            dilationH = window.dilations.h; dilationW = window.dilations.w
            padTop = pads.top; padLeft = pads.left
            rows = IntegerPooling.taps(outputs: outputH, size: height, before: pads.top, after: pads.bottom,
                                       kernel: window.kernel.h, stride: strideH, dilation: dilationH)
            columns = IntegerPooling.taps(outputs: outputW, size: width, before: pads.left, after: pads.right,
                                          kernel: window.kernel.w, stride: strideW, dilation: dilationW)
        }
    }

    /// The maximum code of each window.
    static func maxPool(_ x: CodeTensor, window: WindowGeometry) -> CodeTensor {
        let g = Geometry(shape: x.shape, window: window)
        let inPlane = g.height * g.width, outPlane = g.outputH * g.outputW, z = Int32(x.quantizer.zeroPoint)
        var out = [Int32](repeating: z, count: g.planes * outPlane)
        x.codes.withUnsafeBufferPointer { xs in
            out.withUnsafeMutableBufferPointer { ys in
                let X = xs.baseAddress!, Y = ys.baseAddress!
                Parallel.forEachChunk(g.planes) { planes in
                    for plane in planes {
                        let input = X + plane * inPlane, y = Y + plane * outPlane
                        for oh in 0..<g.outputH {
                            let rows = g.rows[oh].valid
                            for ow in 0..<g.outputW {
                                let columns = g.columns[ow].valid
                                if rows.isEmpty || columns.isEmpty { continue }
                                var best = Int32.min
                                for kh in rows {
                                    let row = input + (oh * g.strideH - g.padTop + kh * g.dilationH) * g.width
                                    for kw in columns { best = Swift.max(best, row[ow * g.strideW - g.padLeft + kw * g.dilationW]) }
                                }
                                y[oh * g.outputW + ow] = best
                            }
                        }
                    }
                }
            }
        }
        return CodeTensor(shape: [x.shape[0], x.shape[1], g.outputH, g.outputW], codes: out, quantizer: x.quantizer)
    }

    /// The centered values of `x` and the exponent of each plane (`[N, C, ...]`, `C` = `shape[1]`).
    private static func withCentered<R>(_ x: IntegerValue, planeSize: Int,
                                        _ body: (_ value: (Int) -> Int64, _ exponent: (Int) -> Int) -> R) -> R {
        switch x {
        case .codes(let t):
            let z = Int64(t.quantizer.zeroPoint), e = t.quantizer.exponent
            return t.codes.withUnsafeBufferPointer { xs in body({ Int64(xs[$0]) - z }, { _ in e }) }
        case .accumulator(let t):
            return t.values.withUnsafeBufferPointer { xs in body({ xs[$0] }, { t.exponent(at: $0 * planeSize) }) }
        }
    }

    /// The mean of each window onto `site`: divided by the taps inside the padded input when
    /// `countIncludePad`, otherwise by the taps inside the input.
    static func averagePool(_ x: IntegerValue, window: WindowGeometry, countIncludePad: Bool, site: OutputSite) -> CodeTensor {
        let shape = x.shape
        let g = Geometry(shape: shape, window: window)
        let inPlane = g.height * g.width, outPlane = g.outputH * g.outputW
        var out = [Int32](repeating: Int32(site.quantizer.zeroPoint), count: g.planes * outPlane)
        withCentered(x, planeSize: inPlane) { value, exponent in
            out.withUnsafeMutableBufferPointer { ys in
                let Y = ys.baseAddress!
                Parallel.forEachChunk(g.planes) { planes in
                    for plane in planes {
                        let e = exponent(plane), base = plane * inPlane
                        for oh in 0..<g.outputH {
                            let rows = g.rows[oh]
                            for ow in 0..<g.outputW {
                                let columns = g.columns[ow]
                                var sum: Int64 = 0
                                for kh in rows.valid {
                                    let row = base + (oh * g.strideH - g.padTop + kh * g.dilationH) * g.width
                                    for kw in columns.valid { sum += value(row + ow * g.strideW - g.padLeft + kw * g.dilationW) }
                                }
                                let count = countIncludePad ? rows.padded * columns.padded : rows.valid.count * columns.valid.count
                                let mean = count > 0 ? IntegerRounding.average(sum, count: count, inputExponent: e,
                                                                               outputExponent: site.quantizer.exponent) : 0
                                Y[plane * outPlane + oh * g.outputW + ow] = site.code(mean, shift: 0)
                            }
                        }
                    }
                }
            }
        }
        return CodeTensor(shape: [shape[0], shape[1], g.outputH, g.outputW], codes: out, quantizer: site.quantizer)
    }

    /// The mean of each plane onto `site`: `[N, C, spatial...] -> [N, C, 1, ...]`.
    static func globalAveragePool(_ x: IntegerValue, site: OutputSite) -> CodeTensor {
        let shape = x.shape
        let planes = shape[0] * shape[1], size = shape.dropFirst(2).reduce(1, *)
        var out = [Int32](repeating: Int32(site.quantizer.zeroPoint), count: planes)
        withCentered(x, planeSize: size) { value, exponent in
            for plane in 0..<planes where size > 0 {
                var sum: Int64 = 0
                for i in plane * size..<(plane + 1) * size { sum += value(i) }
                let mean = IntegerRounding.average(sum, count: size, inputExponent: exponent(plane),
                                                   outputExponent: site.quantizer.exponent)
                out[plane] = site.code(mean, shift: 0)
            }
        }
        return CodeTensor(shape: [shape[0], shape[1]] + [Int](repeating: 1, count: shape.count - 2), codes: out,
                          quantizer: site.quantizer)
    }

    /// The sums `Σ (q - z)` over each plane, at the input's exponent, to be divided by the plane size when
    /// dequantized: a global average pool that produces the logits (no site after it).
    static func globalAverageSum(_ x: IntegerValue) -> AccumulatorTensor {
        let shape = x.shape
        let planes = shape[0] * shape[1], size = shape.dropFirst(2).reduce(1, *)
        var sums = [Int64](repeating: 0, count: planes)
        var exponents = [Int](repeating: 0, count: planes)
        withCentered(x, planeSize: size) { value, exponent in
            for plane in 0..<planes {
                for i in plane * size..<(plane + 1) * size { sums[plane] += value(i) }
                exponents[plane] = exponent(plane)
            }
        }
        let channelExponents = shape[1] > 0 ? Array(exponents.prefix(shape[1])) : [0]
        return AccumulatorTensor(shape: [shape[0], shape[1]] + [Int](repeating: 1, count: shape.count - 2), values: sums,
                                 exponents: channelExponents, inner: 1, divisor: Int64(Swift.max(size, 1)))
    }
}
