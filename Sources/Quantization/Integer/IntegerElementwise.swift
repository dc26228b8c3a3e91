import TensorKernels

/// Element-wise integer operations: the residual Add, Relu/Clip on codes or accumulators, requantization
/// of a value onto a site, and Concat of codes that share a quantizer.
enum IntegerElementwise {
    /// Per-channel exponents and layout of a value: element `i` has exponent `exponents[(i / inner) % count]`.
    private static func layout(_ v: IntegerValue) -> (exponents: [Int], inner: Int) {
        switch v {
        case .codes(let t): return ([t.quantizer.exponent], 1)
        case .accumulator(let t): return (t.exponents, t.inner)
        }
    }

    /// Calls `body` with the centered values of `v` (`q - z` or the accumulator).
    private static func withValues<R>(_ v: IntegerValue, _ body: ((Int) -> Int64) -> R) -> R {
        switch v {
        case .codes(let t):
            let z = Int64(t.quantizer.zeroPoint)
            return t.codes.withUnsafeBufferPointer { p in body { Int64(p[$0]) - z } }
        case .accumulator(let t):
            return t.values.withUnsafeBufferPointer { p in body { p[$0] } }
        }
    }

    /// `a + b` with both operands aligned to the smaller exponent of each channel by left shifts (exact in
    /// `Int64`), then requantized onto `site` with one round-half-to-even shift, or kept as an accumulator.
    /// Operands of different shapes (`[N,C,H,W] + [N,1,H,W]`) are first broadcast (NumPy rules) by repeating
    /// their values, which is what the simulation's float Add computes.
    static func add(_ a: IntegerValue, _ b: IntegerValue, site: OutputSite?, node: String) throws -> IntegerValue {
        guard let shape = Elementwise.broadcastShape(a.shape, b.shape) else {
            throw IntegerEngineError.inconsistentInput(node: node, detail: "adds shapes \(a.shape) and \(b.shape), which do not broadcast")
        }
        let a = try broadcast(a, to: shape, node: node), b = try broadcast(b, to: shape, node: node)
        let la = layout(a), lb = layout(b)
        // The layout that carries the per-channel exponents (a uniform operand fits any).
        let channels = Swift.max(la.exponents.count, lb.exponents.count)
        let inner = la.exponents.count > 1 ? la.inner : lb.exponents.count > 1 ? lb.inner : Swift.max(1, a.shape.shapeProduct)
        if la.exponents.count > 1 && lb.exponents.count > 1 && (la.inner != lb.inner || la.exponents.count != lb.exponents.count) {
            throw IntegerEngineError.inconsistentInput(node: node, detail: "adds accumulators of different channel layouts")
        }
        func e(_ l: (exponents: [Int], inner: Int), _ c: Int) -> Int { l.exponents[l.exponents.count == 1 ? 0 : c] }
        let merged = (0..<channels).map { Swift.min(e(la, $0), e(lb, $0)) }
        let shiftA = (0..<channels).map { merged[$0] - e(la, $0) }, shiftB = (0..<channels).map { merged[$0] - e(lb, $0) }
        let count = a.shape.shapeProduct, segments = count / inner

        return withValues(a) { va in
            withValues(b) { vb in
                if let site {
                    var out = [Int32](repeating: 0, count: count)
                    out.withUnsafeMutableBufferPointer { o in
                        let O = o.baseAddress
                        Parallel.forEachChunk(segments) { range in
                            guard let O else { return }
                            for s in range {
                                let c = s % channels, sa = shiftA[c], sb = shiftB[c], shift = site.quantizer.exponent - merged[c]
                                for i in s * inner..<(s + 1) * inner {
                                    let sum = IntegerRounding.shift(va(i), right: sa) + IntegerRounding.shift(vb(i), right: sb)
                                    O[i] = site.code(sum, shift: shift)
                                }
                            }
                        }
                    }
                    return .codes(CodeTensor(shape: shape, codes: out, quantizer: site.quantizer))
                }
                var out = [Int64](repeating: 0, count: count)
                out.withUnsafeMutableBufferPointer { o in
                    let O = o.baseAddress
                    Parallel.forEachChunk(segments) { range in
                        guard let O else { return }
                        for s in range {
                            let c = s % channels, sa = shiftA[c], sb = shiftB[c]
                            for i in s * inner..<(s + 1) * inner {
                                O[i] = IntegerRounding.shift(va(i), right: sa) + IntegerRounding.shift(vb(i), right: sb)
                            }
                        }
                    }
                }
                return .accumulator(AccumulatorTensor(shape: shape, values: out, exponents: merged, inner: inner))
            }
        }
    }

