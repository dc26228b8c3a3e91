import Foundation

/// Weight codes stored at their bit width: `b` bits per code, codes stored as `q - qmin` (unsigned), the
/// first code in the lowest bits of the first byte (little-endian bit order), the last byte zero-padded.
///
/// `n` codes of `b` bits take `ceil(n * b / 8)` bytes: a 2-bit layer is 16 times smaller than its Float32 weights.
enum PackedCodes {
    /// Bytes taken by `count` codes of `bits` bits.
    static func byteCount(count: Int, bits: Int) -> Int { (count * bits + 7) / 8 }

    /// Packs `codes` (each within `grid`'s range, else `ModelFileError.codeOutOfRange` naming `layer`).
    static func pack(_ codes: [Int32], grid: QuantizationGrid, layer: String) throws -> Data {
        let bits = grid.bits, qmin = Int64(grid.qmin), qmax = Int64(grid.qmax)
        var bytes = [UInt8](repeating: 0, count: byteCount(count: codes.count, bits: bits))
        var accumulator: UInt64 = 0, filled = 0, next = 0
        for (i, code) in codes.enumerated() {
            let q = Int64(code)
            guard q >= qmin, q <= qmax else {
                throw ModelFileError.codeOutOfRange(layer: layer, index: i, code: Int(code), range: grid.qmin...grid.qmax)
            }
            accumulator |= UInt64(q - qmin) << UInt64(filled)
            filled += bits
            while filled >= 8 {
                bytes[next] = UInt8(truncatingIfNeeded: accumulator)
                accumulator >>= 8
                filled -= 8
                next += 1
            }
        }
        if filled > 0 { bytes[next] = UInt8(truncatingIfNeeded: accumulator) }
        return Data(bytes)
    }

    /// Unpacks `count` codes of `grid.bits` bits from `bytes` (which must hold exactly `byteCount` bytes).
    static func unpack(_ bytes: Data, count: Int, grid: QuantizationGrid) -> [Int32] {
        let bits = grid.bits, mask = (UInt64(1) << UInt64(bits)) - 1, qmin = Int32(grid.qmin)
        var codes = [Int32](repeating: 0, count: count)
        bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var accumulator: UInt64 = 0, filled = 0, next = 0
            for i in 0..<count {
                while filled < bits {
                    accumulator |= UInt64(raw[next]) << UInt64(filled)
                    filled += 8
                    next += 1
                }
                codes[i] = Int32(accumulator & mask) + qmin
                accumulator >>= UInt64(bits)
                filled -= bits
            }
        }
        return codes
    }
}
