/// The inner loop of `depthwiseForward` for one plane: every output row from the padded scratch plane.
///
/// This file is compiled twice: here, for the baseline x86-64 instruction set (SSE2: a `SIMD8<Float>` is
/// two 4-lane registers), and as the module `DepthwiseAVX2` (a symbolic link to this file, compiled with
/// AVX2: one 8-lane register), which `Conv2D` runs on CPUs that have AVX2 (`VectorUnit`). Both copies do
/// the same multiplications and additions in the same order (no fused multiply-add), so their outputs
/// have the same bits. `computePlane` is the one entry; both copies have the same type, so `Conv2D` picks
/// one as a function value.
package struct DepthwiseRows {
    let padded: UnsafePointer<Float>
    /// Scratch elements between the first taps of consecutive output rows.
    let rowStep: Int
    let filter: UnsafePointer<Float>
    let tapOffsets: UnsafePointer<Int>
    let taps: Int
    let bias: Float
    let clamp: ClosedRange<Float>?

    /// Every output of one plane into `y` (`rows × columns`) from the padded scratch plane `padded`: as one
    /// flat run through `flatBuffer` when it is given (stride-1 planes whose padded rows are `rowWidth` wide),
    /// otherwise row by row (consecutive output rows' first taps `rowStep` apart).
    @inline(never)  // never inlined into a caller compiled for another instruction set
    package static func computePlane(padded: UnsafePointer<Float>, rowStep: Int, filter: UnsafePointer<Float>,
                                     tapOffsets: UnsafePointer<Int>, taps: Int, bias: Float, clamp: ClosedRange<Float>?,
                                     into y: UnsafeMutablePointer<Float>, rows: Int, columns: Int, rowWidth: Int,
                                     flatBuffer: UnsafeMutablePointer<Float>?) {
        let plane = DepthwiseRows(padded: padded, rowStep: rowStep, filter: filter, tapOffsets: tapOffsets, taps: taps,
                                  bias: bias, clamp: clamp)
        if let flatBuffer {
            plane.computeFlat(into: y, rows: rows, columns: columns, rowWidth: rowWidth, buffer: flatBuffer)
        } else {
            plane.compute(into: y, rows: rows, columns: columns)
        }
    }

    @inline(__always)
    private func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self) }

    @inline(__always)
    private func clamped(_ v: SIMD8<Float>) -> SIMD8<Float> {
        guard let clamp else { return v }
        let lo = SIMD8<Float>(repeating: clamp.lowerBound), hi = SIMD8<Float>(repeating: clamp.upperBound)
        let raised = v.replacing(with: lo, where: lo .> v)
        return raised.replacing(with: hi, where: hi .< raised)
    }

    /// Eight outputs from the first taps at `base`: bias, then every tap in order.
    @inline(__always)
    private func eight(at base: UnsafePointer<Float>) -> SIMD8<Float> {
        var a = SIMD8<Float>(repeating: bias)
        for t in 0..<taps { a = a + SIMD8<Float>(repeating: filter[t]) * load8(base + tapOffsets[t]) }
        return a
    }

    /// Sixteen outputs from the first taps at `base`, clamped and stored at `y` (two independent sums).
    @inline(__always)
    private func storeSixteen(at base: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        var a = SIMD8<Float>(repeating: bias), b = a
        for t in 0..<taps {
            let w = SIMD8<Float>(repeating: filter[t]), p = base + tapOffsets[t]
            a = a + w * load8(p)
            b = b + w * load8(p + 8)
        }
        UnsafeMutableRawPointer(y).storeBytes(of: clamped(a), as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(y + 8).storeBytes(of: clamped(b), as: SIMD8<Float>.self)
    }

    /// Two runs of sixteen outputs, from the first taps at `base` and `base + inputDistance`, clamped and
    /// stored at `y` and `y + outputDistance` (four independent sums share each weight broadcast).
    @inline(__always)
    private func storeTwoSixteens(at base: UnsafePointer<Float>, inputDistance: Int, into y: UnsafeMutablePointer<Float>,
                                  outputDistance: Int) {
        var a = SIMD8<Float>(repeating: bias), b = a, c = a, d = a
        for t in 0..<taps {
            let w = SIMD8<Float>(repeating: filter[t]), p = base + tapOffsets[t], q = p + inputDistance
            a = a + w * load8(p)
            b = b + w * load8(p + 8)
            c = c + w * load8(q)
            d = d + w * load8(q + 8)
        }
        UnsafeMutableRawPointer(y).storeBytes(of: clamped(a), as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(y + 8).storeBytes(of: clamped(b), as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(y + outputDistance).storeBytes(of: clamped(c), as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(y + outputDistance + 8).storeBytes(of: clamped(d), as: SIMD8<Float>.self)
    }

    /// Every output of a stride-1 plane narrower than two vectors, as one flat run: output `(oh, o)` is
    /// computed at `oh · rowWidth + o` of `buffer` (rows as wide as the padded plane, whose rows are
    /// `rowWidth` apart too, so one tap offset serves every position), then the first `columns` of each
    /// row are copied out. The extra positions per row are computed and dropped; the sums are the same,
    /// in the same order, as `compute`'s.
    @inline(__always)
    private func computeFlat(into Y: UnsafeMutablePointer<Float>, rows: Int, columns: Int, rowWidth: Int,
                             buffer: UnsafeMutablePointer<Float>) {
        let count = rows * rowWidth
        for f in stride(from: 0, to: count, by: 16) { storeSixteen(at: padded + f, into: buffer + f) }
        for oh in 0..<rows { (Y + oh * columns).update(from: buffer + oh * rowWidth, count: columns) }
    }

    @inline(__always)
    private func compute(into Y: UnsafeMutablePointer<Float>, rows: Int, columns: Int) {
        for oh in 0..<rows {
            let base = padded + oh * rowStep, y = Y + oh * columns
            var o = 0
            if oh % 2 == 0 && oh + 1 < rows {
                // Two rows at once: four independent sums per tap share each weight broadcast.
                while o + 16 <= columns {
                    storeTwoSixteens(at: base + o, inputDistance: rowStep, into: y + o, outputDistance: columns)
                    o += 16
                }
            } else if oh % 2 == 1 {
                o = columns - columns % 16  // done with the row above
            }
            while o + 16 <= columns {
                storeSixteen(at: base + o, into: y + o)
                o += 16
            }
            while o + 8 <= columns {
                UnsafeMutableRawPointer(y + o).storeBytes(of: clamped(eight(at: base + o)), as: SIMD8<Float>.self)
                o += 8
            }
            if o < columns {
                // The last 1-7 columns as one vector: lanes past the row read the scratch slack or the next
                // padded row, and are not stored.
                let v = clamped(eight(at: base + o))
                for lane in 0..<(columns - o) { y[o + lane] = v[lane] }
            }
        }
    }
}
