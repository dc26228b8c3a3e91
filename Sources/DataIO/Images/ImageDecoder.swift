import Foundation
import ImageCodecs

/// Decodes JPEG and PNG files to 8-bit RGB with the system's libjpeg-turbo and libpng, converting as
/// PIL's `Image.open(path).convert("RGB")` does, so that a preprocessing written in Python sees the same pixels.
///
/// - Grayscale (JPEG, PNG of 1-8 bits): the gray value in R, G and B. PNG gray below 8 bits is scaled to
///   0...255 by replicating its bits (a 4-bit 15 is 255).
/// - Alpha (PNG RGBA, gray + alpha, palette with tRNS): dropped, not composited.
/// - Palette PNG: the palette's colours.
/// - 16-bit colour PNG: the high byte of each sample (PIL's "RGB;16B" unpacking). 16-bit grayscale PNG is
///   refused: PIL's convert("RGB") clips it to 255 instead of scaling.
/// - CMYK and YCCK JPEG: libjpeg returns CMYK (inverted when the file has Adobe's marker, as Photoshop and
///   PIL write it); then PIL's CMYK -> RGB, R = (255 - K) - C (255 - K) / 255 rounded (likewise G from M,
///   B from Y).
/// - Gamma, ICC profiles and EXIF orientation are ignored, as PIL ignores them in `open` and `convert`.
public enum ImageDecoder {
    /// The kind of an image file by its first bytes.
    public enum Format: Sendable { case jpeg, png }

    /// JPEG (FF D8 FF) or PNG (89 'P' 'N' 'G' 0D 0A 1A 0A) from a file's first bytes; nil otherwise.
    public static func format(of bytes: Data) -> Format? {
        let head = [UInt8](bytes.prefix(8))
        if head.count >= 3, head[0] == 0xFF, head[1] == 0xD8, head[2] == 0xFF { return .jpeg }
        if head == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] { return .png }
        return nil
    }

    /// Reads and decodes the file at `url` to RGB.
    public static func decode(contentsOf url: URL) throws -> RGBImage {
        let bytes: Data
        do { bytes = try Data(contentsOf: url) } catch {
            throw DataError.unreadable(path: url.path, reason: error.localizedDescription)
        }
        return try decode(bytes, path: url.path)
    }

    /// The name of another image format from a file's first bytes (BMP, GIF, WebP, TIFF, PNM), for messages.
    static func otherFormat(of bytes: Data) -> String? {
        let head = [UInt8](bytes.prefix(12))
        func starts(_ text: String) -> Bool { head.starts(with: Array(text.utf8)) }
        if starts("BM") { return "a BMP image" }
        if starts("GIF8") { return "a GIF image" }
        if starts("RIFF"), head.count >= 12, Array(head[8..<12]) == Array("WEBP".utf8) { return "a WebP image" }
        if starts("II*\u{0}") || starts("MM\u{0}*") { return "a TIFF image" }
        if head.count >= 2, head[0] == UInt8(ascii: "P"), (UInt8(ascii: "1")...UInt8(ascii: "6")).contains(head[1]) { return "a PNM (PPM/PGM/PBM) image" }
        return nil
    }

    /// Decodes a JPEG or PNG file's bytes to RGB; `path` names the file in errors.
    public static func decode(_ bytes: Data, path: String) throws -> RGBImage {
        guard let format = format(of: bytes) else {
            if let other = otherFormat(of: bytes) { throw ImageError.unsupported(path: path, kind: other + " (this tool reads JPEG and PNG)") }
            throw ImageError.notAnImage(path: path)
        }
        var decoded = rapq_decoded_image()
        let status = bytes.withUnsafeBytes { raw -> rapq_image_status in
            let base = raw.bindMemory(to: UInt8.self).baseAddress!
            switch format {
            case .jpeg: return rapq_decode_jpeg(base, raw.count, &decoded)
            case .png: return rapq_decode_png(base, raw.count, &decoded)
            }
        }
        defer { rapq_image_release(&decoded) }
        let message = withUnsafeBytes(of: decoded.message) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        switch status {
        case RAPQ_IMAGE_OK: break
        case RAPQ_IMAGE_UNSUPPORTED: throw ImageError.unsupported(path: path, kind: message)
        case RAPQ_IMAGE_TOO_LARGE: throw ImageError.tooLarge(path: path, reason: message)
        default: throw ImageError.damaged(path: path, reason: message.isEmpty ? "the decoder stopped" : message)
        }
        let width = Int(decoded.width), height = Int(decoded.height), channels = Int(decoded.channels)
        let source = UnsafeBufferPointer(start: decoded.pixels, count: width * height * channels)
        return RGBImage(width: width, height: height,
                        pixels: rgb(from: source, channels: channels, format: format, adobeInverted: decoded.adobe_inverted != 0))
    }

    /// Interleaved samples of 1-4 channels to RGB (see the type's documentation for each case).
    static func rgb(from source: UnsafeBufferPointer<UInt8>, channels: Int, format: Format, adobeInverted: Bool) -> [UInt8] {
        let count = source.count / channels
        var out = [UInt8](repeating: 0, count: count * 3)
        out.withUnsafeMutableBufferPointer { target in
            switch (channels, format) {
            case (1, _), (2, _):
                for i in 0..<count {
                    let v = source[i * channels]
                    target[3 * i] = v; target[3 * i + 1] = v; target[3 * i + 2] = v
                }
            case (4, .jpeg):
                for i in 0..<count {
                    var ink = (source[4 * i], source[4 * i + 1], source[4 * i + 2], source[4 * i + 3])
                    if adobeInverted { ink = (255 - ink.0, 255 - ink.1, 255 - ink.2, 255 - ink.3) }
                    let white = 255 - Int(ink.3)
                    target[3 * i] = UInt8(white - multiplyDivide255(Int(ink.0), white))
                    target[3 * i + 1] = UInt8(white - multiplyDivide255(Int(ink.1), white))
                    target[3 * i + 2] = UInt8(white - multiplyDivide255(Int(ink.2), white))
                }
            default:
                for i in 0..<count {
                    target[3 * i] = source[channels * i]
                    target[3 * i + 1] = source[channels * i + 1]
                    target[3 * i + 2] = source[channels * i + 2]
                }
            }
        }
        return out
    }

    /// a * b / 255 rounded to nearest for a, b in 0...255, in integers: t = a b + 128, (t + t >> 8) >> 8.
    @inline(__always) static func multiplyDivide255(_ a: Int, _ b: Int) -> Int {
        let t = a * b + 128
        return (t + (t >> 8)) >> 8
    }
}
