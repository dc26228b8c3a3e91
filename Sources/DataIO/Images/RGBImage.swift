/// An 8-bit RGB image: rows top to bottom, pixels left to right, R, G, B interleaved.
public struct RGBImage: Sendable, Equatable {
    /// Pixels per row.
    public var width: Int
    /// Rows.
    public var height: Int
    /// width * height * 3 samples, 0...255.
    public var pixels: [UInt8]

    /// An image from interleaved RGB samples; `pixels.count` must be width * height * 3.
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "RGBImage: \(pixels.count) samples for \(width) x \(height) x 3")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// "W x H", for messages.
    public var sizeDescription: String { "\(width) x \(height)" }

    /// The `width` x `height` region whose top-left pixel is (`left`, `top`); it must lie inside the image.
    public func cropped(left: Int, top: Int, width: Int, height: Int) -> RGBImage {
        precondition(left >= 0 && top >= 0 && left + width <= self.width && top + height <= self.height, "crop outside the image")
        var out = [UInt8](repeating: 0, count: width * height * 3)
        pixels.withUnsafeBufferPointer { source in
            out.withUnsafeMutableBufferPointer { target in
                for y in 0..<height {
                    let from = ((top + y) * self.width + left) * 3
                    for i in 0..<(width * 3) { target[y * width * 3 + i] = source[from + i] }
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
    }

    /// The image mirrored left to right.
    public func flippedHorizontally() -> RGBImage {
        var out = pixels
        for y in 0..<height {
            for x in 0..<width {
                let from = (y * width + x) * 3, to = (y * width + width - 1 - x) * 3
                out[to] = pixels[from]; out[to + 1] = pixels[from + 1]; out[to + 2] = pixels[from + 2]
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
    }

    /// The image as gray in all three channels, PIL's `convert("L")` of RGB (ITU-R 601-2 luma in 16-bit
    /// fixed point): L = (19595 R + 38470 G + 7471 B + 2^15) >> 16.
    public func gray() -> RGBImage {
        var out = pixels
        for p in 0..<(width * height) {
            let l = (19595 * Int(pixels[3 * p]) + 38470 * Int(pixels[3 * p + 1]) + 7471 * Int(pixels[3 * p + 2]) + 0x8000) >> 16
            out[3 * p] = UInt8(l); out[3 * p + 1] = UInt8(l); out[3 * p + 2] = UInt8(l)
        }
        return RGBImage(width: width, height: height, pixels: out)
    }
}