    /// `v` repeated along the dimensions where it is broadcast to `shape`. An accumulator keeps its
    /// per-channel exponents: its channel axis (the one whose trailing size is its layout's `inner`) is never
    /// a broadcast one, so only `inner` changes; a layout that does not survive the broadcast is refused.
    private static func broadcast(_ v: IntegerValue, to shape: [Int], node: String) throws -> IntegerValue {
        guard v.shape != shape else { return v }
        let source = Elementwise.sourceIndices(of: v.shape, broadcastTo: shape)
        switch v {
        case .codes(let t):
            return .codes(CodeTensor(shape: shape, codes: source.map { t.codes[$0] }, quantizer: t.quantizer))
        case .accumulator(let t):
            var inner = t.inner
            if t.exponents.count > 1 {
                let padded = [Int](repeating: 1, count: shape.count - t.shape.count) + t.shape
                let refused = IntegerEngineError.inconsistentInput(node: node, detail: "broadcasts a per-channel accumulator of shape \(t.shape) to \(shape) across its channels")
                guard let axis = padded.indices.first(where: { padded[$0] == t.exponents.count && Array(padded[($0 + 1)...]).shapeProduct == t.inner }) else { throw refused }
                inner = Array(shape[(axis + 1)...]).shapeProduct
                guard source.indices.allSatisfy({ t.exponent(at: source[$0]) == t.exponents[($0 / inner) % t.exponents.count] }) else { throw refused }
            }
            var out = AccumulatorTensor(shape: shape, values: source.map { t.values[$0] }, exponents: t.exponents, inner: inner)
            out.divisor = t.divisor
            return .accumulator(out)
        }
    }

    /// Relu (`lo = 0, hi = ∞`) or Clip(lo, hi). On codes: clamp to `[z + round(lo/s), z + round(hi/s)]`
    /// (equal to clamping the real value, then quantizing). On an accumulator: clamp to the bounds in its
    /// units, which the engine's plan checked to be integers.
    static func clamp(_ x: IntegerValue, lo: Float, hi: Float) -> IntegerValue {
        switch x {
        case .codes(var t):
            let r = t.quantizer.codeRange(lo: lo, hi: hi)
            let l = Int32(r.lowerBound), h = Int32(r.upperBound)
            for i in t.codes.indices { t.codes[i] = Swift.min(Swift.max(t.codes[i], l), h) }
            return .codes(t)
        case .accumulator(var t):
            func bound(_ b: Float, _ e: Int) -> Int64? {
                b.isFinite ? Int64(Double(b) * PowerOfTwo.double(-e)) : nil
            }
            for i in t.values.indices {
                let e = t.exponent(at: i)
                if let l = bound(lo, e) { t.values[i] = Swift.max(t.values[i], l) }
                if let h = bound(hi, e) { t.values[i] = Swift.min(t.values[i], h) }
            }
            return .accumulator(t)
        }
    }

    /// `value` onto `site`: `clamp(round_half_even((q - z_a) * 2^(e_a - e_y)) + z_y)` for codes, the same
    /// with `v` and its channel's exponent for an accumulator.
    static func requantize(_ value: IntegerValue, to site: OutputSite) -> CodeTensor {
        let l = layout(value), shape = value.shape
        let count = shape.shapeProduct
        var out = [Int32](repeating: 0, count: count)
        withValues(value) { v in
            for i in 0..<count {
                let e = l.exponents[(i / l.inner) % l.exponents.count]
                out[i] = site.code(v(i), exponent: e)
            }
        }
        return CodeTensor(shape: shape, codes: out, quantizer: site.quantizer)
    }

    /// The product of two code tensors (NumPy broadcasting): `(q_a - z_a)(q_b - z_b)` with exponent
    /// `e_a + e_b`, onto `site` when given, else kept as an accumulator. The simulation's float product of the
    /// two dequantized values is exact (at most 2 x 9 significant bits), so both agree bit for bit.
    static func multiply(_ a: CodeTensor, _ b: CodeTensor, site: OutputSite?, node: String) throws -> IntegerValue {
        guard let shape = Elementwise.broadcastShape(a.shape, b.shape) else {
            throw IntegerEngineError.inconsistentInput(node: node, detail: "multiplies shapes \(a.shape) and \(b.shape)")
        }
        let ia = Elementwise.sourceIndices(of: a.shape, broadcastTo: shape), ib = Elementwise.sourceIndices(of: b.shape, broadcastTo: shape)
        let za = Int64(a.quantizer.zeroPoint), zb = Int64(b.quantizer.zeroPoint)
        let exponent = a.quantizer.exponent + b.quantizer.exponent
        let products = (0..<shape.shapeProduct).map { i in (Int64(a.codes[ia[i]]) - za) * (Int64(b.codes[ib[i]]) - zb) }
        guard let site else {
            return .accumulator(AccumulatorTensor(shape: shape, values: products, exponents: [exponent], inner: 1))
        }
        let shift = site.quantizer.exponent - exponent
        return .codes(CodeTensor(shape: shape, codes: products.map { site.code($0, shift: shift) }, quantizer: site.quantizer))
    }

    /// Codes that share one quantizer, concatenated along `axis`.
    static func concat(_ parts: [CodeTensor], axis: Int) throws -> CodeTensor {
        let first = parts[0]
        let a = axis < 0 ? axis + first.shape.count : axis
        guard a >= 0, a < first.shape.count else {
            throw IntegerEngineError.inconsistentInput(node: "Concat", detail: "axis \(axis) out of range for \(first.shape)")
        }
        let outer = Array(first.shape[..<a]).shapeProduct
        var shape = first.shape
        shape[a] = parts.map { $0.shape[a] }.reduce(0, +)
        var out: [Int32] = []
        out.reserveCapacity(shape.shapeProduct)
        let blocks = parts.map { Array($0.shape[a...]).shapeProduct }
        for o in 0..<outer {
            for (p, part) in parts.enumerated() { out.append(contentsOf: part.codes[o * blocks[p]..<(o + 1) * blocks[p]]) }
        }
        return CodeTensor(shape: shape, codes: out, quantizer: first.quantizer)
    }
}
