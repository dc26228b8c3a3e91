/// The integer matrix product of the engine: `C[m, n] = Σ_k A[m, k] * B[k, n]` with 16-bit operands and
/// 32-bit sums, over packed panels so that the inner loop reads both operands contiguously.
///
/// The depth is taken in pairs `(2t, 2t + 1)`, zero-padded to even. `A` (weights, centered by their zero
/// point) is packed in blocks of four rows, `A_packed[((block * pairs + t) * 4 + r) * 2 + h] = A[4 block + r, 2t + h]`,
/// so one 32-bit word holds a row's pair; `B` (activation patches, centered) in panels of eight columns,
/// `B_packed[((panel * pairs + t) * 8 + j) * 2 + h] = B[2t + h, 8 panel + j]`. Both are zero past the edges.
///
/// Each step of the micro-kernel multiplies a panel's pair row (eight columns, two 128-bit halves) by a
/// broadcast weight pair and adds the even and odd products: `Σ_h B[2t+h, j] * A[r, 2t+h]`. Written as a
/// sign-extended multiply followed by `evenHalf + oddHalf`, this is the pattern the compiler turns into one
/// `pmaddwd` per four columns on baseline x86-64 (eight 16-bit multiply-adds per instruction), and into
/// the equivalent pairwise multiply-add elsewhere.
///
/// The caller guarantees that no sum leaves `Int32` (see `IntegerLayerKernel`'s bound).
enum IntegerGEMM {
    /// Rows per packed weight block.
    static let rowBlock = 4
    /// Columns per packed patch panel.
    static let columnPanel = 8

    /// Number of row blocks for `rows` rows.
    static func blocks(_ rows: Int) -> Int { (rows + rowBlock - 1) / rowBlock }
    /// Number of column panels for `columns` columns.
    static func panels(_ columns: Int) -> Int { (columns + columnPanel - 1) / columnPanel }
    /// Number of depth pairs for `depth`.
    static func pairs(_ depth: Int) -> Int { (depth + 1) / 2 }

    /// Elements of a packed `B` of `columns` columns and `depth` rows.
    static func packedColumnsCount(columns: Int, depth: Int) -> Int { panels(columns) * pairs(depth) * columnPanel * 2 }

    /// Where `B[k, n]` goes in a packed `B` of `depth` rows.
    @inline(__always) static func columnIndex(k: Int, n: Int, depth: Int) -> Int {
        ((((n >> 3) * ((depth + 1) >> 1) + (k >> 1)) << 3) + (n & 7)) * 2 + (k & 1)
    }

    /// Packs `rows × depth` values given by `value(row, k)` into row blocks.
    static func packRows(rows: Int, depth: Int, _ value: (Int, Int) -> Int16) -> [Int16] {
        let pairs = pairs(depth)
        var packed = [Int16](repeating: 0, count: blocks(rows) * pairs * rowBlock * 2)
        for m in 0..<rows {
            let block = m / rowBlock, r = m % rowBlock
            for k in 0..<depth { packed[((block * pairs + k / 2) * rowBlock + r) * 2 + k % 2] = value(m, k) }
        }
        return packed
    }

    /// `Σ_h b[2i + h] * pair[h]` for the four columns `i` of `b` (sign-extended 16-bit lanes).
    @inline(__always)
    private static func multiplyAdd(_ b: SIMD8<Int32>, _ pair: UInt32) -> SIMD4<Int32> {
        let w = SIMD8<Int32>(truncatingIfNeeded: unsafeBitCast(SIMD4<UInt32>(repeating: pair), to: SIMD8<Int16>.self))
        let products = b &* w
        return products.evenHalf &+ products.oddHalf
    }

    /// `C[m, n]` for the rows of `rowBlocks` and all `columns`, written at `c + m * ldc + n` (only valid
    /// rows and columns are written).
    static func multiply(a: UnsafePointer<Int16>, rowBlocks: Range<Int>, rows: Int,
                         b: UnsafePointer<Int16>, columns: Int, depth: Int,
                         c: UnsafeMutablePointer<Int32>, ldc: Int) {
        let panelCount = panels(columns), pairs = pairs(depth)
        let aWords = UnsafeRawPointer(a).assumingMemoryBound(to: UInt32.self)
        for panel in 0..<panelCount {
            let bPanel = UnsafeRawPointer(b + panel * pairs * columnPanel * 2)
            let n0 = panel * columnPanel, width = Swift.min(columnPanel, columns - n0)
            for block in rowBlocks {
                var aStep = aWords + block * pairs * rowBlock
                var bStep = bPanel
                var c00 = SIMD4<Int32>(), c01 = SIMD4<Int32>(), c10 = SIMD4<Int32>(), c11 = SIMD4<Int32>()
                var c20 = SIMD4<Int32>(), c21 = SIMD4<Int32>(), c30 = SIMD4<Int32>(), c31 = SIMD4<Int32>()
                for _ in 0..<pairs {
                    let b0 = SIMD8<Int32>(truncatingIfNeeded: bStep.loadUnaligned(as: SIMD8<Int16>.self))
                    let b1 = SIMD8<Int32>(truncatingIfNeeded: bStep.loadUnaligned(fromByteOffset: 16, as: SIMD8<Int16>.self))
                    c00 &+= multiplyAdd(b0, aStep[0]); c01 &+= multiplyAdd(b1, aStep[0])
                    c10 &+= multiplyAdd(b0, aStep[1]); c11 &+= multiplyAdd(b1, aStep[1])
                    c20 &+= multiplyAdd(b0, aStep[2]); c21 &+= multiplyAdd(b1, aStep[2])
                    c30 &+= multiplyAdd(b0, aStep[3]); c31 &+= multiplyAdd(b1, aStep[3])
                    aStep += rowBlock
                    bStep += columnPanel * 2 * MemoryLayout<Int16>.stride
                }
                let m0 = block * rowBlock
                for r in 0..<Swift.min(rowBlock, rows - m0) {
                    let v: SIMD8<Int32>
                    switch r {
                    case 0: v = SIMD8(lowHalf: c00, highHalf: c01)
                    case 1: v = SIMD8(lowHalf: c10, highHalf: c11)
                    case 2: v = SIMD8(lowHalf: c20, highHalf: c21)
                    default: v = SIMD8(lowHalf: c30, highHalf: c31)
                    }
                    let row = c + (m0 + r) * ldc + n0
                    if width == columnPanel {
                        UnsafeMutableRawPointer(row).storeBytes(of: v, as: SIMD8<Int32>.self)
                    } else {
                        for j in 0..<width { row[j] = v[j] }
                    }
                }
            }
        }
    }
}
