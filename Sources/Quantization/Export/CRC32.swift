import Foundation

/// The CRC-32 of IEEE 802.3 / zlib / PNG (reflected polynomial `0xEDB88320`): detects a flipped bit or a
/// damaged block in a saved model, which the JSON parser and the range checks alone would miss.
public enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// The checksum of `bytes` (`CRC32.checksum(Data("123456789".utf8)) == 0xCBF43926`).
    public static func checksum<Bytes: DataProtocol>(_ bytes: Bytes) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for region in bytes.regions {
            region.withUnsafeBytes { raw in
                for byte in raw { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
            }
        }
        return crc ^ 0xFFFF_FFFF
    }
}
