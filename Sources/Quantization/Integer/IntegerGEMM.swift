/// The integer matrix product of the engine: `C[m, n] = Σ_k A[m, k] * B[k, n]` with 16-bit operands and
/// 32-bit sums, over packed panels so that the inner loop reads both operands contiguously.
///
/// `A` (weights, centered by their zero point) is packed in blocks of `rowBlock` rows,
/// `A_packed[(block * K + k) * rowBlock + r] = A[block * rowBlock + r, k]`; `B` (activation patches,
/// centered) in panels of `columnPanel` columns, `B_packed[(panel * K + k) * columnPanel + j] = B[k, panel * columnPanel + j]`;
/// both are zero-filled past the edges. Each step of the micro-kernel widens eight 16-bit patch values to
/// `SIMD8<Int32>` and adds their products with four broadcast weights into four accumulators.
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

    /// Packs `rows × depth` values given by `value(row, k)` into row blocks.
    static func packRows(rows: Int, depth: Int, _ value: (Int, Int) -> Int16) -> [Int16] {
        var packed = [Int16](repeating: 0, count: blocks(rows) * rowBlock * depth)
        for m in 0..<rows {
            let block = m / rowBlock, r = m % rowBlock
            for k in 0..<depth { packed[(block * depth + k) * rowBlock + r] = value(m, k) }
        }
        return packed
    }

    /// `C[m, n]` for the rows of `rowBlocks` and all `columns`, written at `c + m * ldc + n` (only valid
    /// rows and columns are written).
    static func multiply(a: UnsafePointer<Int16>, rowBlocks: Range<Int>, rows: Int,
                         b: UnsafePointer<Int16>, columns: Int, depth: Int,
                         c: UnsafeMutablePointer<Int32>, ldc: Int) {
        let panelCount = panels(columns)
        for panel in 0..<panelCount {
            let bPanel = b + panel * depth * columnPanel
            let n0 = panel * columnPanel, width = Swift.min(columnPanel, columns - n0)
            for block in rowBlocks {
                var aStep = a + block * depth * rowBlock
                var bStep = bPanel
                var c0 = SIMD8<Int32>(), c1 = SIMD8<Int32>(), c2 = SIMD8<Int32>(), c3 = SIMD8<Int32>()
                for _ in 0..<depth {
                    let bv = SIMD8<Int32>(truncatingIfNeeded: UnsafeRawPointer(bStep).loadUnaligned(as: SIMD8<Int16>.self))
                    c0 &+= bv &* SIMD8<Int32>(repeating: Int32(aStep[0]))
                    c1 &+= bv &* SIMD8<Int32>(repeating: Int32(aStep[1]))
                    c2 &+= bv &* SIMD8<Int32>(repeating: Int32(aStep[2]))
                    c3 &+= bv &* SIMD8<Int32>(repeating: Int32(aStep[3]))
                    aStep += rowBlock
                    bStep += columnPanel
                }
                let m0 = block * rowBlock
                let results = (c0, c1, c2, c3)
                for r in 0..<Swift.min(rowBlock, rows - m0) {
                    let v: SIMD8<Int32>
                    switch r { case 0: v = results.0; case 1: v = results.1; case 2: v = results.2; default: v = results.3 }
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
