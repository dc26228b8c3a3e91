import TensorKernels

/// Plain float64 nested-loop implementations the kernels are checked against. They share no code with
/// the kernels: padding and output sizes are worked out here from the ONNX definitions.
enum Reference {
    /// `(begin, end)` padding of one axis under ONNX `auto_pad`.
    static func pads(_ autoPad: AutoPad, explicit: (Int, Int), size: Int, kernel: Int, stride: Int, dilation: Int) -> (Int, Int) {
        switch autoPad {
        case .notSet: return explicit
        case .valid: return (0, 0)
        case .sameUpper, .sameLower:
            let out = (size + stride - 1) / stride
            let total = max(0, (out - 1) * stride + (kernel - 1) * dilation + 1 - size)
            return autoPad == .sameUpper ? (total / 2, total - total / 2) : (total - total / 2, total / 2)
        }
    }

    /// Output length of one axis (floor, or ceil with the "last window starts inside" rule).
    static func outputLength(size: Int, pads: (Int, Int), kernel: Int, stride: Int, dilation: Int, ceil: Bool) -> Int {
        let span = size + pads.0 + pads.1 - dilation * (kernel - 1) - 1
        if !ceil { return span / stride + 1 }
        var out = (span + stride - 1) / stride + 1
        if (out - 1) * stride >= size + pads.0 { out -= 1 }
        return out
    }

    struct Axes {
        let padTop: Int, padBottom: Int, padLeft: Int, padRight: Int, outH: Int, outW: Int
        init(h: Int, w: Int, window g: WindowGeometry, ceil: Bool) {
            let ph = Reference.pads(g.autoPad, explicit: (g.pads.top, g.pads.bottom), size: h, kernel: g.kernel.h,
                                    stride: g.strides.h, dilation: g.dilations.h)
            let pw = Reference.pads(g.autoPad, explicit: (g.pads.left, g.pads.right), size: w, kernel: g.kernel.w,
                                    stride: g.strides.w, dilation: g.dilations.w)
            padTop = ph.0; padBottom = ph.1; padLeft = pw.0; padRight = pw.1
            outH = Reference.outputLength(size: h, pads: ph, kernel: g.kernel.h, stride: g.strides.h, dilation: g.dilations.h, ceil: ceil)
            outW = Reference.outputLength(size: w, pads: pw, kernel: g.kernel.w, stride: g.strides.w, dilation: g.dilations.w, ceil: ceil)
        }
    }

    /// Direct convolution, NCHW × [M, C/groups, kH, kW].
    static func conv(_ x: [Double], _ xs: [Int], _ w: [Double], _ ws: [Int], _ b: [Double]?, _ p: Conv2DParameters) -> ([Double], [Int]) {
        let (n, c, h, wd) = (xs[0], xs[1], xs[2], xs[3]), (m, cg, kh, kw) = (ws[0], ws[1], ws[2], ws[3])
        let g = p.window, groups = p.groups, mg = m / groups
        let a = Axes(h: h, w: wd, window: g, ceil: false)
        var y = [Double](repeating: 0, count: n * m * a.outH * a.outW)
        for i in 0..<n { for o in 0..<m { for oh in 0..<a.outH { for ow in 0..<a.outW {
            var s = b?[o] ?? 0
            let group = o / mg
            for ci in 0..<cg { for r in 0..<kh { for q in 0..<kw {
                let ih = oh * g.strides.h - a.padTop + r * g.dilations.h, iw = ow * g.strides.w - a.padLeft + q * g.dilations.w
                if ih < 0 || ih >= h || iw < 0 || iw >= wd { continue }
                s += w[((o * cg + ci) * kh + r) * kw + q] * x[((i * c + group * cg + ci) * h + ih) * wd + iw]
            } } }
            y[((i * m + o) * a.outH + oh) * a.outW + ow] = s
        } } } }
        return (y, [n, m, a.outH, a.outW])
    }

    /// Max (`average == nil`) or average pooling; average divides by in-bounds taps or, with
    /// `countIncludePad`, by the taps inside the padded input.
    static func pool(_ x: [Double], _ xs: [Int], _ g: WindowGeometry, average countIncludePad: Bool?) -> ([Double], [Int]) {
        let (n, c, h, w) = (xs[0], xs[1], xs[2], xs[3])
        let a = Axes(h: h, w: w, window: g, ceil: g.ceilMode)
        var y = [Double](repeating: 0, count: n * c * a.outH * a.outW)
        for plane in 0..<(n * c) { for oh in 0..<a.outH { for ow in 0..<a.outW {
            var best = -Double.infinity, sum = 0.0, inside = 0, padded = 0
            for r in 0..<g.kernel.h { for q in 0..<g.kernel.w {
                let ih = oh * g.strides.h - a.padTop + r * g.dilations.h, iw = ow * g.strides.w - a.padLeft + q * g.dilations.w
                if ih >= -a.padTop && ih < h + a.padBottom && iw >= -a.padLeft && iw < w + a.padRight { padded += 1 }
                if ih < 0 || ih >= h || iw < 0 || iw >= w { continue }
                let v = x[(plane * h + ih) * w + iw]
                best = max(best, v); sum += v; inside += 1
            } }
            let value: Double
            if let include = countIncludePad { value = sum / Double(include ? padded : inside) } else { value = best }
            y[(plane * a.outH + oh) * a.outW + ow] = value
        } } }
        return (y, [n, c, a.outH, a.outW])
    }

    /// NumPy broadcasting of a binary operation.
    static func broadcast(_ a: [Double], _ as_: [Int], _ b: [Double], _ bs: [Int], _ op: (Double, Double) -> Double) -> ([Double], [Int]) {
        let rank = max(as_.count, bs.count)
        let pa = Array(repeating: 1, count: rank - as_.count) + as_, pb = Array(repeating: 1, count: rank - bs.count) + bs
        let out = (0..<rank).map { max(pa[$0], pb[$0]) }
        var y = [Double](repeating: 0, count: out.reduce(1, *))
        for i in 0..<y.count {
            var r = i, ia = 0, ib = 0, sa = 1, sb = 1
            for d in stride(from: rank - 1, through: 0, by: -1) {
                let idx = r % out[d]; r /= out[d]
                ia += (pa[d] == 1 ? 0 : idx) * sa; sa *= pa[d]
                ib += (pb[d] == 1 ? 0 : idx) * sb; sb *= pb[d]
            }
            y[i] = op(a[ia], b[ib])
        }
        return (y, out)
    }

    /// `[m×k] · [k×n]` of row-major matrices, optionally transposed as stored.
    static func matrixProduct(_ a: [Double], _ b: [Double], m: Int, k: Int, n: Int, transA: Bool = false, transB: Bool = false) -> [Double] {
        var y = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var s = 0.0
            for t in 0..<k { s += (transA ? a[t * m + i] : a[i * k + t]) * (transB ? b[j * k + t] : b[t * n + j]) }
            y[i * n + j] = s
        } }
        return y
    }
}
